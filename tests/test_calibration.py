"""Time limits from the reference solution's timings: the arithmetic, the cache, and a hang that costs the floor."""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

from grader import batch, calibration, spec
from grader.calibration import FACTOR, IMPORT_FLOOR, REQUEST_FLOOR, Calibration

A2 = spec.load("comp4423_a2")


def test_limits_are_a_multiple_of_the_reference_with_a_floor_and_never_looser_than_declared():
    """Is a request limit FACTOR x the reference, at least the floor, at most what the check declares?"""
    cal = Calibration(checks={"4.1|a": {"request": 0.01, "check": 0.1}, "4.1|b": {"request": 5.0, "check": 9.0}},
                      imports={"m": 0.5})
    assert cal.request_limit("4.1", "a", 60.0) == (REQUEST_FLOOR, 0.01)
    assert cal.request_limit("4.1", "b", 60.0) == (FACTOR * 5.0, 5.0)
    assert cal.request_limit("4.1", "b", 30.0) == (30.0, 5.0)
    assert cal.request_limit("9.9", "unknown", 30.0) == (30.0, None)
    assert cal.import_limit("m", 60.0) == (IMPORT_FLOOR, 0.5)


def _zip(folder: Path, sid: str, raysampling: str) -> None:
    with zipfile.ZipFile(folder / f"Assignment2_{sid}_Test_Student.zip", "w") as zf:
        zf.writestr("Raysampling.py", raysampling)


def test_a_hanging_function_costs_the_calibrated_limit_and_says_why(tmp_path, monkeypatch):
    """With the reference's timings cached, does a stratified sampler that never returns time out at the
    floor (not the declared 60 s), with the limit and the reference's time in the feedback? Does an
    honest submission keep its marks, and does a second run reuse the calibration?"""
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(batch, "grader_version", lambda: "pinned-for-this-test")
    subs = tmp_path / "subs"
    subs.mkdir()
    ref = (A2.solution_dir / "Raysampling.py").read_text()
    _zip(subs, "12345678a", ref)
    _zip(subs, "12345678b", ref.replace("def stratified_sampling(", "def _orig(") +
         "\n\ndef stratified_sampling(*a, **k):\n    while True:\n        pass\n")
    logs: list[str] = []
    opts = batch.Options(out=tmp_path / "out", jobs=1, progress=False, only=frozenset({"4.1"}))
    records = {r["student_id"]: r for r in batch.grade_folder(A2, subs, opts, log=logs.append)}
    assert any("calibrated" in line for line in logs)
    assert records["12345678a"]["items"]["4.1"] == 12
    assert records["12345678b"]["items"]["4.1"] == 0
    timeouts = [o for o in records["12345678b"]["outcomes"] if o["status"] == "timeout"]
    assert timeouts and all("reference solution's" in o["detail"] for o in timeouts)
    assert records["12345678b"]["seconds"] < 2 * len(timeouts) * REQUEST_FLOOR + 20
    cached = json.loads(next((tmp_path / "cache").glob("calibration-comp4423_a2-*.json")).read_text())
    assert cached["items"]

    logs.clear()
    batch.grade_folder(A2, subs, batch.Options(out=tmp_path / "out2", jobs=1, progress=False, only=frozenset({"4.1"})),
                       log=logs.append)
    assert not any("calibrat" in line for line in logs), logs
