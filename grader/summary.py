"""The class at a glance: summary.html (per-item statistics and histograms, status counts, the problem
list linking each student's feedback page) and a compact terminal summary for large classes.

`write_class_outputs` is the one call grade_folder makes after the gradebook: it writes every per-class
output of the delivery side (HTML feedback and bundles, summary, LMS exports, similarity report).
A failure there is reported and never undoes the grading.
"""
from __future__ import annotations

import base64
import io
import math
import statistics
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .html_feedback import esc, page
from .report import plain, write_atomic
from .spec import Assignment


def graded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Submissions whose files were graded (intake ok); naming errors and bad zips are in the problem list."""
    return [r for r in records if r.get("intake_status", r.get("status")) == "ok"]


def item_stats(assignment: Assignment, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per item over the graded submissions: marks (None while pending), mean, median, min, max, share at
    full marks, and how many are pending a TA (manual) or a review."""
    rows = []
    ok = graded(records)
    for item in assignment.items:
        marks = [r["items"].get(item.id) for r in ok]
        got = [m for m in marks if m is not None]
        review = sum(1 for r in ok if item.id in (r.get("needs_review") or {}) and r["items"].get(item.id) is None)
        pending = sum(1 for r in ok if item.id in (r.get("pending_manual") or [])) - review
        rows.append({
            "item": item, "marks": got, "n": len(got), "pending": pending, "review": review,
            "mean": statistics.fmean(got) if got else None, "median": statistics.median(got) if got else None,
            "min": min(got) if got else None, "max": max(got) if got else None,
            "full": (sum(1 for m in got if m >= item.marks) / len(got)) if got else None,
        })
    return rows


PROBLEM_ORDER = ("crashed", "timeout", "intake", "grader error", "needs review", "partial", "flagged", "late", "other")


