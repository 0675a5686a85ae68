"""Cases aimed at the submissions that come after the attacker in the same job (student ids 73...).

A worker is the fork server's child, as the same user: it can lower the fork server's resource limits,
niceness and CPU affinity, which every later worker inherits, and it can leave SysV and POSIX IPC
objects, keys, files and processes behind. Two kinds of case:

* self-contained (73000002a, 73000003a): the attack runs when Raysampling.py is imported and then kills
  its own worker; volume_rendering.py is graded by the next worker of the same submission (a restart
  forks it from the same fork server after the clean-up) and works only if the attack reached it (a
  fingerprint of the changed limits, or any leftover). Full marks on 5.x mean a leak.
* across submissions (73000001a, then 73900001a and 73900002a): the attacker lowers its fork server's
  limits and keeps its marks; the two controls, graded after it (--jobs 2: by either job), work only if
  they inherited the attacker's fingerprint. Every later submission of the batch is a victim too: its
  own expected marks would be lost under the lowered CPU, memory and scheduling.

Only under bubblewrap: without it the worker's parent is the grader itself, and IPC objects would be
left in the host's own namespace.
"""
from __future__ import annotations

from .cases import Case, Context, gated, ref, with_files, zero

# Distinctive values: a worker that sees one of them inherited it from the attacker.
FINGERPRINT = {"nofile": 203, "nice": 7}

LOWER_PARENT = f'''
import os as _os, resource as _resource

def _lower_parent(harmful):
    parent = _os.getppid()
    cpu_used = 0.0
    data_kb = 0
    try:
        fields = open(f"/proc/{{parent}}/stat").read().rsplit(")", 1)[1].split()
        cpu_used = (int(fields[11]) + int(fields[12])) / _os.sysconf("SC_CLK_TCK")
        for line in open(f"/proc/{{parent}}/status"):
            if line.startswith("VmData:"):
                data_kb = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    limits = [("RLIMIT_NOFILE", {FINGERPRINT["nofile"]})]
    if harmful:  # what every later worker would inherit: a few CPU seconds, 64 MB more memory
        limits += [("RLIMIT_CPU", int(cpu_used) + 4)]
        if data_kb:
            limits.append(("RLIMIT_DATA", (data_kb << 10) + (64 << 20)))
    for name, value in limits:
        try:
            _resource.prlimit(parent, getattr(_resource, name), (value, value))
        except (OSError, ValueError):
            pass
    for act in (lambda: _os.setpriority(_os.PRIO_PROCESS, parent, {FINGERPRINT["nice"]}),
                lambda: _os.sched_setaffinity(parent, {{min(_os.sched_getaffinity(0))}}),
                lambda: _os.sched_setscheduler(parent, _os.SCHED_IDLE, _os.sched_param(0)) if harmful else None):
        try:
            act()
        except (OSError, AttributeError):
            pass
'''

INHERITED_PROBE = f'''
import os as _os, resource as _resource

def _leak():
    return (_resource.getrlimit(_resource.RLIMIT_NOFILE)[0] == {FINGERPRINT["nofile"]}
            or _os.getpriority(_os.PRIO_PROCESS, 0) == {FINGERPRINT["nice"]})
'''

LEAVE_EVERYTHING = '''
import ctypes as _ctypes, os as _os, subprocess as _sp

def _leave_everything(tag, sleep):
    libc = _ctypes.CDLL(None, use_errno=True)
    key = 0x73000003
    shm = libc.shmget(key, 1 << 20, 0o1000 | 0o666)
    if shm >= 0:
        libc.shmat.restype = _ctypes.c_void_p
        addr = libc.shmat(shm, None, 0)
        if addr not in (None, _ctypes.c_void_p(-1).value):
            _ctypes.memmove(addr, b"answers of the last student", 27)
    libc.msgget(key, 0o1000 | 0o666)
    libc.semget(key, 1, 0o1000 | 0o666)
    libc.mq_open.argtypes = [_ctypes.c_char_p, _ctypes.c_int, _ctypes.c_int, _ctypes.c_void_p]
    libc.mq_open(b"/" + tag.encode(), _os.O_CREAT | _os.O_RDWR, 0o666, None)
    if _os.uname().machine == "x86_64":  # add_key into the user keyring (denied in the sandbox)
        libc.syscall(248, b"user", tag.encode(), b"answers", _ctypes.c_long(7), _ctypes.c_long(-4))
    for folder in ("/tmp", "/dev/shm", _os.getcwd()):
        try:
            open(_os.path.join(folder, tag), "w").write("answers of the last student")
        except OSError:
            pass
    _sp.Popen(["/bin/sh", "-c", f"sleep {sleep}; : {tag}"], start_new_session=True)
'''

