"""`make bench`: how fast the grader is at class scale, against a floor, on this machine.

For each assignment it builds a synthetic class (correct, buggy, crashing and hanging submissions in
roughly a real class's proportions), grades it with the real command and prints, and appends to
tests/bench_results.md with the date and the machine:
  * per-submission median and total wall time, peak memory per submission (from the results'
    provenance) and of the grader process itself;
  * the speed-up from --jobs 1 to --jobs 2, and the time of an unchanged rerun;
  * grader time / floor, where the floor runs the same student functions through the same checks
    for the same well-behaved submissions in ONE fresh plain Python process (timed from its start,
    so it pays the interpreter and torch import once, as the issue defines it): no sandbox, no
    process per submission, no reporting (the worker's request handler is called directly);
  * for notebook assignments, grading one notebook submission against executing the same notebook
    with nbclient and a Jupyter kernel;
  * the wall time of grading the reference submission on every item (COMP4423 A2: < 3 min target).

    python tests/bench.py [--n 40] [--assignment comp4423_a2 | all] [--quick]

COMP4423 A2 and CS188 HW4 have their own synthetic classes; any other assignment gets one made from
its example zips (fixtures/examples/<id>/, renamed to distinct student ids that follow its naming
rule) plus a crashing and a hanging copy of the reference. --quick grades the class once and reruns
it (no --jobs 2 run, no floor, no reference or notebook comparisons).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
RESULTS = Path(__file__).resolve().parent / "bench_results.md"
ZIP_TIME = (2023, 3, 29, 12, 0, 0)

# The synthetic COMP4423 A2 class hands in the numeric modules (Tasks 2, 4, 5) and answers.md only: the
# training items 1.x and 6.x then score 0 at once ("no file"), and are timed on the reference instead.


def _zip(path: Path, files: dict[str, str | bytes]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o100644 << 16
            zf.writestr(info, text)
    path.write_bytes(buf.getvalue())


# -- synthetic classes ------------------------------------------------------------------------------
def _class_plan(pattern: list[str], n: int) -> list[str]:
    """n kinds in the pattern's proportions, in a fixed shuffled order (seed 0, never tuned).

    A real class is graded in student-id order, which has nothing to do with who wrote a hanging
    submission; a repeated pattern would instead put a hanging one last every time.
    """
    import random

    plan = [pattern[i % len(pattern)] for i in range(n)]
    random.Random(0).shuffle(plan)
    return plan


def a2_class(folder: Path, n: int) -> dict[str, str]:
    """n COMP4423 A2 zips: 60% correct, 20% buggy, 10% starter, 5% crashing, 5% hanging. Returns id -> kind."""
    sys.path.insert(0, str(ROOT / "fixtures"))
    import make_comp4423_a2 as fx  # noqa: PLC0415

    ref = {k: v for k, v in fx.reference_files().items() if k in ("Raysampling.py", "volume_rendering.py", "dcnn.py")}
    ref["answers.md"] = (fx.SOLUTION / "answers.md").read_text()
    starter = {k: (fx.STARTER / k).read_text() for k in ref}
    bugs = fx.BUGS
    kinds: dict[str, str] = {}
    plan = _class_plan(["correct"] * 12 + ["buggy"] * 4 + ["starter"] * 2 + ["crash"] + ["hang"], n)
    for i in range(n):
        kind = plan[i]
        sid = f"{10000000 + i:08d}x"
        files = dict(ref)
        if kind == "buggy":
            name, old, new = bugs[i % len(bugs)]
            files[name] = files[name].replace(old, new)
        elif kind == "starter":
            files = dict(starter)
        elif kind == "crash":
            files["dcnn.py"] = "import os\nos._exit(3)\n" + files["dcnn.py"]
        elif kind == "hang":
            files["volume_rendering.py"] = "while True:\n    pass\n" + files["volume_rendering.py"]
        files = {k: v + f"\n# submission {i}\n" if k.endswith(".py") else v for k, v in files.items()}
        _zip(folder / f"Assignment2_{sid}_Bench_Student.zip", files)
        kinds[sid] = kind
    return kinds


def cs188_class(folder: Path, n: int) -> dict[str, str]:
    """n CS188 HW4 zips from the example submissions, plus one whose notebook hangs in a cell."""
    ex = ROOT / "fixtures" / "examples" / "cs188_hw4"
    kinds_src = {"correct": ex / "HW4_305000001_REF_Solution.zip", "buggy": ex / "HW4_305000003_BUGGY_Student.zip",
                 "starter": ex / "HW4_305000002_STARTER_Only.zip", "crash": ex / "HW4_305000005_BROKEN_Notebook.zip",
                 "seed": ex / "HW4_305065891_Alexander_Swerdlow.zip"}
    with zipfile.ZipFile(kinds_src["correct"]) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    name = next(k for k in files if k.endswith("PSET4_Analytical.ipynb"))
    nb = json.loads(files[name])
    nb["cells"].insert(0, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": "while True:\n    pass\n"})
    files[name] = json.dumps(nb).encode()
    plan = _class_plan(["correct"] * 11 + ["buggy"] * 3 + ["seed"] + ["starter"] * 2 + ["crash"] + ["correct", "hang"], n)
    kinds: dict[str, str] = {}
    for i in range(n):
        kind = plan[i]
        sid = f"{900000000 + i:09d}"
        target = folder / f"HW4_{sid}_Bench_Student.zip"
        if kind == "hang":
            _zip(target, {k: v.decode("utf-8", "replace") for k, v in files.items()})
        else:
            shutil.copy(kinds_src[kind], target)
        kinds[sid] = kind
    return kinds


ROLES = (("starter", "starter"), ("bug", "buggy"), ("broken", "crash"), ("ref", "correct"), ("solution", "correct"),
         ("course", "course"), ("late", "correct"))  # words of an example zip's name -> its kind


def _role(zip_name: str) -> str:
    low = zip_name.lower()
    return next((kind for word, kind in ROLES if word in low), "other")


def _renamed(assignment: Any, example: Path, number: int) -> str:
    """The example zip's name with another student id of the same shape, still following the naming rule."""
    match = assignment.naming_pattern.match(example.name)
    if match is None:
        raise SystemExit(f"{example} does not follow the naming rule of {assignment.id} (e.g. {assignment.naming_example})")
    sid, (start, end) = match.group("student_id"), match.span("student_id")
    digits = [k for k, ch in enumerate(sid) if ch.isdigit()]
    counter = str(number)
    candidates = []
    if len(digits) >= len(counter):  # the id's own digit positions hold the number: 305000001 -> 000000017
        chars = list(sid)
        for k, ch in zip(digits, counter.zfill(len(digits))):
            chars[k] = ch
        candidates.append("".join(chars))
    candidates += [sid[0] + counter.zfill(max(len(sid) - 1, len(counter))), sid + counter, sid[: max(1, len(sid) - len(counter))] + counter]
    letters = "".join(chr(ord("a") + int(d)) for d in counter)  # ids of letters only
    candidates += [sid[: max(1, len(sid) - len(letters))] + letters]
    for new in candidates:
        name = example.name[:start] + new + example.name[end:]
        again = assignment.naming_pattern.match(name)
        if again is not None and again.group("student_id") == new:
            return name
    raise SystemExit(f"cannot give {example.name} another student id that follows {assignment.naming_pattern.pattern}")