def problems(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, student id, why) for every submission a TA should look at, worst kinds first."""
    found = []
    for r in records:
        sid, status, intake = r["student_id"], r["status"], r.get("intake_status", "ok")
        why = plain(r.get("reason") or r.get("intake_reason") or "", one_line=True)
        if intake not in ("ok", None):
            found.append(("intake", sid, f"{intake}: {why}" if why else intake))
        elif status in ("crashed", "timeout"):
            found.append((status, sid, why))
        elif status == "grader_error":
            found.append(("grader error", sid, why))
        elif status != "ok":
            found.append(("partial" if "partial" in status or "missing" in status else "other", sid, f"{status}: {why}"))
        review = r.get("needs_review") or {}
        open_review = [i for i in review if r["items"].get(i) is None]
        if open_review:
            found.append(("needs review", sid, "items " + ", ".join(open_review)))
        missing = [n for n in r.get("notes", []) if str(n).startswith("no file found for")]
        if missing and intake == "ok" and status == "ok":
            found.append(("partial", sid, plain(missing[0], one_line=True)))
        for flag in r.get("flags") or []:
            found.append(("flagged", sid, plain(flag, one_line=True)))
        if r.get("late_days", 0) and "late" in why:
            found.append(("late", sid, why))
    rank = {k: n for n, k in enumerate(PROBLEM_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p[0], len(rank)), p[1]))


def _hist_png(values: list[float], top: float, title: str) -> str:
    """A small histogram (matplotlib, Agg canvas: no display needed) as a base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not math.isfinite(top):  # no cap in the rubric: the marks themselves set the range
        top = max([v for v in values if math.isfinite(v)], default=1.0)
    fig = Figure(figsize=(3.2, 1.9), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bins = min(20, max(4, int(top))) if top > 0 else 4
    ax.hist(values, bins=bins, range=(0, top if top > 0 else 1), color="#4a78b5", edgecolor="white")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("marks", fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "&ndash;"
    return f"{100 * x:.0f}%" if pct else f"{x:.2f}".rstrip("0").rstrip(".")


def feedback_link(out: Path, sid: str) -> str:
    html_page = out / "feedback" / f"{sid}.html"
    name = f"{sid}.html" if html_page.exists() else f"{sid}.md"
    return "feedback/" + quote(name)


def summary_html(assignment: Assignment, records: list[dict[str, Any]], out: Path) -> str:
    stats = item_stats(assignment, records)
    ok = graded(records)
    finals = [float(r["final"]) for r in ok]
    body = [f"<h1>Class summary: {esc(assignment.title)}</h1>",
            f"<p id=\"counts\">{len(records)} submission(s), {len(ok)} graded; statistics are over the graded ones "
            "(pending items are left out of an item's statistics until a TA marks them). "
            "Full table: <code>gradebook.csv</code>.</p>"]
    status = Counter(r["status"] for r in records)
    body.append("<h2>Status</h2><table id=\"status-counts\"><thead><tr><th>status</th><th>submissions</th></tr></thead><tbody>"
                + "".join(f"<tr><td>{esc(s)}</td><td class=\"num\">{n}</td></tr>" for s, n in sorted(status.items()))
                + "</tbody></table>")
    if finals:
        body.append(f"<h2>Final mark</h2><p id=\"final-stats\">mean {_fmt(statistics.fmean(finals))}, median "
                    f"{_fmt(statistics.median(finals))}, min {_fmt(min(finals))}, max {_fmt(max(finals))} (out of {assignment.cap:g})</p>"
                    f"<img alt=\"histogram of final marks\" src=\"data:image/png;base64,"
                    f"{_hist_png(finals, assignment.cap, 'final mark')}\">")
    rows = []
    for s in stats:
        item = s["item"]
        img = (f"<img alt=\"histogram of item {esc(item.id)}\" src=\"data:image/png;base64,"
               f"{_hist_png(s['marks'], item.marks, item.id)}\">") if s["marks"] else ""
        rows.append(f"<tr data-item=\"{esc(item.id)}\"><td>{esc(item.id)}</td><td>{esc(item.title)}</td>"
                    f"<td class=\"num\">{item.marks:g}</td><td class=\"num\">{s['n']}</td><td class=\"num mean\">{_fmt(s['mean'])}</td>"
                    f"<td class=\"num\">{_fmt(s['median'])}</td><td class=\"num\">{_fmt(s['min'])}</td><td class=\"num\">{_fmt(s['max'])}</td>"
                    f"<td class=\"num\">{_fmt(s['full'], pct=True)}</td><td class=\"num\">{s['pending']}</td>"
                    f"<td class=\"num\">{s['review']}</td><td>{img}</td></tr>")
    body.append("<h2>Items</h2><table id=\"items\"><thead><tr><th>item</th><th>task</th><th>out of</th><th>marked</th>"
                "<th>mean</th><th>median</th><th>min</th><th>max</th><th>at full marks</th><th>pending (TA)</th>"
                "<th>needs review</th><th>histogram</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    found = problems(records)
    body.append(f"<h2>Problems ({len(found)})</h2>")
    if found:
        body.append("<table id=\"problems\"><thead><tr><th>kind</th><th>student</th><th>why</th></tr></thead><tbody>"
                    + "".join(f"<tr><td>{esc(k)}</td><td><a href=\"{esc(feedback_link(out, sid))}\">{esc(sid)}</a></td>"
                              f"<td>{esc(why[:300])}</td></tr>" for k, sid, why in found)
                    + "</tbody></table>")
    else:
        body.append("<p id=\"no-problems\">None: every submission was graded without a crash, timeout or review.</p>")
    body.append("<h2>Every student</h2><p class=\"muted\">" + " ".join(
        f"<a href=\"{esc(feedback_link(out, r['student_id']))}\">{esc(r['student_id'])}</a>"
        for r in sorted(records, key=lambda r: r["student_id"])) + "</p>")
    return page(f"Class summary: {esc(assignment.title)}", body, wide=True)


def terminal_summary(assignment: Assignment, records: list[dict[str, Any]], limit: int = 25) -> str:
    """A few lines instead of one row per student: counts, per-item means, the first problems."""
    ok = graded(records)
    finals = [float(r["final"]) for r in ok]
    status = Counter(r["status"] for r in records)
    lines = [f"{len(records)} submission(s), {len(ok)} graded; status: "
             + ", ".join(f"{plain(s, one_line=True)} {n}" for s, n in sorted(status.items()))]
    if finals:
        lines.append(f"final mark: mean {_fmt(statistics.fmean(finals))}, median {_fmt(statistics.median(finals))}, "
                     f"min {_fmt(min(finals))}, max {_fmt(max(finals))} (out of {assignment.cap:g})")
    means = []
    for s in item_stats(assignment, records):
        text = f"{s['item'].id} {_fmt(s['mean'])}/{s['item'].marks:g}" if s["mean"] is not None else f"{s['item'].id} -"
        if s["pending"] or s["review"]:
            text += f" ({s['pending'] + s['review']} pending)"
        means.append(text)
    line = "item means:"
    for n, text in enumerate(means):  # wrapped between items, never inside one
        piece = (" " if n == 0 else "; ") + text
        if len(line) + len(piece) > 100 and n:
            lines.append(line + ";")
            line, piece = "  ", text
        line += piece
    lines.append(line)
    found = problems(records)
    lines.append(f"problems: {len(found)}" + (":" if found else ""))
    shown = found[:limit]
    width = min(48, max((len(plain(sid, one_line=True)) for _, sid, _ in shown), default=0))
    for kind, sid, why in shown:
        lines.append(f"  {kind:<12} {plain(sid, one_line=True)[:width]:<{width}} {why[:90]}")
    if len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more (summary.html lists them all)")
    lines.append("The full table is in gradebook.csv, per-item statistics and histograms in summary.html "
                 "(both in the output folder).")
    return "\n".join(lines)


def write_class_outputs(out: Path, assignment: Assignment, records: list[dict[str, Any]],
                        log: Callable[[str], None] = print, folder: Path | None = None) -> None:
    """Every per-class output of the delivery side, each on its own: one failing is reported, never fatal."""
    from . import exports, html_feedback, similarity

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("HTML feedback and bundles", lambda: html_feedback.write_all(out, assignment, records)),
        ("summary.html", lambda: write_atomic(out / "summary.html", summary_html(assignment, records, out))),
        ("LMS exports", lambda: exports.write_all(out, assignment, records, log)),
        ("similarity report", lambda: similarity.write_report(out, assignment, records, folder, log)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the grading is done and saved; say what is missing
            traceback.print_exc(file=sys.stderr)
            log(f"WARNING: could not write the {what}: {type(exc).__name__}: {exc}")
