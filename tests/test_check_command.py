"""`python -m grader check`: one submission graded through the batch's own path; the student mode and the
starter's standalone check_submission.py (naming rule, files, public tests; nothing hidden)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from grader.spec import ROOT

A2 = ROOT / "solutions" / "comp4423_a2"
EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def test_check_grades_one_py_file_and_prints_marks_and_feedback(tmp_path):
    """Does `check` on a lone Raysampling.py print 4.1's and 4.2's marks and the feedback, through the sandbox?"""
    src = tmp_path / "Raysampling.py"
    shutil.copyfile(A2 / "Raysampling.py", src)
    proc = _run("-m", "grader", "check", str(src), "--assignment", "comp4423_a2", "--only", "4.1", "--only", "4.2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "# Feedback:" in proc.stdout
    assert "| 4.1 | Finish the stratified sampling code | 12 | 12 |" in proc.stdout
    assert "| 4.2 | Get the sampling visualisation | 8 | 8 |" in proc.stdout


def test_student_mode_sees_the_naming_rule_files_and_public_tests_only(tmp_path):
    """Does --student pass the reference zip, flag the starter's failing public tests and a misnamed zip,
    and never mention hidden checks or marks?"""
    ok = _run("-m", "grader", "check", str(EXAMPLES / "Assignment2_11111111a_REF_Solution.zip"),
              "--assignment", "comp4423_a2", "--student")
    assert ok.returncode == 0 and "Ready to hand in." in ok.stdout, ok.stdout[-2000:]
    starter = _run("-m", "grader", "check", str(EXAMPLES / "Assignment2_22222222b_STARTER_Only.zip"),
                   "--assignment", "comp4423_a2", "--student")
    assert starter.returncode == 1 and "[NO] the public tests pass" in starter.stdout
    misnamed = _run("-m", "grader", "check", str(EXAMPLES / "assignment2-final.zip"), "--assignment", "comp4423_a2", "--student")
    assert "[NO] the zip's name follows the rule" in misnamed.stdout
    for out in (ok.stdout, starter.stdout):
        assert "hidden" not in out.lower() and "marks" not in out.lower()


def test_the_starters_check_submission_runs_without_the_repository(tmp_path):
    """Does starter/<id>/check_submission.py, copied away from the repository, check a zip on its own?"""
    starter = tmp_path / "my_assignment"
    shutil.copytree(ROOT / "starter" / "comp4423_a2", starter)
    bad = tmp_path / "Assignment2_12345678a_Me.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("Raysampling.py", "x = 1\n")
    proc = subprocess.run([sys.executable, "-I", str(starter / "check_submission.py"), str(bad)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1
    assert "[ok] the zip's name follows the rule" in proc.stdout
    assert "[NO] the grader finds your files: no file for volume_rendering.py" in proc.stdout
