"""Items the grader cannot decide go to a TA; notebook parts; time limits per cell, per check and after restarts."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from grader import manual, notebook, spec
from grader.checks import Check, NeedsReview, Student
from grader.runner import Outcome, run_checks
from grader.sandbox import detect_mode
from grader.scoring import score_items

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grader"))
import worker as worker_mod  # noqa: E402  (the worker's own module, as inside the sandbox)


def _nb(tmp_path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": kind, "id": f"c{n}", "metadata": {}, "source": src, **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                    for n, (kind, src) in enumerate(cells)]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    return path


# -- notebook parts ---------------------------------------------------------------------------------
def test_a_reused_name_is_read_as_it_stood_at_the_end_of_its_part(tmp_path):
    """Does `part` give the value of `I` after Part 1's cells, although Part 2 rebinds it?"""
    path = _nb(tmp_path, [("markdown", "# Part 1: photometric stereo"), ("code", "I = [1, 2]\nL = 'lights'"),
                          ("code", "I = I + [3]"), ("markdown", "## 1.1 details"), ("code", "x = 5"),
                          ("markdown", "# Part 2: classification"), ("code", "I = 'an image'\nL = None")])
    mod = notebook.load("nb_parts", str(path))
    assert mod.I == "an image"
    assert notebook.value_in_part(mod, "I", r"part 1") == [1, 2, 3]
    assert notebook.value_in_part(mod, "L", r"photometric") == "lights"
    assert notebook.value_in_part(mod, "I", r"part 2") == "an image"
    with pytest.raises(notebook.MissingName):
        notebook.value_in_part(mod, "y", r"part 1")
    with pytest.raises(LookupError):
        notebook.value_in_part(mod, "I", r"part 9")


# -- time limits inside the worker --------------------------------------------------------------------
def test_an_endless_cell_costs_that_cell_only(tmp_path):
    """Is an endless loop in one cell interrupted at the cell limit while the later cells still run?"""
    path = _nb(tmp_path, [("code", "a = 1"), ("code", "while True:\n    pass"), ("code", "b = a + 1")])
    start = time.monotonic()
    mod = notebook.load("nb_loop", str(path), limits=notebook.TimeLimits(0.5, 10))
    assert time.monotonic() - start < 5
    assert mod.b == 2
    assert [e["error"] for e in mod._notebook_errors] == ["CellTimeout"]


def test_a_cell_that_swallows_the_interruption_is_stopped_anyway(tmp_path):
    """Does `except BaseException: pass` around an endless loop still end at the limits?"""
    path = _nb(tmp_path, [("code", "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass"),
                          ("code", "c = 3")])
    start = time.monotonic()
    mod = notebook.load("nb_swallow", str(path), limits=notebook.TimeLimits(0.3, 3))
    assert time.monotonic() - start < 6
    assert "c" not in vars(mod) or mod.c == 3


def test_an_endless_top_level_statement_of_a_module_is_skipped(tmp_path):
    """Does a .py module with an endless top-level loop still define the functions after it?"""
    src = tmp_path / "mod.py"
    src.write_text("from __future__ import annotations\nimport time\n\ndef f(x: int) -> int:\n    return x + 1\n\n"
                   "while True:\n    time.sleep(0.01)\n\ndef g() -> str:\n    return 'after'\n")
    w = worker_mod.Worker({"mod_stmt": str(src)})
    start = time.monotonic()
    mod = w.load("mod_stmt", {"cell": 0.5, "total": 10})
    assert time.monotonic() - start < 5
    assert mod.f(1) == 2 and mod.g() == "after"
    assert "line 7" in mod._timed_out[0]


# -- review routing -----------------------------------------------------------------------------------
def _checks(*fns, timeout: float = 5.0, budget: float = 0.0) -> list[Check]:
    return [Check("4.1", fn.__name__, 1.0, fn, timeout, "m", budget) for fn in fns]


@pytest.fixture
def box(tmp_path):
    b = tmp_path / "box"
    b.mkdir()
    b.chmod(0o777)
    return b