def _same_as_solution(zip_path: Path, solution: Path) -> int:
    """How many of the zip's files are byte for byte the reference solution's file of that path (or name)."""
    same = 0
    with zipfile.ZipFile(zip_path) as zf:
        for info in (i for i in zf.infolist() if not i.is_dir()):
            for path in (solution / info.filename, solution / info.filename.rsplit("/", 1)[-1]):
                if path.resolve().is_relative_to(solution.resolve()) and path.is_file():
                    same += path.read_bytes() == zf.read(info)
                    break
    return same


def _spoiled(zip_path: Path, assignment: Any, prefix: str) -> dict[str, str | bytes]:
    """The zip's files with `prefix` run first in its first module of the rubric (a .py, or a notebook's first cell)."""
    with zipfile.ZipFile(zip_path) as zf:
        files: dict[str, str | bytes] = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    for module in assignment.modules:
        for name in sorted(files):
            base = name.rsplit("/", 1)[-1]
            if base == f"{module}.py":
                files[name] = prefix + files[name].decode("utf-8", "replace")
                return files
            if base == f"{module}.ipynb":
                nb = json.loads(files[name])
                nb["cells"].insert(0, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                       "source": prefix})
                files[name] = json.dumps(nb)
                return files
    raise SystemExit(f"{zip_path.name} holds none of the modules {list(assignment.modules)} of {assignment.id}")


