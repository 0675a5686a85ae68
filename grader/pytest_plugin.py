"""Run an assignment's hidden checks with plain pytest, against the reference or any submission.

    pytest -p grader.pytest_plugin solutions/<id>/hidden                      # the reference solution
    pytest -p grader.pytest_plugin solutions/<id>/hidden --submission x.zip   # a zip, folder, .py or notebook

Both idioms of hidden test files (`check_*.py`) are collected: functions decorated with @check and
pytest tests (`test_*(student)` marked `@pytest.mark.item(...)`, with parametrize, plain asserts, the
file's own function-scoped fixtures and hypothesis's @given, as the batch grader runs them).
The `student` fixture is the same proxy the batch grader gives checks: the submission runs in the same
sandbox (bubblewrap when available), one worker per test session, restarted after a timeout or crash.
NeedsReview shows as a skip with its reason. The verdict is pytest's; marks come from `grade`/`check`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from . import answers as answers_mod
from . import intake, spec
from .checks import NeedsReview, Student, grading_settings
from .sandbox import Limits, Sandbox, detect_mode, scratch_dir

SKIP = {"hidden", "public_tests", "tests", "rubric.toml", "__pycache__"}


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("grader", "hidden checks of an assignment")
    group.addoption("--submission", default=None,
                    help="grade this zip, folder, .py or notebook (default: the assignment's reference solution)")
    group.addoption("--grader-sandbox", default=None, choices=["bwrap", "rlimits"], help="force a sandbox mode")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "item(id, weight=1, timeout=30, module='', budget=0): the rubric item a "
                                       "hidden test marks, with its weight and time limit per request")


def _assignment_folder(path: Path) -> Path | None:
    folder = path.parent.parent
    return folder if path.parent.name == "hidden" and (folder / "rubric.toml").is_file() else None


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    if file_path.suffix == ".py" and file_path.name.startswith("check_") and _assignment_folder(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> Any:
    if callable(obj) and hasattr(obj, "__check__") and not name.startswith("test"):
        return pytest.Function.from_parent(collector, name=name)
    return None


def pytest_collection_modifyitems(items: list) -> None:
    """Hypothesis tests of hidden files run with the batch grader's settings (derandomized, no database,
    no deadline): the same examples, and so the same verdict, under pytest as in `grade`."""
    for item in items:
        if _assignment_folder(Path(item.path)) is not None and getattr(item, "obj", None) is not None:
            grading_settings(getattr(item.obj, "__func__", item.obj))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: Any) -> Any:
    try:
        return (yield)
    except NeedsReview as exc:
        pytest.skip(f"needs review: {exc.reason}" + (f" ({exc.evidence})" if exc.evidence else ""))


class _Box:
    """One submission unpacked into a box, served by one sandboxed worker (restarted when it dies)."""

    def __init__(self, assignment: spec.Assignment, submission: Path | None, mode: str | None) -> None:
        self.assignment = assignment
        self.box = scratch_dir("box")
        self.mode = mode or detect_mode()
        self._fill(submission)
        self.box.chmod(0o777)
        self.modules = intake.find_modules(self.box, assignment)
        self.answers, _ = answers_mod.extract(self.box)
        self.sandbox: Sandbox | None = None
        self.module_state: dict[str, tuple[str, str]] = {}

    def _fill(self, submission: Path | None) -> None:
        if submission is None:  # the reference: the solution folder's own files
            for entry in self.assignment.solution_dir.iterdir():
                if entry.is_file() and entry.name not in SKIP and not entry.name.startswith("."):
                    shutil.copyfile(entry, self.box / entry.name)
        elif submission.suffix.lower() == ".zip":
            sub = intake.identify(submission, self.assignment)
            intake.extract(sub, self.assignment, self.box)
        elif submission.is_dir():
            shutil.copytree(submission, self.box, dirs_exist_ok=True)
        else:
            shutil.copyfile(submission, self.box / submission.name)

    def worker(self) -> Sandbox:
        if self.sandbox is None or not self.sandbox.alive:
            for module, state in list(self.module_state.items()):
                if state == ("ok", ""):
                    del self.module_state[module]
            self.sandbox = Sandbox(self.box, self.modules, self.mode, Limits(), os.cpu_count() or 1,
                                   data_dir=self.assignment.public_data_dir)
            self.sandbox.start()
        return self.sandbox

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        shutil.rmtree(self.box, ignore_errors=True)


@pytest.fixture(scope="session")
def _grader_boxes(request: Any) -> Any:
    boxes: dict[Path, _Box] = {}
    yield boxes
    for box in boxes.values():
        box.close()


@pytest.fixture
def student(request: Any, _grader_boxes: dict) -> Student:
    """The submission under test, as hidden checks see it (see grader/checks.py: Student)."""
    folder = _assignment_folder(Path(request.node.path))
    if folder is None:
        pytest.fail("the student fixture is for hidden check files (solutions/<id>/hidden/check_*.py)")
    if folder not in _grader_boxes:
        raw = request.config.getoption("--submission")
        _grader_boxes[folder] = _Box(spec.load(str(folder)), Path(raw).resolve() if raw else None,
                                     request.config.getoption("--grader-sandbox"))
    box = _grader_boxes[folder]
    fn = getattr(request.node, "obj", None)
    declared = getattr(fn, "__check__", None)
    mark = request.node.get_closest_marker("item")
    timeout = declared.timeout if declared else float((mark.kwargs if mark else {}).get("timeout", 30.0))
    limits = box.assignment.limits
    return Student(box.worker(), timeout=timeout, import_timeout=limits.import_seconds, cell_timeout=limits.cell_seconds,
                   module_state=box.module_state, answers=dict(box.answers))
