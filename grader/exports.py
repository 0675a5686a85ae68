"""Grade-import CSVs for the LMS: out/exports/canvas.csv and out/exports/moodle.csv.

Canvas (Grades > Import): the columns of Canvas's own gradebook export, `Student, ID, SIS User ID,
SIS Login ID, Section`, then one column per assignment named as in Canvas. Canvas matches a row by
its ID, SIS User ID or SIS Login ID; we know the student number from the zip's name and put it in
SIS User ID (ID, the Canvas-internal number, is left empty). A column Canvas does not know becomes a
new assignment: rename the mark column to the assignment's Canvas name when it differs.

Moodle (Grades > Import > CSV file): any columns; on the preview page map "ID number" to the
user's idnumber field ("Map from: ID number", "Map to: useridnumber"), the mark column to the grade
item and the feedback column to its feedback (Moodle's docs: import a feedback column together with
its grade column, or the grades of that item are lost).

A row is written for every student with a real id (naming errors have none: fix the name and grade
again). A student with an item still pending (a TA's mark, a review) gets an empty mark, so a partial
total is never uploaded as the final mark; the Moodle feedback column says which items are pending.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

from .report import csv_cell, plain, write_atomic
from .spec import Assignment

CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def exportable(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records with a real student id, the naming errors left out)."""
    keep = [r for r in records if r.get("intake_status", r.get("status")) != "naming_error"]
    return sorted(keep, key=lambda r: r["student_id"]), [r for r in records if r not in keep]


def mark(r: dict[str, Any]) -> str:
    """The final mark, or '' while any item waits for a TA (pending manual marks or review)."""
    return "" if r.get("pending_manual") else f"{r['final']:g}"


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(x) for x in row])
    return buf.getvalue()


def canvas_csv(assignment: Assignment, records: list[dict[str, Any]]) -> str:
    column = f"{assignment.title}"
    rows: list[list[Any]] = [CANVAS_FIXED + [column]]
    for r in exportable(records)[0]:
        rows.append([plain(r.get("name", ""), one_line=True), "", r["student_id"], "", "", mark(r)])
    return _csv(rows)


def feedback_text(r: dict[str, Any]) -> str:
    parts = [f"Total {r['total']:g}, late days {r.get('late_days', 0)}, final {r['final']:g}."]
    if r.get("pending_manual"):
        parts.append("Pending (marked by a TA later): " + ", ".join(r["pending_manual"]) + ".")
    if r["status"] != "ok":
        parts.append(f"Status: {plain(r['status'], one_line=True)}.")
    parts.append("Details in your feedback page.")
    return " ".join(parts)


def moodle_csv(assignment: Assignment, records: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = [["ID number", "Full name", assignment.title, "Feedback"]]
    for r in exportable(records)[0]:
        rows.append([r["student_id"], plain(r.get("name", ""), one_line=True), mark(r), feedback_text(r)])
    return _csv(rows)


def write_all(out: Path, assignment: Assignment, records: list[dict[str, Any]],
              log: Callable[[str], None] = print) -> None:
    folder = out / "exports"
    write_atomic(folder / "canvas.csv", canvas_csv(assignment, records))
    write_atomic(folder / "moodle.csv", moodle_csv(assignment, records))
    kept, left = exportable(records)
    pending = sum(1 for r in kept if r.get("pending_manual"))
    if left or pending:
        log(f"LMS exports ({folder}): {len(kept)} row(s)"
            + (f"; {pending} with an empty mark until their pending items are marked" if pending else "")
            + (f"; left out (no student id: naming error): {', '.join(r['student_id'] for r in left[:5])}"
               + (f" and {len(left) - 5} more" if len(left) > 5 else "") if left else ""))