def test_a_missing_entry_point_needs_review_and_a_wrong_answer_scores_zero(box):
    """Is a name the checks need but the module lacks routed to review, while a wrong value still fails?"""
    (box / "m.py").write_text("def f(x):\n    return x * 3\n")

    def wrong_value(student: Student) -> None:
        from grader.checks import expect_close
        expect_close(student.call("m", "f", 2.0), 4.0, "f(2)")

    def missing_name(student: Student) -> None:
        student.call("m", "not_there", 1)

    def explicit(student: Student) -> None:
        if "original_name" not in student.names("m"):
            raise NeedsReview("the original course's function was not found", "names: " + ", ".join(student.names("m")))

    def internal_attribute_error(student: Student) -> None:
        student.call("m", "f", None)  # None * 3 -> TypeError: the student's own error, scored

    out = run_checks(_checks(wrong_value, missing_name, explicit, internal_attribute_error), box, {"m": "m.py"}, detect_mode())
    assert [o.status for o in out] == ["failed", "review", "review", "error"]
    assert "not_there" in out[1].message and "names: f" in out[2].detail


def test_a_review_outcome_keeps_the_item_pending_until_a_ta_marks_it(tmp_path):
    """Is an item with a review outcome pending (not 0), listed for the TA, and merged from manual_marks.csv?"""
    a2 = spec.load("comp4423_a2")
    outcomes = [Outcome("4.1", "samples in their bins", 1.0, "passed"),
                Outcome("4.1", "entry point", 1.0, "review", "an entry point the checks need was not found: x", "names: y")]
    scores = {s.item.id: s for s in score_items(a2, outcomes)}
    assert scores["4.1"].state == "review" and scores["4.1"].score is None
    record = {"student_id": "12345678a", "name": "A", "status": "ok", "answers": {}, "answer_sources": [],
              "needs_review": {"4.1": {"reasons": [outcomes[1].message], "evidence": ["names: y"], "decided": []}}}
    marks_path = tmp_path / "manual_marks.csv"
    manual.update_template(marks_path, a2, [record])
    assert "12345678a,4.1,," in marks_path.read_text()
    sheet = manual.review_sheet(a2, [record], {})
    assert "Needs review: 4.1" in sheet and "names: y" in sheet
    marks_path.write_text(marks_path.read_text().replace("12345678a,4.1,,", "12345678a,4.1,9,looked at the code"))
    marks, problems = manual.read_marks(marks_path, a2)
    assert not problems
    ta = {item: (m.marks, m.comment) for (sid, item), m in marks.items()}
    merged = {s.item.id: s for s in score_items(a2, outcomes, manual=ta)}
    assert merged["4.1"].state == "ta_marked" and merged["4.1"].score == 9


def test_an_environment_import_failure_needs_review(box):
    """Is a module that cannot import a library the grader lacks routed to review, not scored 0?"""
    (box / "m.py").write_text("import a_library_nobody_has\n\ndef f(x):\n    return x\n")

    def uses_f(student: Student) -> None:
        student.call("m", "f", 1)

    out = run_checks(_checks(uses_f), box, {"m": "m.py"}, detect_mode())
    assert out[0].status == "review" and "ModuleNotFoundError" in out[0].message


# -- restarts and budgets -------------------------------------------------------------------------------
def test_after_a_timeout_the_next_check_gets_a_freshly_imported_worker(box):
    """A module that takes 2 s to import; its first check times out. Is the next check's fast call
    still graded (the import redone under the import limit, not inside the check's 1.5 s)?"""
    (box / "m.py").write_text("import time\n\ndef slow():\n    time.sleep(60)\n\ndef fast():\n    return 7\n\n"
                              "time.sleep(2)  # a usage line that takes a while\n")

    def times_out(student: Student) -> None:
        student.call("m", "slow")

    def after(student: Student) -> None:
        assert student.call("m", "fast") == 7

    out = run_checks(_checks(times_out, after, timeout=1.5), box, {"m": "m.py"}, detect_mode())
    assert [o.status for o in out] == ["timeout", "passed"]


def test_a_check_that_never_ends_is_stopped_by_its_total_budget(box):
    """Each request returns in time, but the check iterates over an endless generator: does its budget end it?"""
    (box / "m.py").write_text("def endless():\n    i = 0\n    while True:\n        i += 1\n        yield i\n\ngen = endless()\n")

    def walks(student: Student) -> None:
        while True:
            student.call("m", "endless", ret="handle")

    start = time.monotonic()
    out = run_checks(_checks(walks, timeout=2.0, budget=3.0), box, {"m": "m.py"}, detect_mode())
    assert out[0].status == "timeout" and time.monotonic() - start < 30


