"""Runs INSIDE the sandbox: loads the student's modules and serves calls over the wire format.

Started as `python -I worker.py MODULES_JSON`. It reads one request per line from the protocol
input and answers one line per request. Everything here is data gathering; no verdict is ever
computed or trusted on this side. Student code may tamper with this process freely; the grader
only ever sees plain data coming back.
"""
from __future__ import annotations

import __future__
import ast
import importlib.util
import io
import json
import os
import sys
import traceback
from typing import Any

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.getcwd()]  # grader code first, then the box
import compat  # noqa: E402
import notebook  # noqa: E402
import protocol  # noqa: E402

MAX_TRACE = 4000


class Worker:
    def __init__(self, module_files: dict[str, str]) -> None:
        self.module_files = module_files
        self.modules: dict[str, Any] = {}
        self.handles: dict[int, Any] = {}
        self._loaded_files: dict[str, Any] = {}

    # -- handles ---------------------------------------------------------------------------
    def store(self, obj: Any) -> protocol.Handle:
        hid = len(self.handles) + 1
        self.handles[hid] = obj
        return protocol.Handle(hid, type(obj).__name__)

    def lookup(self, hid: int) -> Any:
        if hid not in self.handles:
            raise KeyError(f"unknown handle {hid}")
        return self.handles[hid]

    # -- requests --------------------------------------------------------------------------
    @staticmethod
    def _limits(limits: dict[str, Any] | None) -> notebook.TimeLimits | None:
        if not limits:
            return None
        return notebook.TimeLimits(float(limits.get("cell") or 0) or None, float(limits.get("total") or 0) or None,
                                   skip=[int(k) for k in limits.get("skip", [])])

    def _load_py(self, name: str, path: str, limits: notebook.TimeLimits | None) -> Any:
        """Import a student's .py file. With time limits, each top-level statement runs under the
        per-statement limit: one that runs too long is interrupted and skipped (recorded in
        `_timed_out`), and the rest of the module still loads. Other errors fail the import as usual."""
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if limits is None:
            spec.loader.exec_module(module)
            return module
        with open(path, "rb") as fh:
            source = fh.read()
        ns = module.__dict__
        try:
            tree = ast.parse(source, path)
        except SyntaxError:  # a script exported from Colab keeps `!pip install ...` and `%matplotlib` lines
            tree = ast.parse(notebook.to_python(source.decode("utf-8", "replace")), path)
            shell = notebook.FakeIPython(ns)
            ns.setdefault("get_ipython", lambda: shell)
        flags = 0
        timed_out, at, failed = [], [], []
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                for alias in stmt.names:
                    feature = getattr(__future__, alias.name, None)
                    flags |= feature.compiler_flag if feature is not None else 0
            code = compile(ast.Module([stmt], []), path, "exec", flags=flags, dont_inherit=True)
            if limits.spent():
                timed_out.append(f"line {stmt.lineno}: not run (the module used up its time limit)")
                continue
            if stmt.lineno in limits.skip:
                timed_out.append(f"line {stmt.lineno}: not run (it ran past its time limit in an earlier worker)")
                continue
            try:
                limits.run(code, ns)
            except notebook.CellTimeout as exc:
                timed_out.append(f"line {stmt.lineno}: {exc}")
                at.append(stmt.lineno)
            except (ImportError, KeyboardInterrupt):
                raise  # a missing library fails the import as before (the grader routes it to review)
            except BaseException as exc:  # noqa: BLE001 - like a notebook cell: recorded, the rest still loads
                failed.append({"line": stmt.lineno, "error": type(exc).__name__, "message": str(exc)[:300]})
        if failed:
            ns["_load_errors"] = failed[:50]
            ns["_notebook_defines"] = notebook._defined_names([(0, source.decode("utf-8", "replace"))])
        if timed_out:
            ns["_timed_out"] = timed_out
            ns["_timed_out_at"] = at
        ns["_slowest_cell"] = limits.slowest
        return module

    def load(self, name: str, limits: dict[str, Any] | None = None) -> Any:
        if name in self.modules:
            return self.modules[name]
        if name not in self.module_files:
            raise ModuleNotFoundError(f"the submission has no file for module '{name}'")
        path = self.module_files[name]
        self._search_beside(path)
        if path in self._loaded_files:
            module = self._loaded_files[path]
        elif path.lower().endswith(".ipynb"):  # code cells run in order; failing cells are recorded
            module = notebook.load(name, path, limits=self._limits(limits))
            self._loaded_files[path] = module
        else:
            module = self._load_py(name, path, self._limits(limits))
            self._loaded_files[path] = module
        self.modules[name] = module
        return module

    @staticmethod
    def _search_beside(path: str) -> None:
        """A module in a folder of the zip imports its siblings and its package as it did at home (run
        from the assignment's folder): its folder and each one up to the box go on sys.path, after the
        grader's code and the box, so the grader's libraries still win over a copy in the zip."""
        box = os.getcwd()
        folder = os.path.dirname(os.path.abspath(path))
        extra = []
        while folder.startswith(box + os.sep):
            extra.append(folder)
            folder = os.path.dirname(folder)
        at = sys.path.index(box) + 1 if box in sys.path else len(sys.path)
        for entry in reversed(extra):
            if entry not in sys.path:
                sys.path.insert(at, entry)

    def resolve(self, target: dict[str, Any]) -> Any:
        parts = [p for p in str(target.get("path", "")).split(".") if p]
        for part in parts:
            if part.startswith("__") and part not in ("__call__", "__class__", "__name__"):
                raise AttributeError(f"refusing dunder attribute {part}")
        if "handle" in target:
            obj = self.lookup(int(target["handle"]))
        else:
            obj = self.load(str(target["module"]))
            if parts:  # a module's top-level name: missing means another name or layout, not a wrong answer
                first = parts.pop(0)
                if target.get("part") is not None:
                    obj = notebook.value_in_part(obj, first, str(target["part"]))
                elif first in vars(obj) or isinstance(obj, notebook.NotebookModule):
                    obj = getattr(obj, first)
                elif first in vars(obj).get("_notebook_defines", ()):  # defined by top-level code that failed
                    errors = "; ".join(f"line {e['line']} raised {e['error']}: {e['message'][:120]}"
                                       for e in vars(obj).get("_load_errors", [])[:3])
                    raise AttributeError(f"module '{target['module']}' defines '{first}' in code that failed: {errors}")
                else:
                    raise notebook.MissingName(f"module '{target['module']}' has no attribute '{first}'")
        for part in parts:
            if isinstance(obj, (list, tuple)) and part.isdigit():
                obj = obj[int(part)]
            else:
                obj = getattr(obj, part)
        return obj

    def to_tensor(self, arr: Any) -> Any:
        import torch

        return torch.from_numpy(arr.copy())

    def decode_args(self, raw: Any) -> Any:
        return protocol.decode(raw, to_tensor=self.to_tensor, from_handle=self.lookup)

    def result(self, value: Any, ret: str) -> Any:
        if ret == "handle":
            return protocol.encode(self.store(value))
        if ret == "none":
            return None
        return protocol.encode(value, handles=self.store)

    def seed(self, seed: int) -> None:
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
        if "torch" in sys.modules:
            sys.modules["torch"].manual_seed(seed)

    def handle(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "ping":
            return "pong"
        if op == "load":
            module = self.load(str(request["module"]), request.get("limits"))
            return protocol.encode({"names": sorted(n for n in vars(module) if not n.startswith("_")),
                                    "timed_out": [int(k) for k in vars(module).get("_timed_out_at", [])],
                                    "slowest_cell": float(vars(module).get("_slowest_cell", 0.0))})
        if op == "get":
            return self.result(self.resolve(request["target"]), request.get("ret", "auto"))
        if op == "call":
            fn = self.resolve(request["target"])
            args = self.decode_args(request.get("args", []))
            kwargs = self.decode_args(request.get("kwargs", {"__dict__": {}}))
            repeat = int(request.get("repeat", 1))
            if "seed" in request:
                self.seed(int(request["seed"]))
            outs = [fn(*args, **kwargs) for _ in range(repeat)]
            value = outs[0] if "repeat" not in request else outs
            if request.get("stack") and "repeat" in request:
                value = _stack(outs)
            return self.result(value, request.get("ret", "auto"))
        if op == "figures":
            return protocol.encode(describe_figures(close=True, images=bool(request.get("images"))))
        if op == "adaptations":  # what compat changed so the course's code could run here (for the feedback)
            return protocol.encode(compat.adaptations() + _notebook_lines_not_run(self._loaded_files.values()))
        if op == "report_text":  # a PDF report's text: parsed here, never in the grader's process
            return protocol.encode(report_text(str(request["path"]), int(request.get("max_chars", 200_000)),
                                               int(request.get("max_pages", 60))))
        raise ValueError(f"unknown op {op!r}")


def _notebook_lines_not_run(modules: Any) -> list[str]:
    """Notebooks' shell lines and magics that the grader did not run (`!pip install ...`), for the feedback."""
    found: list[str] = []
    try:
        for module in modules:
            shell = vars(module).get("get_ipython") if isinstance(module, notebook.NotebookModule) else None
            lines = getattr(shell(), "ignored", []) if callable(shell) else []
            found += [f"notebook line not run: {line}"[:200] for line in list(lines)[:50] if isinstance(line, str)]
    except Exception:  # noqa: BLE001 - a notebook that replaced get_ipython just reports nothing here
        pass
    return list(dict.fromkeys(found))[:10]


def report_text(path: str, max_chars: int, max_pages: int) -> dict[str, Any]:
    """The text of a PDF in the box (first `max_pages` pages, at most `max_chars` characters)."""
    box = os.path.realpath(os.getcwd())
    full = os.path.realpath(path)
    if not full.startswith(box + os.sep) or not os.path.isfile(full):
        raise ValueError(f"{path!r} is not a file of the submission")
    saved = sys.path[:]  # the real pypdf, never a pypdf.py the submission ships: no student code runs here
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != box]
    try:
        from pypdf import PdfReader
    finally:
        sys.path[:] = saved
    reader = PdfReader(full)
    texts: list[str] = []
    size = 0
    for page in reader.pages[:max_pages]:
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one unreadable page (a scan, a broken font) does not lose the others
            text = ""
        texts.append(text)
        size += len(text) + 1
        if size >= max_chars:
            break
    text = "\n".join(texts)
    return {"text": text[:max_chars], "pages": len(reader.pages), "truncated": size > max_chars or len(reader.pages) > max_pages}


