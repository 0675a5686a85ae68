"""Per-student outputs: Gradescope results.json (with our record in extra_data) and feedback Markdown.

Reporters only read scores; they never compute them.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
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


# -- student-supplied text in staff-facing files -------------------------------------------------
# Everything a submission controls (answers, exception messages, stderr tails, file names, names)
# goes through these before it reaches a file or terminal that course staff read: terminal escapes
# and control characters are removed, Markdown/HTML structure is made inert, CSV cells cannot start
# a formula.
_TERMINAL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI: cursor moves, clear screen, colours
    r"|\x1b[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC (clipboard, title, links), DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # two-character escapes (reset, charsets), or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x9c\n]*[\x07\x9c]?"  # 8-bit OSC, DCS, SOS, PM, APC
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def plain(text: Any, one_line: bool = False) -> str:
    """Text without terminal escapes, control or bidi characters; `one_line` joins lines with ' / '."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = _CONTROL.sub("", _TERMINAL.sub("", text))
    if one_line:
        text = " / ".join(part.strip() for part in text.split("\n") if part.strip()).replace("\t", " ")
    return text


_MD_INLINE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`", "*": "\\*",
                            "[": "\\[", "]": "\\]", "|": "\\|", "~": "\\~", "#": "\\#"})
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an _ that is not between two letters or digits


def md_inline(text: Any) -> str:
    """One line of Markdown that renders as the literal text: no HTML, links, emphasis, code or table cells.
    (An underscore inside a word, as in T_0, cannot start emphasis and stays as it is.)"""
    return _UNDERSCORE.sub(r"\\_", plain(text, one_line=True).translate(_MD_INLINE))


def md_block(text: Any) -> str:
    """A fenced code block showing the text literally (the fence is longer than any backtick run in it)."""
    text = plain(text).expandtabs(4)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: one line, and a leading ' before = + - @."""
    if not isinstance(value, str):
        return value
    value = plain(value, one_line=True)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# -- feedback levels -----------------------------------------------------------------------------
def released(deadline: datetime | None, now: datetime | None = None) -> bool:
    """Whether full feedback is out for items whose rubric level is "verdict" (after the deadline;
    with no deadline at all there is nothing to wait for)."""
    if deadline is None:
        return True
    deadline = deadline if deadline.tzinfo else deadline.replace(tzinfo=timezone.utc)
    return (now or datetime.now(timezone.utc)) >= deadline


def _withheld(s: ItemScore, open_: bool) -> bool:
    """Only the verdict of this item is shown now (passed or not), no checks, messages or marks."""
    return not open_ and getattr(s.item, "feedback", "full") == "verdict" and s.state == "graded"


def _verdict(s: ItemScore) -> str:
    return "passed" if s.outcomes and all(o.passed for o in s.outcomes) else "not passed"


WITHHELD = ("until the deadline only whether this item passed is shown; which checks failed, the messages "
            "and the marks come after the deadline")


def _item_text(s: ItemScore) -> str:
    if s.state == "manual":
        return "marked by a TA (not marked yet)"
    if s.state == "review":
        why = "; ".join(o.message for o in s.outcomes if o.status == "review")[:400]
        return f"needs review by a TA (the grader could not decide it automatically: {why})"
    if s.state == "ta_marked":
        return "marked by a TA" + (f": {s.comment}" if s.comment else "")
    if s.state == "overridden":
        checks = "\n".join(f"[{'PASS' if o.passed else o.status.upper()}] {o.name}" for o in s.outcomes)
        return (f"the automatic mark {s.automatic:g} was changed by a TA to {s.score:g}: {s.comment}"
                + (f"\n{checks}" if checks else ""))
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


def gradescope_results(record: dict[str, Any], scores: list[ItemScore], deadline: datetime | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    """Gradescope's results.json. Before the deadline an item whose feedback level is "verdict" is two
    tests: its verdict, visible, and its marks and messages, visible after the due date (Gradescope's clock)."""
    open_ = released(deadline, now)
    tests = []
    for s in scores:
        test: dict[str, Any] = {
            "name": plain(f"{s.item.id} {s.item.title}", one_line=True),
            "number": s.item.id,
            "max_score": s.item.marks,
            "output": plain(_item_text(s)),
            "visibility": "visible",
        }
        if s.score is not None:
            test["score"] = s.score
        if _withheld(s, open_):
            tests.append({"name": test["name"], "number": s.item.id, "max_score": 0, "status": _verdict(s).replace("not passed", "failed"),
                          "output": f"{_verdict(s)}: {WITHHELD}", "visibility": "visible"})
            test.update(name=test["name"] + " (details)", visibility="after_due_date")
        tests.append(test)
    withheld = any(_withheld(s, open_) for s in scores)
    summary = f"Status: {record['status']}" + (f" ({plain(record['reason'], one_line=True)})" if record["reason"] else "")
    if withheld:
        summary += f". Late days {record['late_days']}; the total comes after the deadline (some items show only a verdict until then)."
    else:
        summary += f". Total {record['total']:g}, late days {record['late_days']}, final {record['final']:g}."
    return {"score": record["final"], "output": summary, "output_format": "text", "test_output_format": "text",
            "visibility": "visible", "tests": tests, "extra_data": record}


def feedback_markdown(record: dict[str, Any], scores: list[ItemScore], title: str, deadline: datetime | None = None,
                      now: datetime | None = None) -> str:
    """The student's feedback. Everything the submission controls is quoted inertly (md_inline, md_block);
    items whose feedback level is "verdict" show only passed / not passed until the deadline."""
    open_ = released(deadline, now)
    withheld = {s.item.id for s in scores if _withheld(s, open_)}
    out = [f"# Feedback: {md_inline(title)}", "",
           f"Student: {md_inline(record['student_id'])} {md_inline(record['name'])}".rstrip(), ""]
    out.append(f"**Status:** {md_inline(record['status'])}" + (f": {md_inline(record['reason'])}" if record["reason"] else ""))
    for note in record.get("notes", []):
        out.append(f"- Note: {md_inline(note)}")
    out += ["", "| item | task | marks | out of |", "| --- | --- | --- | --- |"]
    for s in scores:
        got = "pending" if s.score is None else f"{s.score:g}"
        if s.item.id in withheld:
            got = _verdict(s)
        out.append(f"| {md_inline(s.item.id)} | {md_inline(s.item.title)} | {got} | {s.item.marks:g} |")
    if withheld:
        out += ["", f"Verdict only until the deadline for {', '.join(sorted(withheld))}: which checks failed, their messages "
                "and the marks come after it, and so do the total and the final mark.", ""]
    else:
        out += ["", f"Total (items marked so far): **{record['total']:g}**. "
                f"Late days: {record['late_days']}. Final mark: **{record['final']:g}** (capped at the course maximum).", ""]
    for s in scores:
        if s.state == "ta_marked" and s.comment:
            out += [f"## {md_inline(s.item.id)} {md_inline(s.item.title)}: {s.score:g} / {s.item.marks:g} (TA)", "",
                    f"TA's comment: {md_inline(s.comment)}", ""]
        elif s.state == "overridden":
            out += [f"## {md_inline(s.item.id)} {md_inline(s.item.title)}: {s.score:g} / {s.item.marks:g} (TA)", "",
                    f"The automatic mark {s.automatic:g} was changed by a TA to {s.score:g}: {md_inline(s.comment)}", ""]
    for s in scores:
        if s.item.id in withheld:
            if _verdict(s) != "passed":
                out += [f"## {md_inline(s.item.id)} {md_inline(s.item.title)}: {_verdict(s)}", "", f"({WITHHELD}.)", ""]
            continue
        if s.state == "graded" and any(not o.passed for o in s.outcomes):
            out += [f"## {md_inline(s.item.id)} {md_inline(s.item.title)}: {s.score:g} / {s.item.marks:g}", ""]
            for o in s.outcomes:
                if o.passed:
                    out.append(f"- passed: {md_inline(o.name)}")
                    continue
                out.append(f"- **{md_inline(o.status)}**: {md_inline(o.name)}. {md_inline(o.message)}")
                if o.detail:
                    out.append(f"  - by how much / where: {md_inline(o.detail)}")
                if o.hint:
                    out.append(f"  - hint: {md_inline(o.hint)}")
            out.append("")
    figures = [(s.item.id, name) for s in scores if s.item.id not in withheld for o in s.outcomes for name in o.figures]
    if figures:
        folder = f"{record['student_id']}-figures"
        out += ["## Your figures, as the grader drew them", ""]
        out += [f"- {md_inline(item)}: ![{md_inline(name)}]({_link(folder)}/{_link(name)})" for item, name in figures] + [""]
    adapted = record.get("adaptations") or []
    if adapted:  # written for Colab with a GPU and the internet; the sandbox has none of them
        out += ["## What the grader adapted", "",
                "Your code was written for an environment the grader does not have (Colab, Google Drive, a GPU, "
                "downloads). To run it as it would run there, the grader made these changes:", ""]
        out += [f"- {md_inline(a)}" for a in adapted] + [""]
    pending = [s for s in scores if s.score is None]
    if pending:
        out += ["## Not graded yet", ""] + [f"- {md_inline(s.item.id)} {md_inline(s.item.title)}: {md_inline(_item_text(s))}"
                                           for s in pending] + [""]
    return "\n".join(out)


def _link(name: str) -> str:
    """A file name as a link target: only the characters the grader itself puts in names."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", plain(name, one_line=True))


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
