"""`grade --engine ray`: the per-submission function of grader/engine.py on Ray actors.

The driver (grader/batch.py) stays what it is locally: intake, dedupe, late days, reuse decisions,
manual marks, and the only writer of the output folder. Each actor is a long-lived GradingWorker with
one fork-server slot on its node; it checks, when it starts, that its node grades exactly as the driver
would (grader version, hidden tests, fixtures, sandbox mode: the item keys) and that bubblewrap works
there, and refuses otherwise. Jobs go out longest first, one in flight per actor; an actor that dies is
restarted and its job retried (Ray's max_restarts / max_task_retries); a job that still fails is
recorded as grader_error with the reason (never cached: the next run grades it again).

Every node holds the hidden tests and runs student code in its sandbox: every node is inside the trust
boundary. Token authentication is switched on (RAY_AUTH_MODE=token) unless the environment says
otherwise, and the embedded cluster starts without a dashboard. Ray is an optional dependency
(`pip install .[ray]`); nothing here is imported by the local engine.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

from .engine import Done, Job

MAX_RESTARTS = 2
MAX_TASK_RETRIES = 2
TEST_DIE_ONCE = "GRADER_RAY_TEST_DIE_ONCE"  # tests only: a file path; the first actor to grade creates it and dies


class _Actor:
    """One grading slot on a Ray node (the class Ray wraps with ray.remote)."""

    def __init__(self, assignment_ref: str, opts: Any, expected: dict[str, Any], calibration: Any) -> None:
        from . import batch, spec
        from .forkserver import Slot, self_test
        from .sandbox import detect_mode

        assignment = spec.load(assignment_ref)
        mode = opts.mode or detect_mode()
        if mode != expected["mode"]:
            raise RuntimeError(f"node {platform.node()} would grade with the sandbox {mode!r}, the driver with "
                               f"{expected['mode']!r} (is bubblewrap installed there?); it refuses to grade")
        ctx = batch.build_context(assignment, mode)
        mine = {"grader_version": ctx.grader_version, "item_keys": ctx.item_keys, "hidden": ctx.hidden_files,
                "fixtures": ctx.fixtures_hash}
        differ = [k for k, v in mine.items() if v != expected[k]]
        if differ:
            raise RuntimeError(f"node {platform.node()} has another {', '.join(differ)} than the driver "
                               "(another checkout of the grader, hidden tests or fixtures); it refuses to grade")
        ctx.calibration = calibration
        ctx.checks  # noqa: B018 - import the hidden checks once, now
        use_slot = opts.fork_server and mode == "bwrap"
        self.slot = Slot(opts.limits, opts.threads, assignment.public_data_dir, assignment.preload) if use_slot else None
        self._tested = False

        def check_sandbox(slot: Any) -> None:
            if not self._tested:
                self_test(mode, opts.limits, opts.threads, assignment.public_data_dir, slot)
                self._tested = True

        from .engine import GradingWorker

        self.worker = GradingWorker(ctx, opts, self.slot, check_sandbox)

    def node(self) -> str:
        import ray

        return f"{platform.node()}/{ray.get_runtime_context().get_node_id()[:8]}"

    def grade(self, job: Job) -> Done:
        marker = os.environ.get(TEST_DIE_ONCE)
        if marker and not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write(job.student_id)
            os._exit(1)  # a node lost mid-job (tests): Ray restarts this actor and retries the job
        return self.worker.grade(job)


def connect(address: str | None, cpus: int, log: Callable[[str], None]) -> Any:
    """Join the cluster at `address` (or RAY_ADDRESS), else start an embedded single-machine Ray."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # set explicitly: every request carries the cluster's token
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'ray==2.60.0' (the project's [ray] extra)") from None
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        log(f"joined the Ray cluster at {address}: {int(ray.cluster_resources().get('CPU', 0))} CPUs")
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        log(f"started an embedded Ray with {cpus} CPUs (no dashboard; token authentication on)")
    return ray


def grade_all(assignment_ref: str, jobs: list[tuple[int, Callable[[], Job]]], ctx: Any, opts: Any,
              on_done: Callable[[int, Done | None, str], None], log: Callable[[str], None]) -> None:
    """Grade every job on actors; call on_done(index, done, error) as each finishes (error: after retries)."""
    ray = connect(opts.address, max(1, opts.jobs * opts.threads), log)
    expected = {"mode": ctx.mode, "grader_version": ctx.grader_version, "item_keys": ctx.item_keys,
                "hidden": ctx.hidden_files, "fixtures": ctx.fixtures_hash}
    begun = time.monotonic()
    # A GPU actor gets its GPUs from Ray (CUDA_VISIBLE_DEVICES), and its sandbox exposes only those (sandbox.gpu_devices).
    cls = ray.remote(num_cpus=opts.threads, num_gpus=opts.gpus_per_actor, max_restarts=MAX_RESTARTS,
                     max_task_retries=MAX_TASK_RETRIES)(_Actor)
    n = max(1, min(opts.jobs, len(jobs)))
    actors = [cls.remote(assignment_ref, opts, expected, ctx.calibration) for _ in range(n)]
    try:
        nodes = ray.get([a.node.remote() for a in actors])
    except Exception as exc:  # noqa: BLE001 - an actor refused (another checkout, no bubblewrap): stop loudly
        from .sandbox import SandboxUnavailable

        raise SandboxUnavailable(f"a Ray grading actor could not start: {_reason(exc)}") from None
    log(f"{n} grading actor(s) on {len(set(nodes))} node(s) ready in {time.monotonic() - begun:.1f} s: "
        f"{', '.join(sorted(set(nodes)))}")
    pending = list(jobs)
    free = list(actors)
    running: dict[Any, tuple[int, Any]] = {}
    started = time.monotonic()
    while pending or running:
        while pending and free:
            index, make = pending.pop(0)
            actor = free.pop(0)
            running[actor.grade.remote(make())] = (index, actor)
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            index, actor = running.pop(ref)
            try:
                done = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the retries are spent: this job is the grader's fault
                on_done(index, None, f"the grading actor failed after {MAX_TASK_RETRIES} retries: {_reason(exc)}")
                if _dead(ray, actor):
                    continue  # its restarts are spent too: the other actors take the rest
            else:
                on_done(index, done, "")
            free.append(actor)
        if not free and not running and pending:
            for index, _ in pending:
                on_done(index, None, "every grading actor failed; nothing was left to grade this submission")
            pending = []
    log(f"Ray engine: {len(jobs)} job(s) in {time.monotonic() - started:.1f} s")


def _dead(ray: Any, actor: Any) -> bool:
    try:
        ray.get(actor.node.remote(), timeout=30)
        return False
    except Exception:  # noqa: BLE001
        return True


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    useful = [line for line in text if "RuntimeError" in line or "refuses" in line or "Error" in line]
    return (useful[-1] if useful else (text[-1] if text else type(exc).__name__))[:400]
