"""Hidden tests in pytest idiom: marked with their rubric item, parametrized, plain asserts with approx;
graded by the batch grader (marks, incremental keys) and run by plain pytest against the reference or a
submission with the grader's plugin."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grader import batch, spec
from grader.checks import load_checks
from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_new_assignment import _build  # noqa: E402  (README's walkthrough assignment)

PYTEST_STYLE = '''import numpy as np
import pytest


@pytest.mark.item("1.1", weight=1, timeout=10, module="metrics")
@pytest.mark.parametrize("peak", [1.0, 255.0], ids=["unit", "byte"])
def test_scales_with_the_peak(student, peak):
    """PSNR uses the peak value given"""
    a, b = np.random.default_rng(1).random((2, 4, 4)) * peak
    got = student.call("metrics", "psnr", a, b, peak)
    assert got == pytest.approx(10 * np.log10(peak ** 2 / np.mean((a - b) ** 2)), rel=1e-9)
'''
IGNORES_PEAK = '''import numpy as np

def psnr(a, b, peak=1.0):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
'''


def _assignment(tmp_path: Path) -> Path:
    folder = _build(tmp_path)
    (folder / "hidden" / "check_peak.py").write_text(PYTEST_STYLE)
    return folder


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_pytest_style_tests_become_checks_per_parameter(tmp_path):
    """Does each parameter set become its own check of item 1.1, named by the docstring and the case id,
    and does the item's key cover the pytest-style file?"""
    folder = _assignment(tmp_path)
    names = [c.name for c in load_checks(folder / "hidden") if c.item == "1.1"]
    assert "PSNR uses the peak value given [unit]" in names and "PSNR uses the peak value given [byte]" in names
    ctx = batch.build_context(spec.load(str(folder)), "bwrap")
    before = ctx.item_keys["1.1"]
    (folder / "hidden" / "check_peak.py").write_text(PYTEST_STYLE.replace("rel=1e-9", "rel=1e-8"))
    assert batch.build_context(spec.load(str(folder)), "bwrap").item_keys["1.1"] != before


def test_the_batch_grades_pytest_style_tests_with_pytests_assert_messages(tmp_path):
    """Reference full; a psnr that ignores `peak` loses the byte case, and its feedback shows the values
    pytest's assertion rewriting reports."""
    folder = _assignment(tmp_path)
    ref = _run("-m", "grader", "check", str(folder / "metrics.py"), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 10 | 10 |" in ref.stdout, ref.stderr[-2000:]
    wrong = tmp_path / "wrong" / "metrics.py"
    wrong.parent.mkdir()
    wrong.write_text(IGNORES_PEAK)
    out = _run("-m", "grader", "check", str(wrong), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 8 | 10 |" in out.stdout, out.stdout[-2500:]
    assert "assert -40.1" in out.stdout and "byte" in out.stdout  # the compared values, from pytest's rewriting
    assert "array(" not in out.stdout  # never the hidden inputs spelled out by the "where" lines


def test_plain_pytest_runs_the_hidden_checks_against_reference_and_submission(tmp_path):
    """Does `pytest -p grader.pytest_plugin <assignment>/hidden` pass on the reference and fail on a wrong one?"""
    folder = _assignment(tmp_path)
    ref = _run("-m", "pytest", "-p", "grader.pytest_plugin", str(folder / "hidden"), "-q", "-p", "no:cacheprovider")
    assert ref.returncode == 0 and "4 passed" in ref.stdout, ref.stdout[-2000:]
    wrong = tmp_path / "metrics.py"
    wrong.write_text(IGNORES_PEAK)
    bad = _run("-m", "pytest", "-p", "grader.pytest_plugin", str(folder / "hidden"), "-q", "-p", "no:cacheprovider",
               "--submission", str(wrong))
    assert bad.returncode == 1 and "1 failed, 3 passed" in bad.stdout, bad.stdout[-2000:]
