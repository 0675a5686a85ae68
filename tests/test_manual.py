"""The TA workflow (review sheet, marks file merged on regrade), written answers, figures in feedback.

The end-to-end part grades two demo zips with the real command restricted to items 3.1 and 4.2
(--only), so it stays quick while going through every step a TA takes.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader import answers, manual, spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
A2 = spec.load("comp4423_a2")


# -- answers ----------------------------------------------------------------------------------------
def test_markdown_sections_are_keyed_by_item() -> None:
    text = "# title\nintro\n## 3.1 Can one NeRF...\n\nAnswer: No\n\n## 3.2 Explain why\nweights encode one scene\n# Appendix\nx"
    got = answers.from_markdown(text)
    assert got == {"3.1": "Answer: No", "3.2": "weights encode one scene"}


def test_notebook_answer_cells_and_broken_notebooks() -> None:
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["### Answer 2.3\n", "Shadows break it."]},
        {"cell_type": "code", "source": "x = 1"},
        {"cell_type": "markdown", "source": "## Question 2.3\nwhy?"},
    ]}
    assert answers.from_notebook(json.dumps(nb)) == {"2.3": "Shadows break it."}
    assert answers.from_notebook("{not json") == {}
    assert answers.from_notebook("[1, 2]") == {}


@pytest.mark.parametrize("text, said", [
    ("Answer: No", "no"), ("Answer: **No**.", "no"), ("answer: yes", "yes"), ("No, because ...", "no"),
    ("Answer: (write Yes or No)", None), ("Answer: Yes and no", None), ("", None), ("Answer: maybe", None),
    ("Answer: N", "no"), ("NO", "no"),
])
def test_yes_no(text: str, said: str | None) -> None:
    assert answers.yes_no(text) == said


def test_answers_are_read_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("## 3.1\nAnswer: No\n")
    (tmp_path / "answers.md").symlink_to(tmp_path / "secret.md")
    assert answers.extract(tmp_path) == ({}, [])


# -- marks file -------------------------------------------------------------------------------------
def test_marks_file_validation(tmp_path: Path) -> None:
    path = tmp_path / "manual_marks.csv"
    path.write_text("student_id,item,marks,comment\n"
                    "a,2.2,15,ok\n"  # good
                    "a,2.1,3,\n"  # 2.1 is automatic: a TA mark counts while the item needs review
                    "a,9.9,3,\n"  # no such item
                    "b,1.4,9,\n"  # above the item's 5 marks
                    "b,3.2,abc,\n"  # not a number
                    "c,6.3,,\n"  # empty: pending, no problem
                    "a,2.2,1,dup\n")  # second mark for a/2.2
    marks, problems = manual.read_marks(path, A2)
    assert marks == {("a", "2.2"): manual.ManualMark(15.0, "ok"), ("a", "2.1"): manual.ManualMark(3.0, "")}
    assert len(problems) == 4
    assert any("'9.9' is not an item" in p for p in problems)
    assert any("outside 0..5" in p for p in problems)
    assert any("not a number" in p for p in problems)


def test_template_keeps_what_the_ta_wrote(tmp_path: Path) -> None:
    path = tmp_path / "manual_marks.csv"
    recs = [{"student_id": "a", "status": "ok"}, {"student_id": "z", "status": "naming_error"}]
    assert manual.update_template(path, A2, recs) == 4
    text = path.read_text().replace("a,2.2,,", "a,2.2,12,well argued")
    path.write_text(text)
    assert manual.update_template(path, A2, recs + [{"student_id": "b", "status": "ok"}]) == 4
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 8 and {"student_id": "a", "item": "2.2", "marks": "12", "comment": "well argued"} in rows
    assert manual.update_template(path, A2, recs) == 0


# -- end to end -------------------------------------------------------------------------------------
def _grade(subs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out),
           "--jobs", "2", "--only", "3.1", "--only", "4.2", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader((out / "gradebook.csv").open())}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    subs = tmp_path_factory.mktemp("subs")
    for name in ("Assignment2_11111111a_REF_Solution.zip", "Assignment2_33333333c_BUGGY_Student.zip"):
        shutil.copy(EXAMPLES / name, subs / name)
    out = tmp_path_factory.mktemp("out")
    proc = _grade(subs, out)
    assert proc.returncode == 0, proc.stderr
    return subs, out


def test_yes_no_item_and_pending_manual_items(graded: tuple[Path, Path]) -> None:
    _, out = graded
    rows = _rows(out)
    assert rows["11111111a"]["3.1"] == "4" and rows["33333333c"]["3.1"] == "0"
    for r in rows.values():
        assert [r[i] for i in ("1.4", "2.2", "3.2", "6.3")] == ["pending"] * 4
        assert r["manual_pending"] == "1.4 2.2 3.2 6.3"
        assert r["2.1"] == ""  # restricted by --only: not graded in this run, and not silently zero
    feedback = (out / "feedback" / "33333333c.md").read_text()
    assert "3.1" in feedback and "not correct" in feedback


def test_review_sheet_shows_answers_next_to_the_guide(graded: tuple[Path, Path]) -> None:
    _, out = graded
    sheet = (out / "review.md").read_text()
    assert "## 2.2" in sheet and "**Guide:**" in sheet
    # The answer is shown literally, inside a fenced block (no student text is rendered as Markdown or HTML).
    assert re.search(r"\n```text\n(?:[^`\n]*\n)*?Each of the k x k kernel taps gets its own displacement", sheet)
    rows = list(csv.DictReader((out / "manual_marks.csv").open()))
    assert {(r["student_id"], r["item"]) for r in rows} == {(s, i) for s in ("11111111a", "33333333c") for i in ("1.4", "2.2", "3.2", "6.3")}
    assert all(r["marks"] == "" for r in rows)


def test_figures_are_saved_as_png_and_linked(graded: tuple[Path, Path]) -> None:
    _, out = graded
    pngs = sorted((out / "feedback" / "11111111a-figures").glob("4.2-*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert f"11111111a-figures/{pngs[0].name}" in (out / "feedback" / "11111111a.md").read_text()


def test_filled_marks_change_the_gradebook_and_feedback(graded: tuple[Path, Path]) -> None:
    subs, out = graded
    path = out / "manual_marks.csv"
    text = path.read_text()
    text = text.replace("11111111a,2.2,,", "11111111a,2.2,15,no worked example for k = 3")
    text = text.replace("11111111a,3.2,,", "11111111a,3.2,6,")
    text = text.replace("33333333c,1.4,,", "33333333c,1.4,9,")  # above 5: reported, left pending
    path.write_text(text)
    before = _rows(out)
    proc = _grade(subs, out, "--only", "3.1")
    assert proc.returncode == 0, proc.stderr
    assert "outside 0..5" in proc.stderr
    rows = _rows(out)
    ref, bug = rows["11111111a"], rows["33333333c"]
    assert (ref["2.2"], ref["3.2"], ref["1.4"]) == ("15", "6", "pending")
    assert float(ref["total"]) == float(before["11111111a"]["total"]) + 21
    assert ref["manual_pending"] == "1.4 6.3"
    assert bug["1.4"] == "pending" and bug["total"] == before["33333333c"]["total"]
    assert "no worked example for k = 3" in (out / "feedback" / "11111111a.md").read_text()
    assert "15 / 18" in (out / "review.md").read_text()
    # The TA's rows are kept as written.
    assert "11111111a,2.2,15,no worked example for k = 3" in path.read_text()
