"""Grade a folder of submission zips: intake -> sandboxed checks -> scoring -> atomic results.

Incremental by item: each automatic item's outcomes are kept with a key made of the submission's
hash, the grader version, the hash of the hidden-test files that define that item's checks and the
hash of the assignment's fixtures. A rerun runs only the items whose key changed (or those named by
--only), so an unchanged rerun runs no student code, a changed hidden test reruns only its items,
and a killed run resumes. Scoring, manual marks and reports are rebuilt every run (cheap).
One bad submission never stops the batch.
"""
from __future__ import annotations

import ast
import hashlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import calibration
from .calibration import Calibration
from . import gradebook, intake, manual, report, summary
from .checks import Check, load_checks, source_file
from .engine import Done, GradingWorker, Job, outcomes_of
from .forkserver import Slot, self_test
from .runner import Outcome
from .sandbox import Limits, SandboxUnavailable, detect_mode, sweep_leftovers
from .scoring import final_mark, score_items
from .settings import RunSettings, apply_lateness, check_times
from .spec import ROOT, Assignment, available

GRADER_DIR = Path(__file__).resolve().parent


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hash(paths: list[Path], base: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# Modules that only present results (rebuilt every run from the kept outcomes): editing them must not
# invalidate a class's results or the reference's calibration.
PRESENTATION = frozenset({"__main__.py", "cli.py", "gradebook.py", "report.py", "manual.py", "summary.py",
                          "exports.py", "gradescope.py", "similarity.py", "html_feedback.py", "student_check.py"})


def grader_version() -> str:
    """What outcomes depend on: the engine and the libraries the sandbox imports (lite3d, oracles)."""
    files = [p for p in GRADER_DIR.rglob("*.py") if "__pycache__" not in p.parts
             and not (p.parent == GRADER_DIR and p.name in PRESENTATION)]
    return tree_hash(files)


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
    only: frozenset[str] = frozenset()  # item ids to regrade even when their results are current
    progress: bool | None = None  # a progress bar (default: when stderr is a terminal)
    fork_server: bool = True  # bwrap mode: one long-lived sandbox per job forks a worker per submission
    calibrate: bool = True  # time limits from the reference solution's timings on this machine (grader/calibration.py)
    settings: Any = None  # grader.settings.RunSettings of a class run (times, deadline, extensions kept in out/)
    engine: str = "local"  # local: a thread pool here; ray: actors on a Ray cluster (grader/ray_engine.py)
    address: str | None = None  # the Ray cluster to join (None: RAY_ADDRESS, else an embedded one)
    gpus_per_actor: float = 0.0  # --engine ray: GPUs each actor asks Ray for (training checks on GPU nodes)


@dataclass
class Context:
    """What every submission's grading depends on besides the submission itself."""

    assignment: Assignment
    mode: str
    grader_version: str
    item_keys: dict[str, str]  # item id -> hash of (grader version, its hidden files, fixtures, sandbox mode)
    hidden_files: dict[str, str]  # hidden test file -> sha256
    fixtures_hash: str
    manual_marks: dict[tuple[str, str], manual.ManualMark] = field(default_factory=dict)
    calibration: Calibration | None = None
    _checks: list[Check] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def checks(self) -> list[Check]:
        """The hidden checks, imported on first use: a rerun with nothing to do never imports them."""
        with self._lock:
            if self._checks is None:
                self._checks = load_checks(self.assignment.solution_dir / "hidden")
            return self._checks


def _items_by_file(hidden: list[Path]) -> dict[str, set[str]] | None:
    """Item ids each hidden file defines checks for, read from the @check(...) decorators' source.

    None when a decorator's item is not a plain string (then the checks are imported to find out)."""
    found: dict[str, set[str]] = {}
    for path in hidden:
        items: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                func = dec.func if isinstance(dec, ast.Call) else None
                name = getattr(func, "id", None) or getattr(func, "attr", None)
                if name not in ("check", "item"):  # @check(...) or @pytest.mark.item(...)
                    continue
                arg = dec.args[0] if dec.args else next((k.value for k in dec.keywords if k.arg == "item"), None)
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    return None
                items.add(arg.value)
        found[path.name] = items
    return found


def build_context(assignment: Assignment, mode: str) -> Context:
    hidden = sorted((assignment.solution_dir / "hidden").glob("*.py"))
    hidden_files = {p.name: _file_digest(p) for p in hidden}
    data = assignment.public_data_dir.parent
    fixture_files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else []
    fixtures_hash = tree_hash(fixture_files, data)
    version = grader_version()
    ctx = Context(assignment, mode, version, {}, hidden_files, fixtures_hash)
    by_file = _items_by_file(hidden)
    by_item: dict[str, set[str]] = {}
    if by_file is None:
        for chk in ctx.checks:
            by_item.setdefault(chk.item, set()).add(Path(source_file(chk)).name)
    else:
        shared = {name for name, items in by_file.items() if not items}  # helper modules count for every item
        for name, items in by_file.items():
            for item in items:
                by_item.setdefault(item, set(shared)).add(name)
    _validate_checks(assignment, by_item)
    for item in assignment.items:
        if not item.graded_automatically:
            continue
        parts = [version, mode, fixtures_hash] + [f"{n}:{hidden_files.get(n, '')}" for n in sorted(by_item.get(item.id, ()))]
        ctx.item_keys[item.id] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return ctx


def _validate_checks(assignment: Assignment, by_item: dict[str, set[str]]) -> None:
    """Every check names an item of the rubric, and every automatic item has checks: one clear line each."""
    rubric = assignment.solution_dir / "rubric.toml"
    known = {i.id for i in assignment.items}
    for item, files in sorted(by_item.items()):
        if item not in known:
            raise ValueError(f"{assignment.solution_dir / 'hidden'} ({', '.join(sorted(files))}): a check names item {item!r}, "
                             f"which {rubric} does not have (its items: {', '.join(sorted(known))})")
        if assignment.item(item).kind == "manual":
            raise ValueError(f"{rubric}: item {item!r} is manual but {', '.join(sorted(files))} has checks for it")
    for item in assignment.items:
        if item.graded_automatically and item.id not in by_item:
            raise ValueError(f"{rubric}: item {item.id!r} is automatic (kind = \"auto\", built) but no check in "
                             f"{assignment.solution_dir / 'hidden'} names it; write its checks or set built = false")


class GraderFault(Exception):
    """The grading machine failed (a sandbox could not start): the batch stops, no student is charged,
    nothing of the failed submission is kept, and the next run grades it again."""


def grade_folder(assignment: Assignment, folder: Path, opts: Options, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    zips, ignored = intake.collect(folder, exclude=opts.out)
    if not zips:
        raise ValueError(f"no .zip files in {folder} or its subfolders")
    unknown = opts.only - {i.id for i in assignment.items}
    if unknown:
        raise ValueError(f"--only names no item of {assignment.id}: {', '.join(sorted(unknown))}")
    mode = opts.mode or detect_mode()
    if mode != "bwrap":
        log("WARNING: bubblewrap is not available; student code runs with resource limits only and can read "
            "any file this user can. Install bubblewrap (apt-get install bubblewrap) before grading for real.")
    for stale in sweep_leftovers():
        log(f"removed the leftovers of a grader that was killed: {stale}")
    subs = [intake.identify(z, assignment) for z in zips]
    if len(subs) >= 2 and all(s.status == "naming_error" for s in subs):
        raise ValueError(f"none of the {len(subs)} zips in {folder} follows the naming rule of {assignment.id} "
                         f"(e.g. {assignment.naming_example}): is --assignment right? Known assignments: "
                         + ", ".join(available()))
    every = list(subs)
    subs = _dedupe_ids(subs, opts.settings.times if opts.settings is not None else opts.times, log)
    _write_intake(opts.out, folder, every, subs, ignored, log)
    use_slots = opts.fork_server and mode == "bwrap" and opts.engine == "local"  # Ray actors own their slots
    idle: list[Slot] = []
    if use_slots and _likely_work(subs, opts):  # the zygotes import torch while this process loads the checks
        idle = [Slot(opts.limits, opts.threads, assignment.public_data_dir, assignment.preload)
                for _ in range(max(1, min(opts.jobs, len(subs))))]
        for slot in idle:
            slot.start_soon()
    ctx = build_context(assignment, mode)
    lock = threading.Lock()
    tested: list[bool] = []  # the sandbox's self-test passed (once per batch, before any submission's code)

    def check_sandbox(slot: Slot | None) -> None:
        with lock:
            if not tested:
                self_test(mode, opts.limits, opts.threads, assignment.public_data_dir, slot)
                tested.append(True)

    if any(s.status == "ok" for s in subs) and _likely_work(subs, opts):  # before anything runs in a sandbox
        try:
            ctx.checks  # noqa: B018 - import the hidden checks while the fork servers start, then test a sandbox
            check_sandbox(idle[0] if idle else None)
        except BaseException as exc:
            for slot in idle:
                slot.close()
            if isinstance(exc, SandboxUnavailable):
                raise GraderFault(f"{exc}. Nothing was graded and no result was written.") from None
            raise
    if opts.calibrate and any(s.status == "ok" for s in subs) and _likely_work(subs, opts):
        keys = {i: k for i, k in ctx.item_keys.items() if not opts.only or i in opts.only}
        ctx.calibration = calibration.load_or_measure(assignment, keys, lambda: ctx.checks, mode, opts.limits,
                                                      opts.threads, log)
    (opts.out / "results").mkdir(parents=True, exist_ok=True)
    (opts.out / "feedback").mkdir(parents=True, exist_ok=True)
    marks_path = opts.out / "manual_marks.csv"
    ctx.manual_marks, problems = manual.read_marks(marks_path, assignment)
    for problem in problems:
        log(f"WARNING: {problem}")

    run = opts.settings or RunSettings(deadline=opts.deadline, times=opts.times)
    if opts.settings is not None:
        check_times(subs, run, assignment, log)
    for sub in subs:
        apply_lateness(sub, run, assignment)

    records: list[dict[str, Any]] = [None] * len(subs)  # type: ignore[list-item]
    started = time.monotonic()
    progress = Progress(len(subs), log, opts.progress)
    local = threading.local()
    slots: list[Slot] = list(idle)
    faults: list[str] = []  # the grading machine failed: stop, charge no one

    def one(index: int) -> None:
        if faults:
            return
        slot = getattr(local, "slot", None)
        if use_slots and slot is None:
            with lock:
                slot = idle.pop() if idle else None
                if slot is None:
                    slot = Slot(opts.limits, opts.threads, assignment.public_data_dir, assignment.preload)
                    slots.append(slot)
            local.slot = slot
        try:
            records[index] = _grade_one(subs[index], ctx, opts, GradingWorker(ctx, opts, slot, check_sandbox))
        except SandboxUnavailable as exc:
            faults.append(str(exc))
            return
        progress.advance(records[index])

    try:
        if opts.engine == "ray":
            _grade_on_ray(subs, records, ctx, opts, progress, log)
        elif opts.jobs <= 1:
            for i in range(len(subs)):
                one(i)
        else:
            with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
                list(pool.map(one, _longest_first(subs, opts)))
    finally:
        for slot in slots:
            slot.close()
        progress.close()
    if faults:
        done = sum(1 for r in records if r is not None)
        raise GraderFault(f"{faults[0]}. The grader stopped after {done} of {len(subs)} submission(s); no student "
                          "was charged for this, the gradebook was not rewritten, and the next run grades the rest.")
    reused = sum(1 for r in records if r.pop("_reused", False))
    known = {r["student_id"] for r in records}
    for r in records:
        for warning in r.get("staff_warnings", []):
            log(f"WARNING: {marks_path.name}, student {r['student_id']}: {warning}")
    for (sid, item), mark in sorted(ctx.manual_marks.items(), key=lambda kv: kv[1].line):
        if sid not in known:
            log(f"WARNING: {marks_path.name} line {mark.line}: student id {sid!r} has no submission in this run; "
                f"its mark for {item} is not used (a typo in the id?)")
    gradebook.write(opts.out / "gradebook.csv", assignment, records)
    added = manual.update_template(marks_path, assignment, records)  # the header at least: TAs override any mark there
    if any(i.kind == "manual" for i in assignment.items) or any(r.get("needs_review") for r in records):
        report.write_atomic(opts.out / "review.md", manual.review_sheet(assignment, records, ctx.manual_marks))
        if added:
            log(f"manual items: {added} row(s) to mark in {marks_path} (read {opts.out / 'review.md'})")
    summary.write_class_outputs(opts.out, assignment, records, log, folder)  # HTML feedback, summary, exports, similarity
    log(f"graded {len(subs)} submission(s) in {time.monotonic() - started:.1f} s "
        f"({reused} without running student code); sandbox: {mode}")
    return records


def _grade_on_ray(subs: list[intake.Submission], records: list[Any], ctx: Context, opts: Options, progress: "Progress",
                  log: Callable[[str], None]) -> None:
    """The driver's side of --engine ray: plan here, grade on actors, finish (score and write) here."""
    from . import ray_engine

    plans: dict[int, Plan] = {}
    jobs: list[tuple[int, Callable[[], Job]]] = []
    for i in _longest_first(subs, opts):
        plans[i] = plan(subs[i], ctx, opts)
        if plans[i].run_worker:
            jobs.append((i, lambda s=subs[i], p=plans[i]: job_of(s, p)))
        else:
            records[i] = finish(subs[i], ctx, opts, plans[i], None)
            progress.advance(records[i])

    def on_done(i: int, done: Done | None, error: str) -> None:
        if done is None or done.fault:  # the grader's fault, never the student's: not kept, graded again next run
            done = Done(status="grader_error", reason=error or done.fault, notes=list(subs[i].notes))
            log(f"WARNING: {subs[i].zip_path.name}: {done.reason}")
        records[i] = finish(subs[i], ctx, opts, plans[i], done)
        progress.advance(records[i])

    if jobs:
        ray_engine.grade_all(str(ctx.assignment.solution_dir), jobs, ctx, opts, on_done, log)


def _longest_first(subs: list[intake.Submission], opts: Options) -> list[int]:
    """Submission order for parallel jobs: slowest last time first, so a slow one does not end the batch alone.

    Only a regrade knows the times (from the previous results); submissions without one (new or late
    zips) could be slow too and go first; a first run keeps the folder's order.
    """
    def took(i: int) -> float:
        path = _result_path(opts, subs[i])
        previous = _load_previous(path) if path.exists() else None
        try:
            return float(previous["seconds"]) if previous is not None else float("inf")
        except (KeyError, TypeError, ValueError):
            return float("inf")

    return sorted(range(len(subs)), key=lambda i: -took(i))


def _likely_work(subs: list[intake.Submission], opts: Options) -> bool:
    """Will any submission run student code? (Cheap guess: a result is missing or for other bytes.)"""
    if opts.force or opts.only:
        return True
    for sub in subs:
        if sub.status != "ok":
            continue
        previous = _load_previous(_result_path(opts, sub)) if _result_path(opts, sub).exists() else None
        if previous is None or previous.get("provenance", {}).get("sha256") != sub.sha256:
            return True
    return False


class Progress:
    """A bar with counts and ETA on a terminal; one plain line per submission otherwise."""

    def __init__(self, total: int, log: Callable[[str], None], bar: bool | None) -> None:
        self.total, self.log, self.done = total, log, 0
        self.lock = threading.Lock()
        self.bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="sub", desc="grading", file=sys.stderr, dynamic_ncols=True)

    def advance(self, r: dict[str, Any]) -> None:
        with self.lock:
            self.done += 1
            took = "reused" if r.get("_reused") else f"{r['seconds']:.1f} s"
            line = f"[{self.done}/{self.total}] {r['student_id']}: final {r['final']:g} ({r['status']}) {took}"
            if self.bar is not None:
                self.bar.set_postfix_str(f"{r['student_id']} {took}", refresh=False)
                self.bar.update(1)
            else:
                self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _dedupe_ids(subs: list[intake.Submission], times: dict[str, datetime] | None = None,
                log: Callable[[str], None] = print) -> list[intake.Submission]:
    """One graded submission per student id: the latest one (by submission time when every zip of that id
    has one, else by the zip's modification time, then its name). Earlier zips are superseded: not graded,
    named in the kept submission's notes, so the id (and the TA's marks kept under it) stays with the
    student. Misnamed zips (ids made from the file name) are never merged: they get -2, -3 suffixes."""
    times = times or {}
    groups: dict[str, list[intake.Submission]] = {}
    for sub in subs:
        groups.setdefault(sub.student_id, []).append(sub)
    superseded: set[int] = set()
    for sid, group in groups.items():
        if len(group) < 2:
            continue
        if any(sub.status == "naming_error" for sub in group):
            for n, sub in enumerate(group[1:], 2):
                sub.notes.append(f"another zip has the same name-derived id; this one is listed as {sid}-{n}")
                sub.student_id = f"{sid}-{n}"
            continue
        stamps = [times.get(sub.zip_path.name) for sub in group]
        if all(stamps) and len({(t.tzinfo is None) for t in stamps}) == 1:
            order = sorted(range(len(group)), key=lambda i: (stamps[i], group[i].zip_path.name))
            how = "submission time"
        else:
            order = sorted(range(len(group)), key=lambda i: (_mtime(group[i].zip_path), group[i].zip_path.name))
            how = "file time"
        latest = group[order[-1]]
        earlier = [group[i] for i in order[:-1]]
        names = {s.name.strip().lower() for s in group if s.name.strip()}
        if len(names) > 1:  # one id, several names: a typo in an id, or two students; a TA must look
            flag = (f"student id {sid} appears on zips with different names ({', '.join(sorted(s.name for s in group))}): "
                    "check that the latest one is this student's")
            latest.flags.append(flag)
            log(f"WARNING: {flag}")
        latest.notes.append(f"{len(earlier)} earlier zip(s) of this student id were superseded by this one (latest by {how}): "
                            + ", ".join(sub.zip_path.name for sub in earlier))
        for sub in earlier:
            superseded.add(id(sub))
            log(f"{sub.zip_path.name}: superseded by {latest.zip_path.name} (same student id {sid}, later by {how}); not graded")
    return [sub for sub in subs if id(sub) not in superseded]


def _write_intake(out: Path, folder: Path, every: list[intake.Submission], kept: list[intake.Submission],
                  ignored: list[tuple[Path, str]], log: Callable[[str], None]) -> None:
    """out/intake.csv: every file of the submissions folder and what became of it."""
    import csv
    import io

    graded = {id(s) for s in kept}
    latest = {s.student_id: s for s in kept}
    rows = []
    for s in every:
        if id(s) in graded:
            rows.append((s.zip_path, s.student_id, "naming_error" if s.status == "naming_error" else "graded", s.reason))
        else:
            rows.append((s.zip_path, s.student_id, "superseded",
                         f"an earlier submission of {s.student_id}; {latest[s.student_id].zip_path.name} is graded"))
    rows += [(p, "", "not graded", why) for p, why in ignored]
    for p, why in ignored:
        if not why.startswith("a settings file"):  # a times.csv beside the zips is expected, not news
            log(f"not graded: {p.relative_to(folder)}: {why}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "student_id", "outcome", "why"])
    for p, sid, outcome, why in sorted(rows, key=lambda r: str(r[0])):
        writer.writerow([report.csv_cell(str(p.relative_to(folder))), report.csv_cell(sid), outcome, report.csv_cell(why)])
    out.mkdir(parents=True, exist_ok=True)
    report.write_atomic(out / "intake.csv", buf.getvalue())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _result_path(opts: Options, sub: intake.Submission) -> Path:
    return opts.out / "results" / f"{sub.student_id}.json"


def _reusable(previous: dict[str, Any] | None, sub: intake.Submission, ctx: Context, opts: Options) -> tuple[set[str], dict]:
    """Items whose previous outcomes still hold, and the previous record's intake facts."""
    if previous is None or opts.force:
        return set(), {}
    if "grader_error" in (previous.get("status"), previous.get("intake_status")):
        return set(), {}  # a fault of the grader is never kept: grade the submission again
    prov = previous.get("provenance", {})
    if (prov.get("sha256"), prov.get("zip"), prov.get("sandbox")) != (sub.sha256, sub.zip_path.name, ctx.mode):
        return set(), {}
    old_keys = prov.get("item_keys", {})
    items = {i for i, k in ctx.item_keys.items() if old_keys.get(i) == k} - set(opts.only)
    items -= {o.get("item") for o in previous.get("outcomes", []) if o.get("status") == "grader_error"}
    facts = {k: previous.get(k) for k in ("intake_status", "intake_reason", "answers", "answer_sources", "modules")}
    return items, facts


@dataclass
class Plan:
    """The driver's decisions for one submission before any of its code runs."""

    todo: set[str]
    reuse: set[str]
    outcomes: list[Outcome]  # the previous outcomes of the reused items
    facts: dict[str, Any]
    previous: dict[str, Any] | None
    run_worker: bool  # intake (and checks, when todo) must run in a worker


def plan(sub: intake.Submission, ctx: Context, opts: Options) -> Plan:
    path = _result_path(opts, sub)
    previous = _load_previous(path) if path.exists() else None
    reuse, facts = _reusable(previous, sub, ctx, opts)
    # --only ITEM: run exactly those items; the others keep current results or stay "not run".
    todo = (set(opts.only) & set(ctx.item_keys)) if opts.only else set(ctx.item_keys) - reuse
    outcomes = outcomes_of([o for o in (previous or {}).get("outcomes", []) if o.get("item") in reuse]) if reuse else []
    if facts and facts.get("intake_status") not in (None, "ok"):
        sub.status, sub.reason = facts["intake_status"], facts.get("intake_reason", "")
        todo = set()
    return Plan(todo, reuse, outcomes, facts, previous, sub.status == "ok" and bool(todo or not facts))


def job_of(sub: intake.Submission, p: Plan) -> Job:
    return Job(sub.zip_path.name, sub.zip_path.read_bytes(), sub.student_id, sub.name, sub.sha256, sorted(p.todo),
               list(sub.notes))


def _grade_one(sub: intake.Submission, ctx: Context, opts: Options, worker: GradingWorker) -> dict[str, Any]:
    """Grade one submission locally: the driver's plan, the worker's pure grading, the driver's finish.
    Raises SandboxUnavailable (and writes nothing) when the grading machine fails."""
    p = plan(sub, ctx, opts)
    done = worker.grade(job_of(sub, p)) if p.run_worker else None
    if done is not None and done.fault:
        raise SandboxUnavailable(done.fault)
    return finish(sub, ctx, opts, p, done)


def finish(sub: intake.Submission, ctx: Context, opts: Options, p: Plan, done: Done | None) -> dict[str, Any]:
    """Score one submission from its plan and its worker's result, and write its files (the driver only)."""
    assignment = ctx.assignment
    path = _result_path(opts, sub)
    previous, reuse, todo, outcomes = p.previous, p.reuse, p.todo, list(p.outcomes)
    ran: list[str] = []
    answers: dict[str, str] = p.facts.get("answers") or {}
    sources: list[str] = p.facts.get("answer_sources") or []
    if done is not None:
        sub.status, sub.reason, sub.notes = done.status, done.reason, done.notes
        sub.module_files, answers, sources = done.module_files, done.answers, done.sources
        if done.ran:
            ran = done.ran
            outcomes = _in_check_order(ctx.checks, outcomes + outcomes_of(done.outcomes))
        if done.figures:
            folder = opts.out / "feedback" / f"{sub.student_id}-figures"
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in done.figures.items():
                (folder / name).write_bytes(data)
    elif sub.status == "ok":
        sub.module_files = p.facts.get("modules") or {}
    graded = sub.status == "ok"
    ta = {item: (m.marks, m.comment) for (sid, item), m in ctx.manual_marks.items() if sid == sub.student_id}
    scores = score_items(assignment, outcomes if graded else [], graded, ta,
                         skipped={i for i in ctx.item_keys if i not in todo and i not in reuse})
    total = round(sum(s.score for s in scores if s.score is not None), 2) if graded else 0.0
    status, reason = sub.status, sub.reason
    if graded:
        bad = [o for o in outcomes if o.status in ("timeout", "crashed")]
        if bad:
            status = bad[0].status
            reason = "; ".join(sorted({f"{o.item}: {o.message}" for o in bad}))[:300]
        if status == "ok":  # graded, but not all of it: name what is missing or did not load
            needed = " ".join(o.message for o in outcomes if o.status == "error")  # checks that needed a module
            partial = [f"no file for {m}" for m in assignment.modules
                       if m not in sub.module_files and f"no file for module '{m}'" in needed]
            partial += sorted({o.message.split(": ", 1)[0] + " (" + o.message.split(": ", 1)[-1][:120] + ")"
                               for o in outcomes if o.status == "error" and o.message.startswith("importing ")
                               and "has no file for module" not in o.message})  # named once, as "no file for"
            if partial:
                status, reason = "partial", "; ".join(partial)[:300]
        if sub.late_days > assignment.late.max_days:
            reason = (reason + "; " if reason else "") + f"{sub.late_days} days late: more than {assignment.late.max_days} scores zero"
    pending = [s.item.id for s in scores if s.state in ("manual", "review")] if graded else []
    review = {s.item.id: _review_entry(s) for s in scores if s.state == "review" or (s.state == "ta_marked" and s.outcomes)}
    seconds = done.seconds if done is not None and ran else (previous or {}).get("seconds", 0.0)
    record = {
        "student_id": sub.student_id, "name": sub.name, "zip": sub.zip_path.name, "status": status, "reason": reason,
        "intake_status": sub.status, "intake_reason": sub.reason,
        "notes": sub.notes, "flags": sub.flags, "items": {s.item.id: s.score for s in scores}, "total": total,
        "pending_manual": pending,
        "needs_review": review,
        "overrides": {s.item.id: {"automatic": s.automatic, "ta": s.score, "reason": s.comment}
                      for s in scores if s.state == "overridden"},
        "staff_warnings": [f"{s.item.id}: {s.note}" for s in scores if s.note],
        "late_days": sub.late_days, "late_days_charged": sub.charged_days, "submitted_at": sub.submitted_at,
        "final": final_mark(assignment, total, sub.late_days, sub.charged_days) if graded else 0.0,
        "seconds": seconds,
        "outcomes": [o.to_dict() for o in outcomes],
        "answers": answers, "answer_sources": sources,
        "adaptations": list(dict.fromkeys(a for o in outcomes for a in o.adaptations)),  # what compat changed
        "modules": sub.module_files,
        "provenance": _provenance(sub, ctx, outcomes, ran, previous, reuse | set(ran)),
    }
    deadline = opts.deadline or assignment.late.deadline  # verdict-only items show details after it
    report.write_atomic(opts.out / "feedback" / f"{sub.student_id}.md",
                        report.feedback_markdown(record, scores, assignment.title, deadline=deadline))
    report.write_atomic(path, report.dumps(report.gradescope_results(record, scores, deadline=deadline)))
    record["_reused"] = previous is not None and not ran
    return record


def _review_entry(s: Any) -> dict[str, Any]:
    """Why the grader could not decide an automatic item, with the evidence, for the TA's review sheet."""
    decided = [o for o in s.outcomes if o.status != "review"]
    return {
        "reasons": [o.message for o in s.outcomes if o.status == "review"][:5],
        "evidence": [o.detail for o in s.outcomes if o.status == "review" and o.detail][:5],
        "decided": [f"{'passed' if o.passed else o.status}: {o.name}" for o in decided][:20],
    }


def _in_check_order(checks: list[Check], outcomes: list[Outcome]) -> list[Outcome]:
    order = {(c.item, c.name): n for n, c in enumerate(checks)}
    return sorted(outcomes, key=lambda o: order.get((o.item, o.name), len(order)))


def _provenance(sub: intake.Submission, ctx: Context, outcomes: list[Outcome], ran: list[str],
                previous: dict[str, Any] | None, current: set[str]) -> dict[str, Any]:
    """Exactly what produced each mark: inputs' hashes, versions, sandbox, time and memory per item."""
    old = (previous or {}).get("provenance", {})
    per_item: dict[str, dict[str, float]] = dict(old.get("items", {})) if ran else old.get("items", {})
    for item in ran:
        mine = [o for o in outcomes if o.item == item]
        per_item[item] = {"seconds": round(sum(o.seconds for o in mine), 3),
                          "peak_mb": max((o.peak_mb for o in mine), default=0.0),
                          "graded_at": datetime.now().astimezone().isoformat(timespec="milliseconds")}
    import platform

    return {
        "sha256": sub.sha256, "zip": sub.zip_path.name, "late_days": sub.late_days,
        "grader_version": ctx.grader_version, "sandbox": ctx.mode,
        "hidden_tests": ctx.hidden_files, "fixtures": ctx.fixtures_hash,
        "item_keys": {i: ctx.item_keys[i] for i in sorted(current) if i in ctx.item_keys},  # items with results
        "items": {i: per_item[i] for i in sorted(per_item) if i in ctx.item_keys},
        "python": platform.python_version(), "host": platform.node(),
    }


def _load_previous(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        record = data["extra_data"]
        return record if isinstance(record, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
