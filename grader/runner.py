"""Run an assignment's hidden checks against one prepared submission box; return outcomes as data."""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from .calibration import FACTOR, REQUEST_FLOOR, Calibration
from .checks import Check, CheckFailed, ModuleUnavailable, NeedsReview, Student
from .sandbox import Limits, Sandbox, SandboxError, StudentError


@dataclass(frozen=True)
class Outcome:
    item: str
    name: str
    weight: float
    status: str  # passed | failed | error | timeout | crashed | review (a TA decides: see message and detail)
    message: str = ""
    detail: str = ""
    hint: str = ""
    seconds: float = 0.0
    peak_mb: float = 0.0  # peak resident memory of the sandbox during this check
    figures: tuple[str, ...] = ()  # PNG files (in the feedback folder) of the figures this check looked at
    adaptations: tuple[str, ...] = ()  # what the worker's compat changed first during this check (grader/compat.py)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


def run_checks(checks: list[Check], box: Path, module_files: dict[str, str], mode: str,
               limits: Limits = Limits(), only: set[str] | None = None, threads: int = 1,
               timeout_scale: float = 1.0, data_dir: Path | None = None,
               answers: dict[str, str] | None = None, figure_dir: Path | None = None,
               factory: Callable[[dict[str, str]], Sandbox] | None = None,
               import_seconds: float = 60.0, cell_seconds: float = 20.0,
               calibration: Calibration | None = None, timings: dict | None = None) -> list[Outcome]:
    """Run every check in a sandbox over `box`; a timeout or crash restarts the sandbox and goes on.

    `calibration` (the reference's timings) tightens each limit; `timings`, when given, receives this
    run's own timings (how a calibration is measured)."""
    cal = calibration or Calibration()
    import_limits = {m: cal.import_limit(m, import_seconds)[0] * timeout_scale for m in module_files}
    cell_limits = {m: cal.cell_limit(m, cell_seconds) * timeout_scale for m in module_files}
    outcomes: list[Outcome] = []
    adapted: set[str] = set()
    sandbox: Sandbox | None = None
    module_state: dict[str, tuple[str, str]] = {}
    module_names: dict[str, list[str]] = {}
    timed_out: dict[str, list[int]] = {}  # a cell that ran past its limit once is skipped by later workers
    try:
        for chk in checks:
            if only is not None and chk.item not in only:
                continue
            if sandbox is None or not sandbox.alive:
                # A new worker has imported nothing: every module is imported again, under the import
                # limit, never lazily inside the next check's own limit.
                for module, state in list(module_state.items()):
                    if state == ("ok", ""):
                        del module_state[module]
                sandbox = (factory(module_files) if factory is not None
                           else Sandbox(box, module_files, mode, limits, threads, data_dir=data_dir))
                try:
                    sandbox.start()
                except SandboxError as exc:
                    outcomes.append(Outcome(chk.item, chk.name, chk.weight, exc.status,
                                            f"the sandbox could not start: {exc}"))
                    sandbox = None
                    continue
            request_limit, reference = cal.request_limit(chk.item, chk.name, float("inf"))
            if reference is not None:  # --timeout-scale scales the reference's share, never the floor
                request_limit = max(REQUEST_FLOOR / timeout_scale, FACTOR * reference)
            student = Student(sandbox, timeout=min(chk.timeout, request_limit) * timeout_scale,
                              import_timeout=import_seconds * timeout_scale, import_limits=import_limits,
                              cell_timeout=cell_seconds * timeout_scale, cap=request_limit * timeout_scale,
                              cell_limits=cell_limits,
                              module_state=module_state, scale=timeout_scale, answers=dict(answers or {}),
                              deadline=time.monotonic() + cal.check_budget(chk.item, chk.name, chk.total_budget) * timeout_scale,
                              module_names=module_names, timed_out=timed_out)
            outcome = _run_one(chk, student)
            if timings is not None:
                timings.setdefault("checks", {})[f"{chk.item}|{chk.name}"] = {
                    "request": round(student.longest_request, 4), "check": outcome.seconds}
                for module, took in student.import_seconds.items():
                    timings.setdefault("imports", {}).setdefault(module, round(took, 4))
                for module, took in student.slowest_cell.items():
                    timings.setdefault("cells", {}).setdefault(module, round(took, 4))
            if outcome.status == "timeout" and reference is not None:
                note = (f"time limit {request_limit * timeout_scale:.0f} s per request: {FACTOR:g}x the reference "
                        f"solution's {reference:.2f} s on this machine, at least {REQUEST_FLOOR:g} s")
                outcome = replace(outcome, detail="; ".join(x for x in (outcome.detail, note) if x))
            if sandbox is not None and sandbox.alive:
                outcome = replace(outcome, peak_mb=sandbox.peak_memory_mb())
            if figure_dir is not None and student.saved_figures:
                outcome = replace(outcome, figures=_save_figures(figure_dir, chk, student.saved_figures))
            if sandbox is not None and sandbox.alive:  # the course's environment, as adapted so far
                new = [a for a in _adaptations(sandbox) if a not in adapted]
                adapted.update(new)
                outcome = replace(outcome, adaptations=tuple(new))
            outcomes.append(outcome)
    finally:
        if sandbox is not None:
            sandbox.close()
    return outcomes


