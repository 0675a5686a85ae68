"""Jupyter notebooks as modules: read with nbformat, run the code cells in order without a kernel.

Used inside the sandbox by the worker (imported top-level as `notebook`) and by public tests on a
student's machine (imported as `grader.notebook`); it imports nothing else from the grader.

Semantics (the same for every assignment):
  * Only code cells run, top to bottom, in one namespace: a module object named after the rubric's
    module, so hidden checks read notebook variables and call notebook functions exactly like
    attributes of a .py module (`student.get("PSET4_PS", "L_mean")`).
  * IPython syntax is translated, never executed against a real shell: line magics (`%matplotlib
    inline`, `%load_ext ...`), cell magics and shell lines (`!pip install ...`, `files = !ls`) become
    calls on a small stand-in for `get_ipython()`. `%time`, `%timeit`, `%%time`, `%%timeit`,
    `%%capture` and `%prun` run their statement once; every other magic and every shell command is a
    no-op (shell output reads as an empty list). Cells whose cell magic is not Python (`%%bash`,
    `%%html`, `%%writefile`, ...) are skipped. `display()` exists and does nothing.
  * A cell that raises does not stop the rest: the error is recorded and the next cell runs (later
    cells that need its variables then fail in turn, and are recorded too). Asking the module for a
    name that no cell defined raises an AttributeError that names the cells that failed, which the
    grader shows as the check's status. `SystemExit` inside a cell counts as an error of that cell.
  * Data paths: before the first cell, the environment variable DATA_ROOT is set to the folder of
    the assignment's public fixture data (`GRADER_DATA_DIR` when the sandbox passes one, else
    /data inside the bubblewrap sandbox), and every entry of that folder that the working directory lacks is
    linked into it, so both `os.environ.get("DATA_ROOT", ".")` and the handout's relative
    `./pmsData/` find the fixtures. A DATA_ROOT already set (a student's own machine) is kept.
  * nbgrader's autograder-test cells (metadata nbgrader.grade true, solution false) are not run by the
    grader: they are the instructor's asserts, which the hidden checks replace.
  * A code cell whose first line is the comment `# grader: skip` is not run by the grader (the
    starter puts it on demo cells whose work the checks redo themselves, e.g. a full training run);
    In Jupyter (and `import_notebook` by default) it is an ordinary comment.
  * The namespace's `__name__` is the module name, not "__main__", so `if __name__ == "__main__":`
    blocks do not run (as when a .py module is imported).
  * Figures are closed after every cell, so checks see only the figures their own calls draw.
  * Markdown cells are not run; those headed `Answer <item id>` are written answers, which
    grader/answers.py reads from the file before any code runs.
  * Parts: notebooks reuse names (`I`, `L`, `mask`) for the next object in later parts. After every
    cell the module notes which top-level names were bound to a new object, so `value_in_part(module,
    name, regex)` gives the value a name had at the end of the part whose markdown heading matches
    (a part runs from its heading to the next heading of the same or a higher level).
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import types
from typing import Any

NON_PYTHON_CELL_MAGICS = {"bash", "sh", "script", "html", "javascript", "js", "latex", "markdown", "svg",
                          "writefile", "perl", "ruby", "system", "sx", "file"}
RUN_BODY_MAGICS = {"time", "timeit", "capture", "prun", "python", "python3", "debug"}
MAX_ERRORS = 50
SKIP = re.compile(r"^\s*#\s*grader:\s*skip\b", re.I)


class NotebookError(Exception):
    """The file is not a readable notebook (not JSON, not nbformat, no cells)."""


# -- reading --------------------------------------------------------------------------------------
def read(path: str) -> dict[str, Any]:
    """The notebook as a plain dict (nbformat 4); NotebookError with a clear reason otherwise."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise NotebookError(f"cannot read {os.path.basename(path)}: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"{os.path.basename(path)} is not a valid notebook: it is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise NotebookError(f"{os.path.basename(path)} is not a valid notebook: no list of cells")
    try:
        import nbformat

        nb = nbformat.reads(text, as_version=4)
        return json.loads(nbformat.writes(nb))
    except ImportError:  # a student's machine without nbformat: read the plain JSON
        return data
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for malformed notebooks
        raise NotebookError(f"{os.path.basename(path)} is not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})") from None


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _autograder_test(cell: dict[str, Any]) -> bool:
    """An nbgrader autograder-test cell (graded, not a solution): the instructor's own asserts, which the
    hidden checks replace; running them in the student's namespace would only cost time."""
    meta = (cell.get("metadata") or {}).get("nbgrader") or {}
    return isinstance(meta, dict) and bool(meta.get("grade")) and not meta.get("solution")


