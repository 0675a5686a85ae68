"""Does README's "Adding an assignment" work as written? Its code blocks are read from README.md itself,
put in an empty folder, and the commands it names are run: the reference gets full marks, the starter
zero, a misspelt item id is an error."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from grader.spec import ROOT


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Adding an assignment")
    end = text.find("\n## ", start + 10)
    return text[start:end if end > 0 else None]


def _blocks() -> dict[str, str]:
    found = re.findall(r"```(\w+)\n(.*?)```", _section(), re.S)
    toml = [textwrap.dedent(b) for lang, b in found if lang == "toml"]
    py = [textwrap.dedent(b) for lang, b in found if lang == "python"]
    assert len(toml) == 1 and len(py) == 2, "README's walkthrough should hold one rubric and two Python blocks"
    return {"rubric.toml": toml[0], "metrics.py": py[0], "hidden/check_metrics.py": py[1]}


def _grader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _build(tmp_path: Path) -> Path:
    folder = tmp_path / "solutions" / "psnr"
    for name, text in _blocks().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_the_readme_walkthrough_grades_reference_full_and_starter_zero(tmp_path):
    folder = _build(tmp_path)
    made = _grader("starter", "--assignment", str(folder))
    assert made.returncode == 0, made.stderr
    starter = tmp_path / "solutions" / "psnr_starter"
    assert "NotImplementedError" in (starter / "metrics.py").read_text() and (starter / "check_submission.py").exists()
    ref = _grader("check", str(folder / "metrics.py"), "--assignment", str(folder))
    assert ref.returncode == 0, ref.stderr[-2000:]
    assert "| 1.1 | PSNR of two images | 10 | 10 |" in ref.stdout
    stub = _grader("check", str(starter / "metrics.py"), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 0 | 10 |" in stub.stdout
    numpy_inf = tmp_path / "metrics.py"
    numpy_inf.write_text((folder / "metrics.py").read_text().replace('float("inf")', "np.float64(np.inf)"))
    alt = _grader("check", str(numpy_inf), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 10 | 10 |" in alt.stdout, alt.stdout[-1500:]


def test_a_misspelt_item_in_the_walkthroughs_check_stops_with_one_line(tmp_path):
    folder = _build(tmp_path)
    check = folder / "hidden" / "check_metrics.py"
    text = check.read_text()
    assert text.count('@pytest.mark.item("1.1", weight=1,') == 1
    check.write_text(text.replace('@pytest.mark.item("1.1", weight=1,', '@pytest.mark.item("1.10", weight=1,'))
    proc = _grader("check", str(folder / "metrics.py"), "--assignment", str(folder))
    assert proc.returncode == 2 and "'1.10'" in proc.stderr and "Traceback" not in proc.stderr