def examples_class(assignment_id: str) -> Callable[[Path, int], dict[str, str]]:
    """A class builder for any assignment from its example zips: mostly copies of the reference and the
    course-style example (correct), some buggy and starter ones, one crashing and one hanging copy of the
    reference, each under its own student id."""
    from grader import spec

    def build(folder: Path, n: int) -> dict[str, str]:
        a = spec.load(assignment_id)
        examples = sorted((ROOT / "fixtures" / "examples" / assignment_id).glob("*.zip"))
        named = [ex for ex in examples if a.naming_pattern.match(ex.name)]
        if not named:
            raise SystemExit(f"fixtures/examples/{assignment_id}/ has no zip that follows the naming rule")
        reference = max(named, key=lambda ex: (_same_as_solution(ex, a.solution_dir), _role(ex.name) == "correct"))
        by_kind: dict[str, list[Path]] = {"correct": [reference]}
        for ex in named:
            if ex != reference:
                by_kind.setdefault(_role(ex.name), []).append(ex)
        # 10 correct, 4 buggy, 2 course-style, 2 starter, 1 crash, 1 hang in 20, interleaved so that a small
        # class has a mix too; a kind without an example zip becomes a correct one
        cycle = ["correct", "buggy", "correct", "starter", "course", "correct", "hang", "correct", "buggy", "crash",
                 "correct", "course", "correct", "buggy", "starter", "correct", "buggy", "correct", "correct", "correct"]
        plan = [kind if kind in by_kind or kind in ("crash", "hang") else "correct" for kind in cycle]
        kinds: dict[str, str] = {}
        for i, kind in enumerate(_class_plan(plan, n)):
            source = reference if kind in ("crash", "hang") else by_kind[kind][i % len(by_kind[kind])]
            name = _renamed(a, source, i + 1)
            if (folder / name).exists():
                raise SystemExit(f"two submissions of the bench class would both be named {name}")
            if kind == "crash":
                _zip(folder / name, _spoiled(source, a, "import os\nos._exit(3)\n"))
            elif kind == "hang":
                _zip(folder / name, _spoiled(source, a, "while True:\n    pass\n"))
            else:
                shutil.copy(source, folder / name)
            kinds[a.naming_pattern.match(name).group("student_id")] = kind
        return kinds

    return build


def nbclient_seconds(zip_path: Path, data_dir: Path) -> tuple[float, float]:
    """Execute a submission's notebooks with nbclient + ipykernel: (all cells, cells the grader runs)."""
    import nbformat
    from nbclient import NotebookClient

    work = Path(tempfile.mkdtemp(prefix="nbclient-"))
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(work)
    for entry in data_dir.iterdir():
        (work / entry.name).symlink_to(entry)
    times = []
    for skip in (False, True):
        start = time.perf_counter()
        for path in sorted(work.rglob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            if skip:
                nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.source.lstrip().startswith("# grader: skip"))]
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                           allow_errors=True).execute()
        times.append(time.perf_counter() - start)
    shutil.rmtree(work, ignore_errors=True)
    return times[0], times[1]


