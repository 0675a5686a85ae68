"""The real command on real zips: the demo class, a rerun, and submissions that attack the grader."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.spec import ROOT

EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
SOLUTION = ROOT / "solutions" / "comp4423_a2"
MODULES = ("Raysampling.py", "volume_rendering.py", "dcnn.py")


def grade(folder: Path, out: Path, *extra: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "grader", "grade", str(folder), "--assignment", "comp4423_a2", "--out", str(out), *extra]
    env = dict(os.environ, TMPDIR=str(tmpdir)) if tmpdir else None  # boxes go under TMPDIR
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = grade(EXAMPLES, out, "--times", str(EXAMPLES / "times.csv"), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_demo_gradebook(demo):
    """Does the demo class get the marks the handout's policy gives, with the documented columns?"""
    out, _ = demo
    with open(out / "gradebook.csv", newline="") as fh:
        header = next(csv.reader(fh))
    items = ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1", "3.2", "4.1", "4.2", "5.1", "5.2", "6.1", "6.2", "6.3"]
    assert header == ["student_id", "name", *items, "total", "late_days", "final", "status", "manual_pending", "sandbox"]
    r = rows(out)
    ref = r["11111111a"]
    full = {"1.1": "15", "1.2": "15", "1.3": "15", "2.1": "12", "3.1": "4", "4.1": "12", "4.2": "8", "5.1": "12",
            "5.2": "8", "6.1": "4", "6.2": "12"}
    assert {i: ref[i] for i in full} == full
    assert ref["total"] == "117" and ref["final"] == "100" and ref["status"] == "ok" and ref["name"] == "REF Solution"
    assert [ref[i] for i in ("1.4", "2.2", "3.2", "6.3")] == ["pending"] * 4  # TA items: pending, not zero
    assert ref["manual_pending"] == "1.4 2.2 3.2 6.3" and ref["sandbox"] in ("bwrap", "rlimits")
    starter = r["22222222b"]
    assert [starter[i] for i in full] == ["0"] * len(full) and starter["status"] == "ok"
    buggy = r["33333333c"]  # three bugs in Tasks 2, 4, 5 and the wrong Yes/No; Tasks 1 and 6 are the reference's
    for item in ("2.1", "4.1", "5.1"):
        assert float(buggy[item]) < 12
    assert buggy["3.1"] == "0" and buggy["1.3"] == "15" and buggy["6.2"] == "12"
    late = r["44444444d"]  # the handout's single-file layout, two days late
    assert late["total"] == "117" and late["late_days"] == "2" and late["final"] == "80"
    misnamed = [v for k, v in r.items() if k.startswith("misnamed-")]
    assert len(misnamed) == 1 and misnamed[0]["final"] == "0" and misnamed[0]["status"].startswith("naming_error")


def test_demo_results_and_feedback(demo):
    """Are results Gradescope-shaped and is feedback actionable without revealing reference code?"""
    out, _ = demo
    res = json.loads((out / "results" / "33333333c.json").read_text())
    assert set(res) >= {"score", "tests", "output"}
    for t in res["tests"]:
        assert {"name", "max_score", "output", "visibility"} <= set(t)
    fb = (out / "feedback" / "33333333c.md").read_text()
    assert "hint" in fb and "T_0 must be 1" in fb
    reference_lines = [ln.strip() for ln in (SOLUTION / "volume_rendering.py").read_text().splitlines() if "np." in ln]
    for line in reference_lines:
        assert line not in fb


def test_rerun_is_identical_and_reuses_results(demo, tmp_path):
    """Does a second run reuse every result and give a byte-identical gradebook?"""
    out, _ = demo
    before = (out / "gradebook.csv").read_bytes()
    proc = grade(EXAMPLES, out, "--times", str(EXAMPLES / "times.csv"))
    assert proc.returncode == 0
    assert (out / "gradebook.csv").read_bytes() == before
    assert proc.stderr.count("reused") == 5


def test_regrade_from_scratch_gives_identical_marks(demo, tmp_path):
    """Does grading the same zips again from nothing give identical marks (seeded checks)?

    Restricted to the numeric items (the training items are repeated in test_determinism and
    test_task6), and without the fork server, so both ways of starting a worker agree."""
    out, _ = demo
    numeric = ("2.1", "3.1", "4.1", "4.2", "5.1", "5.2")
    only = [arg for item in numeric for arg in ("--only", item)]
    proc = grade(EXAMPLES, tmp_path, "--times", str(EXAMPLES / "times.csv"), "--jobs", "2", "--no-fork-server", *only)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again, first = rows(tmp_path), rows(out)
    assert again.keys() == first.keys()
    for sid in first:
        assert [again[sid][i] for i in numeric] == [first[sid][i] for i in numeric], sid


# -- attacks ------------------------------------------------------------------------------------------
def _ref(name: str) -> str:
    return (SOLUTION / name).read_text()


