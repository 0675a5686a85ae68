"""Which pairs of submissions a TA should compare by hand: out/similarity.md.

Only the code the students wrote counts: the lines of their modules that are not lines of the starter
(the filled gaps and whatever else the student added), normalised (indentation, spacing, comments and
blank lines dropped), file by file in the assignment's module order. In a class of 10 or more, lines that more than a quarter of the class
wrote are dropped too (the obvious way to fill a small gap is not evidence). Pairs are compared with
the standard library's difflib (SequenceMatcher over lines, in order): similarity = 2 * lines in
common / lines of both. A pair is listed when it reaches THRESHOLD with at
least MIN_LINES lines in common. A high similarity is a reason to look, never a verdict.
"""
from __future__ import annotations

import difflib
import io
import json
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from .report import md_block, md_inline, write_atomic
from .spec import Assignment

THRESHOLD = 0.8
MIN_LINES = 5
MAX_PAIRS = 50
MAX_MEMBER_BYTES = 5 << 20


def normalise(source: str) -> list[str]:
    lines = []
    for raw in source.splitlines():
        line = " ".join(raw.split())
        cut = line.find(" #")
        if cut > 0 and not any(q in line[:cut] for q in "'\""):  # a trailing comment (outside any string)
            line = line[:cut]
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def code_of(name: str, data: bytes) -> str:
    """A module's code: a .py file's text, or a notebook's code cells one after another."""
    text = data.decode("utf-8", errors="replace")
    if not name.lower().endswith(".ipynb"):
        return text
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return ""
    out = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            out.append("".join(src) if isinstance(src, list) else str(src))
    return "\n".join(out)


def starter_lines(assignment: Assignment, module: str) -> set[str]:
    for suffix in (".py", ".ipynb"):
        path = assignment.starter_dir / f"{module}{suffix}"
        if path.is_file():
            return set(normalise(code_of(path.name, path.read_bytes())))
    return set()


def _member(archive: zipfile.ZipFile, inside: str) -> bytes | None:
    want = PurePosixPath(inside).parts
    infos = [i for i in archive.infolist() if not i.is_dir() and i.file_size <= MAX_MEMBER_BYTES]
    for info in infos:
        if tuple(p for p in PurePosixPath(info.filename).parts if p not in (".", "")) == want:
            return archive.read(info)
    for info in infos:  # a zip inside the zip (the grader unpacks one level)
        if info.filename.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(io.BytesIO(archive.read(info))) as inner:
                    found = _member(inner, inside)
            except (zipfile.BadZipFile, OSError, ValueError):
                continue
            if found is not None:
                return found
    return None


def student_code(zip_path: Path, modules: dict[str, str]) -> dict[str, str]:
    """Module -> code, read from the zip (never run) at the paths the grader found them."""
    found = {}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for module, inside in modules.items():
                data = _member(archive, inside)
                if data is not None:
                    found[module] = code_of(inside, data)
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}
    return found


def _zip_index(folder: Path | None) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    if folder is None or not folder.is_dir():
        return index
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix.lower() == ".zip":
            index.setdefault(path.name, []).append(path)
    return index


def _find_zip(index: dict[str, list[Path]], record: dict[str, Any], hashes: dict[Path, str]) -> Path | None:
    """The graded zip: by name, and by its sha256 when several zips share the name (a folder per student)."""
    candidates = index.get(record.get("zip", ""), [])
    if len(candidates) == 1:
        return candidates[0]
    want = record.get("provenance", {}).get("sha256")
    from .intake import sha256_file

    for path in candidates:
        if path not in hashes:
            hashes[path] = sha256_file(path)
        if hashes[path] == want:
            return path
    return None