def _stack(values: list[Any]) -> Any:
    import numpy as np

    arrays = [
        v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for v in values
    ]
    return np.stack(arrays)


MAX_IMAGES = 8  # figures per request that come back with pixels (the grader enforces its own cap too)


def describe_figures(close: bool, images: bool = False) -> list[dict[str, Any]]:
    """Plain-data description of every open matplotlib figure: axes, lines, scatter offsets.

    With images=True the first MAX_IMAGES figures also come with their pixels (uint8 RGBA, at most
    640 px a side; none for an empty figure), which the grader encodes as PNG for the feedback.
    """
    if "matplotlib.pyplot" not in sys.modules:
        return []
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import PathCollection

    figures = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        axes = []
        for ax in fig.get_axes():
            lines = [
                {
                    "x": np.asarray(line.get_xdata(), dtype=float),
                    "y": np.asarray(line.get_ydata(), dtype=float),
                    "label": str(line.get_label()),
                }
                for line in ax.get_lines()
            ]
            scatters = [
                {"offsets": np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2), "label": str(c.get_label())}
                for c in ax.collections
                if isinstance(c, PathCollection)
            ]
            axes.append(
                {
                    "title": ax.get_title(),
                    "xlabel": ax.get_xlabel(),
                    "ylabel": ax.get_ylabel(),
                    "lines": lines,
                    "scatters": scatters,
                }
            )
        entry: dict[str, Any] = {"axes": axes}
        if images and sum("image" in f for f in figures) < MAX_IMAGES:
            try:
                pixels = _pixels(fig)
                if pixels.ndim == 3 and min(pixels.shape[:2]) > 0:  # a 0 x 8 inch figure draws nothing
                    entry["image"] = pixels
            except Exception:  # noqa: BLE001 - a figure that cannot draw still gets described
                pass
        figures.append(entry)
    if close:
        plt.close("all")
    return figures