def bench_notebook_submission(lines: list[str]) -> None:
    from grader import spec

    src = ROOT / "fixtures" / "examples" / "cs188_hw4" / "HW4_305000001_REF_Solution.zip"
    work = Path(tempfile.mkdtemp(prefix="bench-nb-"))
    (work / "one").mkdir()
    shutil.copy(src, work / "one" / src.name)
    g1, _ = grade("cs188_hw4", work / "one", work / "out1", 1)
    copies = 8
    (work / "batch").mkdir()
    for i in range(copies):
        shutil.copy(src, work / "batch" / f"HW4_30500010{i}_REF_Copy.zip")
    gb, _ = grade("cs188_hw4", work / "batch", work / "outb", 1)
    each = statistics.median(per_submission(work / "outb")[0])
    marginal = (gb - g1) / (copies - 1)
    full, graded_cells = nbclient_seconds(src, spec.load("cs188_hw4").public_data_dir)
    print(f"[cs188_hw4] one notebook submission: grader {g1:.1f} s alone, {each:.1f} s each in a batch of {copies} "
          f"(marginal {marginal:.1f} s), nbclient {full:.1f} s (only the cells the grader runs: {graded_cells:.1f} s)", flush=True)
    lines += [
        "### cs188_hw4: one notebook submission (three notebooks), grader vs a Jupyter kernel",
        "",
        "nbclient pays three kernel starts per submission (a fresh kernel per student is what keeps students",
        "apart there); the grader pays its start-up (fork server, torch, hidden checks) once per batch.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| nbclient + ipykernel executing the same notebooks (no checks at all) | {full:.1f} s |",
        f"| nbclient executing only the cells the grader runs (no `# grader: skip` cells) | {graded_cells:.1f} s |",
        f"| `grade` on one reference submission, whole command incl. start-up (--jobs 1) | {g1:.1f} s ({full / g1:.1f}x) |",
        f"| `grade` on {copies} copies, whole command / {copies} (--jobs 1) | {gb / copies:.1f} s ({full / (gb / copies):.1f}x) |",
        f"| same batch: each submission's own grading time, median | {each:.1f} s |",
        f"| same batch: marginal cost of one more submission ((batch - one) / {copies - 1}) | {marginal:.1f} s |",
        f"| ratio nbclient / grader, per submission in a batch (marginal) | {full / marginal:.1f}x (target >= 3x) |",
        "",
    ]
    shutil.rmtree(work, ignore_errors=True)


# -- the floor --------------------------------------------------------------------------------------
class LocalSandbox:
    """The worker's request handler called in this process: the checks' work without any isolation."""

    def __init__(self, box: Path, module_files: dict[str, str], data_dir: Path) -> None:
        sys.path.insert(0, str(ROOT / "grader"))
        import worker  # noqa: PLC0415 - the worker module, imported the way the sandbox runs it

        os.chdir(box)
        self.worker = worker.Worker({m: str(box / p) for m, p in module_files.items()})
        self.data_dir = data_dir
        self.gpus: list[str] = []
        self.alive = True

    @property
    def data_path(self) -> str:
        return str(self.data_dir)

    def request(self, message: dict[str, Any], timeout: float) -> Any:
        from grader import protocol
        from grader.sandbox import StudentError

        try:
            value = self.worker.handle(protocol.loads(protocol.dumps(message)))
        except Exception as exc:  # noqa: BLE001
            raise StudentError(type(exc).__name__, str(exc), "") from None
        return protocol.decode(value)

    def cpu_seconds(self) -> float:
        return time.process_time()

    def close(self) -> None:
        pass


def floor_seconds(assignment_id: str, folder: Path, only: list[str] | None) -> float:
    """Wall time of a fresh process that runs the floor for every zip in the folder (start-up included).

    Like the grader's command, the floor pays the interpreter, the imports (torch, the hidden checks)
    and the extraction once for the class; unlike it, no sandbox, no process per submission, no reports.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--floor", assignment_id, str(folder)]
    return _timed(cmd + [arg for item in only or [] for arg in ("--only", item)], "the floor")[0]


def run_floor(assignment_id: str, zips: list[Path], only: list[str] | None) -> None:
    """The floor itself (run by floor_seconds in its own process)."""
    from grader import answers, intake, spec
    from grader.checks import Student, load_checks
    from grader.runner import _run_one

    a = spec.load(assignment_id)
    checks = [c for c in load_checks(a.solution_dir / "hidden") if not only or c.item in only]
    boxes = []
    tmp = Path(tempfile.mkdtemp(prefix="floor-"))
    for z in zips:
        sub = intake.identify(z, a)
        box = tmp / sub.student_id
        box.mkdir()
        intake.extract(sub, a, box)
        boxes.append((box, sub.module_files, answers.extract(box)[0]))
    cwd = os.getcwd()
    os.environ["GRADER_DATA_DIR"] = str(a.public_data_dir)  # where notebooks look for their data
    for box, modules, ans in boxes:
        sandbox = LocalSandbox(box, modules, a.public_data_dir)
        state: dict = {}
        for chk in checks:
            _run_one(chk, Student(sandbox, timeout=chk.timeout, module_state=state, answers=ans))
    os.chdir(cwd)
    shutil.rmtree(tmp, ignore_errors=True)


# -- grading with the real command -----------------------------------------------------------------
def grade(assignment: str, subs: Path, out: Path, jobs: int, only: list[str] | None = None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", assignment, "--out", str(out),
           "--jobs", str(jobs), "--no-progress"]
    return _timed(cmd + [arg for item in only or [] for arg in ("--only", item)], "grading")


def _timed(cmd: list[str], what: str) -> tuple[float, str]:
    """Wall time and stderr of a command run from the repository root; stop the benchmark if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return took, proc.stderr


