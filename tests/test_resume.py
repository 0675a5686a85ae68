"""Crash-safe batches: SIGKILL the real grading command mid-batch, rerun it, get the clean run's gradebook.

Design: a class of 8 zips (the demo's reference, starter and buggy submissions under new student ids,
cut to Tasks 2, 4 and 5 so the class grades in about a minute) is graded once without interruption. The same command is then started on a fresh
output folder and killed with SIGKILL once a seeded random number of result files exist (at least
one, at most half the class) plus a seeded random delay, so the kill can land anywhere, even inside
a write. After the kill no result file may be partial or corrupt; the rerun of the very same command
must reuse every finished result ("reused" in its log), grade only the rest, and write a gradebook
byte-identical to the uninterrupted run's. The input zips are hashed before and after.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader import report
from grader.spec import ROOT

EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
SEED = int(os.environ.get("RESUME_SEED", "4423"))
SOURCES = ["Assignment2_11111111a_REF_Solution.zip", "Assignment2_22222222b_STARTER_Only.zip",
           "Assignment2_33333333c_BUGGY_Student.zip"]
# Tasks 2, 4 and 5 only: the examples' resnet_vgg.py and tiny_nerf.py train networks (minutes a class)
KEEP = {"Raysampling.py", "volume_rendering.py", "dcnn.py", "answers.md"}


def copy_example(source: Path, target: Path) -> None:
    """The example zip with only the members in KEEP, entries and bytes otherwise as they were."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            if info.filename in KEEP:
                zout.writestr(info, zin.read(info))


def _class(folder: Path) -> dict[str, str]:
    """8 zips (reference, starter and buggy student) under new student ids; returns their hashes."""
    folder.mkdir()
    for n in range(8):
        copy_example(EXAMPLES / SOURCES[n % 3], folder / f"Assignment2_8{n:07d}a_COPY_Student{'ABCDEFGH'[n]}.zip")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _command(subs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out),
            "--jobs", "2", "--timeout-scale", "0.5"]


def _results(out: Path) -> list[Path]:
    folder = out / "results"
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []


def _stray(boxes: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(boxes) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry.name)
        except OSError:
            pass
    return found


def test_write_atomic_is_temp_fsync_rename(tmp_path, monkeypatch):
    """Does report.write_atomic write a temporary file, fsync it and rename it over the target?"""
    target = tmp_path / "r.json"
    target.write_text("old")
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])

    def failing_replace(src, dst):
        calls.append("replace")
        assert Path(src).parent == target.parent and Path(src) != target  # a temporary file in the same folder
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        report.write_atomic(target, "new")
    assert calls == ["fsync", "replace"]
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    monkeypatch.setattr(os, "replace", real_replace)
    report.write_atomic(target, "new")
    assert target.read_text() == "new"


def test_sigkill_then_rerun_gives_the_clean_gradebook(tmp_path):
    """Killed at a random point and rerun, does the batch regrade only what is missing and match a clean run?"""
    subs = tmp_path / "class"
    hashes = _class(subs)
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    env = dict(os.environ, TMPDIR=str(boxes))

    clean = tmp_path / "clean"
    proc = subprocess.run(_command(subs, clean), cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rng = random.Random(SEED)
    wanted, delay = rng.randint(1, len(hashes) // 2), rng.uniform(0.0, 0.4)
    out = tmp_path / "killed"
    victim = subprocess.Popen(_command(subs, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while len(_results(out)) < wanted and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    assert victim.poll() is None, f"the batch ended before the kill point ({wanted} results + {delay:.2f} s)"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survived = _results(out)
    assert 1 <= len(survived) < len(hashes), f"{len(survived)} results after the kill"
    for path in survived:  # atomic writes: every result there is whole
        record = json.loads(path.read_text())["extra_data"]
        assert path.name == f"{record['student_id']}.json"
    assert not (out / "gradebook.csv").exists()
    for _ in range(100):  # the sandboxes die with the grader
        if not _stray(boxes):
            break
        time.sleep(0.05)
    assert _stray(boxes) == [], "sandbox processes outlived the killed grader"

    left = sorted(p.name for p in boxes.iterdir())
    assert left and all(name.startswith((f"box-{victim.pid}-", f"slot-{victim.pid}-")) for name in left), left

    rerun = subprocess.run(_command(subs, out), cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert list(boxes.iterdir()) == [], "the rerun should remove the killed grader's folders (and leave none of its own)"
    assert "removed the leftovers of a grader that was killed" in rerun.stderr
    lines = [ln for ln in rerun.stderr.splitlines() if ln.startswith("[")]
    reused = [ln for ln in lines if ln.endswith(" reused")]
    assert len(lines) == len(hashes)
    assert len(reused) == len(survived), f"{len(survived)} results survived the kill but the rerun reused {len(reused)}"
    assert {ln.split("]")[1].split(":")[0].strip() for ln in reused} == {p.stem for p in survived}

    assert (out / "gradebook.csv").read_bytes() == (clean / "gradebook.csv").read_bytes()
    ids = [p.stem for p in _results(out)]
    assert len(ids) == len(set(ids)) == len(hashes)
    for sid in ids:
        a = json.loads((out / "results" / f"{sid}.json").read_text())["extra_data"]
        b = json.loads((clean / "results" / f"{sid}.json").read_text())["extra_data"]
        assert (a["items"], a["final"], a["status"]) == (b["items"], b["final"], b["status"])
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()} == hashes, "an input zip changed"
