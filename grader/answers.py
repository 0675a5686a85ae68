"""Written answers, read from the unpacked submission BEFORE any student code runs.

Two places a starter can declare (the starter says which):
  * answers.md: one section per item, headed `## <item id> ...` (e.g. `## 3.1 Can one NeRF ...`);
  * notebook markdown cells whose first line is a heading `Answer <item id>` (e.g. `### Answer 2.3`).
A report PDF is not parsed here (that would run a PDF parser on untrusted bytes in the grader's
process); the review sheet points the TA at it instead.

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