def _adaptations(sandbox: Sandbox) -> list[str]:
    """What the worker's compat changed so the course's code could run (shown to the student; never a verdict)."""
    try:
        got = sandbox.request({"op": "adaptations"}, 5.0)
    except (SandboxError, StudentError):
        return []
    return [a[:300] for a in got[:40] if isinstance(a, str)] if isinstance(got, list) else []


def _run_one(chk: Check, student: Student) -> Outcome:
    start = time.monotonic()

    def done(status: str, message: str = "", detail: str = "", hint: str = "") -> Outcome:
        return Outcome(chk.item, chk.name, chk.weight, status, message, detail, hint, round(time.monotonic() - start, 3))

    try:
        chk.fn(student)
    except CheckFailed as exc:
        return done("failed", exc.what, exc.detail, exc.hint)
    except NeedsReview as exc:
        return done("review", exc.reason, exc.evidence)
    except ModuleUnavailable as exc:
        if exc.status == "error" and _ENVIRONMENT.search(str(exc)):
            return done("review", f"the module could not be imported for a reason of environment, not of the answer: {exc}"[:600],
                        "a library or file the code imports is not available to the grader")
        return done(exc.status, str(exc))
    except StudentError as exc:
        if exc.error == "MissingName" and any(student.timed_out.values()):
            cut = "; ".join(f"{m}: {', '.join(map(str, v[:5]))}" for m, v in student.timed_out.items() if v)
            return done("timeout", f"a name the checks need is not defined, and top-level code ran past its time limit "
                                   f"(cells or lines {cut}): {exc.message}"[:600],
                        hint="look for endless loops or long runs at the top level of your file")
        if exc.error == "MissingName":
            return done("review", f"an entry point the checks need was not found: {exc.message}"[:600],
                        "the submission may use another name or layout than the starter's")
        if exc.error == "NotImplementedError" and "is not available in the grader" in exc.message:
            return done("review", f"the code needs a library the grader replaces only in part: {exc.message}"[:600],
                        _last_frame(exc.trace))
        hint = ""
        if exc.error == "NotImplementedError":
            hint = "this part is still the starter's stub"
        return done("error", f"your code raised {exc.error}: {exc.message}"[:600], _last_frame(exc.trace), hint)
    except SandboxError as exc:
        student.sandbox.close()
        return done(exc.status, f"{exc.status}: {exc}", hint="look for infinite loops, huge allocations or exit calls")
    except AssertionError as exc:  # a plain assert in the check: the check's verdict, not a value it could not read
        frame = _check_frame(exc, chk)
        # pytest's rewritten message: its first line compares the values; the "where" lines below it
        # would spell out the hidden inputs, so they stay out of the student's feedback.
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return done("failed", f"{chk.name}: {first}" if first else f"{chk.name} does not hold", frame)
    except Exception as exc:  # noqa: BLE001 - a check tripping over an odd value fails that check, not the batch
        return done("failed", f"the value your code returned could not be checked ({type(exc).__name__}: {exc})"[:600],
                    hint="return exactly the types and shapes the docstring asks for")
    return done("passed")


# An import that failed on a missing library or file, not on the student's own logic.
_ENVIRONMENT = re.compile(r"\b(ModuleNotFoundError|ImportError)\b(?!.*the submission has no file)")


def _check_frame(exc: BaseException, chk: Check) -> str:
    """The failing line of the check's own source (a plain assert), for the TA; never the hidden inputs."""
    import traceback

    from .checks import source_file

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_file(chk)]
    return f"assertion at line {frames[-1].lineno} of the hidden check" if frames else ""


def _last_frame(trace: str) -> str:
    """The student's own frame of a traceback (file and line), without the worker's frames."""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    lines = [ln for ln in frames if "/box/" in ln or "/box-" in ln]  # the student's files only
    return lines[-1][:300] if lines else ""


MAX_FIGURE_FILES = 32  # PNGs in one submission's figure folder
MAX_FIGURE_BYTES = 24 << 20  # and their total size


def _save_figures(folder: Path, chk: Check, figures: list) -> tuple[str, ...]:
    """Encode the student's figure pixels as PNG here, in the grader (the sandbox only sent pixels).

    At most MAX_FIGURE_FILES pictures and MAX_FIGURE_BYTES per submission (the folder is the
    submission's own); a picture that cannot be encoded is left out, never failing the submission."""
    import io

    from PIL import Image  # matplotlib's own image library; fast PNG at low compression

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n, (_, pixels) in enumerate(figures, 1):
        name = f"{chk.item}-{chk.name[:40]}-{n}".replace(" ", "_")
        name = "".join(c for c in name if c.isalnum() or c in "._-") + ".png"
        others = [p for p in folder.glob("*.png") if p.name != name]
        if len(others) >= MAX_FIGURE_FILES:
            break
        try:
            buf = io.BytesIO()
            Image.fromarray(pixels, mode="RGBA").save(buf, format="PNG", compress_level=1)
        except (ValueError, TypeError, OSError):  # an empty or malformed picture: no file for it
            continue
        if sum(p.stat().st_size for p in others) + buf.tell() > MAX_FIGURE_BYTES:
            break
        (folder / name).write_bytes(buf.getvalue())
        names.append(name)
    return tuple(names)
