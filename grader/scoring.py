"""Outcomes of checks -> marks per rubric item, then the course policy (cap, late penalty)."""
from __future__ import annotations

from dataclasses import dataclass

from .runner import Outcome
from .spec import Assignment, Item


@dataclass(frozen=True)
class ItemScore:
    item: Item
    score: float | None  # None: not graded (manual and not marked yet, or not built yet)
    state: str  # graded | ta_marked | manual (pending) | review (pending: the grader could not decide) | not_built | not_run
    outcomes: tuple[Outcome, ...] = ()
    comment: str = ""  # the TA's comment on a manual item, or the reason of an override
    automatic: float | None = None  # state "overridden": the mark the checks gave before a TA changed it
    note: str = ""  # something staff must hear about this score (an override that was not applied)


def score_items(assignment: Assignment, outcomes: list[Outcome], graded: bool = True,
                manual: dict[str, tuple[float, str]] | None = None, skipped: set[str] = frozenset()) -> list[ItemScore]:
    """Marks per item. `manual` holds the TA's (marks, comment) per manual item id, when given;
    `skipped` items were left out of this run (--only) and have no earlier result."""
    scores = []
    manual = manual or {}
    for item in assignment.items:
        mine = tuple(o for o in outcomes if o.item == item.id)
        if item.kind == "manual" and item.id in manual and graded:
            marks, comment = manual[item.id]
            scores.append(ItemScore(item, float(marks), "ta_marked", comment=comment))
        elif item.kind == "manual":
            scores.append(ItemScore(item, None, "manual"))
        elif not item.built:
            scores.append(ItemScore(item, None, "not_built"))
        elif not graded:
            scores.append(ItemScore(item, 0.0, "not_run"))
        elif item.id in skipped:
            scores.append(ItemScore(item, None, "skipped"))
        elif any(o.status == "review" for o in mine):
            # Not decidable automatically: a TA's mark from manual_marks.csv, else pending (never a silent 0).
            if item.id in manual:
                marks, comment = manual[item.id]
                scores.append(ItemScore(item, float(marks), "ta_marked", mine, comment=comment))
            else:
                scores.append(ItemScore(item, None, "review", mine))
        else:
            total = sum(o.weight for o in mine)
            earned = sum(o.weight for o in mine if o.passed)
            auto = round(item.marks * earned / total, 2) if total else 0.0
            if item.id in manual:  # a TA overrides an automatic mark (a regrade request): only with a reason
                marks, comment = manual[item.id]
                if comment.strip():
                    scores.append(ItemScore(item, float(marks), "overridden", mine, comment=comment, automatic=auto))
                    continue
                scores.append(ItemScore(item, auto, "graded", mine, note="a TA mark for an automatic item needs a "
                                        "reason in the comment column; it was not applied"))
                continue
            scores.append(ItemScore(item, auto, "graded", mine))
    return scores


def final_mark(assignment: Assignment, total: float, days_late: int, charged: int | None = None) -> float:
    """final = min(cap, total), less the late penalty for the `charged` days (default: every late day, none
    taken from a late-day budget); zero beyond the last accepted day."""
    late = assignment.late
    if days_late > late.max_days:
        return 0.0
    charged = days_late if charged is None else charged
    return round(min(assignment.cap, total) * max(0.0, 1.0 - late.penalty_per_day * charged), 2)
