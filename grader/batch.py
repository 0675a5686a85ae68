"""Grade a folder of submission zips: intake -> sandboxed checks -> scoring -> atomic results.

A result is reused when its submission hash, the checks' hash and the grader version match, so a
killed run resumes and an unchanged rerun is quick. One bad submission never stops the batch.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import gradebook, intake, report
from .checks import Check, load_checks
from .runner import Outcome, run_checks
from .sandbox import Limits, detect_mode
from .scoring import final_mark, score_items
from .spec import ROOT, Assignment

GRADER_DIR = Path(__file__).resolve().parent


def tree_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def grader_version() -> str:
    return tree_hash(list(GRADER_DIR.glob("*.py")))


@dataclass(frozen=True)
class Options:
    out: Path
    jobs: int = 1
    deadline: datetime | None = None
    times: dict[str, datetime] | None = None
    limits: Limits = Limits()
    mode: str | None = None
    force: bool = False
    timeout_scale: float = 1.0
    threads: int = 1  # BLAS / torch threads inside each sandbox: cores // jobs, so jobs never oversubscribe


def grade_folder(assignment: Assignment, folder: Path, opts: Options, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    zips = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".zip")
    if not zips:
        raise ValueError(f"no .zip files in {folder}")
    checks = load_checks(assignment.solution_dir / "hidden")
    hidden_hash = tree_hash(list((assignment.solution_dir / "hidden").glob("*.py")) + [assignment.solution_dir / "rubric.toml"])
    mode = opts.mode or detect_mode()
    if mode != "bwrap":
        log("WARNING: bubblewrap is not available; student code runs with resource limits only and can read "
            "any file this user can. Install bubblewrap (apt-get install bubblewrap) before grading for real.")
    context = {"grader_version": grader_version(), "checks_hash": hidden_hash, "sandbox": mode}
    (opts.out / "results").mkdir(parents=True, exist_ok=True)
    (opts.out / "feedback").mkdir(parents=True, exist_ok=True)

    subs = [intake.identify(z, assignment) for z in zips]
    _dedupe_ids(subs)
    for sub in subs:
        when = (opts.times or {}).get(sub.zip_path.name) or (opts.times or {}).get(sub.student_id)
        sub.submitted_at = when.isoformat() if when else ""
        sub.late_days = intake.late_days(when, opts.deadline or assignment.late.deadline)

    records: list[dict[str, Any]] = [None] * len(subs)  # type: ignore[list-item]
    started = time.monotonic()
    done = 0

    def one(index: int) -> None:
        nonlocal done
        sub = subs[index]
        records[index] = _grade_one(sub, assignment, checks, context, opts)
        done += 1
        r = records[index]
        took = "reused" if r.get("_reused") else f"{r['seconds']:.1f} s"
        log(f"[{done}/{len(subs)}] {r['student_id']}: final {r['final']:g} ({r['status']}) {took}")

    if opts.jobs <= 1:
        for i in range(len(subs)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
            list(pool.map(one, range(len(subs))))
    for r in records:
        r.pop("_reused", None)
    gradebook.write(opts.out / "gradebook.csv", assignment, records)
    log(f"graded {len(subs)} submission(s) in {time.monotonic() - started:.1f} s; sandbox: {mode}")
    return records


def _dedupe_ids(subs: list[intake.Submission]) -> None:
    seen: dict[str, int] = {}
    for sub in subs:
        seen[sub.student_id] = seen.get(sub.student_id, 0) + 1
        if seen[sub.student_id] > 1:
            sub.notes.append(f"another zip has the same student id; this one is listed as {sub.student_id}-{seen[sub.student_id]}")
            sub.student_id = f"{sub.student_id}-{seen[sub.student_id]}"


def _result_path(opts: Options, sub: intake.Submission) -> Path:
    return opts.out / "results" / f"{sub.student_id}.json"


def _grade_one(sub: intake.Submission, assignment: Assignment, checks: list[Check], context: dict[str, str],
               opts: Options) -> dict[str, Any]:
    key = {**context, "sha256": sub.sha256, "late_days": sub.late_days, "zip": sub.zip_path.name}
    path = _result_path(opts, sub)
    if path.exists() and not opts.force:
        previous = _load_previous(path)
        if previous is not None and all(previous.get("provenance", {}).get(k) == v for k, v in key.items()):
            previous["_reused"] = True
            return previous
    start = time.monotonic()
    outcomes: list[Outcome] = []
    graded = sub.status == "ok"
    box = Path(tempfile.mkdtemp(prefix="box-"))
    try:
        if graded:
            try:
                intake.extract(sub, assignment, box)
                box.chmod(0o777)
                outcomes = run_checks(checks, box, sub.module_files, context["sandbox"], opts.limits,
                                      timeout_scale=opts.timeout_scale, threads=opts.threads,
                                      data_dir=assignment.public_data_dir, answers=sub.answers)
            except intake.IntakeError as exc:
                sub.status, sub.reason, graded = exc.status, exc.reason, False
    except Exception as exc:  # noqa: BLE001 - a grader bug on one submission must not stop the batch
        sub.status, sub.reason, graded = "grader_error", f"{type(exc).__name__}: {exc}", False
        traceback.print_exc(file=sys.stderr)
    finally:
        shutil.rmtree(box, ignore_errors=True)
    scores = score_items(assignment, outcomes, graded)
    total = round(sum(s.score for s in scores if s.score is not None), 2) if sub.status == "ok" else 0.0
    status, reason = sub.status, sub.reason
    if status == "ok":
        bad = [o for o in outcomes if o.status in ("timeout", "crashed")]
        if bad:
            status = bad[0].status
            reason = "; ".join(sorted({f"{o.item}: {o.message}" for o in bad}))[:300]
        if sub.late_days > assignment.late.max_days:
            reason = (reason + "; " if reason else "") + f"{sub.late_days} days late: more than {assignment.late.max_days} scores zero"
    record = {
        "student_id": sub.student_id, "name": sub.name, "zip": sub.zip_path.name, "status": status, "reason": reason,
        "notes": sub.notes, "items": {s.item.id: s.score for s in scores}, "total": total,
        "late_days": sub.late_days, "submitted_at": sub.submitted_at,
        "final": final_mark(assignment, total, sub.late_days) if sub.status == "ok" else 0.0,
        "seconds": round(time.monotonic() - start, 2),
        "outcomes": [o.to_dict() for o in outcomes],
        "provenance": {**key, "modules": sub.module_files},
    }
    report.write_atomic(opts.out / "feedback" / f"{sub.student_id}.md", report.feedback_markdown(record, scores, assignment.title))
    report.write_atomic(path, report.dumps(report.gradescope_results(record, scores)))
    return record


def _load_previous(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(path.read_text())
        return data["extra_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
