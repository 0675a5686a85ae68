"""The class gradebook: one CSV row per submission, built from the per-student records.

Cells a submission can influence (name, status reason) are cleaned of terminal escapes and cannot
start a spreadsheet formula (report.csv_cell); the terminal table shows them cleaned too.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .report import csv_cell, plain, write_atomic
from .spec import Assignment


def columns(assignment: Assignment) -> list[str]:
    return ["student_id", "name"] + [i.id for i in assignment.items] + ["total", "late_days", "final", "status",
                                                                         "manual_pending", "sandbox"]


def _cell(r: dict[str, Any], item: Any) -> str:
    """A mark, 'pending' for a manual item no TA has marked yet, '' for an item not graded at all."""
    value = r["items"].get(item.id)
    if value is None:
        return "pending" if item.id in r.get("pending_manual", []) else ""
    return f"{value:g}"


def write(path: Path, assignment: Assignment, records: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns(assignment))
    for r in sorted(records, key=lambda r: r["student_id"]):
        items = [_cell(r, i) for i in assignment.items]
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        writer.writerow([csv_cell(x) for x in (r["student_id"], r["name"], *items, f"{r['total']:g}", r["late_days"],
                                               f"{r['final']:g}", status, " ".join(r.get("pending_manual", [])),
                                               r.get("provenance", {}).get("sandbox", ""))])
    write_atomic(path, buf.getvalue())


COMPACT_ABOVE = 40  # students; above this the terminal gets the class summary instead of the table


def _terminal_columns() -> int | None:
    """The terminal's width when stdout is a terminal; None when printing to a file or a pipe."""
    import shutil
    import sys

    try:
        return shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    except (OSError, ValueError, AttributeError):
        return None


def render(assignment: Assignment, records: list[dict[str, Any]], compact: bool | None = None,
           width: int | None = None) -> str:
    """A compact terminal table of the gradebook; for a large class (more than COMPACT_ABOVE students) or a
    table wider than the terminal, the class summary instead (counts, item means, the problem list),
    pointing to gradebook.csv and summary.html. `compact` forces one or the other."""
    table = _table(assignment, records)
    width = width if width is not None else _terminal_columns()
    if compact is None:
        compact = len(records) > COMPACT_ABOVE or (width is not None and max(map(len, table.splitlines())) > width)
    if not compact:
        return table
    from .summary import terminal_summary

    return terminal_summary(assignment, records)


def _table(assignment: Assignment, records: list[dict[str, Any]]) -> str:
    auto = [i for i in assignment.items if i.graded_automatically or i.kind == "manual"]
    head = ["student_id"] + [i.id + ("*" if i.kind == "manual" else "") for i in auto] + ["total", "late", "final", "status"]
    rows = []
    for r in sorted(records, key=lambda r: r["student_id"]):
        items = [(_cell(r, i) or "-").replace("pending", "?") for i in auto]
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        if r.get("pending_manual"):
            status += f" (TA marks pending: {len(r['pending_manual'])})"
        rows.append([plain(r["student_id"], one_line=True)[:28], *items, f"{r['total']:g}", str(r["late_days"]),
                     f"{r['final']:g}", plain(status, one_line=True)[:70]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    if any(i.kind == "manual" for i in auto):
        lines.append("* marked by a TA; ? = not marked yet (fill manual_marks.csv and grade again)")
    return "\n".join(lines)
