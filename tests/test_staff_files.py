"""Files course staff read (review.md, feedback, gradebook.csv, the terminal table, results.json),
the wire format's bounds, written answers in large notebooks, figures, and feedback levels.

Each test fabricates what a submission controls (an answer, an exception message, a stderr tail, a
file name, a reply, a figure) and asserts the staff-facing output stays intact.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from adversarial.cases_staff import outside_fences
from grader import answers, gradebook, manual, protocol, report, spec
from grader.checks import Check
from grader.runner import MAX_FIGURE_FILES, Outcome, _save_figures
from grader.scoring import score_items

A2 = spec.load("comp4423_a2")
ESCAPES = "\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\x1b]0;title\x1b\\\u202e"
FORGERY = ("Answer: No\n```\n</div>\n\n### 99999999z Forged Student — 18 / 18\n\n> a perfect answer\n\n"
           "<div style=\"display:none\">\n<!--\n~~~\n")


def _record(sid: str, name: str = "Ann Lee", **extra) -> dict:
    record = {"student_id": sid, "name": name, "status": "ok", "reason": "", "notes": [], "items": {}, "total": 0.0,
              "final": 0.0, "late_days": 0, "pending_manual": [], "answers": {}, "answer_sources": [], "outcomes": []}
    record.update(extra)
    return record


# -- review.md ------------------------------------------------------------------------------------
def test_an_answer_cannot_forge_or_hide_the_review_sheet() -> None:
    """Does an answer that closes its quote, forges the next student's heading and opens a hidden
    <div> stay inside its own block, with every real student's heading still in the sheet?"""
    records = [_record("11111111a", answers={"2.2": FORGERY + "`````\n" + ESCAPES, "3.2": "<script>x</script>"},
                       answer_sources=["<img src=x onerror=alert(1)>.ipynb"]),
               _record("22222222b", name="Bob Ma", answers={"2.2": "k x k taps, two offsets each"})]
    sheet = manual.review_sheet(A2, records, {})
    visible = outside_fences(sheet)
    assert not any("<" in line for line in visible), [ln for ln in visible if "<" in ln]
    headings = [ln for ln in visible if ln.startswith("#")]
    assert not any("99999999z" in h for h in headings)
    assert sum(h.startswith("### 22222222b Bob Ma") for h in headings) == 4  # one per manual item: nothing hidden
    assert "\x1b" not in sheet and "\u202e" not in sheet and "\x9b" not in sheet
    assert "k x k taps, two offsets each" in sheet and "Forged Student" in sheet  # shown, as text


def test_marks_file_cells_cannot_start_a_formula(tmp_path: Path) -> None:
    """Is a student id that starts a formula written with a leading ' and read back as the id?"""
    path = tmp_path / "manual_marks.csv"
    manual.update_template(path, A2, [{"student_id": "=cmd|' /C calc'!A0", "status": "ok"}])
    rows = list(csv.reader(path.open()))
    assert all(not row[0].startswith(("=", "+", "-", "@")) for row in rows[1:])
    path.write_text(path.read_text().replace(",2.2,,", ",2.2,7,", 1))
    marks, problems = manual.read_marks(path, A2)
    assert problems == [] and marks == {("=cmd|' /C calc'!A0", "2.2"): manual.ManualMark(7.0, "")}


# -- gradebook, terminal table, feedback, results.json ---------------------------------------------
def _hostile_record() -> tuple[dict, list]:
    outcomes = [Outcome("5.1", "weights sum", 1.0, "error", f"your code raised ValueError: {ESCAPES}\n# Forged\n<div hidden>",
                        detail="File \"/box/x.py\", line 3 `` <b>", hint="a *hint*"),
                Outcome("5.1", "transmittance", 1.0, "passed")]
    scores = score_items(A2, outcomes)
    record = _record("11111111a", name="=HYPERLINK(\"http://x\")", status="crashed",
                     reason=f"5.1: the worker exited. last output: {ESCAPES} | +SUM(1)",
                     notes=["no file found for: <b>dcnn.py</b>"], outcomes=[o.to_dict() for o in outcomes],
                     items={s.item.id: s.score for s in scores})
    return record, scores


