"""Per-student outputs: Gradescope results.json (with our record in extra_data) and feedback Markdown.

Reporters only read scores; they never compute them.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .scoring import ItemScore


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _item_text(s: ItemScore) -> str:
    if s.state == "manual":
        return "marked by a TA (not marked yet)"
    if s.state == "ta_marked":
        return "marked by a TA" + (f": {s.comment}" if s.comment else "")
    if s.state == "not_built":
        return "not graded yet (no automatic checks for this item in this version of the grader)"
    if s.state == "skipped":
        return "not graded in this run (the batch was restricted with --only); grade again without --only"
    if s.state == "not_run":
        return "not run: the submission could not be graded (see status)"
    lines = []
    for o in s.outcomes:
        mark = "PASS" if o.passed else o.status.upper()
        line = f"[{mark}] {o.name}"
        if not o.passed:
            line += f": {o.message}" + (f" ({o.detail})" if o.detail else "") + (f". Hint: {o.hint}" if o.hint else "")
        lines.append(line)
    return "\n".join(lines)


def gradescope_results(record: dict[str, Any], scores: list[ItemScore]) -> dict[str, Any]:
    tests = []
    for s in scores:
        test: dict[str, Any] = {
            "name": f"{s.item.id} {s.item.title}",
            "number": s.item.id,
            "max_score": s.item.marks,
            "output": _item_text(s),
            "visibility": "visible",
        }
        if s.score is not None:
            test["score"] = s.score
        tests.append(test)
    summary = f"Status: {record['status']}" + (f" ({record['reason']})" if record["reason"] else "")
    summary += f". Total {record['total']:g}, late days {record['late_days']}, final {record['final']:g}."
    return {"score": record["final"], "output": summary, "visibility": "visible", "tests": tests, "extra_data": record}


def feedback_markdown(record: dict[str, Any], scores: list[ItemScore], title: str) -> str:
    out = [f"# Feedback: {title}", "", f"Student: {record['student_id']} {record['name']}".rstrip(), ""]
    out.append(f"**Status:** {record['status']}" + (f": {record['reason']}" if record["reason"] else ""))
    for note in record.get("notes", []):
        out.append(f"- Note: {note}")
    out += ["", "| item | task | marks | out of |", "| --- | --- | --- | --- |"]
    for s in scores:
        got = "pending" if s.score is None else f"{s.score:g}"
        out.append(f"| {s.item.id} | {s.item.title} | {got} | {s.item.marks:g} |")
    out += ["", f"Total (items marked so far): **{record['total']:g}**. "
            f"Late days: {record['late_days']}. Final mark: **{record['final']:g}** (capped at the course maximum).", ""]
    for s in scores:
        if s.state == "ta_marked" and s.comment:
            out += [f"## {s.item.id} {s.item.title}: {s.score:g} / {s.item.marks:g} (TA)", "", s.comment, ""]
    for s in scores:
        if s.state == "graded" and any(not o.passed for o in s.outcomes):
            out += [f"## {s.item.id} {s.item.title}: {s.score:g} / {s.item.marks:g}", ""]
            for o in s.outcomes:
                if o.passed:
                    out.append(f"- passed: {o.name}")
                    continue
                out.append(f"- **{o.status}**: {o.name}. {o.message}")
                if o.detail:
                    out.append(f"  - by how much / where: {o.detail}")
                if o.hint:
                    out.append(f"  - hint: {o.hint}")
            out.append("")
    figures = [(s.item.id, name) for s in scores for o in s.outcomes for name in o.figures]
    if figures:
        folder = f"{record['student_id']}-figures"
        out += ["## Your figures, as the grader drew them", ""]
        out += [f"- {item}: ![{name}]({folder}/{name})" for item, name in figures] + [""]
    pending = [s for s in scores if s.score is None]
    if pending:
        out += ["## Not graded yet", ""] + [f"- {s.item.id} {s.item.title}: {_item_text(s)}" for s in pending] + [""]
    return "\n".join(out)


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
