"""What course staff take away from a class run, through the real command: summary.html, the compact
terminal summary, one HTML page and one upload zip per student, the Canvas and Moodle import files, the
similarity report, and Gradescope's autograder zip run in a simulated /autograder layout. The pages are
also opened in a headless Chromium when the machine has one.

The demo class (fixtures/examples/comp4423_a2) is graded once, with one more zip whose error message is
HTML, then graded again after a TA marks one student's written items (no student code runs again).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import gradebook, spec
from grader.exports import CANVAS_FIXED
from grader.spec import ROOT

EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
A2 = spec.load("comp4423_a2")
INJECT = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
TA_COMMENT = "clear <b>and</b> complete"


def grade(folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "grader", "grade", str(folder), "--assignment", "comp4423_a2", "--out", str(out),
           "--jobs", "2", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _inject_zip(path: Path) -> None:
    """The starter, with Task 4.1's stub raising an error whose message is HTML and script."""
    with zipfile.ZipFile(EXAMPLES / "Assignment2_22222222b_STARTER_Only.zip") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "Raysampling.py":
                data = data.replace(b'raise NotImplementedError("Task 4.1: fill in the missing lines here")',
                                    f"raise ValueError({INJECT!r})".encode())
                assert INJECT.encode() in data
            dst.writestr(info.filename, data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("staff")
    subs, out = tmp / "subs", tmp / "out"
    subs.mkdir()
    for z in EXAMPLES.glob("*.zip"):
        shutil.copyfile(z, subs / z.name)
    _inject_zip(subs / "Assignment2_55555555e_HTML_Inject.zip")
    first = grade(subs, out, "--times", str(EXAMPLES / "times.csv"))
    assert first.returncode == 0, first.stderr[-3000:]
    with open(out / "manual_marks.csv", newline="") as fh:
        marks = list(csv.DictReader(fh))
    for row in marks:
        if row["student_id"] == "11111111a":
            row["marks"], row["comment"] = f"{A2.item(row['item']).marks:g}", TA_COMMENT
    with open(out / "manual_marks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(marks[0]))
        writer.writeheader()
        writer.writerows(marks)
    second = grade(subs, out)
    assert second.returncode == 0, second.stderr[-3000:]
    records = {p.stem: json.loads(p.read_text())["extra_data"] for p in (out / "results").glob("*.json")}
    return tmp, out, first, second, records


def test_no_class_output_failed(run):
    """Did every class output get written without a warning on either run?"""
    _, out, first, second, _ = run
    for proc in (first, second):
        assert "could not write" not in proc.stderr, proc.stderr[-3000:]
    for name in ("summary.html", "similarity.md", "exports/canvas.csv", "exports/moodle.csv"):
        assert (out / name).is_file(), name


def _gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def test_summary_page_has_statistics_histograms_and_problems(run):
    """Does summary.html give each item's mean and histogram, the status counts and the problem list with
    links to feedback pages that exist, all in one file that fetches nothing?"""
    _, out, _, _, records = run
    page = (out / "summary.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page and "<link" not in page
    book = _gradebook(out)
    graded = [r for r in records.values() if r["intake_status"] == "ok"]
    for item in A2.items:
        row = re.search(rf'<tr data-item="{re.escape(item.id)}">(.*?)</tr>', page)
        assert row, item.id
        got = [float(book[r["student_id"]][item.id]) for r in graded if book[r["student_id"]][item.id] not in ("", "pending")]
        if got:
            mean = re.search(r'class="num mean">([^<]*)<', row[1])[1]
            assert float(mean) == pytest.approx(sum(got) / len(got), abs=0.01), item.id
            assert f'alt="histogram of item {item.id}"' in row[1]
    assert page.count("data:image/png;base64,") >= 1 + sum(1 for i in A2.items if i.kind == "auto")
    assert re.search(r"<td>naming_error</td><td class=\"num\">1</td>", page)
    problems = re.search(r'<table id="problems">(.*?)</table>', page, re.S)[1]
    for link in re.findall(r'href="([^"]+)"', problems):
        assert (out / link).is_file(), link
    assert "misnamed-assignment2-final" in problems
    assert "5 submission(s), 5 graded" not in page and "6 submission(s), 5 graded" in page


def test_terminal_summary_for_a_large_class(run):
    """Does the terminal keep the table for this small class, and print counts, item means and the problem
    list (pointing to gradebook.csv and summary.html) for 300 students or a narrow terminal?"""
    _, _, _, second, records = run
    assert "student_id" in second.stdout and "11111111a" in second.stdout  # the table, one row per student
    many = []
    for n in range(300):
        for r in records.values():
            many.append(dict(r, student_id=f"{r['student_id']}-{n}"))
    text = gradebook.render(A2, many)
    assert len(text.splitlines()) < 60 and max(map(len, text.splitlines())) <= 160
    assert "1800 submission(s), 1500 graded" in text and "gradebook.csv" in text and "summary.html" in text
    assert re.search(r"item means: 1\.1 [\d.]+/15", text)
    assert "... and" in text  # the problem list is cut, summary.html has it all
    narrow = gradebook.render(A2, list(records.values()), width=100)
    assert "item means:" in narrow
    assert "item means:" not in gradebook.render(A2, list(records.values()), width=400)


def _figures_shown(record: dict, folder: Path) -> dict[str, list[str]]:
    """Distinct figure bytes (sha256) -> the checks that drew them, over the items the student sees."""
    found: dict[str, list[str]] = {}
    for o in record["outcomes"]:
        for name in o["figures"]:
            digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            found.setdefault(digest, []).append(o["name"])
    return found


def test_feedback_page_embeds_each_figure_once_labelled_by_its_check(run):
    """Is each student's page self-contained, with every distinct figure embedded once and captioned with
    the check that drew it (and the others that drew the same image)?"""
    _, out, _, _, records = run
    for sid in records:
        assert (out / "feedback" / f"{sid}.html").is_file(), sid
    record = records["33333333c"]
    page = (out / "feedback" / "33333333c.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    figures = _figures_shown(record, out / "feedback" / "33333333c-figures")
    assert any(len(checks) > 1 for checks in figures.values()), "the demo has no repeated figure any more"
    payloads = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    digests = [hashlib.sha256(base64.b64decode(p)).hexdigest() for p in payloads]
    assert sorted(digests) == sorted(figures), "each distinct figure exactly once"
    import html

    for caption in re.findall(r"<figcaption>(.*?)</figcaption>", page):
        assert caption.startswith("Drawn by ")
    for checks in figures.values():
        assert html.escape(checks[0], quote=True) in page
    assert re.search(r'data-item="4\.1"><td><a href="#item-4\.1">4\.1</a></td><td>[^<]*</td><td class="num marks">6</td>', page)
    assert 'id="final">76<' in page


def test_student_text_is_inert_in_the_html(run):
    """Does an error message made of HTML and script show as text, never as markup, on the student's page?"""
    _, out, _, _, records = run
    sid = next(s for s in records if s.startswith("55555555e"))
    page = (out / "feedback" / f"{sid}.html").read_text()
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "<img src=x" not in page
    ta = (out / "feedback" / "11111111a.html").read_text()
    assert f"marked by a TA: {TA_COMMENT}".replace("<", "&lt;").replace(">", "&gt;") in ta


def test_bundle_holds_the_page_the_markdown_and_its_figures(run):
    """Does bundles/<id>.zip hold the HTML page, the Markdown and every figure the Markdown links to?"""
    _, out, _, _, records = run
    for sid in records:
        with zipfile.ZipFile(out / "bundles" / f"{sid}.zip") as zf:
            names = set(zf.namelist())
            assert {f"{sid}.html", f"{sid}.md"} <= names
            md = zf.read(f"{sid}.md").decode()
            for link in re.findall(r"\]\(([^)]+\.png)\)", md):
                assert link in names, (sid, link)
            assert zf.read(f"{sid}.html") == (out / "feedback" / f"{sid}.html").read_bytes()


def test_lms_exports(run):
    """Do canvas.csv and moodle.csv have each platform's import columns, one row per student with an id,
    the final mark once nothing is pending, and an empty mark while TA marks are pending?"""
    _, out, _, _, records = run
    book = _gradebook(out)
    with open(out / "exports" / "canvas.csv", newline="") as fh:
        canvas = list(csv.reader(fh))
    assert canvas[0] == CANVAS_FIXED + [A2.title]
    rows = {r[2]: r for r in canvas[1:]}
    assert set(rows) == {sid for sid, r in records.items() if r["intake_status"] != "naming_error"}
    assert rows["11111111a"][5] == book["11111111a"]["final"] == "100"
    assert rows["33333333c"][5] == ""  # written items still pending: never a partial mark
    with open(out / "exports" / "moodle.csv", newline="") as fh:
        moodle = {r["ID number"]: r for r in csv.DictReader(fh)}
    assert set(moodle) == set(rows)
    assert moodle["11111111a"][A2.title] == "100" and moodle["44444444d"][A2.title] == ""
    assert "Pending" in moodle["44444444d"]["Feedback"] and "final 80" in moodle["44444444d"]["Feedback"]


def test_similarity_report_lists_the_copied_pair_only(run):
    """Does similarity.md list the two submissions with the same filled code (one as a single file) and
    leave out the starter and a submission that filled nothing?"""
    _, out, _, _, _ = run
    report = (out / "similarity.md").read_text()
    table = [ln for ln in report.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert table[0].startswith("| 1 | 11111111a | 44444444d | 100% |"), table
    assert not any("22222222b" in ln or "55555555e" in ln for ln in table)


def test_gradescope_autograder_zip_in_a_simulated_layout(run):
    """Does `python -m grader gradescope` build a zip whose run_autograder, in an /autograder layout under
    a temporary folder, grades the uploaded files and writes results.json with the batch's marks?"""
    tmp, out, _, _, records = run
    zip_path = tmp / "autograder.zip"
    proc = subprocess.run([sys.executable, "-m", "grader", "gradescope", "--assignment", "comp4423_a2", "--out", str(zip_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    root = tmp / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        assert {"setup.sh", "run_autograder", "requirements.txt"} <= set(zf.namelist())
        zf.extractall(root / "source")
    shutil.copyfile(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    with zipfile.ZipFile(EXAMPLES / "Assignment2_11111111a_REF_Solution.zip") as zf:
        zf.extractall(root / "submission")  # Gradescope gives the uploaded files, not a zip of them
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    ran = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True, timeout=600, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 100
    batch = json.loads((out / "results" / "11111111a.json").read_text())
    auto = {t["number"]: t.get("score") for t in batch["tests"] if A2.item(t["number"]).kind == "auto"}
    assert {t["number"]: t.get("score") for t in results["tests"] if t["number"] in auto} == auto
    assert all(t["visibility"] in ("visible", "after_due_date") for t in results["tests"])


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _browser(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_pages_render_in_headless_chromium(run):
    """Opened in a real browser (headless Chromium), do the summary and a feedback page show their marks,
    figures and histograms, with a student's HTML shown as text and never run?"""
    if _chromium() is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the HTML is checked as text above")
    tmp, out, _, _, records = run
    page = out / "feedback" / "33333333c.html"
    dom = _browser(["--dump-dom", page.as_uri()], tmp)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<span id="student-id">33333333c</span>' in dom.stdout
    assert re.search(r'id="final">76<', dom.stdout)
    sid = next(s for s in records if s.startswith("55555555e"))
    hostile = _browser(["--dump-dom", (out / "feedback" / f"{sid}.html").as_uri()], tmp)
    assert "pwned" not in re.search(r"<title>(.*?)</title>", hostile.stdout)[1]
    assert "&lt;script&gt;document.title" in hostile.stdout
    summary = _browser(["--dump-dom", (out / "summary.html").as_uri()], tmp)
    assert '<table id="items">' in summary.stdout and 'href="feedback/misnamed-assignment2-final.html"' in summary.stdout
    # Pixels: the histograms (bars #4a78b5) and the student's figures are drawn, not broken images.
    import numpy as np
    from matplotlib.image import imread

    for target, colour, least in ((out / "summary.html", (0x4a, 0x78, 0xb5), 2000), (page, None, 20000)):
        shot = tmp / f"{target.stem}.png"
        done = _browser([f"--screenshot={shot}", "--window-size=1280,6000", target.as_uri()], tmp)
        assert shot.is_file(), done.stderr[-2000:]
        pixels = (imread(shot)[..., :3] * 255).round().astype(int)
        if colour is not None:
            hits = (np.abs(pixels - np.array(colour)).sum(-1) < 30).sum()
        else:  # coloured pixels (not black, white or grey): the figures' curves and images
            hits = (pixels.max(-1) - pixels.min(-1) > 60).sum()
        assert hits >= least, f"{target.name}: only {hits} pixels of figures on the screenshot"


def test_verdict_only_items_stay_verdict_only_in_the_html(run):
    """Before the deadline, does the HTML page show only passed / not passed for a verdict-only item (3.1),
    with no check, message, hint or total, like the Markdown and Gradescope's results?"""
    tmp, out, _, _, _ = run
    early = tmp / "early"
    shutil.copytree(out, early)
    proc = grade(tmp / "subs", early, "--deadline", "2999-01-01T00:00:00+00:00")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (early / "feedback" / "33333333c.html").read_text()
    section = re.search(r'<section class="item" id="item-3\.1">(.*?)</section>', page, re.S)[1]
    assert "verdict only" in section and "not passed" in section
    assert "Hint" not in section and "[FAILED]" not in section
    assert 'id="final"' not in page and "Verdict only until the deadline for 3.1" in page
    row = re.search(r'data-item="3\.1">(.*?)</tr>', page)[1]
    assert "not passed" in row and ">0<" not in row
    md = (early / "feedback" / "33333333c.md").read_text()
    assert "Final mark" not in md  # the Markdown withholds the same


def test_hostile_text_in_every_field_stays_text(tmp_path):
    """With markup, quotes, control and bidi characters in every field a submission can reach (name,
    notes, status reason, check output, adaptations), is the page free of any tag or character not ours?"""
    from grader.html_feedback import feedback_html

    evil = "</title><script>x()</script>\"' onload=\"y()\" <style>*{display:none}</style>\u202e\x1b[2J\x07"
    item = A2.items[0]
    record = {"student_id": "12345678a", "name": evil, "status": "crashed", "reason": evil, "notes": [evil],
              "items": {item.id: 0.0}, "total": 0.0, "final": 0.0, "late_days": 0, "adaptations": [evil],
              "outcomes": [{"item": item.id, "name": evil, "figures": ["../../etc/passwd"]}]}
    tests = [{"number": item.id, "name": evil, "output": f"[FAILED] {evil}\n{evil}\n[PASS] {evil}", "visibility": "visible"}]
    page, _ = feedback_html(record, tests, A2, tmp_path)
    tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "ul", "li", "table", "thead",
                    "tbody", "tr", "th", "td", "a", "strong", "section"}, tags
    assert page.count("<script") == 0 and page.count("<style>") == 1 and page.count("<title>") == 1
    assert not re.search("[\u202e\x1b\x07]", page)
    assert 'onload="y()"' not in page and "&lt;script&gt;x()&lt;/script&gt;" in page
