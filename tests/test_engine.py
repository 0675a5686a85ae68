"""Engine units: the wire format, starter generation, fixture freshness and the marking policy."""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from grader import protocol, spec, strip
from grader.runner import Outcome
from grader.scoring import final_mark, score_items

from grader.spec import ROOT

A2 = "comp4423_a2"


# -- protocol ---------------------------------------------------------------------------------------
def test_protocol_round_trips_plain_data():
    """Do arrays, NaN, tuples, dicts and big ints survive the trip with dtype and shape intact?"""
    value = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": (1.5, float("nan"), float("-inf")), "c": [None, True, "x"], "d": 2**70}
    back = protocol.decode(protocol.loads(protocol.dumps({"v": protocol.encode(value)}))["v"])
    assert back["a"].dtype == np.int32 and back["a"].shape == (2, 3) and (back["a"] == value["a"]).all()
    assert back["b"][0] == 1.5 and np.isnan(back["b"][1]) and back["b"][2] == -np.inf
    assert back["c"] == [None, True, "x"] and back["d"] == 2**70


@pytest.mark.parametrize(
    "bad",
    [
        {"__nd__": "numpy", "dtype": "|O", "shape": [1], "data": ""},
        {"__nd__": "numpy", "dtype": "<f8", "shape": [1000], "data": "AAAAAAAAAAA="},
        {"__nd__": "numpy", "dtype": "<f8", "shape": [-1], "data": ""},
        {"__float__": "__import__('os')"},
        {"__pickle__": "gASVAAAAAAAAAAA="},
        {"__handle__": "1"},
    ],
)
def test_protocol_rejects_lying_data(bad):
    """Does the grader refuse object dtypes, shapes that lie about the bytes, and unknown tags?"""
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(bad)


def test_protocol_rejects_non_standard_json():
    """Is a bare NaN literal (not JSON) refused rather than parsed?"""
    with pytest.raises(protocol.ProtocolError):
        protocol.loads(b'{"id": 1, "value": NaN}')


def test_protocol_refuses_arbitrary_objects_without_a_handle_table():
    """Can nothing but plain data be encoded when no handle table is given?"""
    with pytest.raises(TypeError):
        protocol.encode(object())