def code_cells(nb: dict[str, Any]) -> list[tuple[int, str]]:
    """(1-based index among all cells, source) of every code cell, in order."""
    return [(i, _source(c)) for i, c in enumerate(nb.get("cells", []), 1) if c.get("cell_type") == "code"]


# -- IPython syntax -> Python ---------------------------------------------------------------------
def to_python(source: str) -> str:
    """Translate one cell's IPython syntax into plain Python that calls `get_ipython()`."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except Exception:  # noqa: BLE001 - IPython missing or broken: a line-based fallback
        return _simple_transform(source)
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - leave it to compile() to report the syntax error
        return source


_LINE = re.compile(r"^(?P<indent>\s*)(?:(?P<target>[\w.,\s\[\]()]+?)\s*=\s*)?(?P<kind>%{1,2}|!{1,2})(?P<rest>.*)$")


def _simple_transform(source: str) -> str:
    lines = source.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if first.lstrip().startswith("%%"):
        name, _, arg = first.strip()[2:].partition(" ")
        body = "\n".join(lines[lines.index(first) + 1:])
        return f"get_ipython().run_cell_magic({name!r}, {arg!r}, {body!r})\n"
    out = []
    for line in lines:
        m = _LINE.match(line)
        if m and not line.strip().startswith("%%"):
            call = (f"get_ipython().run_line_magic({m['rest'].split(' ')[0]!r}, {m['rest'].partition(' ')[2]!r})"
                    if m["kind"] == "%" else f"get_ipython().getoutput({m['rest']!r})")
            out.append(f"{m['indent']}{m['target'] + ' = ' if m['target'] else ''}{call}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


class FakeIPython:
    """What `get_ipython()` returns while a notebook runs: magics and shell commands do nothing."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.user_ns = namespace
        self.ignored: list[str] = []

    def _run(self, code: str) -> Any:
        exec(compile(code, self.user_ns.get("__file__", "<notebook>"), "exec"), self.user_ns)  # noqa: S102

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 0) -> Any:
        if name in ("time", "timeit", "prun") and line.strip():
            body = re.sub(r"^(-\S+\s+)*", "", line.strip())  # %timeit -n 10 stmt
            self._run(to_python(body))
            return None
        self.ignored.append(f"%{name} {line}".strip())
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> Any:
        if name in RUN_BODY_MAGICS:
            self._run(to_python(cell))
            return None
        self.ignored.append(f"%%{name} {line}".strip())
        return None

    def system(self, cmd: str) -> None:
        self.ignored.append(f"!{cmd}")

    def getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> list[str]:
        self.ignored.append(f"!{cmd}")
        return []

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> None:
        self._run(to_python(raw_cell))

    def __getattr__(self, name: str) -> Any:  # anything else (events, kernel, ...) is a no-op
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *a, **k: None


def _display(*objs: Any, **kwargs: Any) -> None:
    return None


