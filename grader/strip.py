"""Generate a starter from a solution: solution blocks become loud stubs or starter code.

Markers, in .py files:
    # BEGIN SOLUTION <item>        reference lines follow
    # STARTER                      optional: the commented lines after it are the starter's code
    # END SOLUTION
Inside a block without a STARTER part, comment lines are kept (they carry the step hints) and code
lines are replaced by `raise NotImplementedError("Task <item>: ...")`.

In .ipynb files the same markers work inside each code cell; the starter notebook has every output
and execution count cleared, and each markdown cell headed `Answer <item>` keeps only its heading
and a placeholder line (the reference's written answer stays out).
"""
from __future__ import annotations

from typing import Any

import json
import re
import shutil
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION (?P<item>[\w.]+)\s*$")
STARTER = re.compile(r"^\s*# STARTER\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
SOLUTION_ONLY = {"rubric.toml", "hidden", "__pycache__"}


class MarkerError(ValueError):
    """The solution's markers are unbalanced or malformed."""


def strip_source(text: str, filename: str = "<source>") -> str:
    out: list[str] = []
    block: dict | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if (m := BEGIN.match(line)) is not None:
            if block is not None:
                raise MarkerError(f"{filename}:{lineno}: nested BEGIN SOLUTION")
            block = {"indent": m["indent"], "item": m["item"], "comments": [], "starter": None}
        elif block is not None and STARTER.match(line):
            block["starter"] = []
        elif block is not None and END.match(line):
            out.extend(_render(block))
            block = None
        elif block is None:
            if "SOLUTION" in line and line.lstrip().startswith("#"):
                raise MarkerError(f"{filename}:{lineno}: stray solution marker")
            out.append(line)
        elif block["starter"] is not None:
            body = line.strip()
            if body and not body.startswith("#"):
                raise MarkerError(f"{filename}:{lineno}: starter lines must be commented out")
            block["starter"].append(re.sub(r"^(\s*)# ?", r"\1", line, count=1))
        elif line.strip().startswith("#"):
            block["comments"].append(line)
    if block is not None:
        raise MarkerError(f"{filename}: BEGIN SOLUTION {block['item']} has no END SOLUTION")
    return "\n".join(out) + "\n"


def _render(block: dict) -> list[str]:
    if block["starter"] is not None:
        return block["starter"]
    indent, item = block["indent"], block["item"]
    return block["comments"] + [
        f"{indent}# TODO Task {item}: replace this raise with your code.",
        f'{indent}raise NotImplementedError("Task {item}: fill in the missing lines here")',
    ]


ANSWER_CELL = re.compile(r"^\s{0,3}#{1,6}\s*Answer\s+[\w.]+", re.I)
ANSWER_PLACEHOLDER = "_Write your answer here._"


def strip_notebook(text: str, filename: str = "<notebook>") -> str:
    """The starter version of a solution notebook (nbformat 4 JSON in, JSON out)."""
    try:
        nb = json.loads(text)
    except ValueError as exc:
        raise MarkerError(f"{filename}: not a valid notebook ({exc})") from None
    for n, cell in enumerate(nb.get("cells", []), 1):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "code":
            if "SOLUTION" in source:
                source = strip_source(source, f"{filename} cell {n}").rstrip("\n")
            cell["outputs"] = []
            cell["execution_count"] = None
            for key in ("execution", "ExecuteTime"):
                cell.get("metadata", {}).pop(key, None)
        elif cell.get("cell_type") == "markdown" and ANSWER_CELL.match(source.lstrip()):
            source = source.lstrip().splitlines()[0] + "\n\n" + ANSWER_PLACEHOLDER
        cell["source"] = source.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def starter_for(assignment: Any, starter_dir: Path | None = None) -> list[Path]:
    """The whole starter of an assignment: its files from the solution, plus check_submission.py."""
    from .student_check import script

    target = starter_dir or assignment.starter_dir
    written = build_starter(assignment.solution_dir, target, {"check_submission.py": script(assignment)})
    for name in getattr(assignment, "libraries", ()):  # the grader's field libraries the course code imports
        library = Path(__file__).resolve().parent / name
        for src in sorted(library.rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            dst = target / name / src.relative_to(library)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(dst)
    return written


def build_starter(solution_dir: Path, starter_dir: Path, extra: dict[str, str] | None = None) -> list[Path]:
    """Write the starter for one assignment; return the files written."""
    if starter_dir.exists():
        shutil.rmtree(starter_dir)
    written = []
    for src in sorted(solution_dir.rglob("*")):
        rel = src.relative_to(solution_dir)
        if any(part in SOLUTION_ONLY for part in rel.parts) or src.is_dir():
            continue
        dst = starter_dir / ("tests" if rel.parts[0] == "public_tests" else rel.parts[0]) / Path(*rel.parts[1:])
        dst = starter_dir / rel if rel.parts[0] != "public_tests" else dst
        if ".starter." in src.name:  # answers.starter.md is the starter's answers.md (the reference's stays out)
            dst = dst.with_name(src.name.replace(".starter.", ".", 1))
        elif src.with_name(src.name.replace(".", ".starter.", 1)).exists() and src.suffix != ".py":
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            dst.write_text(strip_source(src.read_text(), str(rel)))
        elif src.suffix == ".ipynb":
            dst.write_text(strip_notebook(src.read_text(), str(rel)))
        else:
            shutil.copyfile(src, dst)
        written.append(dst)
    for name, text in (extra or {}).items():
        (starter_dir / name).write_text(text)
        written.append(starter_dir / name)
    return written
