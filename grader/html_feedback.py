"""Each student's feedback as one self-contained HTML page, and a zip per student for upload.

out/feedback/<id>.html holds everything (figures embedded as base64 PNG, a style sheet, no script and
nothing fetched); out/bundles/<id>.zip holds that page, the Markdown feedback and the figures it shows.

The page is built from what the batch already wrote for the student: the record and the per-item
tests of results/<id>.json (report.gradescope_results), so it says exactly what the Markdown and
Gradescope say, TA marks, overrides and verdict-only items included. Everything a submission
controls goes through html.escape (after report.plain removes control characters).
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from .report import plain
from .spec import Assignment

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}.full{background:#eef8ee}.zero{background:#fbeeee}.pending{background:#fff7e0}
.status-ok{color:#17602a}.status-bad{color:#a01818;font-weight:600}
ul.checks{list-style:none;padding-left:0}ul.checks li{margin:.3rem 0;white-space:pre-wrap;word-break:break-word}
li.pass::before{content:"\\2713  ";color:#17602a}li.fail::before{content:"\\2717  ";color:#a01818}
p.text{white-space:pre-wrap;word-break:break-word}
figure{margin:1rem 0;border:1px solid #ddd;padding:.5rem;display:inline-block;max-width:100%}
figure img{max-width:100%;height:auto}figcaption{font-size:.9rem;color:#444}
.muted{color:#666;font-size:.9rem}
""".strip()


def esc(text: Any) -> str:
    """Text a submission may control, as inert HTML (control and bidi characters removed first)."""
    return html.escape(plain(text), quote=True)