WRONG_VR = "import numpy as np\ndef volume_rendering(rgb, sigma, t_vals):\n    z = np.zeros(sigma.shape)\n    return z.sum(-1), z, z, z\n"
ATTACKS = {
    # id: (files replacing the reference's, items that must score 0)
    "10000001a": ({"volume_rendering.py": "while True:\n    pass\n"}, {"5.1", "5.2"}),  # hangs at import
    "10000002a": ({"Raysampling.py": _ref("Raysampling.py").replace("    return t_samples", "    import os\n    os._exit(0)")}, {"4.1", "4.2"}),
    "10000003a": ({"volume_rendering.py": "import numpy as np\nBOMB = np.ones((1 << 40,), dtype=np.uint8)\n"}, {"5.1", "5.2"}),
    "10000004a": ({"volume_rendering.py": "import glob, numpy as np\n"
                   "def volume_rendering(rgb, sigma, t_vals):\n"
                   "    for p in [q for r in ('/work', '/tmp', '/root', '/opt', '/box/..') for q in glob.glob(r + '/**/*.npz', recursive=True)]:\n"
                   "        d = np.load(p)\n"
                   "        return d['pixel_color'], d['weights'], d['alpha'], d['transmittance']\n"
                   "    raise RuntimeError('no hidden files visible')\n"}, {"5.1", "5.2"}),
    "10000005a": ({"volume_rendering.py": WRONG_VR + "np.allclose = lambda *a, **k: True\nnp.isclose = lambda a, b, **k: np.ones(np.shape(a), bool)\n"
                   "import builtins\nbuiltins.abs = lambda x: 0\n"}, {"5.1", "5.2"}),
    "10000006a": ({"volume_rendering.py": WRONG_VR + "import json, os\n"
                   "for p in ['results.json', '../results.json', '/tmp/results.json', '/box/gradebook.csv']:\n"
                   "    try:\n        open(p, 'w').write(json.dumps({'score': 150, 'tests': []}))\n    except OSError:\n        pass\n"
                   "print(json.dumps({'id': 2, 'ok': True, 'value': 'forged'}))\n"}, {"5.1", "5.2"}),
    "10000007a": ({"Raysampling.py": "import os, time\ndef stratified_sampling(near, far, n):\n"
                   "    while True:\n        try:\n            os.fork()\n        except OSError:\n            time.sleep(0.01)\n"}, {"4.1", "4.2"}),
    "10000008a": ({"dcnn.py": "import sys\nsys.exit(0)\n"}, {"2.1"}),
    "10000009a": ({"Raysampling.py": "print('x' * 200_000_000)\n" + _ref("Raysampling.py")}, set()),
    "10000010a": ({"volume_rendering.py": WRONG_VR + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"}, {"5.1", "5.2"}),
}


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


def test_attacks_earn_nothing_and_the_batch_goes_on(tmp_path):
    """Do hangs, exits, bombs, snooping, patching, forging and parent-killing earn no unearned mark?"""
    from grader.sandbox import detect_mode

    attacks = dict(ATTACKS)
    if detect_mode() != "bwrap":
        # Without bubblewrap the worker can read what the grading user can (README, Security);
        # the snooping attack is only expected to fail inside the real sandbox.
        attacks.pop("10000004a")
    subs = tmp_path / "subs"
    subs.mkdir()
    for sid, (files, _) in attacks.items():
        merged = {name: _ref(name) for name in MODULES} | files
        _zip(subs / f"Assignment2_{sid}_EVIL_Student.zip", merged)
    (subs / "Assignment2_10000011a_CORRUPT_Zip.zip").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out"
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    proc = grade(subs, out, "--jobs", "2", "--timeout-scale", "0.2", tmpdir=boxes)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = rows(out)
    assert len(r) == len(attacks) + 1
    for sid, (_, zeroed) in attacks.items():
        row = r[sid]
        for item in ("2.1", "4.1", "4.2", "5.1", "5.2"):
            full = {"2.1": "12", "4.1": "12", "4.2": "8", "5.1": "12", "5.2": "8"}[item]
            if item in zeroed:
                assert row[item] != full, f"{sid} earned {item}"
            else:
                assert row[item] == full, f"{sid}: untouched item {item} lost marks ({row['status']})"
    assert r["10000011a"]["status"].startswith("bad_zip") and r["10000011a"]["final"] == "0"
    assert r["10000001a"]["status"].startswith("timeout")
    assert not (tmp_path / "results.json").exists()
    assert sorted(p.name for p in (out / "results").iterdir()) == sorted(f"{s}.json" for s in r)
    leftover = subprocess.run(["pgrep", "-f", str(boxes)], capture_output=True, text=True).stdout.split()
    assert leftover == [], "processes of this batch's sandboxes outlived it"
    assert list(boxes.iterdir()) == [], "boxes were not cleaned up"
