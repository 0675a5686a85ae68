"""The original course's environment inside the sandbox: Colab, downloads, a GPU, its data paths.

Runs INSIDE the sandbox: the worker imports it top-level as `compat` and calls install() once per
worker, before any student module or notebook loads. Real submissions are written for Google Colab
with a GPU and the internet; the sandbox has none of them. Each adaptation keeps the student's code
running as it would there, and is recorded (adaptations()) so the feedback can say what was changed:

  * `google.colab` (drive.mount, files.upload/download, patches.cv2_imshow, ...) is a harmless stub,
    only when no real google.colab can be imported; `get_ipython()` in a .py export is a stub too;
  * a data path that does not exist but whose tail names an entry of the assignment's fixture folder
    (`/content/drive/MyDrive/CS188/pmsData/bearPNG`, `./data/cifar-10-batches-py`,
    `/content/tiny_nerf_data.npz`) is read from the fixture, wherever the student pointed it; files
    written under Colab's /content go to a scratch folder; os.chdir into /content stays in the box;
  * torchvision's CIFAR10 accepts the fixture's files (their checksums are not the real dataset's)
    and never downloads;
  * pretrained weights (torchvision `weights=`/`pretrained=True`, torch.hub URLs) are the model's
    random initial weights, unless the file is already in torch's cache;
  * without a GPU, `.cuda()`, `.to("cuda")`, `torch.device("cuda")` and `torch.load` onto a GPU run
    on the CPU; with a GPU nothing of this is changed;
  * the DataLoader iterator's old `.next()` works; cv2's window functions do nothing (headless);
  * `import pytorch3d...` (which does not install here) is answered by lite3d, the grader's plain-torch
    stand-in with pytorch3d's conventions, only when no real pytorch3d can be imported; a name lite3d
    lacks (a mesh renderer) imports, and raises NotImplementedError naming itself when used.

install() is cheap (a forked worker pays it per submission): it wraps a few file functions and
patches the libraries that are already imported; the others are patched right after their first
import. Nothing here is trusted by the grader: the list of adaptations is shown to the student only.
"""
from __future__ import annotations

import builtins
import errno
import importlib.abc
import importlib.machinery
import io
import os
import stat as _stat_mod
import sys
import types
from typing import Any, Callable

try:  # grader.compat (tests) or top-level `compat` inside the sandbox
    from . import notebook as _notebook
except ImportError:
    import notebook as _notebook  # type: ignore[no-redef]

MAX_RECORDS = 40
COLAB_ROOT = "/content"
_records: list[str] = []
_orig: dict[str, Callable[..., Any]] = dict(  # the real functions, whatever install() replaces
    open=builtins.open, stat=os.stat, lstat=os.lstat, listdir=os.listdir, scandir=os.scandir,
    mkdir=os.mkdir, makedirs=os.makedirs, chdir=os.chdir)
_scratch: list[str] = []  # [folder standing in for Colab's /content], set by install()
_root: list[str] = []  # [fixture folder] once known ("" when there is none)
_index: dict[str, str] | None = None
_installed = False


def note(what: str) -> None:
    """Record one adaptation (each distinct text once)."""
    what = what[:300]
    if what not in _records and len(_records) < MAX_RECORDS:
        _records.append(what)


def adaptations() -> list[str]:
    return list(_records)