def page(title: str, body: list[str], wide: bool = False) -> str:
    style = STYLE + ("\nbody{max-width:96rem}" if wide else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n"
            f"<title>{title}</title>\n<style>\n{style}\n</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _load_tests(out: Path, sid: str) -> tuple[list[dict[str, Any]], str]:
    """The per-item tests and the summary line the batch wrote for this student (results/<id>.json)."""
    try:
        data = json.loads((out / "results" / f"{sid}.json").read_text())
        return list(data.get("tests", [])), str(data.get("output", ""))
    except (OSError, ValueError, TypeError):
        return [], ""


def figures_of(record: dict[str, Any], folder: Path, shown_items: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Per item, the figures its checks drew: each distinct image (same bytes) once, under the first check
    that drew it, labelled with every check that drew it. Items not in `shown_items` show none."""
    seen: dict[str, dict[str, Any]] = {}
    per_item: dict[str, list[dict[str, Any]]] = {}
    for o in record.get("outcomes", []):
        if o.get("item") not in shown_items:
            continue
        for name in o.get("figures", []):
            path = folder / Path(str(name)).name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            digest = hashlib.sha256(data).hexdigest()
            label = (str(o["item"]), str(o.get("name", "")))
            if digest in seen:
                if label not in seen[digest]["labels"]:
                    seen[digest]["labels"].append(label)
                continue
            fig = {"file": path.name, "path": path, "data": data, "labels": [label], "status": o.get("status", "")}
            seen[digest] = fig
            per_item.setdefault(str(o["item"]), []).append(fig)
    return per_item


def _figure_html(fig: dict[str, Any]) -> str:
    (item, check), *others = fig["labels"]
    caption = f"Drawn by {esc(item)}: {esc(check)}"
    if others:
        caption += " (the same image was also drawn by " + "; ".join(f"{esc(i)}: {esc(c)}" for i, c in others) + ")"
    if fig.get("status") in ("error", "crashed", "timeout"):
        caption += (f". The check stopped ({esc(fig['status'])}) before it could judge this figure: it shows what your "
                    "code had drawn by then, possibly nothing yet")
    b64 = base64.b64encode(fig["data"]).decode("ascii")
    return (f"<figure data-check=\"{esc(item)}: {esc(check)}\"><img alt=\"figure drawn by {esc(item)}: {esc(check)}\" "
            f"src=\"data:image/png;base64,{b64}\"><figcaption>{caption}</figcaption></figure>")


def _item_body(test: dict[str, Any]) -> str:
    """The item's text: one list entry per check ("[PASS] ..." / "[FAILED] ...", with the lines of its message
    that follow), the text before the first check as a paragraph."""
    text: list[str] = []
    checks: list[list[str]] = []
    for line in plain(test.get("output", "")).split("\n"):
        if re.match(r"\[[A-Z_]+\] ", line):
            checks.append([line])
        elif checks:
            checks[-1].append(line)
        elif line.strip():
            text.append(line)
    out = []
    if text:
        out.append(f"<p class=\"text\">{esc(chr(10).join(text))}</p>")
    if checks:
        out.append("<ul class=\"checks\">" + "".join(
            f"<li class=\"{'pass' if c[0].startswith('[PASS]') else 'fail'}\">{esc(chr(10).join(c).rstrip())}</li>"
            for c in checks) + "</ul>")
    return "\n".join(out)


def _by_item(tests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_item: dict[str, list[dict[str, Any]]] = {}
    for t in tests:
        by_item.setdefault(str(t.get("number", "")), []).append(t)
    return by_item


def shown_items(assignment: Assignment, tests: list[dict[str, Any]]) -> set[str]:
    """Items whose details the student may see now (not verdict-only before the deadline)."""
    withheld = {i for i, ts in _by_item(tests).items() if any(t.get("visibility") == "after_due_date" for t in ts)}
    return {i.id for i in assignment.items} - withheld


def feedback_html(record: dict[str, Any], tests: list[dict[str, Any]], assignment: Assignment,
                  figure_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The page, and the figures it embeds (for the bundle)."""
    sid = record["student_id"]
    by_item = _by_item(tests)
    shown = shown_items(assignment, tests)
    withheld = {i.id for i in assignment.items} - shown
    figures = figures_of(record, figure_dir, shown)
    bad = record["status"] != "ok"
    body = [f"<h1>Feedback: {esc(assignment.title)}</h1>",
            f"<p>Student: <span id=\"student-id\">{esc(sid)}</span> <span id=\"student-name\">{esc(record.get('name', ''))}</span></p>",
            f"<p id=\"status\" class=\"{'status-bad' if bad else 'status-ok'}\">Status: {esc(record['status'])}"
            + (f": {esc(record['reason'])}" if record.get("reason") else "") + "</p>"]
    notes = record.get("notes") or []
    if notes:
        body.append("<ul class=\"notes\">" + "".join(f"<li>Note: {esc(n)}</li>" for n in notes) + "</ul>")
    rows = []
    for item in assignment.items:
        ts = [t for t in by_item.get(item.id, []) if t.get("visibility") != "after_due_date"]
        score = record["items"].get(item.id)
        if item.id in withheld:
            verdict = next((t.get("status") for t in ts if "status" in t), "")
            got, cls = ("passed" if verdict == "passed" else "not passed"), "pending"
        elif score is None:
            got, cls = "pending", "pending"
        else:
            got, cls = f"{score:g}", "full" if score >= item.marks else ("zero" if score == 0 else "")
        rows.append(f"<tr class=\"{cls}\" data-item=\"{esc(item.id)}\"><td><a href=\"#item-{esc(item.id)}\">{esc(item.id)}</a></td>"
                    f"<td>{esc(item.title)}</td><td class=\"num marks\">{got}</td><td class=\"num\">{item.marks:g}</td></tr>")
    body.append("<table id=\"marks\"><thead><tr><th>item</th><th>task</th><th>marks</th><th>out of</th></tr></thead>"
                "<tbody>" + "".join(rows) + "</tbody></table>")
    if withheld:
        body.append(f"<p id=\"total\">Verdict only until the deadline for {esc(', '.join(sorted(withheld)))}: which checks "
                    "failed, their messages and the marks come after it, and so do the total and the final mark.</p>")
    else:
        body.append(f"<p id=\"total\">Total (items marked so far): <strong>{record['total']:g}</strong>. "
                    f"Late days: {esc(record.get('late_days', 0))}. Final mark: <strong id=\"final\">{record['final']:g}</strong> "
                    "(capped at the course maximum).</p>")
    embedded: list[dict[str, Any]] = []
    for item in assignment.items:
        ts = by_item.get(item.id, [])
        visible = [t for t in ts if t.get("visibility") != "after_due_date"]
        score = record["items"].get(item.id)
        head = f"{esc(item.id)} {esc(item.title)}"
        if item.id in withheld:
            head += ": verdict only until the deadline"
        elif score is not None:
            head += f": {score:g} / {item.marks:g}"
        else:
            head += f": pending (out of {item.marks:g})"
        section = [f"<section class=\"item\" id=\"item-{esc(item.id)}\">", f"<h2>{head}</h2>"]
        section += [_item_body(t) for t in visible]
        for fig in figures.get(item.id, []):
            section.append(_figure_html(fig))
            embedded.append(fig)
        body += section + ["</section>"]
    adapted = record.get("adaptations") or []
    if adapted:
        body += ["<section id=\"adapted\"><h2>What the grader adapted</h2>",
                 "<p>Your code was written for an environment the grader does not have (Colab, Google Drive, a GPU, "
                 "downloads). To run it as it would run there, the grader made these changes:</p>",
                 "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in adapted) + "</ul></section>"]
    title = f"Feedback: {esc(assignment.title)} ({esc(sid)})"
    return page(title, body), embedded


def _bundle(path: Path, members: list[tuple[str, bytes]]) -> None:
    """A zip with fixed timestamps (the same feedback gives the same bytes), written atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED  # PNG is compressed
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(path)


def write_all(out: Path, assignment: Assignment, records: list[dict[str, Any]]) -> int:
    """feedback/<id>.html and bundles/<id>.zip for every record; returns how many were written."""
    from .report import write_atomic

    (out / "bundles").mkdir(parents=True, exist_ok=True)
    for record in records:
        sid = record["student_id"]
        tests, _ = _load_tests(out, sid)
        text, _ = feedback_html(record, tests, assignment, out / "feedback" / f"{sid}-figures")
        write_atomic(out / "feedback" / f"{sid}.html", text)
        members = [(f"{sid}.html", text.encode("utf-8"))]
        md = out / "feedback" / f"{sid}.md"
        if md.exists():
            members.append((f"{sid}.md", md.read_bytes()))
        folder = out / "feedback" / f"{sid}-figures"
        shown = shown_items(assignment, tests)
        names = dict.fromkeys(Path(str(n)).name for o in record.get("outcomes", []) if o.get("item") in shown
                              for n in o.get("figures", []))  # every figure the Markdown links to
        members += [(f"{sid}-figures/{n}", (folder / n).read_bytes()) for n in names if (folder / n).is_file()]
        _bundle(out / "bundles" / f"{sid}.zip", members)
    return len(records)
