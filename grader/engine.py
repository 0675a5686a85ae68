"""The per-submission work, as one function over plain data: a Job in (the zip's bytes, what to run),
a Done out (outcomes, intake facts, figure files). It never touches the output folder: the driver
(grader/batch.py) decides what to run, scores, and is the only writer. The local thread pool and the
Ray engine (grader/ray_engine.py) call the same `GradingWorker.grade`, so the two cannot drift.
"""
from __future__ import annotations

import shutil
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from . import answers as answers_mod
from . import intake
from .forkserver import ForkedSandbox, Slot
from .runner import Outcome, run_checks
from .sandbox import SandboxUnavailable, scratch_dir


@dataclass
class Job:
    """One submission to grade: everything a worker needs, as plain data."""

    zip_name: str
    zip_bytes: bytes
    student_id: str
    name: str
    sha256: str
    todo: list[str]  # the items whose checks run now
    notes: list[str] = field(default_factory=list)


@dataclass
class Done:
    """What grading one submission produced, as plain data (the driver scores and writes it)."""

    status: str = "ok"  # the intake's: ok, bad_zip, missing_files, grader_error
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # the job's notes and what intake added
    module_files: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # fresh outcomes of the items run
    ran: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG
    seconds: float = 0.0
    fault: str = ""  # the grading machine failed (a sandbox could not start): nothing of this is kept


class GradingWorker:
    """A long-lived grading state: the assignment's context (hidden checks, item keys, calibration) and
    at most one fork-server slot, reused submission after submission."""

    def __init__(self, ctx: Any, opts: Any, slot: Slot | None = None,
                 before_run: Callable[[Slot | None], None] | None = None) -> None:
        self.ctx, self.opts, self.slot, self.before_run = ctx, opts, slot, before_run

    def grade(self, job: Job) -> Done:
        import time

        start = time.monotonic()
        ctx, opts, slot = self.ctx, self.opts, self.slot
        assignment = ctx.assignment
        done = Done(notes=list(job.notes))
        if job.todo and self.before_run is not None:
            self.before_run(slot)
        work = scratch_dir("box")  # the zip and the figures; swept like a box if this grader is killed
        zip_path = work / job.zip_name
        zip_path.write_bytes(job.zip_bytes)
        figures = work / "figures"
        box = slot.clear_box() if slot is not None else scratch_dir("box")
        factory = (lambda files: ForkedSandbox(slot, files, opts.limits)) if slot is not None else None
        sub = intake.Submission(zip_path, job.student_id, job.name, job.sha256, notes=done.notes)
        try:
            intake.extract(sub, assignment, box)
            done.answers, done.sources = answers_mod.extract(box)  # before any student code runs
            box.chmod(0o777)
            pdfs = [s for s in done.sources if s.lower().endswith(".pdf")]
            if pdfs:  # a report's text, read by a sandboxed worker that loads no student code, before the checks
                from .sandbox import Sandbox

                reader = factory({}) if factory is not None else Sandbox(box, {}, ctx.mode, opts.limits, opts.threads)
                texts, problems = answers_mod.read_reports(reader, pdfs, timeout=30.0 * opts.timeout_scale)
                sub.notes.extend(problems)
                done.answers = answers_mod.merge_reports(done.answers, texts, assignment.items)
            if job.todo:
                fresh = run_checks(ctx.checks, box, sub.module_files, ctx.mode, opts.limits, only=set(job.todo),
                                   timeout_scale=opts.timeout_scale, threads=opts.threads,
                                   data_dir=assignment.public_data_dir, answers=done.answers, figure_dir=figures,
                                   factory=factory, import_seconds=assignment.limits.import_seconds,
                                   cell_seconds=assignment.limits.cell_seconds, calibration=ctx.calibration)
                done.ran = sorted(job.todo)
                done.outcomes = [o.to_dict() for o in fresh]
                faults = [o for o in fresh if o.status == "grader_error"]  # a sandbox that could not start
                if faults:
                    done.fault = f"grading {job.zip_name}: {faults[0].message}"
        except intake.IntakeError as exc:
            done.status, done.reason = exc.status, exc.reason
        except SandboxUnavailable as exc:
            done.fault = str(exc)
        except Exception as exc:  # noqa: BLE001 - a grader bug on one submission must not stop the batch
            done.status, done.reason = "grader_error", f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        finally:
            if slot is None:
                shutil.rmtree(box, ignore_errors=True)
            else:
                slot.clear_box()
            if figures.is_dir():
                done.figures = {p.name: p.read_bytes() for p in sorted(figures.glob("*.png"))}
            shutil.rmtree(work, ignore_errors=True)
        done.module_files, done.notes = dict(sub.module_files), list(sub.notes)
        done.seconds = round(time.monotonic() - start, 2)
        return done


def outcomes_of(rows: list[dict[str, Any]]) -> list[Outcome]:
    """Outcomes from their plain form (a Done's, or a previous result's)."""
    out = []
    for row in rows:
        o = Outcome(**row)
        object.__setattr__(o, "figures", tuple(o.figures))
        object.__setattr__(o, "adaptations", tuple(o.adaptations))
        out.append(o)
    return out
