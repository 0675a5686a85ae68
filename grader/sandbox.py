"""Start and stop an isolated worker process; enforce limits and timeouts; speak the protocol.

Mode "bwrap": bubblewrap with every namespace unshared (no network, own pid space), a read-only
view of the Python installation, the grader's worker code and nothing else but the student's box.
Mode "rlimits": the fallback when bubblewrap is missing; resource limits and a timeout only, and
the student's code can read whatever the grading user can. Both modes always apply rlimits, a
scrubbed environment, a new session and a wall-clock timeout per request.
"""
from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import protocol

GRADER_DIR = Path(__file__).resolve().parent
BOX_MOUNT = "/box"
CODE_MOUNT = "/opt/grader"
DATA_MOUNT = "/data"  # the assignment's public fixture inputs, read-only (never expected outputs)


def gpu_devices(dev: Path = Path("/dev")) -> list[str]:
    """NVIDIA device nodes the sandbox exposes so smoke training can use a GPU: the control nodes, and
    only the GPUs named by this process's CUDA_VISIBLE_DEVICES when it is set (a Ray GPU actor's
    assignment; "" means none), else every GPU of the machine."""
    if os.environ.get("GRADER_NO_GPU") or not (dev / "nvidiactl").exists():
        return []
    nodes = sorted(p for p in dev.glob("nvidia*") if not p.is_dir())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(p) for p in nodes]
    wanted = {v.strip() for v in visible.split(",") if v.strip()}
    if not wanted or not all(v.isdigit() for v in wanted):
        return [] if not wanted else [str(p) for p in nodes]  # UUIDs: the driver resolves them; expose all
    gpus = [p for p in nodes if p.name[len("nvidia"):].isdigit()]
    return [str(p) for p in nodes if p not in gpus] + [str(p) for p in gpus if p.name[len("nvidia"):] in wanted]


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096  # data segment (writable private memory); see Sandbox._limits
    cpu_seconds: int = 300
    file_size_mb: int = 64
    open_files: int = 256
    processes: int = 64
    reply_mb: int = 64
    stderr_kb: int = 64
    start_timeout: float = 30.0
    # bwrap: every writable place is a size-capped tmpfs (/box, /tmp, /dev/shm); "/" and /dev are
    # read-only. tmpfs pages are memory the address-space limit does not see, so they need caps.
    box_mb: int = 256
    tmp_mb: int = 256
    shm_mb: int = 64
    # The whole sandbox (fork server, worker, its children, its tmpfs and SysV shared memory) in one
    # memory cgroup where the machine has one; 0: the writable-memory cap plus the tmpfs caps plus
    # room for the interpreter and the preloaded libraries.
    sandbox_memory_mb: int = 0

    @property
    def cgroup_memory_mb(self) -> int:
        return self.sandbox_memory_mb or (self.memory_mb + self.box_mb + self.tmp_mb + self.shm_mb + 2048)


class SandboxError(Exception):
    """The worker misbehaved (timeout, crash, bad reply); the message is for a TA."""

    status = "crashed"


class SandboxTimeout(SandboxError):
    status = "timeout"


class SandboxCrashed(SandboxError):
    status = "crashed"


class SandboxUnavailable(SandboxError):
    """The grader could not start a sandbox (before any student code ran): a fault of the grading
    machine or its set-up, never the student's. A batch stops on it instead of charging anyone."""

    status = "grader_error"


