"""Authoring an assignment: rubric and check validation with one clear line each, and the engine bugs an
instructor hit (np.float64 inf, plain asserts, hints on shape errors, another course's file names)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grader import batch, intake, protocol, spec
from grader.checks import Check, CheckFailed, Student, expect_close
from grader.runner import run_checks
from grader.sandbox import detect_mode

RUBRIC = '''[assignment]
id = "tiny"
title = "Tiny"
modules = ["m"]

[naming]
pattern = '^T_(?P<student_id>[0-9]+)_(?P<name>[A-Za-z]+)\\.zip$'

[[items]]
id = "1.1"
task = "T"
title = "one"
marks = 5
kind = "auto"
'''
CHECK = '''from grader.checks import check

@check("{item}", "f is right", module="m")
def f_is_right(student):
    assert student.call("m", "f") == 1
'''


def _folder(tmp_path: Path, rubric: str = RUBRIC, item: str = "1.1", name: str = "tiny") -> Path:
    folder = tmp_path / name
    (folder / "hidden").mkdir(parents=True)
    (folder / "rubric.toml").write_text(rubric)
    (folder / "hidden" / "check_m.py").write_text(CHECK.format(item=item))
    return folder


def test_an_assignment_folder_loads_from_its_path(tmp_path):
    """Does a folder holding rubric.toml and hidden/ load as an assignment, with its checks known?"""
    a = spec.load(str(_folder(tmp_path)))
    ctx = batch.build_context(a, "bwrap")
    assert a.id == "tiny" and set(ctx.item_keys) == {"1.1"}


def test_a_misspelt_item_id_in_a_check_is_an_error_naming_the_file(tmp_path):
    """Is a check for "1.10" (the rubric has "1.1") refused with the file and the items, not a silent 0?"""
    a = spec.load(str(_folder(tmp_path, item="1.10")))
    with pytest.raises(ValueError, match=r"check_m\.py.*'1\.10'.*does not have"):
        batch.build_context(a, "bwrap")


def test_an_automatic_item_without_checks_is_an_error(tmp_path):
    """Is an automatic item that no check names refused (it would score 0 for everyone)?"""
    rubric = RUBRIC + '\n[[items]]\nid = "1.2"\ntask = "T"\ntitle = "two"\nmarks = 5\nkind = "auto"\n'
    a = spec.load(str(_folder(tmp_path, rubric=rubric)))
    with pytest.raises(ValueError, match=r"'1\.2' is automatic .* no check"):
        batch.build_context(a, "bwrap")


@pytest.mark.parametrize("rubric, message", [
    (RUBRIC.replace("[naming]\n", "[nam]\n"), r"the \[naming\] table is missing"),
    (RUBRIC.replace("(?P<name>[A-Za-z]+)", "[A-Za-z]+"), r"named groups .* missing: name"),
    (RUBRIC.replace('title = "Tiny"\n', ""), r"\[assignment\] title is missing"),
    (RUBRIC.replace("marks = 5", 'marks = "five"'), r"1\.1: marks = 'five' has the wrong type"),
    (RUBRIC.replace("(?P<student_id>", "(?P<student_id"), r"not a valid regular expression"),
    (RUBRIC.replace('kind = "auto"', 'kind = "automatic"'), r"kind 'automatic'"),
])
def test_rubric_mistakes_are_one_clear_line(tmp_path, rubric, message):
    """Does each rubric mistake give a ValueError naming the file and the key, never a bare traceback?"""
    with pytest.raises(ValueError, match=message) as err:
        spec.load(str(_folder(tmp_path, rubric=rubric)))
    assert "rubric.toml" in str(err.value)


def test_an_id_that_differs_from_its_folder_is_refused(tmp_path):
    """Is [assignment] id = "tiny" in a folder named "other" refused (starter and fixture paths would disagree)?"""
    with pytest.raises(ValueError, match=r"id is 'tiny' but the folder is 'other'"):
        spec.load(str(_folder(tmp_path, name="other")))


def test_numpy_float_inf_and_nan_cross_the_boundary():
    """Does a numpy float64 inf (PSNR of identical images) encode under NumPy 2 instead of a MalformedReply?"""
    value = [np.float64("inf"), np.float32("nan"), np.float64(-np.inf)]
    back = protocol.decode(protocol.loads(protocol.dumps({"v": protocol.encode(value)}))["v"])
    assert back[0] == np.inf and np.isnan(back[1]) and back[2] == -np.inf


def test_a_plain_assert_in_a_check_is_the_checks_verdict(tmp_path):
    """Is a failing plain `assert` in a check reported as that check failing, not as the student's value
    being unreadable?"""
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o777)
    (box / "m.py").write_text("def f():\n    return 2\n")

    def f_is_one(student: Student) -> None:
        assert student.call("m", "f") == 1

    out = run_checks([Check("1.1", "f is one", 1.0, f_is_one, 10.0, "m")], box, {"m": "m.py"}, detect_mode())
    assert out[0].status == "failed"
    assert "could not be checked" not in out[0].message and "f is one" in out[0].message
    assert "line" in out[0].detail


def test_expect_close_keeps_its_hint_when_the_shape_is_wrong():
    """Does a wrong shape still carry the check's hint?"""
    with pytest.raises(CheckFailed) as err:
        expect_close(np.zeros(3), np.zeros(4), "weights", hint="one weight per sample")
    assert err.value.hint == "one weight per sample"


def test_the_missing_files_message_names_this_assignments_files(tmp_path):
    """Does a zip without the CS188 notebooks name CS188's files, not COMP4423's single file?"""
    import zipfile

    cs188 = spec.load("cs188_hw4")
    path = tmp_path / f"HW4_305000001_Some_Student.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "nothing here")
    sub = intake.identify(path, cs188)
    box = tmp_path / "box"
    box.mkdir()
    with pytest.raises(intake.IntakeError) as err:
        intake.extract(sub, cs188, box)
    assert "Assignment2" not in err.value.reason and cs188.modules[0] in err.value.reason
