"""Command line: argument parsing only; the work happens in batch, strip and the fixtures module."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import batch, gradebook, intake, spec, strip


def main(argv: list[str] | None = None) -> int:
    # torch makes a cache folder in TMPDIR when imported (the hidden checks build models here): keep it out
    # of TMPDIR, where every sandbox box lives and leftovers are swept.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "cv-autograder" / "torchinductor"))
    parser = argparse.ArgumentParser(prog="python -m grader", description="Sandboxed autograder for CV/DL assignments.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a folder of submission zips")
    g.add_argument("submissions", type=Path, help="folder holding the zips")
    g.add_argument("--assignment", required=True, help=f"one of: {', '.join(spec.available())}")
    g.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    g.add_argument("--deadline", help="ISO 8601 deadline, overriding the rubric's (e.g. 2023-03-30T00:00:00+08:00)")
    g.add_argument("--times", type=Path, help="CSV of submission times: columns file (or student_id), submitted_at; "
                                              "kept in OUT/settings/ and reused by later runs into the same --out")
    g.add_argument("--extensions", type=Path, help="CSV of per-student deadline extensions and late-day budgets: "
                                                   "student_id, extension_days, late_budget_days, reason (kept like --times)")
    g.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once (default: cores)")
    g.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every time limit (slow machines)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: grade here with --jobs threads (default); ray: on Ray actors, --jobs of them")
    g.add_argument("--address", help="with --engine ray: the cluster to join (default: RAY_ADDRESS, else an "
                                     "embedded single-machine Ray)")
    g.add_argument("--gpus-per-actor", type=float, default=0.0,
                   help="with --engine ray: GPUs each actor asks for; its sandbox then sees only those GPUs")
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

    c = sub.add_parser("check", help="grade ONE submission (zip, folder, .py or notebook) and print its marks and feedback")
    c.add_argument("path", type=Path, help="a submission zip, a folder of files, one .py or one .ipynb")
    c.add_argument("--assignment", required=True, help="an assignment id or the path of an assignment folder")
    c.add_argument("--student", action="store_true",
                   help="only what students may see: the naming rule, the files the grader looks for, the public tests")
    c.add_argument("--out", type=Path, help="keep the results and feedback here (default: a temporary folder)")
    c.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every time limit")
    c.add_argument("--sandbox", choices=["bwrap", "rlimits"], help="force a sandbox mode (default: best available)")
    c.add_argument("--only", action="append", default=[], metavar="ITEM", help="run only this item's checks (repeatable)")
    c.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="time limits from the reference solution's timings (default: on)")

    s = sub.add_parser("starter", help="regenerate starter/<assignment> from solutions/<assignment>")
    s.add_argument("--assignment", required=True)

    _add_gradescope(sub)

    args = parser.parse_args(argv)
    try:
        if args.command == "gradescope":
            return _gradescope(args)
        if args.command == "grade":
            return _grade(args)
        if args.command == "check":
            return _check(args)
        if args.command == "starter":
            a = spec.load(args.assignment)
            for path in strip.starter_for(a):
                print(f"wrote {path.relative_to(spec.ROOT) if path.is_relative_to(spec.ROOT) else path}")
            return 0
    except (ValueError, FileNotFoundError, strip.MarkerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


def _check(args: argparse.Namespace) -> int:
    """The instructor's (or student's) local loop on one submission, through the batch's own path."""
    import shutil
    import tempfile
    import zipfile

    from . import student_check

    assignment = spec.load(args.assignment)
    path: Path = args.path
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if args.student:
        if path.suffix.lower() != ".zip":
            raise ValueError("--student checks the zip you will hand in: give its path")
        return student_check.report(student_check.check(path, student_check.settings_of(assignment),
                                                        assignment.starter_dir / "tests"))
    work = Path(tempfile.mkdtemp(prefix="grader-check-"))
    try:
        subs = work / "submission"
        subs.mkdir()
        if path.suffix.lower() == ".zip":
            shutil.copyfile(path, subs / path.name)
        else:
            name = assignment.naming_example or f"{assignment.id}_check.zip"
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            with zipfile.ZipFile(subs / name, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in files:
                    zf.write(f, f.name if path.is_file() else f.relative_to(path))
        from .sandbox import Limits

        out = args.out or work / "out"
        opts = batch.Options(out=out, jobs=1, limits=Limits(cpu_seconds=max(10, int(Limits().cpu_seconds * args.timeout_scale))),
                             mode=args.sandbox, timeout_scale=args.timeout_scale, threads=os.cpu_count() or 1,
                             progress=False, force=True, only=frozenset(args.only), calibrate=args.calibrate)
        records = batch.grade_folder(assignment, subs, opts, log=lambda m: print(m, file=sys.stderr))
        print(gradebook.render(assignment, records))
        for record in records:
            print("\n" + (out / "feedback" / f"{record['student_id']}.md").read_text())
        if args.out:
            print(f"results and feedback kept in {out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grade(args: argparse.Namespace) -> int:
    assignment = spec.load(args.assignment)
    folder = args.submissions
    if folder.is_file() and folder.suffix.lower() == ".zip":  # an LMS's bulk download in one zip
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} is a file; give a folder (it holds the gradebook, feedback and results)")
        folder = intake.unpack_download(folder, args.out / "download")
        print(f"unpacked the download {args.submissions} into {folder}", file=sys.stderr)
    elif not folder.is_dir():
        raise ValueError(f"{args.submissions} is not a folder of zips (nor one zip of an LMS's bulk download)")
    from .sandbox import Limits

    base = Limits()
    limits = Limits(cpu_seconds=max(10, int(base.cpu_seconds * args.timeout_scale)))
    from . import settings as run_settings

    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    kept = run_settings.resolve(args.out, assignment, args.times, args.deadline, args.extensions, log)
    opts = batch.Options(
        out=args.out, jobs=max(1, args.jobs), deadline=kept.deadline, times=kept.times, settings=kept,
        limits=limits, mode=args.sandbox, force=args.force, timeout_scale=args.timeout_scale,
        threads=max(1, (os.cpu_count() or 1) // max(1, args.jobs)), only=frozenset(args.only), progress=args.progress,
        fork_server=args.fork_server, calibrate=args.calibrate, engine=args.engine, address=args.address,
        gpus_per_actor=args.gpus_per_actor,
    )
    try:
        records = batch.grade_folder(assignment, folder, opts, log=log)
    except batch.GraderFault as exc:  # the machine failed, not a student: stop loudly, write no zeros
        print(f"error: the sandbox failed, grading stopped: {exc}", file=sys.stderr)
        return 3
    print(gradebook.render(assignment, records))
    print(f"\nGradebook: {args.out / 'gradebook.csv'}; feedback: {args.out / 'feedback'}/; "
          f"Gradescope results: {args.out / 'results'}/")
    return 0


def _add_gradescope(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradescope", help="build Gradescope's autograder zip (setup.sh, run_autograder) for an assignment")
    p.add_argument("--assignment", required=True, help=f"one of: {', '.join(spec.available())}")
    p.add_argument("--out", type=Path, default=Path("autograder.zip"), help="the zip to write (default: autograder.zip)")


def _gradescope(args: argparse.Namespace) -> int:
    from . import gradescope

    members = gradescope.build(spec.load(args.assignment), args.out)
    print(f"wrote {args.out} ({len(members)} files): upload it as the assignment's autograder on Gradescope "
          "(README: Gradescope)")
    return 0
