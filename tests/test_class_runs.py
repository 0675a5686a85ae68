"""A class run as course staff do it, through the real `grade` command on README's one-item assignment:
times that stick between runs, naive times in the deadline's zone, times that name nothing, extensions
and late-day budgets, an LMS's folder-per-student download with nested zips and renamed files, the latest
submission winning, duplicate ids flagged, a wrong --assignment stopping, TA overrides with a reason, and
unknown ids in the TA's file reported."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_new_assignment import _build  # noqa: E402  (README's walkthrough assignment: PSNR_<id>_<Name>.zip)

DEADLINE = "2027-01-15T23:59:00+08:00"  # the walkthrough rubric's; 10% per day, at most 3 days


def _zip(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _nested(path: Path, inner_name: str, files: dict[str, str]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(inner_name, buf.getvalue())
    return path


def _grade(folder: Path, subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--assignment", str(folder), "--out", str(out),
                           "--jobs", "1", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The walkthrough assignment and a Moodle-style download: a folder per student, one zip nested in a zip,
    one upper-case .ZIP, one Canvas-renamed file, a resubmission, a stray PDF."""
    tmp = tmp_path_factory.mktemp("course")
    folder = _build(tmp)
    good = {"metrics.py": (folder / "metrics.py").read_text()}
    wrong = {"metrics.py": good["metrics.py"].replace("10 * np.log10", "20 * np.log10")}
    subs = tmp / "download"
    _zip(subs / "Ada Lovelace_101_assignsubmission_file_" / "PSNR_101_Ada.zip", good)
    _nested(subs / "Bob Byte_102_assignsubmission_file_" / "PSNR_102_Bob.zip", "inner/PSNR_102_Bob.zip", good)
    _zip(subs / "Cy Young_103_assignsubmission_file_" / "PSNR_103_Cy.ZIP", good)
    _zip(subs / "younged_104_5551_PSNR_104_Ed-1.zip", good)  # Canvas: <name>_<user>_<submission>_<original>-1
    _zip(subs / "Fay Fox_105_assignsubmission_file_" / "PSNR_105_Fay.zip", wrong)
    _zip(subs / "Fay Fox_105_assignsubmission_file_" / "later" / "PSNR_105_Fay.zip", good)  # her resubmission
    _zip(subs / "Gus Gray_106_assignsubmission_file_" / "PSNR_106_Gus.zip", good)
    _zip(subs / "Imposter_106_assignsubmission_file_" / "PSNR_106_Ivy.zip", good)  # same id, another name
    (subs / "Ada Lovelace_101_assignsubmission_file_" / "report.pdf").write_bytes(b"%PDF-1.4\n")
    times = tmp / "times.csv"
    times.write_text("file,submitted_at\n"
                     "PSNR_101_Ada.zip,2027-01-16T10:00:00+08:00\n"        # 1 day late
                     "PSNR_102_Bob.zip,2027-01-15T23:30:00\n"              # naive: the deadline's zone, on time
                     "PSNR_103_Cy.ZIP,2027-01-17T12:00:00+08:00\n"         # 2 days late, with an extension of 2
                     "PSNR_999_Nobody.zip,2027-01-15T10:00:00+08:00\n"     # names no zip
                     "PSNR_106_Gus.zip,2027-01-15T09:00:00+08:00\n"
                     "PSNR_106_Ivy.zip,2027-01-15T10:00:00+08:00\n")
    ext = tmp / "extensions.csv"
    ext.write_text("student_id,extension_days,late_budget_days,reason\n103,2,,medical\n101,,1,\n")
    out = tmp / "out"
    first = _grade(folder, subs, out, "--times", str(times), "--extensions", str(ext))
    return {"folder": folder, "subs": subs, "out": out, "times": times, "first": first, "tmp": tmp}


def test_an_lms_download_is_graded_with_the_latest_submission_and_a_list_of_what_was_not(course):
    """Are zips in per-student folders, a zip inside a zip, a .ZIP and a Canvas-renamed file all graded;
    does the resubmission win; is the PDF listed as not graded with why; is a shared id flagged?"""
    first, out = course["first"], course["out"]
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _rows(out)
    assert {"101", "102", "103", "104", "105", "106"} <= set(rows), rows.keys()
    for sid in ("101", "102", "103", "104", "105"):
        assert rows[sid]["1.1"] == "10", (sid, rows[sid])
    intake_rows = list(csv.DictReader(open(out / "intake.csv", newline="")))
    outcome = {(r["file"], r["outcome"]) for r in intake_rows}
    assert ("Ada Lovelace_101_assignsubmission_file_/report.pdf", "not graded") in outcome
    assert any(o == "superseded" and f.startswith("Fay Fox") for f, o in outcome)
    assert "not graded: Ada Lovelace_101_assignsubmission_file_/report.pdf: not a .zip" in first.stderr
    assert "student id 106 appears on zips with different names" in first.stderr
    result = json.loads((out / "results" / "106.json").read_text())
    assert "extra_data" in result and any("different names" in f for f in json.dumps(result).split('"') if f)


