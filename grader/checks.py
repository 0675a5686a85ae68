"""What hidden tests are written with: the @check registry, the Student proxy and comparisons.

Hidden tests run in the trusted grader process. They reach the student's code only through
`Student`, which sends requests to the sandbox and gets plain data back.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .protocol import Handle, TorchArray
from .sandbox import Sandbox, SandboxError, StudentError


class CheckFailed(AssertionError):
    """A check's verdict: what failed, by how much, and a hint for a known mistake."""

    def __init__(self, what: str, detail: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what, self.detail, self.hint = what, detail, hint


@dataclass(frozen=True)
class Check:
    item: str
    name: str
    weight: float
    fn: Callable[["Student"], None]
    timeout: float
    module: str


def check(item: str, name: str, weight: float = 1.0, timeout: float = 30.0, module: str = "") -> Callable:
    """Mark a hidden-test function as a check for a rubric item."""

    def wrap(fn: Callable[["Student"], None]) -> Callable[["Student"], None]:
        fn.__check__ = Check(item, name, weight, fn, timeout, module)  # type: ignore[attr-defined]
        return fn

    return wrap


def load_checks(hidden_dir: Path) -> list[Check]:
    """Import the instructor's hidden test modules (trusted code) and collect their checks in order."""
    found: list[Check] = []
    for path in sorted(hidden_dir.glob("check_*.py")):
        spec = importlib.util.spec_from_file_location(f"_hidden_{hidden_dir.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if callable(value) and hasattr(value, "__check__"):
                found.append(value.__check__)
    return found


class ModuleUnavailable(Exception):
    """The student's module could not be imported (error, timeout or crash)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Student:
    """The hidden tests' only view of a submission: remote calls returning plain data."""

    sandbox: Sandbox
    timeout: float = 30.0
    import_timeout: float = 60.0
    module_state: dict[str, tuple[str, str]] = field(default_factory=dict)
    scale: float = 1.0  # multiplies timeouts that checks give explicitly
    answers: dict[str, str] = field(default_factory=dict)  # item id -> the student's written answer (text)
    saved_figures: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (label, RGBA pixels) for feedback

    @property
    def data_dir(self) -> str:
        """Path, as the student's code sees it, of fixtures/data/<assignment>/public (read-only)."""
        return self.sandbox.data_path

    @property
    def on_gpu(self) -> bool:
        """True when the sandbox exposes a GPU (smoke training may then use device "cuda")."""
        return bool(self.sandbox.gpus)

    def cpu_seconds(self) -> float:
        """CPU seconds the submission's worker has used so far (its RLIMIT_CPU counts these)."""
        return self.sandbox.cpu_seconds()

    def fresh_worker(self, cpu_needed: float = 0.0) -> bool:
        """Give the next requests a new worker when this one is gone, or when it has used so much CPU
        that `cpu_needed` more seconds would come near its CPU limit. Modules are imported again on
        next use; handles to objects of the old worker become invalid. Returns True when restarted."""
        limit = getattr(getattr(self.sandbox, "limits", None), "cpu_seconds", None)
        if self.sandbox.alive and not (limit and self.cpu_seconds() + cpu_needed > 0.9 * limit):
            return False
        self.sandbox.close()
        self.sandbox.start()
        for module, state in list(self.module_state.items()):
            if state == ("ok", ""):
                del self.module_state[module]
        return True

    def load(self, module: str) -> None:
        state = self.module_state.get(module)
        if state == ("ok", ""):
            return
        if state is not None:
            raise ModuleUnavailable(*state)
        try:
            self.sandbox.request({"op": "load", "module": module}, self.import_timeout)
        except StudentError as exc:
            self.module_state[module] = ("error", f"importing {module} failed: {exc.error}: {exc.message}"[:600])
            raise ModuleUnavailable(*self.module_state[module]) from None
        except SandboxError as exc:
            self.sandbox.close()
            self.module_state[module] = (exc.status, f"importing {module} failed ({exc.status}): {exc}"[:600])
            raise ModuleUnavailable(*self.module_state[module]) from None
        self.module_state[module] = ("ok", "")

    def _target(self, where: str | Handle, path: str) -> dict[str, Any]:
        if isinstance(where, Handle):
            return {"handle": where.id, "path": path}
        self.load(where)
        return {"module": where, "path": path}

    def call(self, where: str | Handle, path: str, *args: Any, repeat: int | None = None, stack: bool = False,
             seed: int | None = None, ret: str = "auto", timeout: float | None = None, **kwargs: Any) -> Any:
        from .protocol import encode

        message: dict[str, Any] = {
            "op": "call", "target": self._target(where, path), "args": encode(list(args)),
            "kwargs": encode(kwargs), "ret": ret,
        }
        if repeat is not None:
            message["repeat"], message["stack"] = repeat, stack
        if seed is not None:
            message["seed"] = seed
        return self.sandbox.request(message, timeout * self.scale if timeout else self.timeout)

    def get(self, where: str | Handle, path: str, ret: str = "auto") -> Any:
        return self.sandbox.request({"op": "get", "target": self._target(where, path), "ret": ret}, self.timeout)

    def figures(self, save_as: str = "") -> list[dict[str, Any]]:
        """Describe (and close) the student's open figures; keep their pictures for the feedback."""
        figs = self.sandbox.request({"op": "figures", "images": True}, self.timeout)
        if not isinstance(figs, list):
            raise CheckFailed("the figures could not be read back", f"got {type(figs).__name__}")
        for n, fig in enumerate(figs, 1):
            image = fig.pop("image", None) if isinstance(fig, dict) else None
            if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4 \
                    and image.shape[0] <= 1000 and image.shape[1] <= 1000:
                self.saved_figures.append((f"{save_as or 'figure'}-{n}", image))
        return figs


Tensor = TorchArray  # an argument that arrives in the sandbox as a torch tensor


# -- comparisons with three-part messages ---------------------------------------------------------
def as_array(value: Any, what: str, ndim: int | None = None) -> np.ndarray:
    """Plain numeric array from a student's value, or a CheckFailed naming what came back."""
    if isinstance(value, Handle):
        raise CheckFailed(f"{what} should be an array, got a {value.type_name}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001
        raise CheckFailed(f"{what} should be an array, got {type(value).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise CheckFailed(f"{what} should be numeric, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise CheckFailed(f"{what} should have {ndim} dimension(s), got shape {arr.shape}")
    return arr.astype(np.float64)


def expect_shape(arr: np.ndarray, shape: tuple[int, ...], what: str, hint: str = "") -> None:
    if tuple(arr.shape) != tuple(shape):
        raise CheckFailed(f"{what} has the wrong shape", f"expected {tuple(shape)}, got {tuple(arr.shape)}", hint)


def expect_close(got: Any, expected: np.ndarray, what: str, atol: float = 1e-9, rtol: float = 0.0, hint: str = "") -> None:
    got_arr = as_array(got, what)
    expected = np.asarray(expected, dtype=np.float64)
    expect_shape(got_arr, expected.shape, what)
    bad = ~np.isclose(got_arr, expected, atol=atol, rtol=rtol, equal_nan=False)
    if bad.any():
        diff = np.abs(np.where(np.isfinite(got_arr), got_arr, np.inf) - expected)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), expected.shape)) if expected.ndim else ()
        nonfinite = int((~np.isfinite(got_arr)).sum())
        detail = (
            f"{int(bad.sum())} of {bad.size} values differ (max abs diff {float(np.max(diff[bad])):.3g}, "
            f"tolerance {atol:g}); the worst is at index {idx}"
        )
        if nonfinite:
            detail += f"; {nonfinite} value(s) are NaN or inf"
        raise CheckFailed(f"{what} is wrong", detail, hint)
