"""Written answers, read from the unpacked submission BEFORE any student code runs.

Two places a starter can declare (the starter says which):
  * answers.md: one section per item, headed `## <item id> ...` (e.g. `## 3.1 Can one NeRF ...`);
  * notebook markdown cells whose first line is a heading `Answer <item id>` (e.g. `### Answer 2.3`).
A report PDF is never parsed here (that would run a PDF parser on untrusted bytes in the grader's
process): a worker in the sandbox reads its text (read_reports), and from_report splits that text into
answers for the items the two places above left unanswered.

Everything here is plain text handling with size limits: no student code runs, nothing is executed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .intake import MAX_MEMBER_BYTES

MAX_FILE = 2 << 20  # bytes read from one answers.md
MAX_NOTEBOOK = MAX_MEMBER_BYTES  # a notebook is read whole (plots make them large), up to intake's file limit
MAX_ANSWER = 6000  # characters kept per item
SECTION = re.compile(r"^#{1,6}\s*(?:answer\s+)?(?:task\s+)?(?P<item>\d+(?:\.\d+)+)\b", re.I)
NB_ANSWER = re.compile(r"^\s*#{1,6}\s*answer\s+(?P<item>\d+(?:\.\d+)*)\b", re.I)


def _read(path: Path, limit: int = MAX_FILE) -> str:
    return _read_all(path, limit)[0]


def _read_all(path: Path, limit: int) -> tuple[str, bool]:
    """(the first `limit` bytes as text, whether that is the whole file)."""
    if path.is_symlink() or not path.is_file():
        return "", True
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    return data[:limit].decode("utf-8", "replace"), len(data) <= limit


def from_markdown(text: str) -> dict[str, str]:
    """Sections of an answers.md, keyed by item id; the heading line itself is dropped."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = SECTION.match(line.strip())
        if match:
            current = match["item"]
            found.setdefault(current, [])
            continue
        if line.startswith("#") and current is not None and not line.startswith("###"):
            current = None  # a new top-level section that is not an item
        if current is not None:
            found[current].append(line)
    return {k: _clean("\n".join(v)) for k, v in found.items()}


def from_notebook(text: str) -> dict[str, str]:
    """Markdown cells headed `Answer <item>`; a notebook that is not JSON gives no answers."""
    return _notebook_answers(text)[0]


def _notebook_answers(text: str) -> tuple[dict[str, str], str]:
    """(answers, why they could not be read: '' when the notebook was read)."""
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "the notebook is not valid JSON"
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    if not isinstance(cells, list):
        return {}, "the notebook has no list of cells"
    found: dict[str, str] = {}
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        first, _, rest = source.lstrip().partition("\n")
        match = NB_ANSWER.match(first)
        if match:
            found[match["item"]] = _clean(rest)
    return found, ""


