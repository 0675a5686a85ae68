"""Put this process into a sandbox's process cgroup and resource limits, then exec the sandbox command.

Usage (by grader/sandbox.py only): python -S -I launch.py '<json spec>' command...

The grader starts sandboxes from several threads at once. Running Python code between fork and
exec (subprocess's preexec_fn) is unsafe there: the child is a copy of a multithreaded process and
can block forever on a lock some other thread held at the moment of the fork, leaving the grader
waiting on it. So the limits are applied here instead, by a fresh single-threaded interpreter that
imports nothing but the standard library's json, resource and ctypes modules, right before it becomes
the sandbox. The limits carry over exec into bubblewrap and from there into the worker, and so does a
new, empty session keyring in place of the grader's.
"""
import json
import os
import resource
import sys

KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}


def _new_session_keyring() -> None:
    """Leave the grader's session keyring for a new, empty, anonymous one: the sandbox must neither
    see the grading user's keys nor leave keys where a later sandbox would find them."""
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None)
    except (OSError, AttributeError):
        pass


def _memfd(data: bytes) -> int:
    """An inheritable file holding `data` from its start (bubblewrap reads its seccomp program from a fd)."""
    fd = os.memfd_create("seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def main() -> None:
    spec = json.loads(sys.argv[1])
    command = sys.argv[2:]
    procs = spec.get("cgroup_procs") or []
    for path in [procs] if isinstance(procs, str) else procs:
        try:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass  # no cgroup then: RLIMIT_NPROC still caps processes for non-root users
    _new_session_keyring()
    for name, value in spec.get("limits", []):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    if spec.get("seccomp") and os.path.basename(command[0]) == "bwrap":
        command = command[:1] + ["--seccomp", str(_memfd(bytes.fromhex(spec["seccomp"])))] + command[1:]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"cannot start the sandbox ({command[0]}): {exc}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()