# -- starter ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment_id", spec.available())
def test_starter_is_in_sync_with_solution(tmp_path, assignment_id):
    """Does the committed starter equal what `make starter` generates from the solution today?"""
    a = spec.load(assignment_id)
    fresh = tmp_path / "starter"
    strip.starter_for(a, fresh)
    committed = {p.relative_to(a.starter_dir): p.read_bytes() for p in a.starter_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    generated = {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file()}
    assert committed == generated, "starter/ is stale: run `make starter`"


def test_starter_hides_every_solution_block():
    """Does no reference line of a solution block leak into the starter?"""
    a = spec.load(A2)
    for name in a.modules:
        ref = (a.solution_dir / f"{name}.py").read_text()
        starter = (a.starter_dir / f"{name}.py").read_text()
        assert "BEGIN SOLUTION" not in starter and "END SOLUTION" not in starter
        for line in ref.split("# BEGIN SOLUTION")[1:]:
            block = line.split("# END SOLUTION")[0].split("# STARTER")[0]
            for code in block.splitlines()[1:]:
                if code.strip() and not code.strip().startswith("#"):
                    assert code not in starter, f"solution line leaked into the starter: {code.strip()}"


def test_strip_rejects_unbalanced_markers():
    """Does a missing END SOLUTION stop starter generation with a clear error?"""
    with pytest.raises(strip.MarkerError, match="no END SOLUTION"):
        strip.strip_source("x = 1\n    # BEGIN SOLUTION 1.1\ny = 2\n")


def test_strip_turns_gap_into_loud_stub():
    """Does a gap become a NotImplementedError naming the task, with the hint comments kept?"""
    out = strip.strip_source("def f():\n    # BEGIN SOLUTION 4.1\n    # step 2: midpoints\n    m = 1\n    # END SOLUTION\n    return m\n")
    assert "# step 2: midpoints" in out and 'raise NotImplementedError("Task 4.1' in out and "m = 1" not in out


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment_id", spec.available())
def test_fixtures_are_fresh(tmp_path, assignment_id):
    """Does regenerating an assignment's fixtures (fixtures/make_<id>.py: generate(out) -> {file: sha256})
    reproduce its committed manifest and files byte for byte?"""
    import importlib.util

    gen = importlib.util.spec_from_file_location(f"make_{assignment_id}", ROOT / "fixtures" / f"make_{assignment_id}.py")
    module = importlib.util.module_from_spec(gen)
    gen.loader.exec_module(module)
    fresh = module.generate(tmp_path)
    manifest = json.loads((ROOT / "fixtures" / f"manifest_{assignment_id}.json").read_text())
    assert fresh == manifest["files"], f"fixtures are stale: run `make fixtures ASSIGNMENT={assignment_id}`"
    import hashlib

    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((ROOT / "fixtures" / rel).read_bytes()).hexdigest() == digest, f"{rel} differs from the manifest"


# -- rubric and policy ------------------------------------------------------------------------------
def test_rubric_lists_the_handouts_fifteen_items():
    """Does the rubric carry all fifteen items of the handout, 150 marks, with the handout's ids?"""
    a = spec.load(A2)
    ids = [i.id for i in a.items]
    assert ids == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1", "3.2", "4.1", "4.2", "5.1", "5.2", "6.1", "6.2", "6.3"]
    assert a.total_marks == 150 and a.cap == 100
    assert {i.id for i in a.items if i.kind == "manual"} == {"1.4", "2.2", "3.2", "6.3"}


def _outcomes(passed: dict[str, tuple[int, int]]) -> list[Outcome]:
    out = []
    for item, (ok, bad) in passed.items():
        out += [Outcome(item, f"p{i}", 1.0, "passed") for i in range(ok)]
        out += [Outcome(item, f"f{i}", 1.0, "failed") for i in range(bad)]
    return out


def test_items_not_built_or_manual_are_reported_not_dropped():
    """Are manual and not-yet-built items present with no score rather than a silent zero?"""
    a = spec.load(A2)
    scores = {s.item.id: s for s in score_items(a, _outcomes({"4.1": (3, 1)}))}
    assert scores["2.2"].score is None and scores["2.2"].state == "manual"
    unbuilt = [i.id for i in a.items if i.kind == "auto" and not i.built]
    for item in unbuilt:  # whatever is still declared but not built is reported, never a silent zero
        assert scores[item].score is None and scores[item].state == "not_built"
    skipped = {s.item.id: s for s in score_items(a, _outcomes({"4.1": (3, 1)}), skipped={"2.1"})}
    assert skipped["2.1"].score is None and skipped["2.1"].state == "skipped"
    assert scores["4.1"].score == 9.0


@pytest.mark.parametrize("total,days,final", [(52, 0, 52), (130, 0, 100), (130, 1, 90), (52, 2, 41.6), (100, 3, 70), (100, 4, 0)])
def test_late_penalty_and_cap(total, days, final):
    """Is final = min(100, total) less 10% per late day, and zero after three days?"""
    assert final_mark(spec.load(A2), total, days) == pytest.approx(final)


def test_handout_deadline_is_the_rubric_default():
    """Is the handout's deadline (00:00 30 March 2023, Hong Kong time) the default?"""
    assert spec.load(A2).late.deadline == datetime.fromisoformat("2023-03-30T00:00:00+08:00")


# -- sandbox ----------------------------------------------------------------------------------------
def test_a_worker_that_stops_reading_cannot_block_the_grader(tmp_path):
    """A plain sandbox: a request larger than the pipe, to a worker that stopped itself, times out."""
    import time

    from grader.sandbox import Sandbox, SandboxError, detect_mode

    (tmp_path / "m.py").write_text(
        "import os, signal, threading, time\n"
        "def stop_soon():\n"
        "    threading.Thread(target=lambda: (time.sleep(0.2), os.kill(os.getpid(), signal.SIGSTOP))).start()\n"
        "    return 'stopping'\n")
    tmp_path.chmod(0o777)
    call = {"op": "call", "target": {"module": "m", "path": "stop_soon"}, "kwargs": {"__dict__": {}}}
    with Sandbox(tmp_path, {"m": "m.py"}, detect_mode()) as sb:
        assert sb.request({**call, "args": []}, 60) == "stopping"
        time.sleep(0.5)
        began = time.monotonic()
        with pytest.raises(SandboxError):
            sb.request({**call, "args": ["x" * 2_000_000]}, 2.0)
        assert time.monotonic() - began < 10