LEFTOVER_PROBE = '''
import ctypes as _ctypes, os as _os

def _leak():
    libc = _ctypes.CDLL(None, use_errno=True)
    tag = TAG
    found = []
    for kind in ("shm", "msg", "sem"):
        try:
            found += open(f"/proc/sysvipc/{kind}").read().splitlines()[1:]
        except OSError:
            pass
    libc.mq_open.argtypes = [_ctypes.c_char_p, _ctypes.c_int]
    if libc.mq_open(b"/" + tag.encode(), _os.O_RDONLY) >= 0:
        found.append("mqueue")
    if _os.uname().machine == "x86_64" and libc.syscall(250, 10, _ctypes.c_long(-4), b"user", tag.encode(), 0) > 0:
        found.append("key")
    for folder in ("/tmp", "/dev/shm", _os.getcwd()):
        if _os.path.exists(_os.path.join(folder, tag)):
            found.append(folder)
    for pid in _os.listdir("/proc"):
        try:
            if pid.isdigit() and tag.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(f"process {pid}")
        except OSError:
            pass
    return bool(found)
'''


def cases(ctx: Context) -> list[Case]:
    if ctx.mode != "bwrap":
        return []  # the worker's parent would be the grader; IPC objects would land in the host's namespace
    tag = f"adv73{ctx.marker}"
    nothing = {"4.1": 0.0, "4.2": 0.0, "5.1": 0.0, "5.2": 0.0}
    lowers = ref("Raysampling.py") + "\n\n" + LOWER_PARENT + "\n_lower_parent(True)\n"
    lowers_and_dies = ref("Raysampling.py") + "\n\n" + LOWER_PARENT + "\n_lower_parent(False)\n_os._exit(1)\n"
    leaves_and_dies = (ref("Raysampling.py") + "\n\n" + LEAVE_EVERYTHING
                       + f"\n_leave_everything({tag!r}, {ctx.sleep!r})\n_os._exit(1)\n")
    leftover_probe = LEFTOVER_PROBE.replace("TAG", repr(tag))
    return [
        Case("73000001a", "lowers its fork server's CPU, memory and file limits, niceness, affinity and scheduling",
             with_files(Raysampling_py=lowers)),
        Case("73000002a", "lowers its fork server's limits and niceness, then kills its worker: the next worker must not inherit them",
             with_files(Raysampling_py=lowers_and_dies, vr_py=gated("volume_rendering.py", INHERITED_PROBE)),
             status="crashed", marks={**zero("Raysampling.py"), **nothing}, reason="nothing leaked"),
        Case("73000003a", "leaves SysV shm, queues, semaphores, a POSIX queue, a key, files and a daemon, then kills its worker",
             with_files(Raysampling_py=leaves_and_dies, vr_py=gated("volume_rendering.py", leftover_probe)),
             status="crashed", marks={**zero("Raysampling.py"), **nothing}, reason="nothing leaked"),
        Case("73900001a", "graded after the limit lowering: inherits none of it (control)",
             with_files(vr_py=gated("volume_rendering.py", INHERITED_PROBE)), marks=zero("volume_rendering.py"),
             reason="nothing leaked"),
        Case("73900002a", "graded after the leftovers: finds none of them (control)",
             with_files(vr_py=gated("volume_rendering.py", leftover_probe)), marks=zero("volume_rendering.py"),
             reason="nothing leaked"),
    ]
