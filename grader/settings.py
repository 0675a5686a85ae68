"""A class run's lateness settings, kept in its output folder so that every later run uses them.

`grade --times T.csv --deadline D --extensions E.csv` keeps a copy of what it was given in
OUT/settings/ (times.csv, extensions.csv, run.json holding the deadline). A later `grade` into the same
output folder without those options reuses the copies and says so: a TA's rerun to merge marks keeps
every late penalty. Giving an option again replaces its copy (and says so).

Extensions CSV: `student_id` and any of `extension_days` (added to the deadline for that student),
`late_budget_days` (late days the student may still spend without penalty; default the rubric's
`[late] budget_days`, else 0) and `reason`.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from . import intake
from .report import plain, write_atomic
from .spec import Assignment


@dataclass(frozen=True)
class Extension:
    days: int = 0
    budget: int | None = None
    reason: str = ""


@dataclass
class RunSettings:
    deadline: datetime | None = None
    times: dict[str, datetime] | None = None
    time_lines: dict[str, int] = field(default_factory=dict)  # key -> line of the kept times.csv
    times_file: Path | None = None
    extensions: dict[str, Extension] = field(default_factory=dict)
    extensions_file: Path | None = None


def read_extensions(path: Path) -> dict[str, Extension]:
    out: dict[str, Extension] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        names = set(reader.fieldnames or ())
        if "student_id" not in names or not names & {"extension_days", "late_budget_days"}:
            raise ValueError(f"{path}: the extensions CSV needs a student_id column and extension_days and/or "
                             "late_budget_days columns (reason optional)")
        for row in reader:
            sid = (row.get("student_id") or "").strip()
            if not sid:
                continue
            values = {}
            for col in ("extension_days", "late_budget_days"):
                raw = (row.get(col) or "").strip()
                if raw:
                    try:
                        values[col] = int(raw)
                    except ValueError:
                        raise ValueError(f"{path} line {reader.line_num}: {col} {raw!r} is not a whole number of days") from None
                    if values[col] < 0:
                        raise ValueError(f"{path} line {reader.line_num}: {col} {raw!r} is negative")
            if sid in out:
                raise ValueError(f"{path} line {reader.line_num}: a second row for student {sid!r}")
            out[sid] = Extension(values.get("extension_days", 0), values.get("late_budget_days"),
                                 (row.get("reason") or "").strip())
    return out


def resolve(out: Path, assignment: Assignment, times: Path | None = None, deadline: str | None = None,
            extensions: Path | None = None, log: Callable[[str], None] = print) -> RunSettings:
    """The settings of this run: the options given (kept for later runs), else the kept ones."""
    kept = out / "settings"
    run_file = kept / "run.json"
    run: dict[str, Any] = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it holds the gradebook, feedback and results)")
    if deadline is not None:
        try:
            datetime.fromisoformat(deadline)
        except ValueError:
            raise ValueError(f"--deadline {deadline!r} is not an ISO 8601 time (e.g. 2023-03-30T00:00:00+08:00)") from None
        if run.get("deadline") not in (None, deadline):
            log(f"the deadline kept in {run_file} ({run['deadline']}) is replaced by --deadline {deadline}")
        run["deadline"] = deadline
    elif run.get("deadline"):
        log(f"deadline {run['deadline']} (kept in {run_file} from an earlier run)")
    settings = RunSettings(deadline=datetime.fromisoformat(run["deadline"]) if run.get("deadline") else None)
    tz = (settings.deadline or assignment.late.deadline or datetime.now()).tzinfo
    for option, given, name in (("--times", times, "times.csv"), ("--extensions", extensions, "extensions.csv")):
        target = kept / name
        if given is not None:
            if not given.is_file():
                raise ValueError(f"{option} {given}: no such file")
            _read(name, given, tz)  # a bad file stops the run before anything is kept
            if target.is_file() and target.read_bytes() != given.read_bytes():
                log(f"the {name} kept in {kept} is replaced by {option} {given}")
            kept.mkdir(parents=True, exist_ok=True)
            if given.resolve() != target.resolve():
                shutil.copyfile(given, target)
        elif target.is_file():
            log(f"using the {name} kept in {kept} (from an earlier run with {option}); give {option} to replace it")
        if target.is_file():
            data = _read(name, target, tz)
            if name == "times.csv":
                settings.times = {k: v[0] for k, v in data.items()}
                settings.time_lines = {k: v[1] for k, v in data.items()}
                settings.times_file = target
            else:
                settings.extensions, settings.extensions_file = data, target
    if deadline is not None:
        kept.mkdir(parents=True, exist_ok=True)
        write_atomic(run_file, json.dumps(run, indent=2) + "\n")
    return settings


def _read(name: str, path: Path, tz: Any) -> Any:
    return intake.read_times_lines(path, tz) if name == "times.csv" else read_extensions(path)


def check_times(subs: list[intake.Submission], settings: RunSettings, assignment: Assignment,
                log: Callable[[str], None]) -> None:
    """Say which zips have no time, and which rows of the times and extensions files name no submission."""
    deadline = settings.deadline or assignment.late.deadline
    if settings.times is not None:
        names = {s.zip_path.name for s in subs} | {s.student_id for s in subs}
        missing = [s for s in subs if s.status != "naming_error" and not _time_of(s, settings)]
        if missing:
            log(f"WARNING: no submission time in {settings.times_file} for {len(missing)} zip(s), treated as on time: "
                + ", ".join(plain(s.zip_path.name, one_line=True) for s in missing[:20]) + (" ..." if len(missing) > 20 else ""))
            for s in missing:
                s.notes.append("no submission time was given for this zip: treated as on time")
        for key, line in sorted(settings.time_lines.items(), key=lambda kv: kv[1]):
            if key not in names:
                log(f"WARNING: {settings.times_file} line {line}: {plain(key, one_line=True)!r} names no zip or student "
                    "of this folder; its time is not used")
    elif deadline is not None and (assignment.late.penalty_per_day or assignment.late.max_days):
        log("WARNING: no submission times (--times, or a times.csv kept from an earlier run): every submission "
            "is treated as on time")
    ids = {s.student_id for s in subs}
    for sid in sorted(set(settings.extensions) - ids):
        log(f"WARNING: {settings.extensions_file}: student {plain(sid, one_line=True)!r} has an extension but no "
            "submission in this folder")


def _time_of(sub: intake.Submission, settings: RunSettings) -> datetime | None:
    times = settings.times or {}
    return times.get(sub.zip_path.name) or times.get(sub.student_id)


def apply_lateness(sub: intake.Submission, settings: RunSettings, assignment: Assignment) -> None:
    """Late days after the student's extension, and the days charged after their late-day budget."""
    when = _time_of(sub, settings)
    sub.submitted_at = when.isoformat() if when else ""
    deadline = settings.deadline or assignment.late.deadline
    ext = settings.extensions.get(sub.student_id, Extension())
    if deadline is not None and ext.days:
        deadline = deadline + timedelta(days=ext.days)
        sub.notes.append(f"deadline extended by {ext.days} day(s)" + (f": {ext.reason}" if ext.reason else ""))
    sub.late_days = intake.late_days(when, deadline)
    budget = ext.budget if ext.budget is not None else assignment.late.budget_days
    sub.charged_days = max(0, sub.late_days - budget)
    if sub.late_days and budget:
        used = min(sub.late_days, budget)
        sub.notes.append(f"{used} late day(s) taken from the late-day budget ({budget}); {sub.charged_days} charged")
