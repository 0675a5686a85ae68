"""Runs INSIDE the sandbox as a job slot's fork server (the "zygote"); never runs student code itself.

Started by grader/forkserver.py under bubblewrap with the same isolation as a plain worker. It
imports the heavy libraries once, while no student code exists, then for each submission:
  fork  -> the child takes the three pipes the grader sent (SCM_RIGHTS) as stdin/stdout/stderr and
           becomes an ordinary worker (worker.main) for that submission's box;
  reap  -> the zygote SIGKILLs every process of the sandbox except itself and the namespace's init
           (kill(-1)), waits until none is left, empties /tmp, /dev/shm and the box, removes every
           SysV shared memory segment, message queue and semaphore set and every POSIX message queue
           of the sandbox's IPC namespace, empties the user, user-session and persistent keyrings and
           takes a new session keyring, so nothing of one submission survives into the next.
The zygote is made non-dumpable, so a child (same uid) cannot ptrace it or read its memory. A child
can still signal it (the grader then restarts the slot) or change what children inherit from it
(resource limits, niceness, CPU affinity, scheduling, I/O priority): the zygote compares these with
the values it had before any child existed after every reap and before every fork, and reports a
difference instead of forking, so the grader restarts the slot; no later submission inherits them.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import random
import shutil
import signal
import socket
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
CONTROL_FD = 3
BOX, SLOT = "/box", "/.slot"  # the box (a size-capped tmpfs) and the read-only view of this submission's files
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
PRELOAD = ("numpy", "scipy.stats", "matplotlib.pyplot", "torch", "torchvision", "PIL.Image", "loss_landscapes",
           "nbformat", "IPython.core.inputtransformer2")  # default; an assignment's rubric may name its own
NOTEBOOK_READERS = ("nbformat", "IPython.core.inputtransformer2")  # how the worker reads notebooks: always
MACHINE = os.uname().machine
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(MACHINE)
SYS_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}.get(MACHINE)
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEYCTL_READ, KEYCTL_GET_PERSISTENT = 1, 7, 11, 22
KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -2, -4, -5
IPC_RMID = 0
MQUEUE = "/dev/mqueue"
MINIMAL_NOTEBOOK = ('{"cells": [{"cell_type": "code", "execution_count": null, "id": "c0", "metadata": {}, '
                    '"outputs": [], "source": ["x = 1"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')


_LIBC = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> int:
    try:
        return _LIBC.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        return -1


def _keyctl(op: int, *args: int | None) -> int:
    if SYS_KEYCTL is None:
        return -1
    return _LIBC.syscall(SYS_KEYCTL, op, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])


# -- what a child inherits from the zygote, and must not be changed by an earlier child ---------------
def _inherited() -> dict[str, object]:
    """The zygote's resource limits, scheduling and priorities: what every forked worker inherits.

    A worker runs as the zygote's user, so it can lower these on its parent (prlimit on getppid(),
    setpriority, sched_setaffinity, ioprio_set); the zygote reads them back instead of trusting them."""
    import resource

    state: dict[str, object] = {}
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        try:
            state[name] = list(resource.getrlimit(getattr(resource, name)))
        except (ValueError, OSError):
            pass
    state["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    state["affinity"] = sorted(os.sched_getaffinity(0))
    state["scheduler"] = [os.sched_getscheduler(0), os.sched_getparam(0).sched_priority]
    if SYS_IOPRIO_GET is not None:
        state["ioprio"] = _LIBC.syscall(SYS_IOPRIO_GET, 1, 0)  # IOPRIO_WHO_PROCESS, this process
    state["timerslack"] = _prctl(30, 0)  # PR_GET_TIMERSLACK
    try:
        with open("/proc/self/oom_score_adj") as fh:
            state["oom_score_adj"] = int(fh.read())
    except (OSError, ValueError):
        pass
    return state


def _changed(baseline: dict[str, object]) -> list[str]:
    now = _inherited()
    return [f"{key}: {baseline.get(key)} -> {now.get(key)}" for key in sorted(set(baseline) | set(now))
            if baseline.get(key) != now.get(key)]


# -- IPC objects and keys: they outlive the processes that made them --------------------------------
def _sysv_ids(kind: str) -> list[int]:
    """Ids of this IPC namespace's SysV objects (kind: shm, msg, sem); column 2 of /proc/sysvipc/<kind>."""
    try:
        with open(f"/proc/sysvipc/{kind}") as fh:
            rows = fh.read().splitlines()[1:]
    except OSError:
        return []
    return [int(row.split()[1]) for row in rows if len(row.split()) > 1]


