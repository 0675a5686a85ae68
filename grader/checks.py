"""What hidden tests are written with: the @check registry, the Student proxy and comparisons.

Hidden tests run in the trusted grader process. They reach the student's code only through
`Student`, which sends requests to the sandbox and gets plain data back.
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .protocol import Handle, TorchArray
from .sandbox import Sandbox, SandboxError, SandboxTimeout, StudentError


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
    budget: float = 0.0  # wall seconds for the whole check (every request; imports not counted)

    @property
    def total_budget(self) -> float:
        return self.budget or max(8 * self.timeout, 240.0)


def check(item: str, name: str, weight: float = 1.0, timeout: float = 30.0, module: str = "",
          budget: float = 0.0) -> Callable:
    """Mark a hidden-test function as a check for a rubric item.

    `timeout` bounds each request to the sandbox; `budget` bounds the whole check (default: 8 timeouts,
    at least 4 minutes), so that a check looping over objects the student supplies cannot run forever."""

    def wrap(fn: Callable[["Student"], None]) -> Callable[["Student"], None]:
        fn.__check__ = Check(item, name, weight, fn, timeout, module, budget)  # type: ignore[attr-defined]
        return fn

    return wrap


def load_checks(hidden_dir: Path) -> list[Check]:
    """Import the instructor's hidden test modules (trusted code) and collect their checks in order.

    Two idioms, freely mixed: functions decorated with @check(...), and pytest tests (`test_*` functions
    taking `student`, marked `@pytest.mark.item("1.1", weight=2, timeout=30, module="m")`, optionally
    `@pytest.mark.parametrize(...)`, taking the module's own `@pytest.fixture` functions besides
    `student`, or `@given(...)` from hypothesis). Plain asserts are rewritten as pytest does, so a failing
    one says what the values were."""
    found: list[Check] = []
    for path in sorted(hidden_dir.glob("check_*.py")):
        module = _import_rewritten(path, f"_hidden_{hidden_dir.parent.name}_{path.stem}")
        fixtures = _fixtures(module, path)
        for name, value in list(vars(module).items()):
            if callable(value) and hasattr(value, "__check__"):
                found.append(value.__check__)
            elif callable(value) and name.startswith("test") and _item_mark(value) is not None:
                found += _pytest_checks(value, fixtures, path)
    return found


def helper_module(beside: str, name: str) -> Any:
    """A helper module that sits beside a hidden check file (hidden/ is not a package): imported once,
    with asserts rewritten like the checks, and shared by every check file that asks for it."""
    import sys

    path = Path(beside).with_name(f"{name}.py")
    key = f"_hidden_helper_{path.parent.parent.name}_{name}"
    return sys.modules.get(key) or _import_rewritten(path, key)


def _import_rewritten(path: Path, name: str) -> Any:
    import ast
    import sys
    import types

    source = path.read_bytes()
    tree = ast.parse(source, str(path))
    try:
        from _pytest.assertion.rewrite import rewrite_asserts

        rewrite_asserts(tree, source, str(path))
    except ImportError:  # pytest missing: plain asserts still work, with pytest's messages
        pass
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the instructor's trusted code
    return module


def _marks(fn: Any) -> list:
    return list(getattr(fn, "pytestmark", []))


def _item_mark(fn: Any) -> Any:
    return next((m for m in _marks(fn) if m.name == "item"), None)


def _pytest_checks(fn: Callable, fixtures: dict[str, "_Fixture"] | None = None, path: Path | None = None) -> list[Check]:
    """Checks from one pytest-idiom test: one per parameter set of its parametrize marks."""
    mark = _item_mark(fn)
    item = str(mark.args[0]) if mark.args else str(mark.kwargs["id"])
    opts = {k: mark.kwargs[k] for k in ("weight", "timeout", "module", "budget") if k in mark.kwargs}
    title = (fn.__doc__ or "").strip().splitlines()[0].strip() if fn.__doc__ else fn.__name__.removeprefix("test_").replace("_", " ")
    cases: list[tuple[str, dict[str, Any]]] = [("", {})]
    for par in (m for m in reversed(_marks(fn)) if m.name == "parametrize"):
        names = [n.strip() for n in (par.args[0].split(",") if isinstance(par.args[0], str) else par.args[0])]
        values = list(par.args[1])
        ids = par.kwargs.get("ids")
        expanded = []
        for label, bound in cases:
            for n, value in enumerate(values):
                row = value if len(names) > 1 else (value,)
                case_id = str(ids[n]) if ids is not None else "-".join(map(str, row))[:40]
                expanded.append((f"{label}-{case_id}" if label else case_id, {**bound, **dict(zip(names, row))}))
        cases = expanded
    grading_settings(fn)
    fixtures = fixtures or {}
    params = _parameters(fn)
    where = f"{path or fn.__code__.co_filename}: {fn.__name__}"
    for name in params:
        if name != "student" and name not in fixtures and not all(name in bound for _, bound in cases):
            raise ValueError(f"{where} takes {name!r}, which is neither `student`, a parameter of its parametrize "
                             f"marks nor a @pytest.fixture of the same file")
    checks = []
    for label, bound in cases:
        checks.append(Check(item, f"{title} [{label}]" if label else title, float(opts.get("weight", 1.0)),
                            _bind(fn, bound, fixtures, params), float(opts.get("timeout", 30.0)),
                            str(opts.get("module", "")), float(opts.get("budget", 0.0))))
    return checks


def grading_settings(fn: Any) -> None:
    """A hypothesis test (`@given`) runs as every grading run must, under pytest and in the batch alike:
    derandomized (the same examples for every submission, every run), with no example database (nothing
    written, nothing replayed from an earlier submission), no deadline (a sandbox round trip's time
    depends on the machine's load, not on the student), one failure reported (the shrunk example), and
    no health-check complaint about the function-scoped `student` fixture. Settings the test gives
    itself are kept otherwise (max_examples, phases, ...)."""
    if not getattr(fn, "is_hypothesis_test", False):
        return
    from hypothesis import HealthCheck, settings

    current = getattr(fn, "_hypothesis_internal_use_settings", None) or settings.default
    suppressed = set(current.suppress_health_check) | {HealthCheck.function_scoped_fixture, HealthCheck.differing_executors}
    fn._hypothesis_internal_use_settings = settings(current, derandomize=True, database=None, deadline=None,
                                                    report_multiple_bugs=False, suppress_health_check=list(suppressed))


@dataclass(frozen=True)
class _Fixture:
    """A module-level `@pytest.fixture` of a hidden file, as the batch grader runs it (function scope)."""

    name: str
    fn: Callable
    params: tuple[str, ...]
    autouse: bool


def _fixtures(module: Any, path: Path) -> dict[str, _Fixture]:
    """The `@pytest.fixture` functions a hidden file defines. Only what the batch can give the same
    meaning as pytest: function scope, no `params`; anything else is an error naming the fixture."""
    found: dict[str, _Fixture] = {}
    for attr, value in vars(module).items():
        marker = getattr(value, "_fixture_function_marker", None) or getattr(value, "_pytestfixturefunction", None)
        if marker is None:
            continue
        fn = value._get_wrapped_function() if hasattr(value, "_get_wrapped_function") else getattr(value, "__wrapped__", value)
        name = getattr(marker, "name", None) or attr
        if getattr(marker, "scope", "function") != "function":
            raise ValueError(f"{path}: fixture {name!r} has scope={marker.scope!r}; hidden files may define "
                             "function-scoped fixtures only (each check runs on its own)")
        if getattr(marker, "params", None):
            raise ValueError(f"{path}: fixture {name!r} has params; use @pytest.mark.parametrize on the test instead")
        found[name] = _Fixture(name, fn, tuple(_parameters(fn)), bool(getattr(marker, "autouse", False)))
    for fx in found.values():
        for name in fx.params:
            if name != "student" and name not in found:
                raise ValueError(f"{path}: fixture {fx.name!r} takes {name!r}, which is neither `student` nor a "
                                 "@pytest.fixture of the same file")
    return found


def _parameters(fn: Callable) -> list[str]:
    import inspect

    return [n for n, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _bind(fn: Callable, bound: dict[str, Any], fixtures: dict[str, _Fixture] | None = None,
          params: list[str] | None = None) -> Callable[["Student"], None]:
    fixtures = fixtures or {}
    params = _parameters(fn) if params is None else params
    wanted = [f.name for f in fixtures.values() if f.autouse] + [n for n in params if n not in bound]

    def run(student: "Student") -> None:
        with _FixtureScope(fixtures, student) as scope:
            values = {name: scope.value(name) for name in wanted}
            try:
                fn(**{n: values[n] for n in params if n not in bound}, **bound)
            except BaseExceptionGroup as group:  # hypothesis (flaky, several bugs): the first failure is the verdict
                raise _first_leaf(group) from None

    run.__wrapped__ = fn  # type: ignore[attr-defined]  # where the check's source is (feedback, item keys)
    return run


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class _FixtureScope:
    """Fixture values for one check: each set up once, on first request; yield fixtures torn down in
    reverse order when the check ends, passed or failed (a teardown's error fails a check that passed)."""

    def __init__(self, fixtures: dict[str, _Fixture], student: "Student") -> None:
        self.fixtures, self.values = fixtures, {"student": student}
        self.open: list[tuple[str, Any]] = []
        self.pending: list[str] = []

    def value(self, name: str) -> Any:
        import inspect

        if name in self.values:
            return self.values[name]
        if name in self.pending:
            raise ValueError(f"fixtures depend on each other in a loop: {' -> '.join(self.pending + [name])}")
        fx = self.fixtures[name]
        self.pending.append(name)
        try:
            result = fx.fn(**{p: self.value(p) for p in fx.params})
            if inspect.isgenerator(result):
                self.open.append((name, result))
                result = next(result)
        finally:
            self.pending.pop()
        self.values[name] = result
        return result

    def __enter__(self) -> "_FixtureScope":
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        error: BaseException | None = None
        for name, gen in reversed(self.open):
            try:
                next(gen)
            except StopIteration:
                continue
            except BaseException as problem:  # noqa: BLE001 - reported below unless the check already failed
                error = error or problem
            else:
                error = error or ValueError(f"fixture {name!r} yields more than once")
        self.open.clear()
        if error is not None and exc is None:
            raise error
        return False


def source_file(chk: Check) -> str:
    """The hidden test file that defines a check."""
    return getattr(chk.fn, "__wrapped__", chk.fn).__code__.co_filename


class NeedsReview(Exception):
    """The item cannot be decided automatically (an entry point the checks need is missing, the layout
    differs, the course's environment got in the way): a TA marks it, shown the reason and the evidence."""

    def __init__(self, reason: str, evidence: str = "") -> None:
        super().__init__(reason)
        self.reason, self.evidence = reason, evidence


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
    cell_timeout: float = 0.0  # per notebook cell / top-level statement while importing (0: none)
    module_state: dict[str, tuple[str, str]] = field(default_factory=dict)
    scale: float = 1.0  # multiplies timeouts that checks give explicitly
    answers: dict[str, str] = field(default_factory=dict)  # item id -> the student's written answer (text)
    saved_figures: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (label, RGBA pixels) for feedback
    deadline: float = float("inf")  # time.monotonic() by which the whole check must be done (all its requests)
    cap: float = float("inf")  # calibrated ceiling for requests that name their own timeout
    module_names: dict[str, list[str]] = field(default_factory=dict)  # module -> public names it defines
    timed_out: dict[str, list[int]] = field(default_factory=dict)  # module -> cells / lines over their limit
    import_limits: dict[str, float] = field(default_factory=dict)  # module -> calibrated import limit (else import_timeout)
    import_seconds: dict[str, float] = field(default_factory=dict)  # module -> how long its import took (calibration)
    cell_limits: dict[str, float] = field(default_factory=dict)  # module -> calibrated per-cell limit (else cell_timeout)
    slowest_cell: dict[str, float] = field(default_factory=dict)  # module -> its slowest cell / statement (calibration)
    longest_request: float = 0.0  # seconds of this check's slowest request (calibration)

    def _request(self, message: dict[str, Any], timeout: float) -> Any:
        started = time.monotonic()
        try:
            return self.sandbox.request(message, timeout)
        finally:
            self.longest_request = max(self.longest_request, time.monotonic() - started)

    def _timeout(self, wanted: float) -> float:
        """A request's time limit: its own, but never past the check's total budget."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SandboxTimeout("the check used up its total time budget")
        return min(wanted, left)

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
        started = time.monotonic()
        self.sandbox.close()
        self.sandbox.start()
        self.deadline += time.monotonic() - started
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
        started = time.monotonic()
        try:
            # The worker stops running cells a little before the import limit, so it always answers.
            limit = self.import_limits.get(module, self.import_timeout)
            cell = min(self.cell_limits.get(module, self.cell_timeout), limit)
            limits = {"cell": cell, "total": max(1.0, 0.9 * limit - 1.0),
                      "skip": self.timed_out.get(module, [])} if self.cell_timeout else None
            names = self.sandbox.request({"op": "load", "module": module, "limits": limits}, limit)
            self.import_seconds.setdefault(module, time.monotonic() - started)
        except StudentError as exc:
            self.module_state[module] = ("error", f"importing {module} failed: {exc.error}: {exc.message}"[:600])
            raise ModuleUnavailable(*self.module_state[module]) from None
        except SandboxError as exc:
            self.sandbox.close()
            self.module_state[module] = (exc.status, f"importing {module} failed ({exc.status}): {exc}"[:600])
            raise ModuleUnavailable(*self.module_state[module]) from None
        finally:
            self.deadline += time.monotonic() - started  # imports have their own limit, not the check's budget
        self.module_state[module] = ("ok", "")
        self._note_loaded(module, names)

    def _note_loaded(self, module: str, reply: Any) -> None:
        """Keep the module's names, and the cells that ran past their limit (a later worker skips them)."""
        if not isinstance(reply, dict):
            return
        names, late = reply.get("names"), reply.get("timed_out")
        if isinstance(reply.get("slowest_cell"), (int, float)):
            self.slowest_cell.setdefault(module, float(reply["slowest_cell"]))
        if isinstance(names, list):
            self.module_names[module] = [str(n) for n in names[:100000]]
        if isinstance(late, list) and late:
            known = self.timed_out.setdefault(module, [])
            known += [int(k) for k in late[:1000] if isinstance(k, int) and k not in known]

    def names(self, module: str) -> list[str]:
        """The public names the student's module (or notebook) defines; loads it if needed."""
        self.load(module)
        if module not in self.module_names:  # loaded by an earlier check: ask again (cheap, already imported)
            self._note_loaded(module, self._request({"op": "load", "module": module}, self._timeout(self.timeout)))
        return list(self.module_names.get(module, []))

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
        wanted = min(timeout * self.scale, self.cap) if timeout else self.timeout
        return self._request(message, self._timeout(wanted))

    def get(self, where: str | Handle, path: str, ret: str = "auto", part: str | None = None) -> Any:
        """A value of the student's module. For notebooks, `part` (a regex searched in the markdown
        headings) asks for the value a top-level name had at the end of that part of the notebook,
        not at its end (notebooks reuse names such as `I` or `L` in later parts)."""
        target = self._target(where, path)
        if part is not None:
            target["part"] = part
        return self._request({"op": "get", "target": target, "ret": ret}, self._timeout(self.timeout))

    MAX_IMAGES = 8  # pictures kept per request; runner._save_figures also caps them per submission

    def figures(self, save_as: str = "") -> list[dict[str, Any]]:
        """Describe (and close) the student's open figures; keep their pictures for the feedback
        (at most MAX_IMAGES per request, none for an empty or oversized picture)."""
        figs = self._request({"op": "figures", "images": True}, self._timeout(self.timeout))
        if not isinstance(figs, list):
            raise CheckFailed("the figures could not be read back", f"got {type(figs).__name__}")
        kept = 0
        for n, fig in enumerate(figs, 1):
            image = fig.pop("image", None) if isinstance(fig, dict) else None
            if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4 \
                    and 0 < image.shape[0] <= 1000 and 0 < image.shape[1] <= 1000 and kept < self.MAX_IMAGES:
                self.saved_figures.append((f"{save_as or 'figure'}-{n}", image))
                kept += 1
        return figs


Tensor = TorchArray  # an argument that arrives in the sandbox as a torch tensor


# -- comparisons with three-part messages ---------------------------------------------------------
def as_array(value: Any, what: str, ndim: int | None = None, allow_nonfinite: bool = False) -> np.ndarray:
    """Plain numeric array from a student's value, or a CheckFailed naming what came back.

    NaN and inf fail the check unless `allow_nonfinite` (a check that expects them must say so)."""
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
    arr = arr.astype(np.float64)
    if not allow_nonfinite and arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise CheckFailed(f"{what} holds NaN or inf", f"{bad} of {arr.size} values are not finite")
    return arr


def expect_shape(arr: np.ndarray, shape: tuple[int, ...], what: str, hint: str = "") -> None:
    if tuple(arr.shape) != tuple(shape):
        raise CheckFailed(f"{what} has the wrong shape", f"expected {tuple(shape)}, got {tuple(arr.shape)}", hint)


def expect_close(got: Any, expected: np.ndarray, what: str, atol: float = 1e-9, rtol: float = 0.0, hint: str = "",
                 allow_nonfinite: bool = False) -> None:
    got_arr = as_array(got, what, allow_nonfinite=allow_nonfinite)
    expected = np.asarray(expected, dtype=np.float64)
    expect_shape(got_arr, expected.shape, what, hint)
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