def test_gradebook_and_terminal_table_hold_no_escapes_or_formulas(tmp_path: Path) -> None:
    """Do the stderr tail's escapes (clear screen, clipboard write) stay out of gradebook.csv and the
    terminal table, and do no cells start a spreadsheet formula?"""
    record, _ = _hostile_record()
    gradebook.write(tmp_path / "gradebook.csv", A2, [record])
    text = (tmp_path / "gradebook.csv").read_text()
    table = gradebook.render(A2, [record])
    for out in (text, table):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out.replace("\n", "")), repr(out)
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert all(not v.startswith(("=", "+", "-", "@")) for v in row.values())
    assert row["status"].startswith("crashed: 5.1: the worker exited")
    assert len(table.splitlines()) == 4  # header, rule, one row, legend: no line breaks smuggled in


def test_feedback_quotes_student_text_inertly() -> None:
    """Does the feedback show the exception message as text (no HTML, no forged heading, no escapes)?"""
    record, scores = _hostile_record()
    text = report.feedback_markdown(record, scores, A2.title)
    visible = outside_fences(text)
    assert not any("<" in line for line in visible)
    assert [ln for ln in visible if ln.startswith("#")] == ["# Feedback: " + report.md_inline(A2.title),
                                                           "## 5.1 Finish the volume rendering code (opacity, transmittance, weights): 6 / 12",
                                                           "## Not graded yet"]
    assert "\x1b" not in text and "\u202e" not in text
    assert "&lt;div hidden&gt;" in text and "\\# Forged" in text


