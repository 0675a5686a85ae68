"""The TA workflow for written items: a review sheet to read, a marks file to fill, merged on regrade.

`grade` writes, next to the gradebook:
  * review.md: per manual item, the marking guide and every student's answer under it;
  * manual_marks.csv: one row per (student, manual item) with empty `marks` and `comment` cells.
A TA fills `marks` (a number from 0 to the item's maximum) and optionally `comment`; the next `grade`
merges them into the gradebook and feedback without rerunning any student code. Rows the TA wrote
are never rewritten; rows for new submissions are appended. A bad cell is reported and left pending.
A TA may also add a row for an automatic item (a regrade request): it overrides the checks' mark only
with a reason in `comment`; the automatic mark and the reason are kept in the result and the feedback.
"""
from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import csv_cell, md_block, md_inline, plain, write_atomic
from .spec import Assignment

FIELDS = ["student_id", "item", "marks", "comment"]


@dataclass(frozen=True)
class ManualMark:
    marks: float
    comment: str = ""
    line: int = field(default=0, compare=False)  # in manual_marks.csv


def read_marks(path: Path, assignment: Assignment) -> tuple[dict[tuple[str, str], ManualMark], list[str]]:
    """(marks by (student_id, item), problems found); a missing file means no marks yet."""
    if not path.exists():
        return {}, []
    # Manual items, and automatic items the grader routed to review (a TA mark applies only while they need review).
    manual = {i.id: i for i in assignment.items if i.kind == "manual" or i.graded_automatically}
    marks: dict[tuple[str, str], ManualMark] = {}
    problems: list[str] = []
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"student_id", "item", "marks"} <= set(reader.fieldnames):
        return {}, [f"{path.name}: the header must hold student_id,item,marks,comment"]
    for line, row in enumerate(reader, 2):
        sid, item, raw = _sid(row.get("student_id")), (row.get("item") or "").strip(), (row.get("marks") or "").strip()
        if not raw:
            continue
        where = plain(f"{path.name} line {line} ({sid} {item})", one_line=True)  # printed on the terminal
        if item not in manual:
            problems.append(f"{where}: {item!r} is not an item of {assignment.id} a TA can mark")
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{where}: marks {raw!r} is not a number; left pending")
            continue
        if not 0 <= value <= manual[item].marks:
            problems.append(f"{where}: marks {value:g} is outside 0..{manual[item].marks:g}; left pending")
            continue
        if (sid, item) in marks:
            problems.append(f"{where}: a second mark for the same student and item; the first one is kept")
            continue
        marks[(sid, item)] = ManualMark(value, (row.get("comment") or "").strip(), line)
    return marks, problems


def update_template(path: Path, assignment: Assignment, records: list[dict[str, Any]]) -> int:
    """Append empty rows for (student, manual item) pairs not in the file yet; return how many."""
    manual = [i for i in assignment.items if i.kind == "manual"]
    existing: set[tuple[str, str]] = set()
    text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    if text.strip():
        for row in csv.DictReader(io.StringIO(text)):
            existing.add((_sid(row.get("student_id")), (row.get("item") or "").strip()))
    new_rows = [
        [csv_cell(r["student_id"]), item.id, "", ""]
        for r in sorted(records, key=lambda r: r["student_id"])
        if r["status"] not in ("naming_error",)
        for item in assignment.items
        if (item in manual or item.id in (r.get("needs_review") or {})) and (r["student_id"], item.id) not in existing
    ]
    if not new_rows and text.strip():
        return 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not text.strip():
        writer.writerow(FIELDS)
    elif not text.endswith("\n"):
        buf.write("\n")
    writer.writerows(new_rows)
    write_atomic(path, text + buf.getvalue())
    return len(new_rows)


def _sid(cell: str | None) -> str:
    """A student id as written by update_template (which puts ' before a leading = + - @)."""
    sid = (cell or "").strip()
    return sid[1:] if sid[:1] == "'" and sid[1:2] in ("=", "+", "-", "@") else sid


def review_sheet(assignment: Assignment, records: list[dict[str, Any]], marks: dict[tuple[str, str], ManualMark]) -> str:
    """Markdown: per manual item, the guide, then each student's answer and current mark."""
    out = [f"# Review sheet: {assignment.title}", "",
           "Fill marks in manual_marks.csv (same folder), then run the same grade command again: the marks are",
           "merged into the gradebook and feedback without rerunning student code.", ""]
    graded = [r for r in sorted(records, key=lambda r: r["student_id"]) if r["status"] != "naming_error"]
    for item in (i for i in assignment.items if i.kind == "manual"):
        done = sum((r["student_id"], item.id) in marks for r in graded)
        out += [f"## {item.id} {item.title} ({item.marks:g} marks) — {done}/{len(graded)} marked", ""]
        if item.guide:
            out += [f"**Guide:** {item.guide}", ""]
        for r in graded:
            mark = marks.get((r["student_id"], item.id))
            state = f"{mark.marks:g} / {item.marks:g}" if mark else "not marked yet"
            out += [_heading(r, state), ""]
            answer = (r.get("answers") or {}).get(item.id)
            if answer:  # quoted inertly: an answer cannot close the block, forge a heading or hide what follows
                out.append(md_block("\n".join(textwrap.fill(line, 100, break_on_hyphens=False) if len(line) > 100 else line
                                               for line in str(answer).splitlines())))
            else:
                reports = ", ".join(md_inline(s) for s in r.get("answer_sources") or []) or "none"
                out.append(f"_No written answer found for {item.id}; files with answers or reports: {reports}._")
            out.append("")
    out += _needs_review(assignment, graded, marks)
    return "\n".join(out) + "\n"


def _needs_review(assignment: Assignment, records: list[dict[str, Any]],
                  marks: dict[tuple[str, str], ManualMark]) -> list[str]:
    """Automatic items the grader could not decide for some students: the reason and the evidence."""
    out: list[str] = []
    for item in assignment.items:
        waiting = [r for r in records if item.id in (r.get("needs_review") or {})]
        if not waiting:
            continue
        done = sum((r["student_id"], item.id) in marks for r in waiting)
        out += [f"## Needs review: {item.id} {item.title} ({item.marks:g} marks) — {done}/{len(waiting)} marked", "",
                "The grader could not decide this automatic item for these submissions. Mark it in manual_marks.csv.", ""]
        for r in waiting:
            mark = marks.get((r["student_id"], item.id))
            state = f"{mark.marks:g} / {item.marks:g}" if mark else "not marked yet"
            entry = r["needs_review"][item.id]
            out += [_heading(r, state), ""]
            text = "\n".join(["why: " + m for m in entry.get("reasons", [])] + ["evidence: " + e for e in entry.get("evidence", [])]
                             + ["decided automatically: " + d for d in entry.get("decided", [])])
            out += [_fence(text), ""]
    return out


def _fence(text: str) -> str:
    """Student-derived text as an inert fenced block: a fence longer than any backtick run inside it."""
    return md_block(text)


def _heading(r: dict[str, Any], state: str) -> str:
    return f"### {md_inline(r['student_id'])} {md_inline(r['name'])} — {state}"
