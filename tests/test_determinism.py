"""Determinism: grading the same submissions again (--force) gives identical marks and gradebooks.

The class: the demo's reference and buggy student, and four copies of a correct stratified sampler
that draws from its own unseeded generator (np.random.default_rng() with no seed), which no seed of
the grader can make repeatable. The reference and the buggy student use np.random, which the
worker seeds (SEED = 4423) before each batch of calls, so their draws, and so every statistic, are
the same on every run: their marks cannot vary at all.

False-fail bound for a correct sampler that ignores the seed, from the thresholds in
solutions/comp4423_a2/hidden/check_raysampling.py (u = position inside the bin, i.i.d. U(0, 1)):
- "uniform inside each bin" (K = 5000 calls x 8 bins = 40,000 u): the Kolmogorov-Smirnov p-value is
  uniform under the null, so P(p < 1e-4) = 1e-4; |mean - 0.5| > 0.01 is 6.9 sigma (sd 0.00144):
  4e-12; |var - 1/12| > 0.005 is 13.4 sigma: < 1e-39; min > 0.01 or max < 0.99: 2 * 0.99^40000 < 1e-174.
- "bins are jittered independently" (K = 5000 calls, bins 0 and 1): the sample correlation of two
  independent columns is about N(0, 1/(K-1)), so |r| > 0.06 is 4.24 sigma: P = 2.2e-5.
- every other check is exact for a correct sampler (bins, shapes, finiteness; the stratified row of
  the figure fails only if all 20 jitters land within 1e-5 of the bin centres: < 1e-90).
Union bound: P(false fail) <= 1e-4 + 2.2e-5 + 5e-12 < 1.3e-4 per grading (< 3e-4 as the check's
header says). This test grades the unseeded sampler 4 x 3 = 12 times, so it fails spuriously with
probability below 12 x 1.3e-4 < 1.6e-3.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_resume import copy_example  # noqa: E402

EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
SOLUTION = ROOT / "solutions" / "comp4423_a2"
UNSEEDED_COPIES = 4
RUNS = 3


def _unseeded_sampler() -> str:
    text = (SOLUTION / "Raysampling.py").read_text()
    old = "    jitter = (np.random.rand(num_samples) - 0.5) * (t_vals[1] - t_vals[0])  # (N,)"
    assert old in text, "the reference's jitter line moved; update this test"
    return text.replace(old, "    jitter = (np.random.default_rng().random(num_samples) - 0.5) * (t_vals[1] - t_vals[0])")


def _zip(path: Path, files: dict[str, str]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2023, 3, 29, 12, 0, 0)), text)
    path.write_bytes(buf.getvalue())


def _marks(out: Path) -> dict[str, dict[str, float | None]]:
    marks = {}
    for path in sorted((out / "results").glob("*.json")):
        record = json.loads(path.read_text())["extra_data"]
        marks[record["student_id"]] = record["items"]
    return marks


def test_repeated_grading_gives_identical_marks(tmp_path):
    """Three --force regrades: identical marks per item and identical gradebooks; the unseeded sampler always full."""
    subs = tmp_path / "class"
    subs.mkdir()
    for name in ("Assignment2_11111111a_REF_Solution.zip", "Assignment2_33333333c_BUGGY_Student.zip"):
        copy_example(EXAMPLES / name, subs / name)  # Tasks 2, 4 and 5: the networks of Tasks 1 and 6 take minutes
    for n in range(UNSEEDED_COPIES):
        # only the sampler: the other modules are missing, so their checks fail fast without running code
        _zip(subs / f"Assignment2_9000000{n}u_UNSEEDED_Sampler.zip", {"Raysampling.py": _unseeded_sampler()})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out),
           "--jobs", "2", "--force"]
    books, marks = [], []
    for _ in range(RUNS):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, TMPDIR=str(tmp_path)))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr.count(" reused") == 0, "--force must regrade everything"
        books.append((out / "gradebook.csv").read_bytes())
        marks.append(_marks(out))
    assert marks[0] == marks[1] == marks[2]
    assert books[0] == books[1] == books[2]
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(books[0].decode()))}
    assert [rows["11111111a"][i] for i in ("2.1", "4.1", "4.2", "5.1", "5.2")] == ["12", "12", "8", "12", "8"]
    assert float(rows["33333333c"]["4.1"]) < 12
    for run in marks:
        for n in range(UNSEEDED_COPIES):
            items = run[f"9000000{n}u"]
            assert (items["4.1"], items["4.2"]) == (12.0, 8.0), f"a correct unseeded sampler lost marks: {items}"