def _ipc_left() -> list[str]:
    left = [f"sysv {kind} {ident}" for kind in ("shm", "msg", "sem") for ident in _sysv_ids(kind)]
    try:
        left += [f"mqueue {name}" for name in os.listdir(MQUEUE)]
    except OSError:
        pass
    return left


def _clean_ipc() -> None:
    """Remove every SysV segment, queue and semaphore set and every POSIX queue of the sandbox."""
    for ident in _sysv_ids("shm"):
        _LIBC.shmctl(ident, IPC_RMID, None)  # destroyed once detached: every process is dead by now
    for ident in _sysv_ids("msg"):
        _LIBC.msgctl(ident, IPC_RMID, None)
    for ident in _sysv_ids("sem"):
        _LIBC.semctl(ident, 0, IPC_RMID)
    try:
        for name in os.listdir(MQUEUE):
            try:
                os.unlink(os.path.join(MQUEUE, name))
            except OSError:
                pass
    except OSError:
        pass


def _keys_left() -> int:
    """How many keys the user and user-session keyrings still hold."""
    left = 0
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        size = _keyctl(KEYCTL_READ, ring, None, 0)
        left += max(0, size) // 4  # a keyring reads as an array of 32-bit key ids
    return left


def _clean_keys() -> None:
    """Empty the keyrings every process of this user here shares, and take a new session keyring."""
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        _keyctl(KEYCTL_CLEAR, ring)
    persistent = _keyctl(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_PROCESS_KEYRING)
    if persistent > 0:
        _keyctl(KEYCTL_CLEAR, persistent)
    _keyctl(KEYCTL_JOIN_SESSION_KEYRING, None)  # a child may have swapped ours (KEYCTL_SESSION_TO_PARENT)


def _preload(names: tuple[str, ...] = PRELOAD) -> list[str]:
    import importlib

    if any(name.split(".")[0] == "matplotlib" for name in names):
        import matplotlib

        matplotlib.use("Agg")
    loaded = []
    for name in tuple(dict.fromkeys(tuple(names) + NOTEBOOK_READERS)):
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a missing optional library is imported later by the child
            pass
    import notebook  # noqa: F401 - the worker's own modules, so children start at once
    import protocol  # noqa: F401
    import worker  # noqa: F401

    if "matplotlib.pyplot" in loaded:
        _warm_matplotlib()
    _warm_notebooks()
    return loaded


def _warm_notebooks() -> None:
    """Read and translate one tiny notebook, so children inherit nbformat's compiled schema validator."""
    import notebook

    try:
        with open("/tmp/.warm.ipynb", "w") as fh:
            fh.write(MINIMAL_NOTEBOOK)
        nb = notebook.read("/tmp/.warm.ipynb")
        for _, source in notebook.code_cells(nb):
            notebook.to_python("%matplotlib inline\n" + source)
    except Exception:  # noqa: BLE001 - warming up is an optimisation only
        pass
    finally:
        try:
            os.unlink("/tmp/.warm.ipynb")
        except OSError:
            pass


def _warm_matplotlib() -> None:
    """Draw one throw-away figure, so that every child inherits loaded fonts and text layout caches.

    A fresh process pays this on its first draw (about a quarter of a second here); the grader
    draws every student figure to send its pixels, so without this each submission would pay it.
    Only caches are warmed: the figure is closed, rcParams are untouched, and no student code exists yet.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        x = np.linspace(0.0, 1.0, 16)
        axes[0].plot(x, x ** 2, label="$t_i$ curve")
        axes[0].scatter(x, x, label="samples")
        axes[0].set(title="title", xlabel="x label", ylabel="y label")
        axes[0].legend()
        axes[1].imshow(np.zeros((4, 4)))
        axes[1].set_title("image")
        fig.suptitle("warm-up")
        fig.tight_layout()
        fig.canvas.draw()
    except Exception:  # noqa: BLE001 - warming up is an optimisation only
        pass
    finally:
        plt.close("all")


def _child(fds: list[int], ctl: socket.socket, modules: dict[str, str]) -> None:
    try:
        ctl.close()
        _keyctl(KEYCTL_JOIN_SESSION_KEYRING, None)  # keys this worker adds die with it
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.closerange(3, 1024)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        _fill_box()
        os.chdir(BOX)
        gc.enable()  # for the submission's own objects; the zygote's stay frozen
        seed = int.from_bytes(os.urandom(4), "little")  # a fresh process would not share the zygote's state
        random.seed(seed)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(seed)
        if "torch" in sys.modules:
            sys.modules["torch"].manual_seed(seed)
        import worker

        worker.main(modules)
    except BaseException:  # noqa: BLE001 - the worker could not start: say why on its stderr (the grader reads it)
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(70)
    finally:
        os._exit(0)


def _fill_box() -> None:
    """Copy the submission's files from the slot's read-only view into the empty box tmpfs."""
    if not os.path.isdir(SLOT):
        return  # old bubblewrap: the slot folder itself is the box
    for root, dirs, files in os.walk(SLOT):
        rel = os.path.relpath(root, SLOT)
        target = os.path.normpath(os.path.join(BOX, rel))
        os.makedirs(target, exist_ok=True)
        for name in files:
            src = os.path.join(root, name)
            if os.path.islink(src) or not os.path.isfile(src):
                continue
            shutil.copyfile(src, os.path.join(target, name))
            os.chmod(os.path.join(target, name), 0o444)


def _empty(folder: str) -> None:
    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if os.path.ismount(path) or any(os.path.ismount(m) for m in _mounts_below(path)):
            continue  # a read-only mount (a Python installation under /tmp): not the submission's
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                for sub, _, _ in os.walk(path):
                    os.chmod(sub, 0o700)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def _mounts_below(path: str) -> list[str]:
    """Mount points inside `path`, from /proc/self/mountinfo (field 5 is the mount point)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            points = [line.split()[4] for line in fh]
    except OSError:
        return []
    return [m for m in points if m.startswith(path.rstrip("/") + "/")]


