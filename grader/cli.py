"""Command line: argument parsing only; the work happens in batch, strip and the fixtures module."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from . import batch, gradebook, intake, spec, strip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description="Sandboxed autograder for CV/DL assignments.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a folder of submission zips")
    g.add_argument("submissions", type=Path, help="folder holding the zips")
    g.add_argument("--assignment", required=True, help=f"one of: {', '.join(spec.available())}")
    g.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    g.add_argument("--deadline", help="ISO 8601 deadline, overriding the rubric's (e.g. 2023-03-30T00:00:00+08:00)")
    g.add_argument("--times", type=Path, help="CSV of submission times: columns file (or student_id), submitted_at")
    g.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: cores)")
    g.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every time limit (slow machines)")
    g.add_argument("--force", action="store_true", help="regrade even when a matching result exists")
    g.add_argument("--only", action="append", default=[], metavar="ITEM",
                   help="regrade this rubric item for the whole class (repeatable); other items keep their results")
    g.add_argument("--fork-server", action=argparse.BooleanOptionalAction, default=True,
                   help="with bubblewrap, fork each submission's worker from a sandboxed process that has "
                        "imported numpy/torch once (default: on)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    g.add_argument("--sandbox", choices=["bwrap", "rlimits"], help="force a sandbox mode (default: best available)")
    g.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="set time limits from the reference solution's timings on this machine (measured once, "
                        "cached; default: on)")

    s = sub.add_parser("starter", help="regenerate starter/<assignment> from solutions/<assignment>")
    s.add_argument("--assignment", required=True)

    args = parser.parse_args(argv)
    try:
        if args.command == "grade":
            return _grade(args)
        if args.command == "starter":
            a = spec.load(args.assignment)
            for path in strip.build_starter(a.solution_dir, a.starter_dir):
                print(f"wrote {path.relative_to(spec.ROOT)}")
            return 0
    except (ValueError, FileNotFoundError, strip.MarkerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


def _grade(args: argparse.Namespace) -> int:
    assignment = spec.load(args.assignment)
    if not args.submissions.is_dir():
        raise ValueError(f"{args.submissions} is not a folder of zips")
    from .sandbox import Limits

    base = Limits()
    limits = Limits(cpu_seconds=max(10, int(base.cpu_seconds * args.timeout_scale)))
    opts = batch.Options(
        out=args.out, jobs=max(1, args.jobs),
        deadline=datetime.fromisoformat(args.deadline) if args.deadline else None,
        times=intake.read_times(args.times) if args.times else None,
        limits=limits, mode=args.sandbox, force=args.force, timeout_scale=args.timeout_scale,
        threads=max(1, (os.cpu_count() or 1) // max(1, args.jobs)), only=frozenset(args.only), progress=args.progress,
        fork_server=args.fork_server, calibrate=args.calibrate,
    )
    try:
        records = batch.grade_folder(assignment, args.submissions, opts, log=lambda m: print(m, file=sys.stderr))
    except batch.GraderFault as exc:  # the machine failed, not a student: stop loudly, write no zeros
        print(f"error: the sandbox failed, grading stopped: {exc}", file=sys.stderr)
        return 3
    print(gradebook.render(assignment, records))
    print(f"\nGradebook: {args.out / 'gradebook.csv'}; feedback: {args.out / 'feedback'}/; "
          f"Gradescope results: {args.out / 'results'}/")
    return 0
