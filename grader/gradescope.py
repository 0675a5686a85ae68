"""Run this grader on Gradescope: build the autograder zip, and grade one submission inside it.

`python -m grader gradescope --assignment ID --out autograder.zip` writes a zip with Gradescope's
layout: setup.sh (run once when Gradescope builds the image: Python packages and bubblewrap),
run_autograder (run per submission) and what grading needs (the grader package, the assignment's
rubric, hidden checks and reference files, its fixture data and the fixture generators the checks import).

run_autograder calls `python -m grader.gradescope run --assignment ID`: the files the student uploaded
(in /autograder/submission; a single uploaded zip is used as it is) become one zip named by the
assignment's naming rule, graded by the same batch path as `grade` and `check` (with the time limits
of the rubric: no calibration run per submission), and the student's results.json written by
report.gradescope_results is copied to /autograder/results/results.json. AUTOGRADER_ROOT replaces
/autograder (how the tests run it in a temporary folder); AUTOGRADER_PYTHON the Python to use.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from .spec import ROOT, SOLUTIONS, Assignment

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (the zip is in /autograder/source).
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# bubblewrap is the grader's sandbox; where the container may not create namespaces the grader falls back
# to resource limits only (README: Gradescope).
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap
python3 -c 'import sys; assert sys.version_info >= (3, 11), "the grader needs Python 3.11 or newer: pick a newer base image"'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
/autograder/venv/bin/pip install -q --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission, write /autograder/results/results.json.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
cd "$ROOT/source" || exit 1
exec "$PYTHON" -m grader.gradescope run --assignment {assignment} --root "$ROOT"
"""


def requirements() -> str:
    """The grader's Python packages, from pyproject.toml (the same pins as `make env`)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return "\n".join(deps) + "\n"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))


def build(assignment: Assignment, out: Path) -> list[str]:
    """Write Gradescope's autograder zip; returns its members."""
    if assignment.solution_dir.parent != SOLUTIONS:
        raise ValueError(f"{assignment.solution_dir} is outside {SOLUTIONS}: add the assignment to solutions/ first")
    members: list[tuple[str, bytes, int]] = [
        ("setup.sh", SETUP.encode(), 0o755),
        ("run_autograder", RUN.format(assignment=assignment.id).encode(), 0o755),
        ("requirements.txt", requirements().encode(), 0o644),
        ("pyproject.toml", (ROOT / "pyproject.toml").read_bytes(), 0o644),
    ]
    helpers = sorted((ROOT / "fixtures").glob("*.py"))  # generators the hidden checks import (exact scenes, oracles)
    for path in [p for f in (ROOT / "grader", assignment.solution_dir, assignment.public_data_dir.parent) for p in _files(f)] + helpers:
        members.append((path.relative_to(ROOT).as_posix(), path.read_bytes(), 0o644))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = mode << 16
            zf.writestr(info, data)
    tmp.replace(out)
    return [m[0] for m in members]


def _submission_zip(submission: Path, target: Path) -> None:
    """The uploaded files as one zip: a single uploaded zip as it is, else every file with its relative path."""
    files = [p for p in sorted(submission.rglob("*")) if p.is_file() and not p.is_symlink()]
    if len(files) == 1 and files[0].suffix.lower() == ".zip":
        shutil.copyfile(files[0], target)
        return
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(submission).as_posix())


def run(assignment: Assignment, root: Path, log=lambda m: print(m, file=sys.stderr)) -> int:
    """Grade root/submission; write root/results/results.json. Exit status 0 when results.json was written."""
    from . import batch

    submission, results = root / "submission", root / "results"
    if not submission.is_dir() or not any(p.is_file() for p in submission.rglob("*")):
        log(f"error: nothing was uploaded ({submission} is empty)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="gradescope-"))
    try:
        folder = work / "submission"
        folder.mkdir()
        _submission_zip(submission, folder / (assignment.naming_example or f"{assignment.id}.zip"))
        opts = batch.Options(out=work / "out", jobs=1, force=True, calibrate=False, progress=False,
                             threads=os.cpu_count() or 1)
        try:
            records = batch.grade_folder(assignment, folder, opts, log=log)
        except batch.GraderFault as exc:  # the machine failed, not the student: no results, Gradescope shows a failure
            log(f"error: the sandbox failed, nothing was graded: {exc}")
            return 2
        record = records[0]
        results.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "out" / "results" / f"{record['student_id']}.json", results / "results.json")
        log(f"wrote {results / 'results.json'}: final {record['final']:g} ({record['status']})")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "cv-autograder" / "torchinductor"))
    parser = argparse.ArgumentParser(prog="python -m grader.gradescope")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")))
    args = parser.parse_args(argv)
    from . import spec

    return run(spec.load(args.assignment), args.root)


if __name__ == "__main__":
    sys.exit(main())
