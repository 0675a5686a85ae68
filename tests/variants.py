"""Helpers shared by the tests that grade fabricated submissions (wrong answers and correct alternatives).

A variant is the reference source with a few exact text edits; each edit must match exactly once, so
a reference that drifts makes the test fail loudly instead of silently testing the reference again.
"""
from __future__ import annotations

from grader.runner import Outcome


def sub(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """One edit: replace `old` (which must occur exactly once) by `new`."""
    return ((old, new),)


def apply_edits(source: str, edits, what: str) -> str:
    """`source` with every (old, new) edit applied in order; `what` names the variant in failures."""
    for old, new in edits:
        assert source.count(old) == 1, f"{what}: {old!r} should occur exactly once in the reference"
        source = source.replace(old, new)
    return source


def report(scored: dict[str, float], outcomes: list[Outcome]) -> str:
    """Scores and every check's outcome, for assertion messages."""
    lines = [f"scores: {scored}"]
    lines += [f"  {o.item} {o.status:8} {o.seconds:6.2f}s {o.name}: {o.message[:160]} {o.detail[:120]}" for o in outcomes]
    return "\n".join(lines)


def full_marks(grader: dict, item: str) -> float:
    return grader["assignment"].item(item).marks
