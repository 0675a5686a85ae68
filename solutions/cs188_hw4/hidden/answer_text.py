"""Reading CS188 answers written as text (answers.md sections, notebook "Answer" cells, the PDF report).

Trusted helper of the hidden checks (not a check file itself). The original course has no
PSET4_Analytical notebook: its analytical answers, and the numbers Problem 4 asks for, go in the
Overleaf PDF. The grader's answers dict maps an item id (or a section of the handout, such as "1.2")
to that text. These helpers find an item's text and read a small closed answer (a count, a shape,
yes/no) from it only when the text states it unambiguously; anything else is left to a TA
(NeedsReview with the text as evidence), never scored 0 by guesswork.
"""
from __future__ import annotations

import re

from grader.answers import yes_no  # noqa: F401 - used by the check files through this module
from grader.checks import CheckFailed, NeedsReview, Student

ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii")
WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "ten": 10}
EVIDENCE = 1500  # characters of the student's text quoted as evidence


def module_present(student: Student, module: str) -> bool:
    """Did the submission hand in a file for `module` (intake found one)?"""
    files = getattr(student.sandbox, "module_files", None)
    return True if files is None else module in files


def defined(student: Student, module: str, name: str) -> bool:
    """Does the submission's `module` define `name`? False only when the module is absent or no code
    assigns the name (another layout: the written answer is used instead). A starter stub left in place
    (its cell raised NotImplementedError) raises here, so it scores 0 like any unanswered task."""
    from grader.sandbox import StudentError

    if not module_present(student, module):
        return False
    if name in student.names(module):
        return True
    try:
        student.get(module, name, ret="handle")
    except StudentError as exc:
        if exc.error == "MissingName":
            return False
        raise
    return True


def _marker(k: int) -> re.Pattern:
    roman = ROMAN[k - 1] if k <= len(ROMAN) else "@"
    letter = "abcdefgh"[k - 1] if k <= 8 else "@"
    return re.compile(rf"(?im)(?:^|\n|\s)[-*>\s]*\(?(?:{roman}|{letter}|{k})\)[ \t]*|(?:^|\n)[-*\s]*(?:{roman}|{k})\.[ \t]+")


def subparts(text: str, index: int) -> list[str]:
    """Every stretch of a section marked as sub-part `index` (1-based: `(ii)`, `ii)`, `ii.`, `(b)`, `2)`),
    last first: a report repeats the question's markers before its answers."""
    found = []
    for start in _marker(index).finditer(text):
        rest = text[start.end():]
        end = _marker(index + 1).search(rest)
        found.append(rest[: end.start()] if end else rest)
    return [f for f in reversed(found) if f.strip()]


def candidates(student: Student, item: str) -> list[str]:
    """The student's texts for `item`, most specific first: its own answer; else the stretches of its
    section marked as its sub-part (answers after questions), then the whole section."""
    answers = student.answers or {}
    text = answers.get(item)
    if text and text.strip():
        return [text]
    parts = item.split(".")
    while len(parts) > 1:
        index = int(parts[-1]) if parts[-1].isdigit() else 0
        parts = parts[:-1]
        name = ".".join(parts)
        section = answers.get(name) or report_section(answers.get("report") or "", name)
        if section and section.strip():
            return (subparts(section, index) if index else []) + [section]
    return []


HEADING = re.compile(r"^\s*(?:problem|question|q)?\s*(\d+(?:\.\d+)+)\s+[A-Z(]", re.I)


def report_section(report: str, name: str) -> str:
    """The stretch of a report's text under the heading `name` (e.g. "1.2 Lambertian surface (3.0 points)")
    up to the next numbered heading; the longest such stretch when the heading appears more than once
    (a table of contents)."""
    lines = report.splitlines()
    best = ""
    for n, line in enumerate(lines):
        m = HEADING.match(line)
        if not m or m.group(1) != name:
            continue
        body = []
        for nxt in lines[n + 1:]:
            h = HEADING.match(nxt)
            if h and not h.group(1).startswith(name + "."):
                break
            body.append(nxt)
        if len("\n".join(body)) > len(best):
            best = "\n".join(body)
    return best


def find(student: Student, item: str) -> str | None:
    """The student's most specific text for `item` (see candidates), or None."""
    found = candidates(student, item)
    return found[0] if found else None


def clean(text: str) -> str:
    """Text with LaTeX and Markdown decorations removed (for reading numbers, not for display)."""
    text = re.sub(r"\\(?:text|mathbf|textbf|mathrm|boldsymbol)\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\(times|cdot)", " x ", text)
    text = re.sub(r"[$*_`\\{}]", " ", text)
    return re.sub(r"[ \t]+", " ", text)


def evidence(text: str | None) -> str:
    if not text:
        return "no text found for this item in answers.md, a notebook 'Answer' cell or the report"
    text = text.strip()
    return "the student's answer:\n" + (text if len(text) <= EVIDENCE else text[:EVIDENCE] + " [...]")


def counts_next_to(text: str, nouns: str) -> list[int]:
    """Integers (digits or words) written right before one of `nouns` (at most one word between):
    "7 DoF", "**3 unknowns**", "3 intensity measurements"."""
    number = r"(\d+|" + "|".join(WORDS) + r")"
    found = []
    for m in re.finditer(number + r"\s+(?:[A-Za-z-]+\s+)?(?:" + nouns + r")\b", clean(text), re.I):
        raw = m.group(1).lower()
        found.append(int(raw) if raw.isdigit() else WORDS[raw])
    return found


def stated_count(student: Student, item: str, nouns: str, what: str) -> int:
    """The count the text states for `item`, or NeedsReview when it states none or several."""
    texts = candidates(student, item)
    if not texts:
        raise NeedsReview(f"no answer to {item} ({what}) was found", evidence(None))
    for text in texts:  # the first stretch that states a count decides
        values = counts_next_to(text, nouns)
        if not values:
            bare = re.fullmatch(r"\s*(?:answer\s*:?\s*)?(\d+)\s*\.?\s*", clean(text), re.I)
            if bare:
                return int(bare.group(1))
            continue
        best = max(set(values), key=lambda v: (values.count(v), -values[::-1].index(v)))
        if 2 * values.count(best) <= len(values):
            # several counts and none stated most of the time (a discussion): a TA reads it
            raise NeedsReview(f"the answer to {item} ({what}) states several different counts", evidence(text))
        return best
    raise NeedsReview(f"the answer to {item} ({what}) does not state the count in a form the grader reads",
                      evidence(texts[0]))


def expect_number(got: object, expected: float, what: str, tol: float = 1e-9) -> None:
    """A number equal to `expected`; NaN, inf, booleans and non-numbers fail (NaN compares False)."""
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"{what} should be a number", f"got {type(got).__name__}")
    if not abs(got - expected) <= tol:  # written so that NaN fails
        raise CheckFailed(f"{what} is not right", f"got {got!r}")
