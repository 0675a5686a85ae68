"""Job slots with a fork server: pay the interpreter and torch imports once per slot, not per submission.

A `Slot` is one bubblewrap sandbox (exactly the isolation of `Sandbox`) whose process is the zygote
(grader/zygote.py). The zygote imports numpy, torch, torchvision and matplotlib before any student code
exists. For each submission the grader empties the slot's box, unpacks the submission into it and asks
the zygote to fork; the child becomes that submission's worker. When the submission is done (or times
out) the zygote kills every other process in the sandbox and empties /tmp, so nothing carries over to
the next submission; if it cannot (it died, hangs, or processes survive), the whole slot is killed and
started afresh; and so it is when a worker changed what children inherit from the zygote (limits,
niceness, affinity), which the zygote checks after every reap and before every fork. One slot serves one
submission at a time (one slot per job).

A slot that cannot start (twice in a row), or a fork server that fails to fork twice in a row, is the
grading machine's fault, not a student's: it raises SandboxUnavailable, which stops the batch.

Only in bwrap mode: the zygote's clean-up relies on the sandbox's own pid namespace.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

SLOT_MOUNT = "/.slot"  # read-only view of the slot folder; the child copies it into its box

from .sandbox import (BOX_MOUNT, CODE_MOUNT, Limits, PidsCgroup, Sandbox, SandboxCrashed, SandboxError,
                      SandboxUnavailable, StudentError, _tree_cpu_seconds, _tree_peak_mb, process_tree, scratch_dir)


class Slot:
    """One long-lived sandbox running the zygote, reused for submission after submission."""

    def __init__(self, limits: Limits = Limits(), threads: int = 1, data_dir: Path | None = None,
                 preload: tuple[str, ...] | None = None) -> None:
        self.limits, self.threads, self.data_dir = limits, threads, data_dir
        self.preload = tuple(preload) if preload is not None else None  # None: the zygote's default list
        self._stderr = tempfile.TemporaryFile()  # the zygote's own messages, for the reason when it cannot start
        self.box = scratch_dir("slot").resolve()
        self.box.chmod(0o777)
        self.proc: subprocess.Popen | None = None
        self.ctl: socket.socket | None = None
        self.cgroup: PidsCgroup | None = None
        self.starts = 0
        self.tampered: list[str] = []  # what workers changed on the zygote (each time, the slot was restarted)
        self.inherited: dict[str, Any] = {}  # the zygote's limits and scheduling, as it reported them when ready
        self.preloaded: list[str] = []  # the libraries it imported
        self._pending = False  # launched by start_soon, "ready" not read yet

    def start_soon(self) -> None:
        """Launch the sandbox now and collect its "ready" later, so the zygote's imports overlap the
        grader's own start-up. Launched from the calling thread on purpose: bubblewrap's
        --die-with-parent fires when the thread that started it ends."""
        try:
            self._launch()
            self._pending = True
        except (SandboxError, OSError, ValueError):
            self.kill()

    def _wait_started(self) -> None:
        if self._pending:
            self._pending = False
            try:
                self._await_ready()
            except (SandboxError, OSError, ValueError):
                self.kill()  # fork() starts it again in the foreground and reports what fails

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the sandbox and its fork server; a second failure in a row is the machine's fault."""
        for attempt in (1, 2):
            try:
                self._launch()
                self._await_ready()
                return
            except (SandboxError, OSError, ValueError) as exc:
                self.kill()
                if attempt == 2:
                    raise SandboxUnavailable(f"the fork server could not start: {exc}{self._stderr_tail()}") from None

    def _await_ready(self) -> None:
        reply = self._recv(self.limits.start_timeout * 3)
        if reply.get("op") != "ready":
            self.kill()
            raise SandboxCrashed("the fork server did not start")
        self.inherited = reply.get("inherited", {})
        self.preloaded = list(reply.get("preloaded", []))

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            tail = self._stderr.read()[-600:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f" (it said: {' | '.join(tail.splitlines()[-3:])})" if tail else ""

    def _launch(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        shape = Sandbox(self.box, {}, "bwrap", self.limits, self.threads, data_dir=self.data_dir)
        cmd, raw = [], shape.command()
        while raw:  # drop per-file binds of whatever the box holds now: children copy their files in
            if raw[0] == "--ro-bind" and raw[1].startswith(f"{self.box}/"):
                raw = raw[3:]
                continue
            cmd.append(raw.pop(0))
        cmd = cmd[: cmd.index(f"{CODE_MOUNT}/worker.py")] + [f"{CODE_MOUNT}/zygote.py", str(child.fileno())]
        if self.preload is not None:
            cmd.append(json.dumps(list(self.preload)))
        if any(a == "--tmpfs" and b == BOX_MOUNT for a, b in zip(cmd, cmd[1:])):  # box is a tmpfs: show the slot read-only
            at = cmd.index("--remount-ro")
            cmd[at:at] = ["--ro-bind", str(self.box), SLOT_MOUNT]
        shape.cgroup = self.cgroup = PidsCgroup(self.limits.processes, memory_mb=self.limits.cgroup_memory_mb)
        self._stderr.seek(0)
        self._stderr.truncate()
        self.proc = subprocess.Popen(
            shape.launched(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            cwd=str(self.box), env={"PATH": "/usr/bin:/bin"}, start_new_session=True,
            pass_fds=(child.fileno(),),
        )
        child.close()
        self.ctl = parent
        self.starts += 1

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        if proc is not None:
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            proc.kill()
            proc.wait()
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup = None

    def close(self) -> None:
        self._wait_started()
        self.kill()
        shutil.rmtree(self.box, ignore_errors=True)
        self._stderr.close()

    # -- per submission ----------------------------------------------------------------------------
    def clear_box(self) -> Path:
        """Empty the box (the folder itself stays: it is bind-mounted into the running sandbox)."""
        for entry in self.box.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        return self.box

    def fork(self, module_files: dict[str, str], fds: list[int]) -> int:
        """Fork a worker; a zygote that a child tampered with, or that fails, is replaced by a fresh one.

        Every live student process was killed by the last reap, so a fresh zygote that cannot fork
        either is the machine's fault (SandboxUnavailable)."""
        self._wait_started()
        problem = ""
        for attempt in (1, 2):
            if not self.alive:
                self.kill()
                self.start()
            try:
                socket.send_fds(self.ctl, [json.dumps({"op": "fork", "modules": module_files}).encode()], fds)
                reply = self._recv(30)
            except (OSError, SandboxError, ValueError) as exc:
                reply = {"op": "failed", "why": str(exc)}
            if reply.get("op") == "forked":
                return int(reply["pid"])
            problem = "; ".join(reply.get("changed", [])) or reply.get("why", "") or f"it answered {reply.get('op')!r}"
            self.tampered.append(problem)
            self.kill()  # a fresh sandbox for the next attempt
        raise SandboxUnavailable(f"a fresh fork server could not fork a worker ({problem})")

    def child_status(self, ns_pid: int) -> dict[str, Any]:
        """How a forked worker ended: {"code": n} or {"signal": n}; {} when unknown."""
        if not self.alive or not ns_pid:
            return {}
        try:
            self.ctl.send(json.dumps({"op": "status", "pid": ns_pid}).encode())
            reply = self._recv(5)
        except (OSError, SandboxError, ValueError):
            self.kill()
            return {}
        return reply if reply.get("op") == "status" else {}

    def reap(self) -> None:
        """Kill the submission's processes and empty /tmp; restart the slot when that fails."""
        if not self.alive:
            self.kill()
            return
        try:
            self.ctl.send(json.dumps({"op": "reap"}).encode())
            reply = self._recv(15)
            if reply.get("op") != "clean" or reply.get("left"):
                raise SandboxCrashed("processes or IPC objects survived the clean-up")
            if reply.get("changed"):  # limits or scheduling a child changed on the zygote: inherited by the next
                self.tampered.append("; ".join(reply["changed"]))
                raise SandboxCrashed("a worker changed the fork server's limits or scheduling")
        except (OSError, SandboxError, ValueError):
            self.kill()  # the next fork starts a fresh sandbox

    def _recv(self, timeout: float) -> dict[str, Any]:
        ready, _, _ = select.select([self.ctl], [], [], timeout)
        if not ready:
            raise SandboxCrashed("the fork server did not answer")
        data = self.ctl.recv(1 << 16)
        if not data:
            raise SandboxCrashed("the fork server exited")
        return json.loads(data)


class _Pipes:
    """What Sandbox's request code needs of a process: its three streams, and whether it ended."""

    def __init__(self, stdin: Any, stdout: Any, stderr: Any, pid: int) -> None:
        self.stdin, self.stdout, self.stderr, self.pid = stdin, stdout, stderr, pid
        self.returncode = None
        self.ended = False

    def poll(self) -> int | None:
        return 1 if self.ended else None

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class ForkedSandbox(Sandbox):
    """A submission's worker forked from a slot's zygote; the same requests as a `Sandbox`."""

    def __init__(self, slot: Slot, module_files: dict[str, str], limits: Limits = Limits()) -> None:
        super().__init__(slot.box, module_files, "bwrap", limits, slot.threads, data_dir=slot.data_dir)
        self.slot = slot
        self.ns_pid = 0

    def start(self) -> None:
        files = {m: f"{BOX_MOUNT}/{p}" for m, p in self.module_files.items()}
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        try:
            self.ns_pid = self.slot.fork(files, [r_in, w_out, w_err])
        finally:
            for fd in (r_in, w_out, w_err):
                os.close(fd)
        self.proc = _Pipes(os.fdopen(w_in, "wb"), os.fdopen(r_out, "rb"), os.fdopen(r_err, "rb"),
                           self.slot.proc.pid if self.slot.proc else 0)
        os.set_blocking(r_out, False)
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self._read_reply(0, self.limits.start_timeout)

    def _crashed(self, what: str) -> None:
        if isinstance(self.proc, _Pipes):
            self.proc.ended = True
            status = self.slot.child_status(self.ns_pid)
            if "signal" in status:
                self.proc.returncode = -int(status["signal"])
            elif "code" in status:
                self.proc.returncode = int(status["code"])
        super()._crashed(what)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.ended = True
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.slot.reap()  # stderr closes when the child dies; the drain thread then ends

    def cpu_seconds(self) -> float:
        """CPU time of this submission's worker and its children (not the zygote's own)."""
        return _tree_cpu_seconds(_host_pid(self.slot.proc.pid if self.slot.proc else 0, self.ns_pid))

    def peak_memory_mb(self, reset: bool = True) -> float:
        """Peak resident memory of this submission's worker and its children (not the zygote's pages)."""
        return _tree_peak_mb(_host_pid(self.slot.proc.pid if self.slot.proc else 0, self.ns_pid), reset)


def _host_pid(root: int, ns_pid: int) -> int:
    """The host pid of the process that is `ns_pid` inside the sandbox started as host pid `root`."""
    for pid in process_tree(root):
        if pid == root:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    if len(ids) > 1 and int(ids[-1]) == ns_pid:
                        return pid
        except (OSError, ValueError):
            continue
    return 0


def self_test(mode: str, limits: Limits = Limits(), threads: int = 1, data_dir: Path | None = None,
              slot: Slot | None = None) -> None:
    """Start a worker on an empty box exactly as the batch will (forked from `slot` when given) and
    ping it. Raises SandboxUnavailable with the reason: a sandbox that cannot start is the grading
    machine's fault, and must stop a batch before any student is charged for it."""
    box = slot.clear_box() if slot is not None else scratch_dir("box")
    (box / "selftest_probe.py").write_text("VALUE = 6 * 7\n")  # a submission's file, imported as one would be
    box.chmod(0o777)
    files = {"selftest_probe": "selftest_probe.py"}
    sandbox = ForkedSandbox(slot, files, limits) if slot is not None else Sandbox(box, files, mode, limits, threads,
                                                                                  data_dir=data_dir)
    what = f"{mode} sandbox" + (" with a fork server" if slot is not None else "")
    try:
        sandbox.start()
        value = sandbox.request({"op": "get", "target": {"module": "selftest_probe", "path": "VALUE"}}, limits.start_timeout)
        if value != 42:
            raise SandboxUnavailable(f"the {what} does not answer as a worker should (got {value!r})")
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(f"self-test of the {what} failed: {exc}") from None
    except (SandboxError, StudentError, OSError) as exc:
        raise SandboxUnavailable(f"self-test of the {what} failed: a worker on an empty box could not start ({exc})") from None
    finally:
        sandbox.close()
        if slot is None:
            shutil.rmtree(box, ignore_errors=True)
        else:
            slot.clear_box()
