"""The class gradebook: one CSV row per submission, built from the per-student records."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .report import write_atomic
from .spec import Assignment


def columns(assignment: Assignment) -> list[str]:
    return ["student_id", "name"] + [i.id for i in assignment.items] + ["total", "late_days", "final", "status"]


def write(path: Path, assignment: Assignment, records: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns(assignment))
    for r in sorted(records, key=lambda r: r["student_id"]):
        items = [("" if r["items"].get(i.id) is None else f"{r['items'][i.id]:g}") for i in assignment.items]
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        writer.writerow([r["student_id"], r["name"], *items, f"{r['total']:g}", r["late_days"], f"{r['final']:g}", status])
    write_atomic(path, buf.getvalue())


def render(assignment: Assignment, records: list[dict[str, Any]]) -> str:
    """A compact terminal table of the gradebook."""
    auto = [i for i in assignment.items if i.graded_automatically]
    head = ["student_id"] + [i.id for i in auto] + ["total", "late", "final", "status"]
    rows = []
    for r in sorted(records, key=lambda r: r["student_id"]):
        items = [("-" if r["items"].get(i.id) is None else f"{r['items'][i.id]:g}") for i in auto]
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        rows.append([r["student_id"][:28], *items, f"{r['total']:g}", str(r["late_days"]), f"{r['final']:g}", status[:70]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