def _pixels(fig: Any) -> Any:
    import numpy as np

    width, height = fig.get_size_inches()
    dpi = min(80.0, 640.0 / max(width, 1e-3), 640.0 / max(height, 1e-3))
    fig.set_dpi(dpi)
    fig.canvas.draw()
    return np.array(fig.canvas.buffer_rgba(), dtype=np.uint8)


def main(module_files: dict[str, str] | None = None) -> None:
    """Serve requests on stdin/stdout; the module map comes from argv, or from the zygote after a fork."""
    if module_files is None:
        module_files = json.loads(sys.argv[1])
    # The protocol gets private copies of stdin/stdout; the student's prints go to stderr.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    compat.install()  # the course's environment (Colab, downloads, GPU, data paths) before any student code
    worker = Worker(module_files)
    proto_out.write(protocol.dumps({"id": 0, "ok": True, "value": "ready"}))
    proto_out.flush()
    for line in proto_in:
        try:
            request = protocol.loads(line)
            rid = request.get("id")
        except Exception as exc:  # malformed request: answer and go on
            request, rid = {}, None
        try:
            value = worker.handle(request)
            reply = {"id": rid, "ok": True, "value": value}
            data = protocol.dumps(reply)
        except BaseException as exc:  # noqa: BLE001 - every student failure becomes data
            if isinstance(exc, KeyboardInterrupt):
                raise
            trace = traceback.format_exc()[-MAX_TRACE:]
            data = protocol.dumps(
                {"id": rid, "ok": False, "error": type(exc).__name__, "message": str(exc)[:2000], "trace": trace}
            )
        proto_out.write(data)
        proto_out.flush()


if __name__ == "__main__":
    main()