# -- running ----------------------------------------------------------------------------------------
class NotebookModule(types.ModuleType):
    """A module whose attributes are a notebook's variables; missing names explain failed cells."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        errors = self.__dict__.get("_notebook_errors") or []
        where = self.__dict__.get("__notebook__", "the notebook")
        if errors:
            first = "; ".join(f"cell {e['cell']} raised {e['error']}: {e['message'][:160]}" for e in errors[:3])
            more = f" (and {len(errors) - 3} more cells)" if len(errors) > 3 else ""
            # A starter stub left in place is an unanswered task, and a name some cell does define but that
            # cell failed is the student's own crash: both are scored. A name no cell defines may be
            # another name or layout than the checks expect: reviewed.
            stub = any(e["error"] == "NotImplementedError" for e in errors)
            kind = AttributeError if stub or name in self.__dict__.get("_notebook_defines", ()) else MissingName
            raise kind(f"{where} defines no '{name}': {first}{more}; the other cells still ran")
        raise MissingName(f"{where} defines no '{name}' (no code cell assigns it)")


def data_root() -> str:
    """The fixture data folder to expose to the notebook ('' when there is none).

    GRADER_DATA_DIR when set; else /data, but only inside the bubblewrap sandbox (working directory
    /box), so that a student's own machine is never touched.
    """
    explicit = os.environ.get("GRADER_DATA_DIR", "")
    if explicit:
        return explicit if os.path.isdir(explicit) else ""
    return "/data" if os.getcwd() == "/box" and os.path.isdir("/data") else ""


def _expose_data(cwd: str) -> None:
    root = data_root()
    if not root:
        return
    os.environ.setdefault("DATA_ROOT", root)
    try:
        entries = os.listdir(root)
    except OSError:
        return
    for name in entries:
        link = os.path.join(cwd, name)
        if not os.path.lexists(link):
            try:
                os.symlink(os.path.join(root, name), link)
            except OSError:
                pass


_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


def headings(nb: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(1-based cell index, level, text) of every markdown heading, in order."""
    found = []
    for i, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("cell_type") != "markdown":
            continue
        for line in _source(cell).splitlines():
            m = _HEADING.match(line.strip())
            if m:
                found.append((i, len(m.group(1)), m.group(2)))
    return found


def _defined_names(cells: list[tuple[int, str]]) -> set[str]:
    """Top-level names the notebook's code cells define (def, class, assignment, import), read from source."""
    import ast

    names: set[str] = set()
    for _, source in cells:
        try:
            tree = ast.parse(to_python(source))
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _note_bindings(ns: dict[str, Any], cell: int, last: dict[str, int], history: dict[str, list]) -> None:
    for key, value in list(ns.items()):
        if key.startswith("_") or key in ("get_ipython", "display"):
            continue
        if last.get(key) != id(value):
            last[key] = id(value)
            history.setdefault(key, []).append((cell, value))


def value_in_part(module: Any, name: str, part: str) -> Any:
    """The value `name` had at the end of the notebook part whose heading matches `part` (a regex)."""
    parts = module.__dict__.get("_notebook_headings")
    if parts is None:  # a .py module has no parts: its final value
        return getattr(module, name)
    pattern = re.compile(part, re.I)
    start = next((n for n, h in enumerate(parts) if pattern.search(h[2])), None)
    if start is None:
        raise LookupError(f"{module.__dict__.get('__notebook__', 'the notebook')} has no heading matching {part!r}")
    cell, level, _ = parts[start]
    end = next((c for c, lv, _ in parts[start + 1:] if lv <= level), float("inf"))
    bound = [v for c, v in module.__dict__.get("_notebook_history", {}).get(name, []) if c < end]
    if not bound:
        raise MissingName(f"{module.__dict__.get('__notebook__', 'the notebook')} defines no '{name}' up to the end of "
                          f"the part headed {parts[start][2]!r}")
    return bound[-1]


class MissingName(AttributeError):
    """A name the grader asked for is not defined by the student's module (another name or layout?)."""


class CellTimeout(BaseException):
    """A cell (or a module's top-level statement) ran past its time limit."""


