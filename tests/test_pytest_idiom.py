"""Hidden tests in pytest idiom: marked with their rubric item, parametrized, plain asserts with approx;
graded by the batch grader (marks, incremental keys) and run by plain pytest against the reference or a
submission with the grader's plugin."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grader import batch, spec
from grader.checks import load_checks
from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_new_assignment import _build  # noqa: E402  (README's walkthrough assignment)

PYTEST_STYLE = '''import numpy as np
import pytest


@pytest.mark.item("1.1", weight=1, timeout=10, module="metrics")
@pytest.mark.parametrize("peak", [1.0, 255.0], ids=["unit", "byte"])
def test_scales_with_the_peak(student, peak):
    """PSNR uses the peak value given"""
    a, b = np.random.default_rng(1).random((2, 4, 4)) * peak
    got = student.call("metrics", "psnr", a, b, peak)
    assert got == pytest.approx(10 * np.log10(peak ** 2 / np.mean((a - b) ** 2)), rel=1e-9)
'''
IGNORES_PEAK = '''import numpy as np

def psnr(a, b, peak=1.0):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
'''


def _assignment(tmp_path: Path) -> Path:
    folder = _build(tmp_path)
    (folder / "hidden" / "check_peak.py").write_text(PYTEST_STYLE)
    return folder


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_pytest_style_tests_become_checks_per_parameter(tmp_path):
    """Does each parameter set become its own check of item 1.1, named by the docstring and the case id,
    and does the item's key cover the pytest-style file?"""
    folder = _assignment(tmp_path)
    names = [c.name for c in load_checks(folder / "hidden") if c.item == "1.1"]
    assert "PSNR uses the peak value given [unit]" in names and "PSNR uses the peak value given [byte]" in names
    ctx = batch.build_context(spec.load(str(folder)), "bwrap")
    before = ctx.item_keys["1.1"]
    (folder / "hidden" / "check_peak.py").write_text(PYTEST_STYLE.replace("rel=1e-9", "rel=1e-8"))
    assert batch.build_context(spec.load(str(folder)), "bwrap").item_keys["1.1"] != before