def _clean(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return text if len(text) <= MAX_ANSWER else text[:MAX_ANSWER] + "\n[... cut: answer longer than 6000 characters]"


def extract(box: Path) -> tuple[dict[str, str], list[str]]:
    """(answers by item, names of the files they came from); reports (PDFs) are listed, not parsed."""
    answers: dict[str, str] = {}
    sources: list[str] = []
    for path in sorted(box.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        name = path.name.lower()
        rel = str(path.relative_to(box))
        problem = ""
        if name == "answers.md":
            text, whole = _read_all(path, MAX_FILE)
            got = from_markdown(text)
            problem = "" if whole else f"only its first {MAX_FILE >> 20} MB were read"
        elif name.endswith(".ipynb"):
            text, whole = _read_all(path, MAX_NOTEBOOK)
            got, problem = _notebook_answers(text) if whole else ({}, f"larger than {MAX_NOTEBOOK >> 20} MB")
        elif name.endswith(".pdf"):
            sources.append(rel)
            continue
        else:
            continue
        for item, text in got.items():
            answers.setdefault(item, text)
        if problem:  # never a silent loss: the review sheet lists the file with the reason
            sources.append(f"{rel} (written answers could not all be read: {problem})")
        elif got:
            sources.append(rel)
    return answers, sources


YES = re.compile(r"\b(yes|y)\b", re.I)
NO = re.compile(r"\b(no|n)\b", re.I)


def yes_no(text: str) -> str | None:
    """'yes', 'no', or None when the answer line says neither or both.

    Reads the line starting `Answer:` when there is one, else the first non-empty line.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("<!--", ">"))]
    chosen = next((ln.split(":", 1)[1] for ln in lines if ln.lower().startswith("answer") and ":" in ln), None)
    if chosen is None:
        chosen = lines[0] if lines else ""
    chosen = chosen.strip().strip("*_`.! ")
    has_yes, has_no = bool(YES.search(chosen)), bool(NO.search(chosen))
    if has_yes == has_no:
        return None
    return "yes" if has_yes else "no"


# -- a PDF report ------------------------------------------------------------------------------------
# The handouts ask for written answers in a PDF. Its text is read inside the sandbox (read_reports asks
# a worker that has loaded no student module); here that text is split into answers, per item, only
# for items that answers.md and notebook Answer cells left unanswered.
MAX_REPORTS = 3  # PDFs read per submission
REPORT_CHARS = 200_000  # characters of text kept per report
REPORT_EXCERPT = 12_000  # characters of a report shown for a written item it has no section for
REPORT = "report"  # key (never an item id) of the reports' text (cut): evidence for an item a check cannot read
ID_HEADING = re.compile(r"^\s*(?:(?:q|question|task|problem|part|exercise)\s*\.?\s*)?(?P<item>\d+(?:\.\d+)+)"
                        r"(?P<rest>(?:[\s.:)\]\-\u2013\u2014].*)?)$", re.I)
TASK_HEADING = re.compile(r"^\s*task\W{0,3}(?P<num>\d+)(?!\.\d)\b", re.I)
PART_HEADING = re.compile(r"^\s*part\s*\d+\s*[:.]", re.I)
MARKS = re.compile(r"\(\s*(?P<marks>\d+(?:\.\d+)?)\s*(?:marks?|pts?|points?)\s*\)", re.I)
NUMBERED = re.compile(r"^\s*(?:\d{1,2}|[a-h]|[ivx]{1,4})\s*[.)]\s+", re.I)
PAGE_NUMBER = re.compile(r"(?:\t|\s{2,}|\.{2,})\d{1,3}\s*$")  # a table of contents' page number
CONTENTS = re.compile(r"^\s*(?:table\s+of\s+)?contents\s*$", re.I)
PARENT = re.compile(r"^\s*(?:(?:problem|question|task)\s*)?(?P<id>\d+(?:\.\d+)+)(?:\s|$)", re.I)  # "1.2 Lambertian ..."
SUB_PART = re.compile(r"^\s*(?:\((?P<roman>[ivx]{1,4})\)|q(?P<q>\d{1,2})\b)(?P<rest>.*)$", re.I)  # "(ii) ...", "Q3 ..."
ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}


def read_reports(sandbox, paths: list[str], timeout: float = 30.0) -> tuple[dict[str, str], list[str]]:
    """(text by report, problems): each PDF's text from a worker of `sandbox` (not started yet), which
    is closed afterwards. No student module is loaded; a PDF that hangs or crashes the worker costs
    its own text only."""
    from .sandbox import SandboxError, StudentError

    texts: dict[str, str] = {}
    problems: list[str] = []
    try:
        for rel in paths[:MAX_REPORTS]:
            try:
                if not sandbox.alive:
                    sandbox.start()
                got = sandbox.request({"op": "report_text", "path": rel, "max_chars": REPORT_CHARS}, timeout)
            except StudentError as exc:
                problems.append(f"{rel}: its text could not be read ({exc.error}: {exc.message[:200]})")
                continue
            except SandboxError as exc:
                problems.append(f"{rel}: its text could not be read ({exc.status}: {str(exc)[:200]})")
                sandbox.close()
                continue
            text = got.get("text") if isinstance(got, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{rel}: the PDF holds no text (a scan or images?); its answers are not read")
                continue
            texts[rel] = text[:REPORT_CHARS]
        if len(paths) > MAX_REPORTS:
            problems.append(f"only the first {MAX_REPORTS} PDFs were read: {', '.join(paths[MAX_REPORTS:])} were not")
    finally:
        sandbox.close()
    return texts, problems


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _task_number(item) -> str:
    match = re.search(r"\btask\s*(\d+)", item.task, re.I)
    return match[1] if match else item.id.split(".")[0]


def _heading_rest(rest: str, title: str) -> str:
    """What follows an item's id on its heading line, minus the title and marks: often the answer itself."""
    rest = MARKS.sub("", PAGE_NUMBER.sub("", rest)).lstrip(" \t.:)]-\u2013\u2014").rstrip()
    title_words = _words(title)
    before, colon, after = rest.partition(":")
    if colon and _words(before) <= title_words | {"answer", "ans", "my"}:  # "Yes/No: No", "Answer: No"
        return after.strip()
    return "" if title_words and title_words <= _words(rest) else rest


def _sections(lines: list[str], classify) -> list[tuple[str, str]]:
    """(item, text) for each heading `classify` names; a heading of no item ("") ends a section."""
    found: list[tuple[str, list[str]]] = []
    for line in lines:
        heading = classify(line)
        if heading is None:
            if found:
                found[-1][1].append(line)
            continue
        item, first = heading
        found.append((item, [first] if first else []))
    return [(item, "\n".join(body)) for item, body in found if item]


def _without_contents(lines: list[str]) -> list[str]:
    """The lines without a table of contents: from a "Contents" line to where its first entry comes again."""
    start = next((i for i, line in enumerate(lines) if CONTENTS.match(line)), None)
    if start is None:
        return lines
    entries = [ln for ln in lines[start + 1:] if ln.strip()]
    if not entries:
        return lines

    def key(line: str) -> str:
        return re.sub(r"\s+", "", PAGE_NUMBER.sub("", line)).lower()

    first = key(entries[0])
    later = [i for i in range(start + 2, len(lines)) if key(lines[i]) == first and not PAGE_NUMBER.search(lines[i])]
    return lines[:start] + lines[later[0]:] if later and first else lines


def from_report(text: str, items) -> dict[str, str]:
    """Answers by item from a report's text: sections headed by the item id ("3.1", "Q3.1", "Task 3.1",
    "Question 3.1"), else by the handout's breakdown ("Task 3" then "7. Yes/No. (4 marks)": the items of
    task 3 worth 4 marks, in the rubric's order). A section that holds no text (a table of contents) is
    skipped; the first one with text counts."""
    by_id = {it.id: it for it in items}
    # A report written in Markdown and exported as is keeps its "## 1.1" heading marks: read them as headings.
    lines = _without_contents([re.sub(r"^(\s*)#{1,6}\s+", r"\1", ln) for ln in text.splitlines()])

    parent: list[str] = [""]  # the last "1.2"-style heading, for sub-parts "(ii)" / "Q2" (item 1.2.2)

    def by_heading(line: str):
        top = PARENT.match(line)
        if top is not None and any(i == top["id"] or i.startswith(top["id"] + ".") for i in by_id):
            parent[0] = top["id"]
        else:
            top = None  # "0.5 of the pixels ...": a number, not a heading
        match = ID_HEADING.match(line)
        if match and match["item"] in by_id:
            return match["item"], _heading_rest(match["rest"], by_id[match["item"]].title)
        sub = SUB_PART.match(line)
        if sub and parent[0]:
            n = ROMAN.get(sub["roman"].lower()) if sub["roman"] else int(sub["q"])
            item = f"{parent[0]}.{n}"
            if item in by_id:
                return item, _heading_rest(sub["rest"], by_id[item].title)
        if TASK_HEADING.match(line) or PART_HEADING.match(line) or top is not None:
            return "", ""
        return None

    state: dict = {"task": None, "used": {}}

    def by_breakdown(line: str):
        if (match := ID_HEADING.match(line)) and match["item"] in by_id:
            return "", ""
        if task := TASK_HEADING.match(line):
            state["task"], state["used"] = task["num"], {}
            return "", ""
        if PART_HEADING.match(line):
            return "", ""
        marks = MARKS.search(line)
        if state["task"] is None or marks is None or len(line) > 160:
            return None
        if not (NUMBERED.match(line) or not PAGE_NUMBER.sub("", line[marks.end():]).strip()):
            return None
        value = float(marks["marks"])
        same = [it for it in items if _task_number(it) == state["task"] and abs(it.marks - value) < 1e-9]
        n = state["used"].get(value, 0)
        state["used"][value] = n + 1
        return (same[n].id, PAGE_NUMBER.sub("", line[marks.end():]).strip()) if n < len(same) else ("", "")

    found: dict[str, str] = {}
    for classify in (by_heading, by_breakdown):
        for item, body in _sections(lines, classify):
            body = _clean(body)
            if item not in found and body:
                found[item] = body
    return found


def merge_reports(answers: dict[str, str], reports: dict[str, str], items) -> dict[str, str]:
    """answers, plus the reports' answers for items not answered yet; a written item the reports have no
    section for gets the reports' text (cut), so the TA reads it next to the marking guide. The text is
    also kept under REPORT, for a check that finds no section for its item to route it to review."""
    merged = dict(answers)
    for text in reports.values():
        for item, body in from_report(text, items).items():
            merged.setdefault(item, body)
    if reports:
        whole = "\n\n".join(f"[{name}]\n{text.strip()}" for name, text in reports.items())
        if len(whole) > REPORT_EXCERPT:
            whole = whole[:REPORT_EXCERPT] + f"\n[... cut: the report is longer than {REPORT_EXCERPT} characters]"
        for it in items:
            if it.kind == "manual" and it.id not in merged:
                merged[it.id] = f"(no section for {it.id} was recognised in the report; its text follows)\n{whole}"
        merged[REPORT] = whole
    return merged