def _reap(me: int) -> int:
    """Kill everything in this sandbox but the zygote and init, then remove what a submission leaves
    behind (files, IPC objects, keys); return how many processes and objects were left."""
    left = 0
    for _ in range(200):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        others = [p for p in others if _alive(p)]
        left = len(others)
        if not left:
            break
        time.sleep(0.01)
    for folder in ("/tmp", "/dev/shm") + ((BOX,) if os.path.isdir(SLOT) else ()):
        _empty(folder)
    os.makedirs("/tmp/mpl", exist_ok=True)
    _clean_ipc()
    _clean_keys()
    return left + len(_ipc_left()) + _keys_left()


def _others(me: int) -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me) and _alive(p)]


def _status(pid: int) -> dict:
    for _ in range(200):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return {}
        if done:
            if os.WIFSIGNALED(status):
                return {"signal": os.WTERMSIG(status)}
            return {"code": os.WEXITSTATUS(status)}
        time.sleep(0.01)
    return {"running": True}


def _alive(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main() -> None:
    if os.getpid() > 3:  # kill(-1) below is only safe inside the sandbox's own pid namespace
        sys.exit("zygote: refusing to run outside a pid namespace")
    _prctl(PR_SET_DUMPABLE, 0)
    sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE; keep boxes free of __pycache__
    ctl = socket.socket(fileno=int(sys.argv[1]) if len(sys.argv) > 1 else CONTROL_FD)
    # Python's documented recipe for fork without exec: no collections while preloading, then move
    # every preloaded object out of the collector's reach. Otherwise each child's first full
    # collection writes into the header of every numpy/torch/matplotlib object it inherited, which
    # copies the zygote's whole heap page by page (about 0.3 s and 100+ MB per submission).
    gc.disable()
    loaded = _preload(tuple(json.loads(sys.argv[2])) if len(sys.argv) > 2 else PRELOAD)
    gc.freeze()
    me = os.getpid()
    baseline = _inherited()  # before any child exists: nothing but the grader's launcher set these
    ctl.send(json.dumps({"op": "ready", "preloaded": loaded, "inherited": baseline}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 3)
        except OSError:
            return
        if not data:
            return
        msg = json.loads(data)
        if msg.get("op") == "fork" and len(fds) == 3:
            left = _reap(me) if _others(me) else 0  # normally reaped already; never fork beside a live worker
            changed = _changed(baseline)
            if left or changed:
                for fd in fds:
                    os.close(fd)
                ctl.send(json.dumps({"op": "tampered", "left": left, "changed": changed}).encode())
                continue
            pid = os.fork()
            if pid == 0:
                _child(fds, ctl, msg.get("modules", {}))
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"op": "forked", "pid": pid}).encode())
        elif msg.get("op") == "status":  # how did the child end? (waits up to 2 s for it to exit)
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"op": "status", **_status(int(msg.get("pid", 0)))}).encode())
        elif msg.get("op") == "reap":
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"op": "clean", "left": _reap(me), "changed": _changed(baseline)}).encode())
        else:
            for fd in fds:
                os.close(fd)
            ctl.send(json.dumps({"op": "error", "message": "unknown request"}).encode())


if __name__ == "__main__":
    main()