def test_a_cell_that_ran_past_its_limit_is_not_rerun_after_a_restart(box):
    """A notebook's usage cell loops forever and a function hangs. After the hanging call's timeout the next
    worker imports the notebook again: does it skip the endless cell instead of waiting for it again?"""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"c{n}", "metadata": {}, "outputs": [], "execution_count": None, "source": src}
        for n, src in enumerate(["import time\ndef hang():\n    time.sleep(600)\ndef fast():\n    return 5",
                                 "while True:\n    time.sleep(0.05)", "after = 1"])]}
    (box / "nb.ipynb").write_text(json.dumps(nb))

    def hangs(student: Student) -> None:
        student.call("nb", "hang")

    def quick(student: Student) -> None:
        assert student.call("nb", "fast") == 5 and student.get("nb", "after") == 1

    start = time.monotonic()
    out = run_checks(_checks(hangs, quick, timeout=1.5), box, {"nb": "nb.ipynb"}, detect_mode(), cell_seconds=8.0)
    took = time.monotonic() - start
    assert [o.status for o in out] == ["timeout", "passed"]
    assert took < 15, f"{took:.1f} s: the endless cell ran twice (8 s each)"


def test_a_crash_before_a_definition_is_scored_but_an_unknown_name_is_reviewed(tmp_path):
    """A notebook whose cell raises before defining `f` crashed (scored); a name no cell defines may be
    another layout (reviewed)."""
    path = _nb(tmp_path, [("code", "raise RuntimeError('unfinished')\ndef f():\n    return 1")])
    mod = notebook.load("nb_crash", str(path))
    with pytest.raises(AttributeError) as crashed:
        mod.f
    assert not isinstance(crashed.value, notebook.MissingName)
    with pytest.raises(notebook.MissingName):
        mod.g


def test_a_colab_exported_script_with_shell_and_magic_lines_loads(tmp_path):
    """Does a .py exported from Colab, with `!pip install` and `%matplotlib inline` lines, import?"""
    src = tmp_path / "colab.py"
    src.write_text("!pip install opencv-python\n%matplotlib inline\nimport math\n\ndef f():\n    return math.pi\n")
    w = worker_mod.Worker({"colab_mod": str(src)})
    mod = w.load("colab_mod", {"cell": 5, "total": 10})
    assert abs(mod.f() - 3.14159) < 1e-4


def test_a_script_whose_top_level_call_raises_still_defines_its_functions(tmp_path):
    """A single-file script whose demo call raises: is it graded like a notebook whose cell failed (the
    functions after it still defined), while a function defined by the failing code is the student's crash?"""
    src = tmp_path / "script.py"
    src.write_text("def f():\n    return 1\n\nk = f() + undefined_name\n\ndef g():\n    return 2\n\n"
                   "if True:\n    def h():\n        return 3\n    raise RuntimeError('demo failed')\n")
    w = worker_mod.Worker({"script_mod": str(src)})
    mod = w.load("script_mod", {"cell": 5, "total": 10})
    assert mod.f() == 1 and mod.g() == 2 and [e["error"] for e in mod._load_errors] == ["NameError", "RuntimeError"]
    with pytest.raises(AttributeError) as err:
        w.resolve({"module": "script_mod", "path": "missing_one"})
    assert type(err.value).__name__ == "MissingName"  # no code defines it: another layout, reviewed
    with pytest.raises(AttributeError) as err:
        w.resolve({"module": "script_mod", "path": "k"})
    assert type(err.value).__name__ == "AttributeError" and "line 4 raised NameError" in str(err.value)


def test_a_missing_library_still_fails_a_scripts_import(tmp_path):
    """Is an ImportError at a script's top level still the import's failure (reviewed as environment)?"""
    src = tmp_path / "needs_lib.py"
    src.write_text("import a_library_nobody_has\n\ndef f():\n    return 1\n")
    with pytest.raises(ImportError):
        worker_mod.Worker({"needs_lib": str(src)}).load("needs_lib", {"cell": 5, "total": 10})
