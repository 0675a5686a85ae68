"""The fork server keeps submissions apart: nothing of one submission survives into the next.

Each test drives a real Slot (bubblewrap + zygote) through consecutive submissions, the way a job of
`grade` does, and checks what the second submission can see or suffer from the first.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from grader.forkserver import ForkedSandbox, Slot
from grader.sandbox import SandboxError, StudentError, _python_roots, detect_mode

pytestmark = pytest.mark.skipif(detect_mode() != "bwrap", reason="the fork server runs only under bubblewrap")

MARK = "forkserver-test-leftover-7431"


def _call(sb: ForkedSandbox, fn: str, timeout: float = 30.0):
    return sb.request({"op": "call", "target": {"module": "m", "path": fn}, "args": [], "kwargs": {"__dict__": {}}}, timeout)


def _submit(slot: Slot, source: str, extra: dict[str, str] | None = None) -> ForkedSandbox:
    box = slot.clear_box()
    (box / "m.py").write_text(source)
    for name, text in (extra or {}).items():
        (box / name).write_text(text)
    sb = ForkedSandbox(slot, {"m": "m.py"})
    sb.start()
    return sb


@pytest.fixture(scope="module")
def slot():
    s = Slot()
    s.start()
    yield s
    s.close()


ATTACKER = f'''
import os, subprocess, time
def plant():
    open("/tmp/evil.py", "w").write("raise SystemExit")
    os.makedirs("/tmp/mpl", exist_ok=True)
    open("/tmp/mpl/matplotlibrc", "w").write("lines.linewidth: 50\\n")
    open("/box/left_behind.txt", "w").write("answers of student A")
    if os.path.isdir("/dev/shm"):
        open("/dev/shm/x", "w").write("x")
    subprocess.Popen(["sh", "-c", "exec -a {MARK} sleep 300"], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        time.sleep(300)
        os._exit(0)
    return os.getpid()
'''

VICTIM = '''
import os
def look():
    procs = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                procs.append(open(f"/proc/{p}/cmdline", "rb").read().replace(b"\\0", b" ").decode())
            except OSError:
                pass
    shm = sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []
    return {"tmp": sorted(os.listdir("/tmp")), "box": sorted(os.listdir("/box")), "shm": shm, "procs": procs}
'''


def test_nothing_carries_over_to_the_next_submission(slot: Slot) -> None:
    a = _submit(slot, ATTACKER, {"secret_of_a.txt": "A's work"})
    _call(a, "plant")
    a.close()
    b = _submit(slot, VICTIM)
    seen = _call(b, "look")
    b.close()
    # matplotlib's config folder is recreated empty; a Python installation under /tmp (e.g. a checkout in
    # /tmp) shows up as its read-only mount point, which is not a leftover
    mounts = {Path(r).relative_to("/tmp").parts[0] for r in _python_roots() if r.startswith("/tmp/")}
    assert set(seen["tmp"]) - mounts <= {"mpl"}
    assert seen["box"] == ["m.py"]
    assert seen["shm"] == []
    assert not any(MARK in cmd or "sleep" in cmd for cmd in seen["procs"]), seen["procs"]


def test_the_zygote_cannot_be_read_or_traced(slot: Slot) -> None:
    sb = _submit(slot, '''
import os
def peek():
    ppid = os.getppid()
    for what in ("mem", "environ", "maps"):
        try:
            open(f"/proc/{ppid}/{what}", "rb").read(16)
            return f"read {what}"
        except OSError:
            pass
    return "refused"
''')
    try:
        assert _call(sb, "peek") == "refused"
    finally:
        sb.close()


def test_killing_the_zygote_only_costs_a_restart(slot: Slot) -> None:
    sb = _submit(slot, "import os, signal\ndef kill():\n    os.kill(os.getppid(), signal.SIGKILL)\n    return 1\n")
    try:
        _call(sb, "kill", timeout=10)
    except (SandboxError, StudentError):
        pass
    sb.close()
    starts = slot.starts
    sb = _submit(slot, "def f():\n    return 41 + 1\n")
    assert _call(sb, "f") == 42
    sb.close()
    assert slot.starts == starts + 1


def test_a_hung_submission_is_killed_and_the_slot_goes_on(slot: Slot) -> None:
    sb = _submit(slot, "def spin():\n    while True:\n        pass\n")
    with pytest.raises(SandboxError):
        _call(sb, "spin", timeout=2)
    sb = _submit(slot, "def f():\n    return 'next'\n")
    assert _call(sb, "f") == "next"
    sb.close()


def test_children_do_not_share_random_state(slot: Slot) -> None:
    draws = []
    for _ in range(2):
        sb = _submit(slot, "import numpy as np, torch\ndef r():\n    return [float(np.random.rand()), float(torch.rand(1))]\n")
        draws.append(_call(sb, "r"))
        sb.close()
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]


def test_a_crash_says_how_the_worker_ended(slot: Slot) -> None:
    sb = _submit(slot, "import os, signal\ndef boom():\n    print('about to fail')\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    with pytest.raises(SandboxError, match="SIGSEGV"):
        _call(sb, "boom")
    sb = _submit(slot, "import os\ndef leave():\n    os._exit(3)\n")
    with pytest.raises(SandboxError, match="exit code 3"):
        _call(sb, "leave")


STOPS_ITSELF = '''
import os, signal, threading, time
def stop_soon():
    threading.Thread(target=lambda: (time.sleep(0.2), os.kill(os.getpid(), signal.SIGSTOP))).start()
    return "stopping"
'''


def test_a_worker_that_stops_reading_cannot_block_the_grader(slot: Slot) -> None:
    """A request larger than the pipe to a stopped worker times out instead of blocking forever."""
    sb = _submit(slot, STOPS_ITSELF)
    assert _call(sb, "stop_soon") == "stopping"
    time.sleep(0.5)
    began = time.monotonic()
    with pytest.raises(SandboxError):
        sb.request({"op": "call", "target": {"module": "m", "path": "stop_soon"}, "args": ["x" * 2_000_000],
                    "kwargs": {"__dict__": {}}}, 2.0)
    assert time.monotonic() - began < 10
    sb = _submit(slot, "def f():\n    return 'next'\n")
    assert _call(sb, "f") == "next"
    sb.close()


def test_a_check_can_ask_for_a_fresh_worker(slot: Slot) -> None:
    """Student.fresh_worker restarts a worker that would run out of CPU; its CPU time excludes the zygote's."""
    from grader.checks import Student

    sb = _submit(slot, "import time\ndef burn():\n    end = time.process_time() + 0.5\n    while time.process_time() < end:\n        pass\n    return 1\n")
    student = Student(sb, timeout=30)
    assert student.cpu_seconds() < 1.0  # the zygote's imports (several CPU seconds) are not the worker's
    assert student.call("m", "burn") == 1
    used = student.cpu_seconds()
    assert used >= 0.4
    assert student.fresh_worker(cpu_needed=1.0) is False  # plenty left of the 300 s limit
    assert student.fresh_worker(cpu_needed=10_000.0) is True
    assert student.cpu_seconds() < used  # a new worker, with its own count
    assert student.call("m", "burn") == 1  # the module is imported again on use
    sb.close()