def install() -> None:
    """Put the course's environment in place for this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    cwd = os.getcwd()
    _scratch.append("/tmp/.colab" if cwd == "/box" else os.path.join(cwd, ".colab"))  # private to this submission
    _wrap_files()
    sys.meta_path.append(_ColabFinder())  # last: consulted only when no real google.colab exists
    sys.meta_path.append(_Pytorch3dFinder())  # likewise, only when no real pytorch3d exists
    if not hasattr(builtins, "get_ipython"):
        builtins.get_ipython = _shell  # type: ignore[attr-defined]
    pending = {}
    for name, patch in (("torch", _patch_torch), ("torchvision", _patch_torchvision), ("cv2", _patch_cv2)):
        if name in sys.modules:
            _safely(patch, sys.modules[name])
        else:
            pending[name] = patch
    if pending:
        sys.meta_path.insert(0, _AfterImport(pending))


def _safely(patch: Callable[[Any], None], module: Any) -> None:
    try:
        patch(module)
    except Exception:  # noqa: BLE001 - an adaptation that cannot be made leaves the library as it is
        pass


# -- data paths ----------------------------------------------------------------------------------
def _fixture_root() -> str:
    if not _root:
        _root.append("")  # data_root() itself stats paths; they must not come back here
        try:
            root = _notebook.data_root()
        except Exception:  # noqa: BLE001
            root = ""
        _root[0] = os.path.realpath(root) if root else ""
    return _root[0]


def _exists(path: Any) -> bool:
    try:
        _orig["stat"](path)
        return True
    except (OSError, ValueError, TypeError):
        return False


def _isdir(path: str) -> bool:
    try:
        return _stat_mod.S_ISDIR(_orig["stat"](path).st_mode)
    except (OSError, ValueError):
        return False


def _fixture_index() -> dict[str, str]:
    """Fixture entries by name: the folder's entries and their sub-folders (names found once only)."""
    global _index
    if _index is None:
        root, found = _fixture_root(), {}
        top = _orig["listdir"](root) if root and _isdir(root) else []
        found.update({name: name for name in top})
        seen: set[str] = set()
        for name in top:
            if not _isdir(os.path.join(root, name)):
                continue
            for sub in _orig["listdir"](os.path.join(root, name)):
                if sub in top or not _isdir(os.path.join(root, name, sub)):
                    continue
                if sub in seen:
                    found.pop(sub, None)  # two fixture folders of that name: ambiguous
                else:
                    found[sub] = f"{name}/{sub}"
                seen.add(sub)
        _index = found
    return _index


def _text(path: Any) -> str | None:
    if isinstance(path, (int, bytes)) or not isinstance(path, (str, os.PathLike)):
        return None
    try:
        text = os.fspath(path)
    except TypeError:
        return None
    return text if isinstance(text, str) and text else None


def from_fixture(path: Any) -> str | None:
    """The fixture file or folder that a missing path names by its tail, or None."""
    text = _text(path)
    root = _fixture_root()
    if text is None or not root or text == root or text.startswith(root + "/"):
        return None
    index = _fixture_index()
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        rel = index.get(part)
        if rel is None or ".." in parts[i + 1:]:
            continue
        candidate = "/".join([root, rel, *parts[i + 1:]])
        if _exists(candidate):
            shown = ("/" if text.startswith("/") else "") + "/".join(parts[: i + 1])
            note(f"path {shown} read from the fixture {rel}")
            return candidate
    return None


def _scratch_twin(path: Any) -> str | None:
    """Where a path under Colab's /content lives in this sandbox (a private scratch folder)."""
    text = _text(path)
    if text is None or not (text == COLAB_ROOT or text.startswith(COLAB_ROOT + "/")):
        return None
    if not _scratch:
        return None
    return _scratch[0] + os.path.normpath(text)


def _for_reading(path: Any) -> str | None:
    found = from_fixture(path)
    if found is None:
        twin = _scratch_twin(path)
        found = twin if twin is not None and _exists(twin) else None
    return found


def _for_writing(path: Any) -> str | None:
    twin = _scratch_twin(path)
    if twin is not None:
        _orig["makedirs"](os.path.dirname(twin), exist_ok=True)
        note(f"files written under {COLAB_ROOT} (Colab's folder) went to a scratch folder")
    return twin


MISSING = (errno.ENOENT, errno.EROFS, errno.EACCES, errno.EPERM)


