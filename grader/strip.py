"""Generate a starter from a solution: solution blocks become loud stubs or starter code.

Markers, in .py files:
    # BEGIN SOLUTION <item>        reference lines follow
    # STARTER                      optional: the commented lines after it are the starter's code
    # END SOLUTION
Inside a block without a STARTER part, comment lines are kept (they carry the step hints) and code
lines are replaced by `raise NotImplementedError("Task <item>: ...")`.
"""
from __future__ import annotations

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


def build_starter(solution_dir: Path, starter_dir: Path) -> list[Path]:
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
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py":
            dst.write_text(strip_source(src.read_text(), str(rel)))
        else:
            shutil.copyfile(src, dst)
        written.append(dst)
    return written
