"""`make bench`, the Ray part: the overhead of `--engine ray` per submission against `--engine local`
with the same --jobs on the same synthetic COMP4423 A2 class (the numeric items; target: under 5%).

Each engine grades the class from scratch (--force) `--repeat` times, alternating; the figures are
medians. The grading phase is read from the grader's own log line ("graded N submission(s) in X s"),
and for Ray from its own line ("Ray engine: N job(s) in X s"): the jobs from the first sent to the last
done, after the actors are ready (each imports the checks and starts its fork server: a fixed cost per
actor, like the local slots' start, reported apart with the whole command's time).

    python tests/bench_ray.py [--n 20] [--jobs 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import RESULTS, ROOT, a2_class  # noqa: E402

ITEMS = ["2.1", "4.1", "4.2", "5.1", "5.2"]


def _grade(subs: Path, out: Path, engine: str, jobs: int) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out),
           "--jobs", str(jobs), "--engine", engine, "--force", "--no-progress"]
    for item in ITEMS:
        cmd += ["--only", item]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, env={**os.environ})
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: grade failed\n{proc.stderr[-3000:]}")
    pattern = r"Ray engine: \d+ job\(s\) in ([0-9.]+) s" if engine == "ray" else r"graded \d+ submission\(s\) in ([0-9.]+) s"
    m = re.search(pattern, proc.stderr)
    ready = re.search(r"ready in ([0-9.]+) s", proc.stderr)
    if ready:
        print(f"[ray bench] actors ready in {ready.group(1)} s", flush=True)
    return float(m.group(1)) if m else wall, wall, (out / "gradebook.csv").read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    subs = work / "subs"
    subs.mkdir()
    a2_class(subs, args.n)
    phases: dict[str, list[float]] = {"local": [], "ray": []}
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    books: dict[str, str] = {}
    for r in range(args.repeat):
        for engine in ("local", "ray"):
            phase, wall, book = _grade(subs, work / f"out-{engine}", engine, args.jobs)
            phases[engine].append(phase)
            walls[engine].append(wall)
            books[engine] = book
            print(f"[ray bench] run {r + 1} {engine}: grading {phase:.1f} s, command {wall:.1f} s", flush=True)
    same = books["local"] == books["ray"]
    loc, ray = statistics.median(phases["local"]), statistics.median(phases["ray"])
    per_sub = (ray - loc) / args.n
    ratio = ray / loc if loc else float("inf")
    verdict = "met" if ratio <= 1.05 else "NOT met"
    lines = [
        f"## {datetime.now().astimezone().isoformat(timespec='seconds')} on {platform.node()}: --engine ray vs local "
        f"({os.cpu_count()} cores, Python {platform.python_version()})", "",
        f"COMP4423 A2 synthetic class of {args.n} (items {', '.join(ITEMS)}), --jobs {args.jobs}, "
        f"{args.repeat} alternating runs each, medians:", "",
        "| | local | ray | ray / local |", "| --- | --- | --- | --- |",
        f"| grading the submissions (local: the pool; ray: the jobs, actors ready) | {loc:.1f} s | {ray:.1f} s | {ratio:.3f} |",
        f"| whole command (interpreter, Ray start) | {statistics.median(walls['local']):.1f} s | "
        f"{statistics.median(walls['ray']):.1f} s | {statistics.median(walls['ray']) / statistics.median(walls['local']):.3f} |",
        "",
        f"Overhead of the Ray engine per submission: {per_sub * 1000:+.0f} ms ({(ratio - 1) * 100:+.1f}%; target under 5%: "
        f"{verdict}). Gradebooks identical: {same}.", "", "",
    ]
    print("\n".join(lines))
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results (`make bench`)\n\n"
    head, _, rest = old.partition("\n## ")
    RESULTS.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + ("## " + rest if rest else ""))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