def per_submission(out: Path) -> tuple[list[float], list[float]]:
    secs, peaks = [], []
    for path in sorted((out / "results").glob("*.json")):
        rec = json.loads(path.read_text())["extra_data"]
        secs.append(float(rec.get("seconds", 0.0)))
        items = rec.get("provenance", {}).get("items", {})
        peaks.append(max((v.get("peak_mb", 0.0) for v in items.values()), default=0.0))
    return secs, peaks


def bench_assignment(assignment: str, n: int, build: Callable[[Path, int], dict[str, str]], only: list[str] | None,
                     lines: list[str], quick: bool = False) -> None:
    from grader import spec

    pattern = spec.load(assignment).naming_pattern

    def kind_of(zip_path: Path) -> str:
        return kinds[pattern.match(zip_path.name).group("student_id")]

    work = Path(tempfile.mkdtemp(prefix=f"bench-{assignment}-"))
    subs = work / "class"
    subs.mkdir()
    kinds = build(subs, n)
    counts = {k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))}
    print(f"[{assignment}] class of {n}: {counts}", flush=True)

    t1, _ = grade(assignment, subs, work / "out1", 1, only)
    print(f"[{assignment}] --jobs 1: {t1:.1f} s", flush=True)
    secs, peaks = per_submission(work / "out1")
    if quick:
        t3, _ = grade(assignment, subs, work / "out1", 1, only)
        print(f"[{assignment}] unchanged rerun: {t3:.2f} s", flush=True)
        lines += [
            f"### {assignment} (quick): class of {n} ({', '.join(f'{v} {k}' for k, v in counts.items())})", "",
            "| measure | value |", "| --- | --- |",
            f"| per-submission wall time, median / max (--jobs 1) | {statistics.median(secs):.2f} / {max(secs):.2f} s |",
            f"| total, --jobs 1 | {t1:.1f} s |",
            f"| unchanged rerun (--jobs 1) | {t3:.2f} s, {t1 / t3:.0f}x faster than the first run |",
            f"| peak memory of one sandbox, median / max | {statistics.median(peaks):.0f} / {max(peaks):.0f} MB |", "",
        ]
        shutil.rmtree(work, ignore_errors=True)
        return
    t2, _ = grade(assignment, subs, work / "out2", 2, only)
    print(f"[{assignment}] --jobs 2: {t2:.1f} s", flush=True)
    t3, log = grade(assignment, subs, work / "out2", 2, only)
    print(f"[{assignment}] unchanged rerun: {t3:.2f} s", flush=True)

    good = sorted(p for p in subs.glob("*.zip") if kind_of(p) in ("correct", "buggy", "starter", "seed", "course"))
    wb = work / "wellbehaved"
    wb.mkdir()
    for p in good:
        shutil.copy(p, wb / p.name)
    tg, _ = grade(assignment, wb, work / "out_wb", 1, only)
    tf = floor_seconds(assignment, wb, only)
    hangs = [str(n + 1) for n, p in enumerate(sorted(subs.glob("*.zip"))) if kind_of(p) == "hang"]
    print(f"[{assignment}] well-behaved {len(good)}: grader --jobs 1 {tg:.1f} s, floor {tf:.1f} s", flush=True)

    lines += [
        f"### {assignment}: class of {n} ({', '.join(f'{v} {k}' for k, v in counts.items())})"
        + (f", items {' '.join(only)}" if only else ""),
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| per-submission wall time, median (--jobs 1) | {statistics.median(secs):.2f} s |",
        f"| per-submission wall time, max (--jobs 1) | {max(secs):.2f} s |",
        f"| total, --jobs 1 | {t1:.1f} s |",
        f"| total, --jobs 2 | {t2:.1f} s |",
        f"| speed-up --jobs 1 -> 2 | {t1 / t2:.2f}x (target >= 1.7x); hanging submissions are number {', '.join(hangs)} of {n} |",
        f"| unchanged rerun (--jobs 2) | {t3:.2f} s, {t2 / t3:.0f}x faster than the first run (target >= 20x) |",
        f"| peak memory of one sandbox, median / max | {statistics.median(peaks):.0f} / {max(peaks):.0f} MB |",
        f"| well-behaved subset ({len(good)}): grader --jobs 1 | {tg:.1f} s |",
        f"| same subset: floor (one fresh process: start-up, imports, extraction, checks; no sandbox, no reports) | {tf:.1f} s |",
        f"| grader / floor | {tg / tf:.2f} (target <= 1.5) |",
        "",
    ]
    shutil.rmtree(work, ignore_errors=True)