def _writes(mode: Any) -> bool:
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    try:
        return _orig["open"](file, mode, *args, **kwargs)
    except OSError as exc:
        if exc.errno not in MISSING:
            raise
        other = _for_writing(file) if _writes(mode) else _for_reading(file)
        if other is None:
            raise
    return _orig["open"](other, mode, *args, **kwargs)


def _retry_on_missing(name: str) -> Callable[..., Any]:
    """os.stat/lstat/listdir/scandir: a missing path is looked up in the fixture (and scratch) folder."""
    original = _orig[name]

    def wrapper(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(path, *args, **kwargs) if path is not None else original(*args, **kwargs)
        except OSError as exc:
            if exc.errno != errno.ENOENT or kwargs.get("dir_fd") is not None:
                raise
            other = _for_reading(path)
            if other is None:
                raise
        return original(other, *args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = original.__doc__
    return wrapper


def _mkdir(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> None:
    twin = _scratch_twin(path) if dir_fd is None else None
    if twin is None or _exists(path):
        return _orig["mkdir"](path, mode, dir_fd=dir_fd)
    _orig["makedirs"](os.path.dirname(twin), exist_ok=True)
    note(f"folders made under {COLAB_ROOT} (Colab's folder) went to a scratch folder")
    return _orig["mkdir"](twin, mode)


def _chdir(path: Any) -> None:
    try:
        return _orig["chdir"](path)
    except OSError as exc:
        text = _text(path)
        if exc.errno not in MISSING or text is None or (_scratch_twin(text) is None and from_fixture(text) is None):
            raise
    note(f"os.chdir({text!r}) ignored: the code kept running in the submission's folder")


def _wrap_files() -> None:
    builtins.open = io.open = _open  # type: ignore[assignment]
    datasource = sys.modules.get("numpy.lib._datasource")  # np.loadtxt's opener, bound to open when numpy loaded
    openers = getattr(getattr(datasource, "_file_openers", None), "_file_openers", None)
    if isinstance(openers, dict) and openers.get(None) is _orig["open"]:
        openers[None] = _open
    for name in ("stat", "lstat", "listdir", "scandir"):
        setattr(os, name, _retry_on_missing(name))
    os.mkdir, os.chdir = _mkdir, _chdir  # os.makedirs calls os.mkdir


# -- Colab and IPython -----------------------------------------------------------------------------
def _noop(what: str) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        note(f"{what} ignored")

    return call


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__getattr__ = lambda attr: _missing(name, attr)  # type: ignore[attr-defined]
    return module


def _missing(module: str, attr: str) -> Any:
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _noop(f"{module}.{attr}(...)")


def _mount(mountpoint: str = "/content/drive", *args: Any, **kwargs: Any) -> None:
    note(f"drive.mount({mountpoint!r}) ignored: data paths under it are read from the grader's fixtures")


def _upload(*args: Any, **kwargs: Any) -> dict[str, bytes]:
    note("files.upload() ignored: it returned no files")
    return {}


COLAB = {
    "drive": {"mount": _mount, "flush_and_unmount": _noop("drive.flush_and_unmount()")},
    "files": {"upload": _upload, "download": _noop("files.download(...)")},
    "patches": {"cv2_imshow": _noop("cv2_imshow(...) (no display)")},
}


class _ColabLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == "google":
            module = types.ModuleType("google")
        else:
            module = _module(spec.name, **COLAB.get(spec.name.rsplit(".", 1)[-1], {}))
        module.__path__ = []  # a package: its submodules come from this finder too
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ == "google.colab":
            for sub in COLAB:
                __import__(f"google.colab.{sub}")
                setattr(module, sub, sys.modules[f"google.colab.{sub}"])


class _ColabFinder(importlib.abc.MetaPathFinder):
    """google.colab as a harmless stub, found only when every real finder failed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name in ("google", "google.colab") or name.startswith("google.colab."):
            return importlib.machinery.ModuleSpec(name, _ColabLoader(), is_package=True)
        return None


def _lite3d() -> Any:
    try:  # grader.lite3d (tests) or top-level `lite3d` inside the sandbox (the grader's folder is on sys.path)
        from . import lite3d
    except ImportError:
        import lite3d  # type: ignore[no-redef]
    return lite3d


def _unavailable(qualified: str) -> type:
    """A stand-in for a pytorch3d name lite3d does not provide: imports fine, fails loudly when used."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{qualified} is not available in the grader (pytorch3d is replaced by lite3d, "
                                  "which has no renderer); the grader checks the other parts of this file")

    return type(qualified.rsplit(".", 1)[-1], (), {"__init__": fail, "__call__": fail, "__module__": qualified.rsplit(".", 1)[0]})


class _Pytorch3dLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        lite = _lite3d()
        from importlib import import_module

        sources = []
        for sub in lite.pytorch3d_names.MODULES.get(spec.name, ()):
            try:
                sources.append(import_module(f"{lite.__name__}.{sub}"))
            except ImportError:
                continue
        module = types.ModuleType(spec.name)
        module.__path__ = []  # a package: every pytorch3d.* submodule comes from this finder
        for source in sources:
            module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("_")})

        def lookup(attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            if f"{spec.name}.{attr}" in lite.pytorch3d_names.MODULES:  # `import pytorch3d` then pytorch3d.structures
                sub = import_module(f"{spec.name}.{attr}")
                setattr(module, attr, sub)
                return sub
            stand_in = _unavailable(f"{spec.name}.{attr}")
            setattr(module, attr, stand_in)
            return stand_in

        module.__getattr__ = lookup  # type: ignore[attr-defined]
        if spec.name == "pytorch3d":
            note(f"`import {spec.name}` answered by the grader's lite3d (pytorch3d's conventions, plain torch)")
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Pytorch3dFinder(importlib.abc.MetaPathFinder):
    """pytorch3d as lite3d, found only when every real finder failed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == "pytorch3d" or name.startswith("pytorch3d."):
            return importlib.machinery.ModuleSpec(name, _Pytorch3dLoader(), is_package=True)
        return None


class _Shell:
    """What `get_ipython()` returns in a .py exported from Colab: shell lines and magics do nothing."""

    config: dict[str, Any] = {}

    def system(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        note(f"shell command ignored: !{cmd}")

    def getoutput(self, cmd: str, *args: Any, **kwargs: Any) -> list[str]:
        note(f"shell command ignored: !{cmd}")
        return []

    def run_line_magic(self, name: str, line: str = "", *args: Any, **kwargs: Any) -> None:
        note(f"magic ignored: %{name} {line}".strip())

    def run_cell_magic(self, name: str, line: str = "", cell: str = "", *args: Any, **kwargs: Any) -> None:
        note(f"magic ignored: %%{name} {line}".strip())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


_SHELL = _Shell()


def _shell() -> _Shell:
    return _SHELL


# -- libraries, patched right after their import ---------------------------------------------------
class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str, patch: Callable[[Any], None]) -> None:
        self.loader, self.name, self.patch = loader, name, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        _safely(self.patch, sys.modules.get(self.name, module))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.loader, attr)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds a hooked module with the other finders and patches it once its code has run."""

    def __init__(self, patches: dict[str, Callable[[Any], None]]) -> None:
        self.patches, self.busy = patches, set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = self.patches.get(name)
        if patch is None or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        break
        finally:
            self.busy.discard(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, name, patch)
        return spec


def _mark(module: Any) -> bool:
    """True the first time a module is seen (patches are applied once)."""
    if getattr(module, "_grader_compat", False):
        return False
    module._grader_compat = True
    return True


def has_gpu() -> bool:
    """Cheap: the sandbox hides GPUs with CUDA_VISIBLE_DEVICES='' and exposes /dev/nvidiactl when it has one."""
    return os.environ.get("CUDA_VISIBLE_DEVICES") != "" and _exists("/dev/nvidiactl")


class RandomWeights(dict):
    """What a pretrained-weights download gives in the sandbox: nothing to load; the model keeps its
    random initial weights (Module.load_state_dict accepts this as a no-op)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def pop(self, key: Any, *default: Any) -> Any:
        return default[0] if default else None

    def __delitem__(self, key: Any) -> None:
        pass


def _cached_weights(url: str, model_dir: str | None = None, file_name: str | None = None) -> bool:
    import torch.hub

    from urllib.parse import urlparse

    folder = model_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    return _exists(os.path.join(folder, file_name or os.path.basename(urlparse(url).path)))


def _patch_torch(torch: Any) -> None:
    if not _mark(torch):
        return
    hub = torch.hub
    from_url = hub.load_state_dict_from_url

    def load_state_dict_from_url(url: str, model_dir: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if _cached_weights(url, model_dir, kwargs.get("file_name")):
            return from_url(url, model_dir, *args, **kwargs)
        note(f"pretrained weights replaced by random ones (no download in the grader): {url}")
        return RandomWeights(url)

    hub.load_state_dict_from_url = load_state_dict_from_url
    model_zoo = sys.modules.get("torch.utils.model_zoo")
    if model_zoo is not None:
        model_zoo.load_url = load_state_dict_from_url
    hub_load = hub.load

    def load(repo_or_dir: str, model: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(repo_or_dir, str) and repo_or_dir.startswith("pytorch/vision") and not _exists(repo_or_dir):
            import torchvision.models

            note(f"torch.hub.load({repo_or_dir!r}, {model!r}) built from the installed torchvision")
            return getattr(torchvision.models, model)(*args, **kwargs)
        return hub_load(repo_or_dir, model, *args, **kwargs)

    hub.load = load
    from torch.nn.modules.module import _IncompatibleKeys

    load_state_dict = torch.nn.Module.load_state_dict

    def load_state_dict_patched(self: Any, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(state_dict, RandomWeights):
            _like_trained(torch, self)
            return _IncompatibleKeys([], [])
        return load_state_dict(self, state_dict, *args, **kwargs)

    torch.nn.Module.load_state_dict = load_state_dict_patched
    loader_iter = torch.utils.data.dataloader._BaseDataLoaderIter
    if not hasattr(loader_iter, "next"):
        def next_(self: Any) -> Any:
            note("the iterator's old .next() ran as next(iterator)")
            return self.__next__()

        loader_iter.next = next_
    if not has_gpu():
        _cpu_only(torch)


def _like_trained(torch: Any, model: Any) -> None:
    """Trained weights have no all-zero parameter; a fresh model's biases and BatchNorm shifts are all
    zero, which code written for pretrained weights can trip on (loss-landscapes' filter normalisation
    divides by their norm). Give those small random values."""
    with torch.no_grad():
        for param in model.parameters():
            if param.is_floating_point() and param.numel() and not bool(param.any()):
                param.normal_(0.0, 0.01)


def _cpu_only(torch: Any) -> None:
    """`.cuda()`, `.to("cuda")`, `torch.device("cuda")`, `torch.load` to a GPU: the CPU instead."""
    real_device = torch.device

    def cpu(value: Any, what: str) -> Any:
        if (isinstance(value, str) and value.strip().lower().startswith("cuda")) or (
                isinstance(value, real_device) and value.type == "cuda"):
            note(f"{what} ran on the CPU (the grader has no GPU)")
            return real_device("cpu")
        return value

    def moved(method: Callable[..., Any], what: str) -> Callable[..., Any]:
        def to(self: Any, *args: Any, **kwargs: Any) -> Any:
            args = tuple(cpu(a, what) for a in args)
            if "device" in kwargs:
                kwargs["device"] = cpu(kwargs["device"], what)
            return method(self, *args, **kwargs)

        to.__name__, to.__doc__ = method.__name__, method.__doc__
        return to

    def on_cpu(what: str) -> Callable[..., Any]:
        def stay(self: Any, *args: Any, **kwargs: Any) -> Any:
            note(f"{what} ran on the CPU (the grader has no GPU)")
            return self

        return stay

    torch.Tensor.to = moved(torch.Tensor.to, '.to("cuda")')
    torch.nn.Module.to = moved(torch.nn.Module.to, '.to("cuda")')
    torch.Tensor.cuda = on_cpu(".cuda()")
    torch.nn.Module.cuda = on_cpu(".cuda()")
    torch.Tensor.pin_memory = on_cpu(".pin_memory()")

    class _DeviceType(type):
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            return cpu(real_device(*args, **kwargs), "torch.device('cuda')")

        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, real_device)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, real_device)

    class device(metaclass=_DeviceType):  # noqa: N801 - stands in for torch.device
        __doc__ = real_device.__doc__

    torch.device = device
    torch_load = torch.load

    def load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        if map_location is None or isinstance(map_location, (str, real_device)):
            map_location = cpu(map_location, "torch.load onto a GPU") if map_location is not None else "cpu"
        return torch_load(f, map_location, *args, **kwargs)

    torch.load = load
    torch.cuda.synchronize = _noop("torch.cuda.synchronize()")
    torch.cuda.get_device_name = lambda *args, **kwargs: "cpu (the grader has no GPU)"
    torch.cuda.current_device = lambda: 0


def _patch_torchvision(torchvision: Any) -> None:
    if not _mark(torchvision):
        return
    api = sys.modules.get("torchvision.models._api")
    if api is not None:
        get_state_dict = api.WeightsEnum.get_state_dict

        def get_state_dict_patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _cached_weights(self.url):
                return get_state_dict(self, *args, **kwargs)
            note(f"pretrained weights {type(self).__name__}.{self._name_} replaced by random ones (no download in the grader)")
            return RandomWeights(self.url)

        api.WeightsEnum.get_state_dict = get_state_dict_patched
    cifar = sys.modules.get("torchvision.datasets.cifar")
    if cifar is not None:
        check_integrity = cifar.check_integrity

        def check_integrity_patched(fpath: Any, md5: Any = None) -> bool:
            if check_integrity(fpath, md5):
                return True
            real = os.path.realpath(fpath) if _exists(fpath) else None
            if real is None or not real.startswith(_fixture_root() + "/"):
                real = from_fixture(fpath)
            if real is not None and _fixture_root() and os.path.isfile(real):
                note("CIFAR-10 read from the grader's fixture data (a small stand-in; its checksums are not the real dataset's)")
                return True
            return False

        def no_download(url: str, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"no network in the grader's sandbox: {url} cannot be downloaded "
                               "and the grader's fixture data has no copy of it")

        cifar.check_integrity = check_integrity_patched
        cifar.download_and_extract_archive = no_download


def _patch_cv2(cv2: Any) -> None:
    if not _mark(cv2) or not hasattr(cv2, "imread"):
        return
    imread, imwrite = cv2.imread, cv2.imwrite

    def imread_patched(filename: Any, *args: Any, **kwargs: Any) -> Any:
        if not _exists(filename):
            filename = _for_reading(filename) or filename
        return imread(filename, *args, **kwargs)

    def imwrite_patched(filename: Any, *args: Any, **kwargs: Any) -> Any:
        twin = _scratch_twin(filename)
        return imwrite(_for_writing(filename) if twin is not None and not _exists(filename) else filename,
                       *args, **kwargs)

    cv2.imread, cv2.imwrite = imread_patched, imwrite_patched
    for name in ("imshow", "namedWindow", "destroyAllWindows", "destroyWindow"):
        setattr(cv2, name, _noop(f"cv2.{name}(...) (no display)"))
    cv2.waitKey = lambda *args, **kwargs: -1