def filled_lines(assignment: Assignment, records: list[dict[str, Any]], folder: Path | None) -> dict[str, list[str]]:
    """Student id -> the lines the student wrote (in none of the starter's modules), file by file in the
    assignment's module order (a single-file submission compares with one file per module)."""
    index = _zip_index(folder)
    starter: set[str] = set()
    for module in assignment.modules:
        starter |= starter_lines(assignment, module)
    out: dict[str, list[str]] = {}
    hashes: dict[Path, str] = {}
    for r in records:
        if r.get("intake_status", r.get("status")) != "ok" or not r.get("modules"):
            continue
        path = _find_zip(index, r, hashes)
        if path is None:
            continue
        files = dict.fromkeys(r["modules"][m] for m in assignment.modules if m in r["modules"])
        code = student_code(path, {f: f for f in files})
        out[r["student_id"]] = [ln for f in files for ln in normalise(code.get(f, "")) if ln not in starter]
    return out


def _drop_common(lines: dict[str, list[str]]) -> dict[str, list[str]]:
    n = len(lines)
    if n < 10:
        return lines
    counts = Counter(ln for ls in lines.values() for ln in set(ls))
    return {sid: [ln for ln in ls if counts[ln] * 4 <= n] for sid, ls in lines.items()}


def pairs(lines: dict[str, list[str]], threshold: float = THRESHOLD, min_lines: int = MIN_LINES) -> list[dict[str, Any]]:
    """Every pair at or above the threshold, most similar first."""
    ids = sorted(sid for sid, ls in lines.items() if len(ls) >= min_lines)
    found = []
    for a_n, a in enumerate(ids):
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(lines[a])  # difflib caches facts about the second sequence
        for b in ids[a_n + 1:]:
            matcher.set_seq1(lines[b])
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            blocks = [blk for blk in matcher.get_matching_blocks() if blk.size]
            common = sum(blk.size for blk in blocks)
            score = 2 * common / (len(lines[a]) + len(lines[b]))
            if score >= threshold and common >= min_lines:
                longest = max(blocks, key=lambda blk: blk.size)
                excerpt = lines[b][longest.a:longest.a + min(longest.size, 8)]
                found.append({"a": a, "b": b, "score": score, "common": common,
                              "lines": (len(lines[a]), len(lines[b])), "excerpt": excerpt})
    return sorted(found, key=lambda p: (-p["score"], -p["common"], p["a"], p["b"]))


def report_markdown(assignment: Assignment, found: list[dict[str, Any]], compared: int) -> str:
    out = [f"# Similarity of the filled gaps: {md_inline(assignment.title)}", "",
           f"{compared} submission(s) compared over the lines they wrote (starter lines left out"
           + (", and lines more than a quarter of the class wrote" if compared >= 10 else "")
           + f"). Pairs at {THRESHOLD:.0%} similarity or more with at least {MIN_LINES} lines in common, "
           "most similar first. A reason to compare the two submissions by hand, never a verdict.", ""]
    if not found:
        return "\n".join(out + ["No pair reaches the threshold.", ""])
    shown = found[:MAX_PAIRS]
    out += ["| # | student | student | similarity | lines in common | lines written (each) |", "| --- | --- | --- | --- | --- | --- |"]
    for n, p in enumerate(shown, 1):
        out.append(f"| {n} | {md_inline(p['a'])} | {md_inline(p['b'])} | {p['score']:.0%} | {p['common']} | "
                   f"{p['lines'][0]}, {p['lines'][1]} |")
    if len(found) > MAX_PAIRS:
        out.append(f"\n... and {len(found) - MAX_PAIRS} more pair(s) above the threshold.")
    out.append("")
    for n, p in enumerate(shown, 1):
        if p["excerpt"]:
            out += [f"## {n}. {md_inline(p['a'])} and {md_inline(p['b'])}", "", "The longest run of lines they share:", "",
                    md_block("\n".join(p["excerpt"])), ""]
    return "\n".join(out)


def write_report(out: Path, assignment: Assignment, records: list[dict[str, Any]], folder: Path | None,
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    lines = _drop_common(filled_lines(assignment, records, folder))
    found = pairs(lines)
    write_atomic(out / "similarity.md", report_markdown(assignment, found, len(lines)))
    if found:
        log(f"similarity: {len(found)} pair(s) to look at in {out / 'similarity.md'}")
    return found