class TimeLimits:
    """Per-cell (per top-level statement) time limits inside the worker, with SIGALRM.

    A cell over its limit is interrupted and recorded like a failing cell; the next cell runs, as in
    nbgrader. Once the whole import has used `total` seconds, the cells left are not run (recorded), so
    the worker always answers before the grader's import limit. Code that swallows the interruption is
    interrupted again every half second until its cell ends.
    """

    def __init__(self, cell: float | None, total: float | None, skip: list[int] | None = None) -> None:
        self.cell, self.total = cell, total
        self.skip = set(skip or ())  # cells (statement lines) that ran past their limit in an earlier worker
        self.started = time.monotonic()
        self.slowest = 0.0  # seconds of the slowest cell that finished (calibration)

    def spent(self) -> bool:
        return self.total is not None and time.monotonic() - self.started >= self.total

    def run(self, code: Any, ns: dict[str, Any]) -> None:
        began = time.monotonic()
        try:
            self._run(code, ns)
        except CellTimeout:
            raise
        except BaseException:
            self.slowest = max(self.slowest, time.monotonic() - began)
            raise
        self.slowest = max(self.slowest, time.monotonic() - began)

    def _run(self, code: Any, ns: dict[str, Any]) -> None:
        if not self.cell:
            exec(code, ns)  # noqa: S102 - inside the sandbox only
            return
        limit = self.cell
        if self.total is not None:
            limit = max(0.05, min(limit, self.total - (time.monotonic() - self.started)))

        def interrupt(signum: int, frame: Any) -> None:
            raise CellTimeout(f"stopped after {limit:.0f} s (the time limit of one cell or top-level statement)")

        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, limit, 0.5)
        try:
            exec(code, ns)  # noqa: S102 - inside the sandbox only
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def load(name: str, path: str, skip_marked: bool = True, limits: TimeLimits | None = None) -> NotebookModule:
    """Run the notebook at `path` as module `name` (registered in sys.modules); cell errors are kept."""
    nb = read(path)
    module = NotebookModule(name)
    module.__file__ = path
    module.__dict__["__notebook__"] = os.path.basename(path)
    errors: list[dict[str, Any]] = []
    ns = module.__dict__
    shell = FakeIPython(ns)
    ns["get_ipython"] = lambda: shell
    ns["display"] = _display
    ns["_notebook_errors"] = errors
    history: dict[str, list] = {}
    last: dict[str, int] = {}
    ns["_notebook_history"] = history
    ns["_notebook_headings"] = headings(nb)
    ns["_notebook_defines"] = _defined_names(code_cells(nb))
    sys.modules[name] = module
    _expose_data(os.getcwd())
    cells = nb.get("cells", [])
    for index, source in code_cells(nb):
        if not source.strip():
            continue
        if skip_marked and _autograder_test(cells[index - 1]):
            module.__dict__.setdefault("_notebook_skipped", []).append(index)
            continue
        first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
        if skip_marked and SKIP.match(first):
            module.__dict__.setdefault("_notebook_skipped", []).append(index)
            continue
        if first.startswith("%%") and first[2:].split(" ")[0] in NON_PYTHON_CELL_MAGICS:
            shell.ignored.append(first)
            continue
        filename = f"{path} [cell {index}]"
        if limits is not None and limits.spent():
            if len(errors) < MAX_ERRORS:
                errors.append({"cell": index, "error": "NotRun", "message": "not run: the notebook used up its time limit"})
            continue
        if limits is not None and index in limits.skip:
            if len(errors) < MAX_ERRORS:
                errors.append({"cell": index, "error": "CellTimeout", "message": "not run: it ran past its time limit in an earlier worker"})
            continue
        try:
            code = compile(to_python(source), filename, "exec")
            (limits or TimeLimits(None, None)).run(code, ns)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a failing cell is data; the next cell runs
            if isinstance(exc, CellTimeout):
                ns.setdefault("_timed_out_at", []).append(index)
            if len(errors) < MAX_ERRORS:
                errors.append({"cell": index, "error": type(exc).__name__, "message": str(exc)[:500]})
        finally:
            _close_figures()
            _note_bindings(ns, index, last, history)
    if limits is not None:
        ns["_slowest_cell"] = limits.slowest
    return module


def _close_figures() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001
            pass


def import_notebook(path: str, name: str | None = None, data_dir: str | None = None,
                    skip_marked: bool = False) -> NotebookModule:
    """For public tests on a student's machine: run a notebook in this process and return it."""
    if data_dir:
        os.environ.setdefault("DATA_ROOT", str(data_dir))
    name = name or os.path.splitext(os.path.basename(str(path)))[0]
    os.environ.setdefault("MPLBACKEND", "Agg")
    return load(name, str(path), skip_marked=skip_marked)