class StudentError(Exception):
    """Student code raised an exception inside the sandbox."""

    def __init__(self, error: str, message: str, trace: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error, self.message, self.trace = error, message, trace


class PidsCgroup:
    """A cgroup (v1 or v2) capping the number of processes and the memory, when this machine lets us make one.

    RLIMIT_NPROC does not bind processes whose real user is root, so a fork bomb is stopped here;
    the group also lets close() kill every process the student started, daemons included. The
    memory group counts what no rlimit sees: SysV shared memory, tmpfs pages, memfd and pipe
    buffers (RLIMIT_DATA counts only private writable mappings).
    """

    ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")
    MEMORY_ROOTS = ("/sys/fs/cgroup/memory",)  # v1; on v2 the memory controller lives in the same group

    def __init__(self, max_pids: int, create: bool = True, memory_mb: int = 0) -> None:
        self.path: Path | None = None
        self.memory_path: Path | None = None
        name = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        for root in self.ROOTS if create else ():
            base = Path(root)
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            if root == "/sys/fs/cgroup":  # v2: only when the pids controller is delegated here
                control = base / "cgroup.subtree_control"
                if not control.exists() or "pids" not in control.read_text(errors="ignore"):
                    continue
            path = base / "cvgrader" / name
            try:
                path.mkdir(parents=True)
                (path / "pids.max").write_text(str(max_pids))
            except OSError:
                _rmdir(path)
                continue
            self.path = path
            if memory_mb and (path / "memory.max").exists():  # v2 with the memory controller delegated
                try:
                    (path / "memory.max").write_text(str(memory_mb << 20))
                    (path / "memory.swap.max").write_text("0")
                except OSError:
                    pass
            break
        if create and memory_mb and not (self.path and (self.path / "memory.max").exists()):
            for root in self.MEMORY_ROOTS:
                base = Path(root)
                if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                    continue
                path = base / "cvgrader" / name
                try:
                    path.mkdir(parents=True)
                    (path / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
                except OSError:
                    _rmdir(path)
                    continue
                self.memory_path = path
                break

    @property
    def procs_files(self) -> list[str]:
        """The cgroup.procs files a sandbox's first process writes itself into (grader/launch.py)."""
        return [str(p / "cgroup.procs") for p in (self.path, self.memory_path) if p is not None]

    def join(self) -> None:
        for procs in self.procs_files:
            Path(procs).write_text(str(os.getpid()))

    def kill_all(self) -> None:
        for group in (self.path, self.memory_path):
            if group is None:
                continue
            for _ in range(50):
                try:
                    pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.02)
            _rmdir(group)
        self.path = self.memory_path = None


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def detect_mode() -> str:
    """bwrap when it is installed and can create namespaces here, else rlimits."""
    forced = os.environ.get("GRADER_SANDBOX")
    if forced in ("bwrap", "rlimits"):
        return forced
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "rlimits"
    probe = subprocess.run(
        [bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, timeout=20
    )
    return "bwrap" if probe.returncode == 0 else "rlimits"


@functools.lru_cache(maxsize=1)
def _bwrap_help() -> str:
    try:
        out = subprocess.run([shutil.which("bwrap") or "bwrap", "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


def _bwrap_can_size() -> bool:
    """Whether this bubblewrap has --size (0.7+) to cap the size of a tmpfs."""
    return "--size" in _bwrap_help()


@functools.lru_cache(maxsize=1)
def _bwrap_can_disable_userns() -> bool:
    """Whether this bubblewrap (0.8+) can stop the sandbox from creating further user namespaces here."""
    if "--disable-userns" not in _bwrap_help():
        return False
    try:
        probe = subprocess.run([shutil.which("bwrap") or "bwrap", "--unshare-all", "--unshare-user", "--disable-userns",
                                "--ro-bind", "/", "/", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


# Kernel keyrings are not namespaced: keys are owned by the host user the sandbox's uid maps to, so a
# keyring made or reached (by its serial number) in one sandbox is visible to every other sandbox of
# the grader, and to the grading user. Student code has no use for them: add_key, request_key and
# keyctl fail with EPERM inside the sandbox (a seccomp filter that bubblewrap installs).
_KEYRING_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}


def seccomp_program() -> bytes:
    """A classic BPF seccomp program: EPERM for the keyring system calls (and for any other system call
    ABI than the machine's own), everything else allowed. Empty where the machine is not known."""
    import struct

    arch, numbers = _KEYRING_SYSCALLS.get(os.uname().machine, (None, ()))
    if arch is None:
        return b""
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, eperm = 0x7FFF0000, 0x00050000 | 1
    denied = len(numbers) + 1  # instructions between the first test and the EPERM return
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0),
            (jge, denied, 0, 0x40000000)]  # x32 system calls (numbers with bit 30) on x86_64
    prog += [(jeq, len(numbers) - n, 0, nr) for n, nr in enumerate(numbers)]
    prog += [(ret, 0, 0, allow), (ret, 0, 0, eperm)]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def sandbox_python() -> str:
    """The interpreter path to exec inside the sandbox: this venv's interpreter, with the folders on
    its way resolved (the sandbox mounts resolved paths: a .venv reached through a symbolic link
    would otherwise not exist there). The file name itself is kept unresolved, so that Python still
    finds the venv's pyvenv.cfg next to it and loads the venv's site-packages."""
    exe = Path(sys.executable)
    return str(Path(os.path.realpath(exe.parent)) / exe.name)


def scratch_dir(kind: str) -> Path:
    """A new private folder in TMPDIR named after this process ("box-<pid>-...", "slot-<pid>-..."),
    so that a later run can tell the leftovers of a grader that was killed from those of a live one."""
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-"))


def sweep_leftovers() -> list[str]:
    """Remove what graders killed before their clean-up left behind: their box and slot folders in
    TMPDIR and their process cgroups (killing any process still in one). Only folders of this user
    whose grader process no longer exists are touched. Returns what was removed."""
    removed = []
    root = Path(tempfile.gettempdir())
    for entry in root.glob("*-*-*"):
        kind, _, rest = entry.name.partition("-")
        pid = rest.split("-", 1)[0]
        if kind not in ("box", "slot") or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        for sub, _, _ in os.walk(entry):
            try:
                os.chmod(sub, 0o700)
            except OSError:
                pass
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
    for base in PidsCgroup.ROOTS + PidsCgroup.MEMORY_ROOTS:
        for group in (Path(base) / "cvgrader").glob("*-*"):
            pid = group.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                stale = PidsCgroup(0, create=False)
                stale.path = group
                stale.kill_all()
                removed.append(str(group))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tree(root: int):
    """Yield `root` and every live descendant (host pids, parents first), from /proc."""
    todo, seen = [root] if root else [], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        yield pid
        try:
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (OSError, ValueError):
            continue


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _tree_peak_mb(root: int, reset: bool) -> float:
    """Largest peak resident memory (VmHWM) in a process tree, in MB; reset=True starts new peaks."""
    peak = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            if reset:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        except (OSError, ValueError):
            continue
    return round(peak / 1024, 1)


def _user_process_count() -> int:
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _python_roots() -> list[str]:
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(roots)


def _scrubbed_env(threads: int, gpu: bool = False) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/mpl",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif os.environ.get("CUDA_VISIBLE_DEVICES"):
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]  # the GPUs assigned to this grader
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    return env


class Sandbox:
    """One worker process serving one submission's box."""

    def __init__(self, box: Path, module_files: dict[str, str], mode: str, limits: Limits = Limits(), threads: int = 1,
                 data_dir: Path | None = None) -> None:
        self.box = Path(box).resolve()
        self.data_dir = Path(data_dir).resolve() if data_dir is not None and Path(data_dir).is_dir() else None
        self.gpus = gpu_devices()
        self.module_files = module_files  # module name -> path relative to the box
        self.mode = mode
        self.limits = limits
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self._stderr_tail = bytearray()
        self._next_id = 1
        self._buffer = b""
        self.cgroup: PidsCgroup | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def command(self) -> list[str]:
        python = sys.executable  # the venv's own interpreter path, so its site-packages load
        if self.mode == "rlimits":
            files = {m: str(self.box / p) for m, p in self.module_files.items()}
            return [python, "-I", str(GRADER_DIR / "worker.py"), json.dumps(files)]
        files = {m: f"{BOX_MOUNT}/{p}" for m, p in self.module_files.items()}
        cmd = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-all", "--die-with-parent", "--new-session",
            # no user namespaces inside: a nested one would let student code mount an uncapped tmpfs
            *(["--unshare-user", "--disable-userns"] if _bwrap_can_disable_userns() else []),
            "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            # the host user's keyrings, by serial number
            *(["--ro-bind", "/dev/null", "/proc/keys"] if os.path.exists("/proc/keys") else []),
            # the sandbox's POSIX message queues (its own IPC namespace), visible so the fork server can empty them
            "--mqueue", "/dev/mqueue",
            "--ro-bind", str(GRADER_DIR), CODE_MOUNT,
        ]
        if _bwrap_can_size():
            cmd += ["--size", str(self.limits.shm_mb << 20), "--tmpfs", "/dev/shm",
                    "--size", str(self.limits.tmp_mb << 20), "--tmpfs", "/tmp",
                    # The box is a size-capped tmpfs holding read-only views of the student's files: code
                    # can create files there (figures, scratch) but cannot fill the grader's disk.
                    "--size", str(self.limits.box_mb << 20), "--tmpfs", BOX_MOUNT]
            for entry in sorted(self.box.iterdir()):
                cmd += ["--ro-bind", str(entry), f"{BOX_MOUNT}/{entry.name}"]
        else:  # bubblewrap before 0.7 cannot cap a tmpfs: writes are then bounded only per file and by time
            cmd += ["--tmpfs", "/tmp", "--bind", str(self.box), BOX_MOUNT]
        if self.data_dir is not None:
            cmd += ["--ro-bind", str(self.data_dir), DATA_MOUNT]
        for node in self.gpus:  # the driver's device nodes only; nothing else of /dev or /sys
            cmd += ["--dev-bind", node, node]
        for root in _python_roots():
            cmd += ["--ro-bind", root, root]
        cmd += ["--remount-ro", "/dev", "--remount-ro", "/"]  # the root and /dev are tmpfs too: no writes there
        cmd += ["--chdir", BOX_MOUNT, "--clearenv"]
        for key, value in _scrubbed_env(self.threads, bool(self.gpus)).items():
            cmd += ["--setenv", key, value]
        if self.data_dir is not None:
            cmd += ["--setenv", "GRADER_DATA_DIR", DATA_MOUNT]
        cmd += [sandbox_python(), "-I", f"{CODE_MOUNT}/worker.py", json.dumps(files)]
        return cmd

    def _limits(self) -> list[tuple[str, int]]:
        lim = self.limits
        mb = 1 << 20
        # The memory cap is on the data segment, which counts every writable private mapping (heap,
        # arrays, tensors): what a submission really allocates. The address space cap is only a loose
        # backstop, because importing torch maps about 3.5 GB of CUDA libraries it never touches on a
        # CPU; with a GPU, CUDA reserves a huge inaccessible range, so there is no address-space cap.
        limits = [("RLIMIT_DATA", lim.memory_mb * mb)]
        if not self.gpus:
            limits.append(("RLIMIT_AS", (lim.memory_mb + 8192) * mb))
        nproc = _user_process_count() + lim.processes  # RLIMIT_NPROC counts all of this user's
        return limits + [("RLIMIT_CPU", lim.cpu_seconds), ("RLIMIT_FSIZE", lim.file_size_mb * mb),
                         ("RLIMIT_NOFILE", lim.open_files), ("RLIMIT_NPROC", nproc), ("RLIMIT_CORE", 0)]

    def launched(self, command: list[str]) -> list[str]:
        """The command behind grader/launch.py, which joins the cgroup and sets the rlimits, then execs it.

        Not preexec_fn: sandboxes start from several threads, and Python code run between fork and
        exec in a multithreaded process can deadlock on a lock held by another thread at fork time.
        """
        spec = {"limits": self._limits(), "cgroup_procs": self.cgroup.procs_files if self.cgroup else [],
                "seccomp": seccomp_program().hex() if self.mode == "bwrap" else ""}
        return [sys.executable, "-S", "-I", str(GRADER_DIR / "launch.py"), json.dumps(spec), *command]

    def start(self) -> None:
        env = _scrubbed_env(self.threads, bool(self.gpus))
        if self.mode == "rlimits":
            env["PYTHONPATH"] = ""
            if self.data_dir is not None:
                env["GRADER_DATA_DIR"] = str(self.data_dir)  # where notebooks' data paths point
        self.cgroup = PidsCgroup(self.limits.processes, memory_mb=self.limits.cgroup_memory_mb)
        self.proc = subprocess.Popen(
            self.launched(self.command()),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self.box),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self._read_reply(0, self.limits.start_timeout)

    def _drain_stderr(self) -> None:
        keep = self.limits.stderr_kb * 1024
        stream = self.proc.stderr
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            self._stderr_tail += chunk
            if len(self._stderr_tail) > 2 * keep:
                del self._stderr_tail[:-keep]

    @property
    def stderr_tail(self) -> str:
        return bytes(self._stderr_tail[-self.limits.stderr_kb * 1024:]).decode("utf-8", "replace")

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup = None
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def data_path(self) -> str:
        """Where the public fixture inputs appear inside the sandbox ("" when the assignment has none)."""
        if self.data_dir is None:
            return ""
        return DATA_MOUNT if self.mode == "bwrap" else str(self.data_dir)

    def peak_memory_mb(self, reset: bool = True) -> float:
        """Peak resident memory (VmHWM) of the worker's process tree since the last reset, in MB."""
        return _tree_peak_mb(self.proc.pid, reset) if self.proc is not None else 0.0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the worker's live process tree; RLIMIT_CPU counts
        the same time per process, over the worker's whole life."""
        return _tree_cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests --------------------------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float) -> Any:
        if not self.alive:
            raise SandboxCrashed("the worker is not running")
        rid = self._next_id
        self._next_id += 1
        deadline = time.monotonic() + timeout
        self._send(protocol.dumps({**message, "id": rid}), deadline)
        reply = self._read_reply(rid, max(0.0, deadline - time.monotonic()))
        if not reply.get("ok"):
            raise StudentError(
                str(reply.get("error", "Error"))[:200], str(reply.get("message", ""))[:2000], str(reply.get("trace", ""))[:4000]
            )
        try:
            return protocol.decode(reply.get("value"))
        except (protocol.ProtocolError, ValueError, TypeError, OverflowError, MemoryError) as exc:
            # A tampered worker can send anything; malformed data fails this request, not the grader.
            raise StudentError("MalformedReply", f"the value sent back from the sandbox is malformed ({exc})"[:600], "") from None

    def _send(self, data: bytes, deadline: float) -> None:
        """Write a request without ever blocking past the deadline.

        A worker that stopped reading (SIGSTOPped itself, or stuck in a thread holding the GIL)
        would otherwise leave a large request blocked on a full pipe, and the grader with it.
        """
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise SandboxTimeout("the worker stopped reading requests")
            _, ready, _ = select.select([], [fd], [], min(remaining, 1.0))
            if not ready:
                continue
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError:
                self._crashed("the worker stopped before the request could be sent")

    def _read_reply(self, rid: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        limit = self.limits.reply_mb << 20
        fd = self.proc.stdout.fileno()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                try:
                    reply = protocol.loads(line)
                except protocol.ProtocolError:
                    continue  # garbage written by student code onto the protocol stream
                if reply.get("id") != rid or type(reply.get("id")) is not int:
                    continue  # stale or forged line; the real reply carries our id
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise SandboxTimeout(f"no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                self._crashed("the worker exited")
            self._buffer += chunk
            if len(self._buffer) > limit:
                self.close()
                raise SandboxCrashed(f"reply larger than {self.limits.reply_mb} MB")

    def _crashed(self, what: str) -> None:
        code = self.proc.poll() if self.proc else None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
                code = self.proc.returncode
            except subprocess.TimeoutExpired:
                pass
        drain = getattr(self, "_drain", None)
        if drain is not None:  # the process ended: let the reader take its last words before quoting them
            drain.join(timeout=0.5)
        tail = self.stderr_tail.strip().splitlines()[-3:]
        self.close()
        if code is not None and code > 128 and self.mode == "bwrap":
            code = 128 - code  # bwrap exits with 128 + N when the worker was killed by signal N
        detail = f" (exit code {code})" if code is not None else ""
        if code is not None and code < 0:
            detail = f" (killed by signal {signal.Signals(-code).name})" if -code in signal.Signals._value2member_map_ else detail
        hint = (" last output: " + " | ".join(tail)[-300:]) if tail else ""
        raise SandboxCrashed(f"{what}{detail}.{hint}")
