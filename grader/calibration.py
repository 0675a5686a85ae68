"""Time limits calibrated from the reference solution, measured on the grading machine.

Before a batch runs student code, the reference solution is graded once in the same sandbox (same mode
and threads). Its time per module import and, per check, its longest single request and its whole
duration become the limits: each is FACTOR times the reference's, never below its floor, and never
looser than what the check itself declares. An endless loop then costs a few seconds instead of the
declared 30-90, while a correct answer slower than the reference by up to FACTOR (or the floor) is safe.

The measurement is cached per machine in GRADER_CACHE (default ~/.cache/cv-autograder): one file per
assignment, sandbox mode, threads per job, host and core count, holding each item's timings under the
item's key (grader version, its hidden tests, fixtures, mode), so editing one hidden test file
recalibrates its items only. It is trusted data: only reference code runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FACTOR = 10.0
REQUEST_FLOOR = 5.0  # seconds: one request to the sandbox
CHECK_FLOOR = 20.0  # seconds: a whole check
IMPORT_FLOOR = 20.0  # seconds: importing one module or running one notebook
CELL_FLOOR = 5.0  # seconds: one notebook cell or top-level statement
SKIP = {"hidden", "public_tests", "tests", "rubric.toml"}


@dataclass(frozen=True)
class Calibration:
    """Reference timings: per check (item, name) its longest request and total seconds; per module its import."""

    checks: dict[str, dict[str, float]] = field(default_factory=dict)  # "item|name" -> {"request": s, "check": s}
    imports: dict[str, float] = field(default_factory=dict)  # module -> seconds
    cells: dict[str, float] = field(default_factory=dict)  # module -> seconds of its slowest cell / statement

    def request_limit(self, item: str, name: str, declared: float) -> tuple[float, float | None]:
        """(limit for one request of this check, the reference's time or None when not calibrated)."""
        ref = self.checks.get(f"{item}|{name}")
        if ref is None:
            return declared, None
        return min(declared, max(REQUEST_FLOOR, FACTOR * ref["request"])), ref["request"]

    def check_budget(self, item: str, name: str, declared: float) -> float:
        ref = self.checks.get(f"{item}|{name}")
        return declared if ref is None else min(declared, max(CHECK_FLOOR, FACTOR * ref["check"]))

    def import_limit(self, module: str, declared: float) -> tuple[float, float | None]:
        ref = self.imports.get(module)
        if ref is None:
            return declared, None
        return min(declared, max(IMPORT_FLOOR, FACTOR * ref)), ref

    def cell_limit(self, module: str, declared: float) -> float:
        ref = self.cells.get(module)
        return declared if ref is None else min(declared, max(CELL_FLOOR, FACTOR * ref))


def cache_dir() -> Path:
    return Path(os.environ.get("GRADER_CACHE") or Path.home() / ".cache" / "cv-autograder")


def machine_key(assignment_id: str, mode: str, threads: int) -> str:
    parts = [assignment_id, mode, str(threads), platform.node(), str(os.cpu_count())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_or_measure(assignment: Any, item_keys: dict[str, str], checks: Callable[[], list], mode: str, limits: Any,
                    threads: int, log: Callable[[str], None] = print) -> Calibration:
    """The cached calibration for this machine, measuring the reference only for items whose key changed
    (an edited hidden test recalibrates its own items)."""
    path = cache_dir() / f"calibration-{assignment.id}-{machine_key(assignment.id, mode, threads)}.json"
    try:
        cached = json.loads(path.read_text())["items"]
        if not isinstance(cached, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        cached = {}
    missing = {item for item, key in item_keys.items() if key not in cached}
    if missing:
        log(f"calibrating time limits on the reference solution of {assignment.id} "
            f"({len(missing)} item(s); once per machine and version of the checks)")
        started = time.monotonic()
        fresh = measure(assignment, checks(), mode, limits, threads, only=missing)
        log(f"calibrated {len(fresh.checks)} checks in {time.monotonic() - started:.1f} s")
        for item in missing:
            mine = {k: v for k, v in fresh.checks.items() if k.split("|", 1)[0] == item}
            cached[item_keys[item]] = {"checks": mine, "imports": fresh.imports, "cells": fresh.cells}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"factor": FACTOR, "floors": {"request": REQUEST_FLOOR, "check": CHECK_FLOOR,
                                       "import": IMPORT_FLOOR, "cell": CELL_FLOOR}, "items": cached}, indent=1))
            os.replace(tmp, path)
        except OSError as exc:
            log(f"WARNING: could not cache the calibration in {path.parent}: {exc}")
    checks_all: dict[str, dict[str, float]] = {}
    imports: dict[str, float] = {}
    cells: dict[str, float] = {}
    for key in item_keys.values():
        entry = cached.get(key) or {}
        checks_all.update(entry.get("checks", {}))
        for mine, merged in ((entry.get("imports", {}), imports), (entry.get("cells", {}), cells)):
            for module, took in mine.items():
                merged[module] = max(merged.get(module, 0.0), float(took))
    return Calibration(checks=checks_all, imports=imports, cells=cells)


def measure(assignment: Any, checks: list, mode: str, limits: Any, threads: int, only: set[str] | None = None) -> Calibration:
    """Grade the reference solution with the declared limits and keep the timings of the checks it passes."""
    from .intake import find_modules
    from .runner import run_checks
    from .sandbox import scratch_dir

    box = scratch_dir("box")
    try:
        for entry in assignment.solution_dir.iterdir():
            if entry.name in SKIP or entry.name.startswith("."):
                continue
            if entry.is_file():
                shutil.copyfile(entry, box / entry.name)
        box.chmod(0o777)
        timings: dict[str, Any] = {}
        outcomes = run_checks(checks, box, find_modules(box, assignment), mode, limits, threads=threads, only=only,
                              data_dir=assignment.public_data_dir, timings=timings,
                              import_seconds=assignment.limits.import_seconds, cell_seconds=assignment.limits.cell_seconds)
    finally:
        shutil.rmtree(box, ignore_errors=True)
    passed = {f"{o.item}|{o.name}" for o in outcomes if o.passed}
    per_check = {k: v for k, v in timings.get("checks", {}).items() if k in passed}
    return Calibration(checks=per_check, imports=dict(timings.get("imports", {})), cells=dict(timings.get("cells", {})))
