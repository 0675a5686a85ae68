"""Put this process into a sandbox's process cgroup and resource limits, then exec the sandbox command.

Usage (by grader/sandbox.py only): python -S -I launch.py '<json spec>' command...

The grader starts sandboxes from several threads at once. Running Python code between fork and
exec (subprocess's preexec_fn) is unsafe there: the child is a copy of a multithreaded process and
can block forever on a lock some other thread held at the moment of the fork, leaving the grader
waiting on it. So the limits are applied here instead, by a fresh single-threaded interpreter that
imports nothing but the standard library's json and resource modules, right before it becomes the
sandbox. The limits carry over exec into bubblewrap and from there into the worker.
"""
import json
import os
import resource
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    command = sys.argv[2:]
    if spec.get("cgroup_procs"):
        try:
            with open(spec["cgroup_procs"], "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass  # no cgroup then: RLIMIT_NPROC still caps processes for non-root users
    for name, value in spec.get("limits", []):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"cannot start the sandbox ({command[0]}): {exc}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()