def test_results_json_is_plain_text() -> None:
    """Is results.json's output plain text (Gradescope told so) without terminal escapes?"""
    record, scores = _hostile_record()
    res = report.gradescope_results(record, scores)
    assert res["output_format"] == res["test_output_format"] == "text"
    outputs = [res["output"]] + [t["output"] for t in res["tests"]]
    assert not any(re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", o.replace("\n", "")) for o in outputs)


def test_md_block_fence_outgrows_any_backtick_run() -> None:
    for text in ("```", "a ```` b", "`" * 40 + "\n~~~"):
        block = report.md_block(text)
        assert outside_fences(block) == [] and text.replace("\n", "") in block.replace("\n", "")


# -- the wire format ------------------------------------------------------------------------------
def test_a_reply_of_many_short_strings_is_malformed_not_parsed() -> None:
    """Does a reply that would make over a million objects fail that request as a malformed reply
    before json builds them (it cost the grader about 1 GB per job)?"""
    line = protocol.dumps({"id": 3, "ok": True, "value": ["ab"] * (protocol.MAX_VALUES + 10)})
    message = protocol.loads(line)
    assert message["id"] == 3
    with pytest.raises(protocol.ProtocolError, match="more than"):
        protocol.decode(message["value"])
    with pytest.raises(protocol.ProtocolError):  # without a reply's id the line is skipped as garbage
        protocol.loads(b'{"x":[' + b",".join([b"1"] * (protocol.MAX_VALUES + 1)) + b"]}")
    with pytest.raises(protocol.ProtocolError, match="values"):  # decode counts on its own, too
        protocol.decode(json.loads(json.dumps([[1, 2]] * (protocol.MAX_VALUES // 3 + 1))))
    arrays = {"__dict__": {str(i): protocol.encode(np.zeros(1 << 20, np.uint8)) for i in range(300)}}
    with pytest.raises(protocol.ProtocolError, match="MB of arrays"):
        protocol.decode(arrays)
    assert protocol.decode(protocol.encode(["ab"] * 1000)) == ["ab"] * 1000


# -- written answers ------------------------------------------------------------------------------
def _notebook(*cells: dict) -> str:
    return json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_answers_after_a_large_plot_output_are_read(tmp_path: Path) -> None:
    """Is an answer cell that comes after 5 MB of plot output still read (it was cut at 2 MB)?"""
    plot = {"cell_type": "code", "source": "plt.show()", "outputs": [{"output_type": "display_data",
            "data": {"image/png": "iVBOR" + "A" * (5 << 20)}, "metadata": {}}]}
    (tmp_path / "PSET4.ipynb").write_text(_notebook(plot, {"cell_type": "markdown", "source": "### Answer 2.3\nShadows."}))
    got, sources = answers.extract(tmp_path)
    assert got == {"2.3": "Shadows."} and sources == ["PSET4.ipynb"]


def test_unreadable_answers_are_reported_not_lost(tmp_path: Path) -> None:
    """Does a notebook whose answers cannot be read appear in the sources with the reason?"""
    (tmp_path / "a.ipynb").write_text('{"cells": [')
    (tmp_path / "b.ipynb").write_bytes(b"{" + b" " * (answers.MAX_NOTEBOOK + 10) + b"}")
    got, sources = answers.extract(tmp_path)
    assert got == {}
    assert sources == ["a.ipynb (written answers could not all be read: the notebook is not valid JSON)",
                       f"b.ipynb (written answers could not all be read: larger than {answers.MAX_NOTEBOOK >> 20} MB)"]
    sheet = manual.review_sheet(A2, [_record("11111111a", answer_sources=sources)], {})
    assert "not valid JSON" in sheet


# -- figures --------------------------------------------------------------------------------------
CHK = Check("4.2", "sampling figure", 1.0, lambda s: None, 30.0, "Raysampling")


def test_an_empty_figure_is_skipped_not_a_grader_error(tmp_path: Path) -> None:
    """Is a 0 x 8 figure left out of the feedback, the other figures still saved?"""
    good = np.full((20, 30, 4), 200, np.uint8)
    names = _save_figures(tmp_path, CHK, [("a", np.zeros((640, 0, 4), np.uint8)), ("b", good)])
    assert names == ("4.2-sampling_figure-2.png",) and (tmp_path / names[0]).read_bytes()[:4] == b"\x89PNG"


def test_figures_are_capped_per_submission(tmp_path: Path) -> None:
    """Do many large noisy figures stop at the submission's cap in count and bytes?"""
    rng = np.random.default_rng(0)
    noisy = [("x", rng.integers(0, 256, (640, 640, 4), dtype=np.uint8)) for _ in range(6)]
    for n in range(12):
        _save_figures(tmp_path, replace(CHK, name=f"check {n}"), noisy)
    files = list(tmp_path.glob("*.png"))
    assert len(files) <= MAX_FIGURE_FILES
    assert sum(p.stat().st_size for p in files) <= 24 << 20
    small = [("x", np.zeros((8, 8, 4), np.uint8))] * 50
    many = tmp_path / "many"
    for n in range(3):
        _save_figures(many, replace(CHK, name=f"check {n}"), small)
    assert len(list(many.glob("*.png"))) == MAX_FIGURE_FILES


# -- feedback levels ------------------------------------------------------------------------------
def _yes_no_scores() -> tuple[dict, list]:
    outcomes = [Outcome("3.1", "the Yes/No answer", 1.0, "failed", "the answer is not correct", "you said Yes",
                        hint="a NeRF is fitted to one scene"),
                Outcome("4.1", "bins", 1.0, "failed", "samples fall outside their bins", "3 of 64", hint="t_i + u * delta")]
    scores = score_items(A2, outcomes)
    return _record("11111111a", total=sum(s.score or 0 for s in scores), final=0.0,
                   items={s.item.id: s.score for s in scores}), scores


def test_rubric_feedback_levels_are_parsed() -> None:
    assert A2.item("3.1").feedback == "verdict" and A2.item("4.1").feedback == "full"
    assert {i.feedback for i in A2.items} <= set(spec.FEEDBACK_LEVELS)


def test_verdict_items_show_only_the_verdict_until_the_deadline() -> None:
    """Before the deadline, does a "verdict" item show only "not passed" (no message, hint, detail or
    marks, and no total to subtract from), while a "full" item shows everything; after it, all?"""
    record, scores = _yes_no_scores()
    deadline = datetime(2030, 1, 1, tzinfo=timezone.utc)
    before = report.feedback_markdown(record, scores, A2.title, deadline=deadline, now=deadline - timedelta(hours=1))
    assert "| 3.1 | Yes/No | not passed | 4 |" in before
    assert "not correct" not in before and "you said Yes" not in before and "fitted to one scene" not in before
    assert "Total (items marked so far)" not in before
    assert "samples fall outside their bins" in before and "t_i + u \\* delta" in before
    after = report.feedback_markdown(record, scores, A2.title, deadline=deadline, now=deadline)
    assert "not correct" in after and "you said Yes" in after and "Total (items marked so far)" in after
    assert "not correct" in report.feedback_markdown(record, scores, A2.title)  # no deadline: nothing to wait for

    res = report.gradescope_results(record, scores, deadline=deadline, now=deadline - timedelta(hours=1))
    shown = [t for t in res["tests"] if t["visibility"] == "visible"]
    assert not any("not correct" in t["output"] for t in shown)
    assert not any(t["number"] == "3.1" and "score" in t for t in shown)
    (later,) = [t for t in res["tests"] if t["visibility"] == "after_due_date"]
    assert later["number"] == "3.1" and "not correct" in later["output"] and later["score"] == 0
    assert "Total" not in res["output"]
