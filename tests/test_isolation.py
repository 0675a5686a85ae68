"""One submission cannot reach the next one of its job, and a grader fault is never charged to students.

The first tests drive a real Slot (bubblewrap + fork server) through an attacking submission and then
an honest one, the way one job of `grade` does, and check what the second one inherits or can see:
the fork server's resource limits and scheduling, SysV and POSIX IPC objects, keys. The last ones
break the sandbox itself (a .venv reached through a symbolic link, a missing bubblewrap) and check
that the batch stops with a reason instead of writing zeros, and that nothing of it is reused.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.forkserver import ForkedSandbox, Slot
from grader.sandbox import Limits, SandboxError, StudentError, detect_mode
from grader.spec import ROOT

BWRAP = detect_mode() == "bwrap"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="the fork server runs only under bubblewrap")
LIGHT = ("numpy",)  # these slots need no torch: they start in a fraction of a second


def _call(sb: ForkedSandbox, fn: str, *args, timeout: float = 30.0):
    return sb.request({"op": "call", "target": {"module": "m", "path": fn}, "args": list(args), "kwargs": {"__dict__": {}}},
                      timeout)


def _submit(slot: Slot, source: str) -> ForkedSandbox:
    box = slot.clear_box()
    (box / "m.py").write_text(source)
    sb = ForkedSandbox(slot, {"m": "m.py"}, slot.limits)
    sb.start()
    return sb


def _run(slot: Slot, source: str, fn: str, *args):
    sb = _submit(slot, source)
    try:
        return _call(sb, fn, *args)
    finally:
        sb.close()


@pytest.fixture()
def slot():
    s = Slot(preload=LIGHT)
    s.start()
    yield s
    s.close()


# -- 1. a worker changing what the next worker inherits from the fork server ---------------------------
INHERITED = '''
import os, resource
def look():
    return {"cpu": list(resource.getrlimit(resource.RLIMIT_CPU)), "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "data": list(resource.getrlimit(resource.RLIMIT_DATA)), "fsize": list(resource.getrlimit(resource.RLIMIT_FSIZE)),
            "nice": os.getpriority(os.PRIO_PROCESS, 0), "affinity": sorted(os.sched_getaffinity(0)),
            "scheduler": os.sched_getscheduler(0)}
'''

LOWERS_ITS_PARENT = '''
import os, resource
def lower():
    done, parent = [], os.getppid()
    for name, value in (("RLIMIT_CPU", 5), ("RLIMIT_NOFILE", 40), ("RLIMIT_DATA", 300 << 20), ("RLIMIT_FSIZE", 4096)):
        try:
            resource.prlimit(parent, getattr(resource, name), (value, value))
            done.append(name)
        except (OSError, ValueError) as exc:
            pass
    for what, act in (("nice", lambda: os.setpriority(os.PRIO_PROCESS, parent, 19)),
                      ("affinity", lambda: os.sched_setaffinity(parent, {min(os.sched_getaffinity(0))})),
                      ("scheduler", lambda: os.sched_setscheduler(parent, os.SCHED_IDLE, os.sched_param(0)))):
        try:
            act()
            done.append(what)
        except OSError:
            pass
    return done
'''


@needs_bwrap
def test_a_worker_cannot_change_what_the_next_one_inherits(slot: Slot) -> None:
    """prlimit/setpriority/sched_setaffinity on the fork server: the next submission still gets the job's limits."""
    before = _run(slot, INHERITED, "look")
    done = _run(slot, LOWERS_ITS_PARENT, "lower")
    assert "RLIMIT_CPU" in done, done  # the attack itself works: the kernel lets a child lower its parent's limits
    after = _run(slot, INHERITED, "look")
    assert after == before, f"the attack ({done}) reached the next submission"
    assert slot.tampered, "the fork server's changed limits went unnoticed"


@needs_bwrap
def test_honest_submissions_never_restart_the_fork_server() -> None:
    """The checks cost nothing to an honest job: torch, numpy and matplotlib work leave the fork server as it was."""
    s = Slot()  # the default preload list (torch and all)
    try:
        s.start()
        work = ("import numpy as np, torch, matplotlib.pyplot as plt\n"
                "def f():\n    torch.set_num_threads(1)\n    plt.plot(np.arange(3)); plt.savefig('/tmp/x.png')\n"
                "    return float(torch.ones(64, 64).matmul(torch.ones(64, 64)).sum())\n")
        for _ in range(3):
            assert _run(s, work, "f") == 64.0 ** 3
        assert s.starts == 1 and s.tampered == []
    finally:
        s.close()