def test_the_batch_grades_pytest_style_tests_with_pytests_assert_messages(tmp_path):
    """Reference full; a psnr that ignores `peak` loses the byte case, and its feedback shows the values
    pytest's assertion rewriting reports."""
    folder = _assignment(tmp_path)
    ref = _run("-m", "grader", "check", str(folder / "metrics.py"), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 10 | 10 |" in ref.stdout, ref.stderr[-2000:]
    wrong = tmp_path / "wrong" / "metrics.py"
    wrong.parent.mkdir()
    wrong.write_text(IGNORES_PEAK)
    out = _run("-m", "grader", "check", str(wrong), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 8 | 10 |" in out.stdout, out.stdout[-2500:]
    assert "assert -40.1" in out.stdout and "byte" in out.stdout  # the compared values, from pytest's rewriting
    assert "array(" not in out.stdout  # never the hidden inputs spelled out by the "where" lines


def test_plain_pytest_runs_the_hidden_checks_against_reference_and_submission(tmp_path):
    """Does `pytest -p grader.pytest_plugin <assignment>/hidden` pass on the reference and fail on a wrong one?"""
    folder = _assignment(tmp_path)
    ref = _run("-m", "pytest", "-p", "grader.pytest_plugin", str(folder / "hidden"), "-q", "-p", "no:cacheprovider")
    assert ref.returncode == 0 and "4 passed" in ref.stdout, ref.stdout[-2000:]
    wrong = tmp_path / "metrics.py"
    wrong.write_text(IGNORES_PEAK)
    bad = _run("-m", "pytest", "-p", "grader.pytest_plugin", str(folder / "hidden"), "-q", "-p", "no:cacheprovider",
               "--submission", str(wrong))
    assert bad.returncode == 1 and "1 failed, 3 passed" in bad.stdout, bad.stdout[-2000:]


# -- fixtures and hypothesis, in the batch as under pytest ------------------------------------------
WITH_FIXTURES = '''import numpy as np
import pytest

EVENTS = []


@pytest.fixture
def images():
    EVENTS.append("set up images")
    yield np.random.default_rng(2).random((2, 4, 4))
    EVENTS.append("tear down images")


@pytest.fixture
def psnr_at(student, images):
    def psnr(peak):
        return student.call("metrics", "psnr", images[0] * peak, images[1] * peak, peak)
    yield psnr
    EVENTS.append("tear down psnr_at")


@pytest.mark.item("1.1", weight=1, timeout=10, module="metrics")
@pytest.mark.parametrize("peak", [1.0, 255.0], ids=["unit", "byte"])
def test_psnr_of_the_fixture_images(psnr_at, images, peak):
    """PSNR of a fixture's images"""
    a, b = images * peak
    assert psnr_at(peak) == pytest.approx(10 * np.log10(peak ** 2 / np.mean((a - b) ** 2)), rel=1e-9)
'''
WITH_HYPOTHESIS = '''import numpy as np
import pytest
from hypothesis import given, strategies as st

PEAKS = []


@pytest.mark.item("1.1", weight=1, timeout=10, module="metrics")
@given(peak=st.floats(0.5, 1000.0))
def test_a_tenth_of_the_peak_is_20_db(student, peak):
    """PSNR is 20 dB when every pixel is off by a tenth of the peak"""
    PEAKS.append(peak)
    got = student.call("metrics", "psnr", np.zeros((2, 2)), np.full((2, 2), peak / 10), peak)
    assert got == pytest.approx(20.0, abs=1e-9)
'''
RIGHT = '''import numpy as np

def psnr(a, b, peak=1.0):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)
'''


class _Local:
    """Stands in for the sandboxed Student: calls a module of this process (enough for the binding)."""

    def __init__(self, source: str, slow_first: float = 0.0) -> None:
        import time
        import types

        self.module = types.ModuleType("metrics")
        exec(source, self.module.__dict__)  # noqa: S102 - the test's own code
        self.slow_first, self.sleep = slow_first, time.sleep

    def call(self, where, name, *args, **kwargs):
        if self.slow_first:  # one slow round trip, as a loaded machine gives
            self.sleep(self.slow_first)
            self.slow_first = 0.0
        return getattr(self.module, name)(*args, **kwargs)


def _hidden(tmp_path: Path, name: str, text: str) -> list:
    hidden = tmp_path / "idiom" / "hidden"
    hidden.mkdir(parents=True, exist_ok=True)
    (hidden / name).write_text(text)
    return load_checks(hidden)


def _verdict(chk, student) -> str:
    try:
        chk.fn(student)
    except AssertionError:
        return "failed"
    return "passed"


def test_fixtures_of_the_hidden_file_are_set_up_and_torn_down_per_check_in_the_batch(tmp_path):
    """A test taking the file's @pytest.fixture functions (a yield fixture, one that takes `student`):
    does the batch binding give it their values and tear them down in reverse order, pass or fail?"""
    checks = _hidden(tmp_path, "check_fixtures.py", WITH_FIXTURES)
    assert [c.name for c in checks] == ["PSNR of a fixture's images [unit]", "PSNR of a fixture's images [byte]"]
    events = checks[0].fn.__wrapped__.__globals__["EVENTS"]
    assert [_verdict(c, _Local(RIGHT)) for c in checks] == ["passed", "passed"]
    assert [_verdict(c, _Local(IGNORES_PEAK)) for c in checks] == ["passed", "failed"]
    assert events == ["set up images", "tear down psnr_at", "tear down images"] * 4


def test_a_fixture_the_batch_cannot_give_is_an_error_naming_it(tmp_path):
    """An unknown argument or a module-scoped fixture stops loading with the file and the name."""
    import pytest

    with pytest.raises(ValueError, match="fixture 'psnr_at' takes 'images'"):
        _hidden(tmp_path, "check_fixtures.py", WITH_FIXTURES.replace("def images", "def pictures"))
    with pytest.raises(ValueError, match="fixture 'images' has scope='module'"):
        _hidden(tmp_path, "check_fixtures.py", WITH_FIXTURES.replace("@pytest.fixture\ndef images", "@pytest.fixture(scope='module')\ndef images"))


def test_hypothesis_tests_in_the_batch_are_derandomized_without_deadline_or_database(tmp_path, monkeypatch):
    """A @given test: a slow round trip is no failure (no deadline), every run tries the same examples,
    a wrong psnr fails with the assertion (one failure, shrunk), and no example database is written."""
    monkeypatch.chdir(tmp_path)
    (chk,) = _hidden(tmp_path, "check_hypothesis.py", WITH_HYPOTHESIS)
    peaks = sys.modules["_hidden_idiom_check_hypothesis"].PEAKS
    assert _verdict(chk, _Local(RIGHT, slow_first=0.3)) == "passed"
    first = list(peaks)
    peaks.clear()
    assert _verdict(chk, _Local(RIGHT)) == "passed" and peaks == first
    assert _verdict(chk, _Local(IGNORES_PEAK)) == "failed"
    assert not (tmp_path / ".hypothesis" / "examples").exists()  # no example database


def test_fixtures_and_hypothesis_grade_the_same_under_grade_and_plain_pytest(tmp_path):
    """The walkthrough assignment with both files: full marks for the reference and the same failures for
    a psnr that ignores `peak`, from `grader check` and from plain pytest."""
    folder = _build(tmp_path)
    (folder / "hidden" / "check_fixtures.py").write_text(WITH_FIXTURES)
    (folder / "hidden" / "check_hypothesis.py").write_text(WITH_HYPOTHESIS)
    wrong = tmp_path / "wrong" / "metrics.py"
    wrong.parent.mkdir()
    wrong.write_text(IGNORES_PEAK)
    ref = _run("-m", "grader", "check", str(folder / "metrics.py"), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 10 | 10 |" in ref.stdout, ref.stdout[-2000:] + ref.stderr[-2000:]
    out = _run("-m", "grader", "check", str(wrong), "--assignment", str(folder))
    assert "| 1.1 | PSNR of two images | 6.67 | 10 |" in out.stdout, out.stdout[-2500:]
    assert "**failed**: PSNR is 20 dB" in out.stdout and "**failed**: PSNR of a fixture's images \\[byte\\]" in out.stdout
    plain = _run("-m", "pytest", "-p", "grader.pytest_plugin", str(folder / "hidden"), "-q", "-p", "no:cacheprovider",
                 "--submission", str(wrong))
    assert "2 failed, 3 passed" in plain.stdout, plain.stdout[-2000:]
