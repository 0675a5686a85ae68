"""Outcomes of checks -> marks per rubric item, then the course policy (cap, late penalty)."""
from __future__ import annotations

from dataclasses import dataclass

from .runner import Outcome
from .spec import Assignment, Item


@dataclass(frozen=True)
class ItemScore:
    item: Item
    score: float | None  # None: not graded (manual, or not built yet)
    state: str  # graded | manual | not_built | not_run
    outcomes: tuple[Outcome, ...] = ()


def score_items(assignment: Assignment, outcomes: list[Outcome], graded: bool = True) -> list[ItemScore]:
    scores = []
    for item in assignment.items:
        mine = tuple(o for o in outcomes if o.item == item.id)
        if item.kind == "manual":
            scores.append(ItemScore(item, None, "manual"))
        elif not item.built:
            scores.append(ItemScore(item, None, "not_built"))
        elif not graded:
            scores.append(ItemScore(item, 0.0, "not_run"))
        else:
            total = sum(o.weight for o in mine)
            earned = sum(o.weight for o in mine if o.passed)
            scores.append(ItemScore(item, round(item.marks * earned / total, 2) if total else 0.0, "graded", mine))
    return scores


def final_mark(assignment: Assignment, total: float, days_late: int) -> float:
    """final = min(cap, total), less the late penalty; zero beyond the last accepted day."""
    late = assignment.late
    if days_late > late.max_days:
        return 0.0
    return round(min(assignment.cap, total) * max(0.0, 1.0 - late.penalty_per_day * days_late), 2)