@needs_bwrap
def test_a_worker_lowering_its_parent_mid_submission_does_not_reach_its_next_worker(slot: Slot) -> None:
    """A restart inside one submission (timeout, crash, fresh_worker) forks from a verified fork server too."""
    sb = _submit(slot, LOWERS_ITS_PARENT + INHERITED)
    before = _call(sb, "look")
    _call(sb, "lower")
    sb.close()
    sb = ForkedSandbox(slot, {"m": "m.py"}, slot.limits)  # same box: the same submission's next worker
    sb.start()
    try:
        assert _call(sb, "look") == before
    finally:
        sb.close()


# -- 2. IPC objects and keys outliving the submission that made them -----------------------------------
LEAVES_IPC = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
KEYCTL_GET_PERSISTENT = 22
def _syscall(n, *args):
    return libc.syscall(n, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
def leave():
    made = []
    shm = libc.shmget(0x5eed, 1 << 20, 0o1000 | 0o666)
    if shm >= 0:
        libc.shmat.restype = ctypes.c_void_p
        addr = libc.shmat(shm, None, 0)
        ctypes.memmove(addr, b"secret of A", 11)
        libc.shmdt(ctypes.c_void_p(addr))
        made.append("shm")
    if libc.msgget(0x5eed, 0o1000 | 0o666) >= 0:
        made.append("msg")
    if libc.semget(0x5eed, 1, 0o1000 | 0o666) >= 0:
        made.append("sem")
    libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    if libc.mq_open(b"/leftover", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0:
        made.append("mqueue")
    if os.uname().machine == "x86_64":
        for ring, name in ((-4, b"user"), (-3, b"session"), (-5, b"usersession")):
            if _syscall(248, b"user", b"left-by-A-" + name, b"secret of A", 11, ring) > 0:  # add_key
                made.append("key " + name.decode())
        persistent = _syscall(250, KEYCTL_GET_PERSISTENT, -1, -2)
        if persistent > 0 and _syscall(248, b"user", b"left-by-A-persistent", b"secret of A", 11, persistent) > 0:
            made.append("key persistent")
    return made
'''

LOOKS_FOR_IPC = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def _syscall(n, *args):
    return libc.syscall(n, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
def look():
    seen = []
    for kind in ("shm", "msg", "sem"):
        try:
            rows = open(f"/proc/sysvipc/{kind}").read().splitlines()[1:]
        except OSError:
            rows = []
        seen += [f"sysv {kind}" for _ in rows]
    if libc.shmget(0x5eed, 0, 0) >= 0:
        seen.append("shmget by key")
    if libc.msgget(0x5eed, 0) >= 0:
        seen.append("msgget by key")
    libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.mq_open(b"/leftover", os.O_RDONLY) >= 0:
        seen.append("mqueue")
    try:
        seen += ["/proc/keys: " + line for line in open("/proc/keys").read().splitlines() if "left-by-A" in line]
    except OSError:
        pass
    if os.uname().machine == "x86_64":
        for ring in (-4, -3, -5):
            for name in (b"user", b"session", b"usersession", b"persistent"):
                if _syscall(250, 10, ring, b"user", b"left-by-A-" + name, 0) > 0:  # KEYCTL_SEARCH
                    seen.append(f"key {name.decode()} in ring {ring}")
        persistent = _syscall(250, 22, -1, -2)
        if persistent > 0 and _syscall(250, 10, persistent, b"user", b"left-by-A-persistent", 0) > 0:
            seen.append("key in the persistent keyring")
    return seen
'''


@needs_bwrap
def test_ipc_objects_and_keys_do_not_survive_into_the_next_submission(slot: Slot) -> None:
    made = _run(slot, LEAVES_IPC, "leave")
    assert {"shm", "msg", "sem", "mqueue"} <= set(made), made  # the attack made its objects
    seen = _run(slot, LOOKS_FOR_IPC, "look")
    assert seen == [], f"made {made}; the next submission saw {seen}"


@needs_bwrap
def test_the_grader_keys_are_not_the_sandboxes(tmp_path: Path) -> None:
    """The sandbox starts with a new session keyring: a key of the grading user's session is not reachable."""
    if os.uname().machine != "x86_64":
        pytest.skip("the probe calls keyctl by its x86_64 number")
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    key = libc.syscall(248, b"user", b"grader-session-secret", b"s3cret", ctypes.c_long(6), ctypes.c_long(-3))
    if key <= 0:
        pytest.skip("no session keyring here")
    s = Slot(preload=LIGHT)
    try:
        s.start()
        seen = _run(s, LOOKS_FOR_IPC.replace("left-by-A", "grader-session-secret"), "look")
    finally:
        s.close()
        libc.syscall(250, ctypes.c_long(21), ctypes.c_long(key))  # KEYCTL_INVALIDATE
    assert not any("key" in x for x in seen), seen


SHM_BOMB = r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def bomb(mb):
    shm = libc.shmget(0, ctypes.c_size_t(mb << 20), 0o1000 | 0o600)
    if shm < 0:
        return "refused"
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shm, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return "refused"
    ctypes.memset(addr, 1, mb << 20)  # every page touched: real memory, outside RLIMIT_DATA
    return "filled"
'''


@needs_bwrap
def test_shared_memory_is_counted_against_the_sandbox() -> None:
    """SysV shared memory is no private mapping (RLIMIT_DATA ignores it); the sandbox's memory cgroup counts it."""
    from grader.sandbox import PidsCgroup

    probe = PidsCgroup(8, memory_mb=64)
    has_memory_cgroup = probe.memory_path is not None or (probe.path is not None and (probe.path / "memory.max").exists())
    probe.kill_all()
    if not has_memory_cgroup:
        pytest.skip("no memory cgroup can be made on this machine")
    s = Slot(Limits(sandbox_memory_mb=700), preload=LIGHT)
    try:
        s.start()
        sb = _submit(s, SHM_BOMB)
        try:
            result = _call(sb, "bomb", 1024)
        except (SandboxError, StudentError) as exc:
            result = f"stopped: {exc}"
        sb.close()
        assert result != "filled"
        assert _run(s, "def f():\n    return 42\n", "f") == 42  # the job goes on
    finally:
        s.close()


# -- 3. a grader fault is the grader's: the batch stops, nothing is charged or cached ------------------
SELF_TEST = '''
import sys
from grader.forkserver import Slot, self_test
from grader.sandbox import Limits
mode = sys.argv[1]
slot = Slot(preload=("numpy",)) if mode == "fork" else None
try:
    self_test("bwrap", Limits(), 1, None, slot)
    print("SELF-TEST OK")
finally:
    if slot is not None:
        slot.close()
'''


@needs_bwrap
@pytest.mark.parametrize("mode", ["plain", "fork"])
def test_a_venv_reached_through_a_symbolic_link_still_starts_the_sandbox(tmp_path: Path, mode: str) -> None:
    venv = Path(sys.prefix)
    link = tmp_path / "linked-venv"
    link.symlink_to(venv, target_is_directory=True)
    python = link / "bin" / Path(sys.executable).name
    proc = subprocess.run([str(python), "-c", SELF_TEST, mode], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "SELF-TEST OK" in proc.stdout, proc.stderr[-2000:]


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


def _raysampling_only(folder: Path, sid: str) -> Path:
    path = folder / f"Assignment2_{sid}_Test_Student.zip"
    _zip(path, {"Raysampling.py": (ROOT / "solutions" / "comp4423_a2" / "Raysampling.py").read_text()})
    return path


def test_a_sandbox_that_cannot_start_stops_the_batch(tmp_path: Path) -> None:
    """A bubblewrap that cannot make namespaces here: exit code 3 with its reason, no zeros written."""
    subs, out, fake = tmp_path / "subs", tmp_path / "out", tmp_path / "bin"
    subs.mkdir()
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    _raysampling_only(subs, "74000001a")
    _raysampling_only(subs, "74000002a")
    env = dict(os.environ, GRADER_SANDBOX="bwrap", PATH=f"{fake}:{os.environ.get('PATH', '')}", TMPDIR=str(tmp_path))
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out), "--jobs", "1",
           "--no-calibrate"]
    for fork_server in ("--fork-server", "--no-fork-server"):
        proc = subprocess.run(cmd + [fork_server], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 3, (proc.returncode, proc.stderr[-2000:])
        assert "self-test" in proc.stderr and "No permissions to create a new namespace" in proc.stderr, proc.stderr[-2000:]
        assert not (out / "gradebook.csv").exists()
        assert list((out / "results").glob("*.json")) == [], "a student was charged for the grader's fault"


def test_a_fault_of_the_grader_is_never_reused() -> None:
    from types import SimpleNamespace

    from grader import batch

    sub = SimpleNamespace(sha256="abc", zip_path=Path("A.zip"))
    ctx = SimpleNamespace(mode="bwrap", item_keys={"4.1": "k1", "4.2": "k2"})
    opts = SimpleNamespace(force=False, only=frozenset())
    prov = {"sha256": "abc", "zip": "A.zip", "sandbox": "bwrap", "item_keys": {"4.1": "k1", "4.2": "k2"}}
    fine = {"status": "ok", "intake_status": "ok", "provenance": prov, "outcomes": []}
    assert batch._reusable(fine, sub, ctx, opts)[0] == {"4.1", "4.2"}
    faulty = {**fine, "status": "grader_error", "intake_status": "grader_error"}
    assert batch._reusable(faulty, sub, ctx, opts) == (set(), {})
    one_item = {**fine, "outcomes": [{"item": "4.2", "status": "grader_error"}]}
    assert batch._reusable(one_item, sub, ctx, opts)[0] == {"4.1"}


@needs_bwrap
def test_a_fork_server_that_cannot_restart_mid_batch_stops_the_batch(tmp_path: Path, monkeypatch) -> None:
    """The second submission kills its fork server; the restart fails: the batch stops, the first keeps its result."""
    from grader import batch, spec
    from grader.forkserver import Slot as RealSlot

    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    _raysampling_only(subs, "74000011a")
    killer = (ROOT / "solutions" / "comp4423_a2" / "Raysampling.py").read_text() + "\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    _zip(subs / "Assignment2_74000012a_Test_Student.zip", {"Raysampling.py": killer})
    starts = []
    real_start = RealSlot.start

    def start_once(self):
        starts.append(1)
        if len(starts) > 1:
            from grader.sandbox import SandboxUnavailable

            raise SandboxUnavailable("the fork server could not start (simulated)")
        real_start(self)

    monkeypatch.setattr(RealSlot, "start", start_once)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    a = spec.load("comp4423_a2")
    opts = batch.Options(out=out, jobs=1, timeout_scale=0.5, progress=False, calibrate=False)
    with pytest.raises(batch.GraderFault, match="simulated"):
        batch.grade_folder(a, subs, opts, log=lambda m: None)
    results = sorted(p.name for p in (out / "results").glob("*.json"))
    assert results == ["74000011a.json"]
    first = json.loads((out / "results" / "74000011a.json").read_text())["extra_data"]
    assert first["status"] in ("ok", "partial") and first["items"]["4.1"] == 12.0  # partial: Raysampling only


# -- 5. the fork server imports what the assignment needs -------------------------------------------
@needs_bwrap
def test_the_fork_server_imports_only_what_the_assignment_names(slot: Slot) -> None:
    assert "numpy" in slot.preloaded and "torch" not in slot.preloaded
    probe = "import sys\ndef f():\n    before = 'scipy.stats' in sys.modules\n    import scipy.stats\n    return [before, float(scipy.stats.norm.cdf(0.0))]\n"
    assert _run(slot, probe, "f") == [False, 0.5]  # anything else is imported by the worker when used


def test_the_rubric_names_the_preload_list(tmp_path: Path) -> None:
    from grader import spec

    assert spec.load("cs188_hw4").preload is not None and "torch" in spec.load("cs188_hw4").preload
    assert spec.load("comp4423_a2").preload is None  # the grader's default list
    folder = tmp_path / "hw"
    (folder / "hidden").mkdir(parents=True)
    rubric = (ROOT / "solutions" / "comp4423_a2" / "rubric.toml").read_text().replace('id = "comp4423_a2"', 'id = "hw"')
    (folder / "rubric.toml").write_text(rubric.replace("[assignment]\n", "[assignment]\npreload = \"numpy\"\n", 1))
    with pytest.raises(ValueError, match="preload"):
        spec.load(str(folder))


# -- 4. two zips of one student -----------------------------------------------------------------------
def test_the_latest_zip_of_a_student_is_graded_and_keeps_the_id(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from grader import batch, intake, spec

    a = spec.load("comp4423_a2")
    early, late = tmp_path / "Assignment2_75000001a_Ann_Lee_First.zip", tmp_path / "Assignment2_75000001a_Ann_Lee.zip"
    for p in (early, late):
        _zip(p, {"x.py": "x = 1\n"})
    # by name, the later zip sorts first; by file time it is the latest
    os.utime(early, (1_700_000_000, 1_700_000_000))
    os.utime(late, (1_700_000_500, 1_700_000_500))
    subs = [intake.identify(p, a) for p in sorted([early, late])]
    assert [s.student_id for s in subs] == ["75000001a", "75000001a"]
    kept = batch._dedupe_ids(subs, None, log=lambda m: None)
    assert [s.zip_path.name for s in kept] == [late.name]
    assert kept[0].student_id == "75000001a"
    assert early.name in " ".join(kept[0].notes)
    # submission times, when known for both, win over file times
    times = {early.name: datetime(2023, 3, 30, tzinfo=timezone.utc), late.name: datetime(2023, 3, 29, tzinfo=timezone.utc)}
    subs = [intake.identify(p, a) for p in sorted([early, late])]
    kept = batch._dedupe_ids(subs, times, log=lambda m: None)
    assert [s.zip_path.name for s in kept] == [early.name]