def bench_reference_full(lines: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ref-"))
    src = ROOT / "fixtures" / "examples" / "comp4423_a2" / "Assignment2_11111111a_REF_Solution.zip"
    (work / "subs").mkdir()
    shutil.copy(src, work / "subs" / src.name)
    took, _ = grade("comp4423_a2", work / "subs", work / "out", 1)
    rec = json.loads(next((work / "out" / "results").glob("*.json")).read_text())["extra_data"]
    per_item = rec["provenance"]["items"]
    print(f"[comp4423_a2] reference on every item: {took:.1f} s, total {rec['total']}", flush=True)
    lines += [
        "### comp4423_a2: the reference submission on every automatic item (`make grade` on it)",
        "",
        f"Wall time {took:.1f} s (target < 180 s); total {rec['total']:g} marks.",
        "",
        "| item | seconds | peak MB |",
        "| --- | --- | --- |",
    ] + [f"| {i} | {v['seconds']:.1f} | {v['peak_mb']:.0f} |" for i, v in sorted(per_item.items())] + [""]
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="grader benchmark")
    parser.add_argument("--n", type=int, default=40, help="submissions per synthetic class")
    parser.add_argument("--assignment", action="append", help="only these assignments ('all': every one)")
    parser.add_argument("--quick", action="store_true", help="grade each class once and rerun it; nothing else")
    parser.add_argument("--floor", nargs=2, metavar=("ASSIGNMENT", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        run_floor(args.floor[0], sorted(Path(args.floor[1]).glob("*.zip")), args.only)
        return 0
    lines = [f"## {datetime.now().astimezone().isoformat(timespec='seconds')} on {platform.node()}: "
             f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}", ""]
    from grader import spec

    wanted = args.assignment or ["comp4423_a2", "cs188_hw4"]
    if "all" in wanted:
        wanted = spec.available()
    unknown = [w for w in wanted if w not in spec.available()]
    if unknown:
        parser.error(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(spec.available())}")
    if "comp4423_a2" in wanted:
        bench_assignment("comp4423_a2", args.n, a2_class, None, lines, args.quick)
        if not args.quick:
            bench_reference_full(lines)
    if "cs188_hw4" in wanted:
        bench_assignment("cs188_hw4", args.n, cs188_class, None, lines, args.quick)
        if not args.quick:
            bench_notebook_submission(lines)
    for other in (w for w in wanted if w not in ("comp4423_a2", "cs188_hw4")):
        bench_assignment(other, args.n, examples_class(other), None, lines, args.quick)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += [f"Peak memory of the benchmark process itself: {peak:.0f} MB.", "", ""]
    text = "\n".join(lines)
    print("\n" + text)
    if args.quick:  # a smoke run: its figures are not the benchmark's
        return 0
    header = "# Benchmark results (`make bench`)\n\nNewest first. Each run: date, machine, then the figures.\n\n"
    old = RESULTS.read_text() if RESULTS.exists() else ""
    RESULTS.write_text(header + text + "\n" + (old[len(header):] if old.startswith(header) else old))
    return 0


if __name__ == "__main__":
    sys.exit(main())