def test_times_extensions_and_budgets_set_the_late_days(course):
    """Is a naive time read in the deadline's zone (on time, not a day late), an extension moving the
    deadline, a late-day budget absorbing a day; and are a zip without a time and a time for no zip reported
    with the file and line?"""
    first, rows = course["first"], _rows(course["out"])
    assert rows["102"]["late_days"] == "0" and rows["102"]["final"] == "10"
    assert rows["103"]["late_days"] == "0" and rows["103"]["final"] == "10"  # 2 days late, 2 days' extension
    assert rows["101"]["late_days"] == "1" and rows["101"]["final"] == "10"  # the budget's day: no penalty
    assert "line 5: 'PSNR_999_Nobody.zip' names no zip or student" in first.stderr
    assert "no submission time" in first.stderr and "younged_104_5551_PSNR_104_Ed-1.zip" in first.stderr


def test_times_stick_on_a_rerun_without_times_and_a_bad_time_names_its_line(course):
    """Does the rerun a TA makes to merge marks (no --times, no --extensions) keep every late day, say where
    the times came from, and does an unparseable time stop the run naming the file and line?"""
    again = _grade(course["folder"], course["subs"], course["out"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "using the times.csv kept in" in again.stderr
    assert _rows(course["out"])["101"]["late_days"] == "1"
    bad = course["tmp"] / "bad_times.csv"
    bad.write_text("file,submitted_at\nPSNR_101_Ada.zip,2027-01-16T10:00:00+08:00\nPSNR_102_Bob.zip,yesterday\n")
    proc = _grade(course["folder"], course["subs"], course["tmp"] / "out-bad", "--times", str(bad))
    assert proc.returncode == 2 and "bad_times.csv line 3: submitted_at 'yesterday' is not an ISO 8601 time" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_ta_overrides_an_automatic_mark_only_with_a_reason(course):
    """Does a TA's mark for an automatic item with a reason replace the checks' mark (kept in the result and
    shown in the feedback), a mark without a reason leave it with a warning, and a mistyped id get reported?"""
    out = course["out"]
    with open(out / "manual_marks.csv", "a") as fh:
        fh.write("105,1.1,7,regrade: partial credit agreed in office hours\n104,1.1,2,\n1O3,1.1,5,typo id\n")
    proc = _grade(course["folder"], course["subs"], out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _rows(out)
    assert rows["105"]["1.1"] == "7" and rows["104"]["1.1"] == "10"
    assert "student 104: 1.1: a TA mark for an automatic item needs a reason" in proc.stderr
    assert "student id '1O3' has no submission in this run" in proc.stderr
    feedback = (out / "feedback" / "105.md").read_text()
    assert "The automatic mark 10 was changed by a TA to 7: regrade: partial credit agreed in office hours" in feedback
    assert json.loads((out / "results" / "105.json").read_text())["extra_data"]["overrides"]["1.1"]["automatic"] == 10


def test_the_wrong_assignment_and_a_file_as_output_stop_with_a_hint(course, tmp_path):
    """Does grading a folder where no zip follows the naming rule (the wrong --assignment) stop with a hint
    instead of a gradebook of naming errors, and an --out that is a file stop with one line?"""
    subs = tmp_path / "subs"
    for n in range(3):
        _zip(subs / f"HW4_30500000{n}_Joe_Bruin.zip", {"metrics.py": "x = 1\n"})
    proc = _grade(course["folder"], subs, tmp_path / "out")
    assert proc.returncode == 2 and "none of the 3 zips" in proc.stderr and "is --assignment right?" in proc.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = _grade(course["folder"], course["subs"], afile)
    assert proc.returncode == 2 and "is a file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bulk_download_zip_is_unpacked_and_graded(course, tmp_path):
    """Is one zip of the whole class (Moodle's "Download all submissions") unpacked and graded like the folder?"""
    bulk = tmp_path / "all.zip"
    with zipfile.ZipFile(bulk, "w") as zf:
        for p in sorted(course["subs"].rglob("*.zip")):
            zf.write(p, p.relative_to(course["subs"]))
    proc = _grade(course["folder"], bulk, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _rows(tmp_path / "out")["102"]["1.1"] == "10"


def test_a_notebook_that_is_not_json_is_a_partial_failure_by_name(course, tmp_path):
    """Does a notebook that is not valid JSON give the status 'partial' naming the file's problem, not 'ok'?"""
    subs = tmp_path / "subs"
    _zip(subs / "PSNR_201_Kim.zip", {"metrics.ipynb": '{"cells": [ this is not json'})
    proc = _grade(course["folder"], subs, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = _rows(tmp_path / "out")["201"]
    assert row["status"].startswith("partial: importing metrics failed") and "not valid JSON" in row["status"], row
    assert row["1.1"] == "0"
