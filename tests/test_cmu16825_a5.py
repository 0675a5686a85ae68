"""Do CMU 16-825 A5's hidden checks tell plausible PointNet mistakes from correct alternatives?

Every variant is the reference models.py / utils.py with exact text edits (each old text must occur once),
or with one class replaced by a whole other class. Each is written into a fresh box with the other file of
the reference and graded in the real sandbox, restricted to the items it changes, two sandboxes at a time.
The mistakes and alternatives are those of /work/shared/TASKS.md section 15 (Linear over N*3 coordinates,
pooling on the wrong axis, BatchNorm1d on (B, N, C), segmentation output (B, 6, N), a softmax applied twice;
max or mean pooling, conv1d or Linear, log-softmax or probability outputs) and of the Q3 rotation helper.
"""
from __future__ import annotations

import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import spec  # noqa: E402
from grader.checks import load_checks  # noqa: E402
from grader.runner import Outcome, run_checks  # noqa: E402
from grader.sandbox import detect_mode  # noqa: E402
from grader.scoring import score_items  # noqa: E402

A = "cmu16825_a5"
SOLUTION = ROOT / "solutions" / A
STARTER = ROOT / "starter" / A
MODULES = ("models", "utils")
AUTO = ("1.1", "2.1", "3.1.1")
REFERENCE = {m: (SOLUTION / f"{m}.py").read_text() for m in MODULES}
WORKERS = 2  # the CI machine has 2 cores; each sandbox uses one thread


def _generator():
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("_make_cmu16825_a5", ROOT / "fixtures" / "make_cmu16825_a5.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


GEN = _generator()
COURSE = {"models": GEN.COURSE_MODELS, "utils": GEN.COURSE_UTILS}  # the course-style example's files


def class_source(module: str, name: str) -> str:
    """The exact text of a top-level class or def of the reference, up to the next top-level statement."""
    match = re.search(rf"^(?:class|def) {name}\b.*?(?=^\S|\Z)", REFERENCE[module], flags=re.S | re.M)
    assert match, f"{name} is no longer defined at top level in the reference {module}.py"
    return match.group(0)


@dataclass(frozen=True)
class Variant:
    id: str
    module: str
    edits: tuple[tuple[str, str], ...]  # (old, new) on the reference source; old must occur exactly once
    loses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # item -> fragments of checks that must fail
    items: tuple[str, ...] = ()  # items graded (default: those named in `loses`, or the module's)


def sub(old: str, new: str) -> tuple[tuple[str, str], ...]:
    return ((old, new),)


def replace_class(module: str, name: str, new: str) -> tuple[tuple[str, str], ...]:
    return ((class_source(module, name), new.lstrip("\n") + "\n\n"),)


# -- whole classes written differently ---------------------------------------------------------------
CLS_FLATTEN = '''
class cls_model(nn.Module):
    def __init__(self, num_classes=3):
        super(cls_model, self).__init__()
        self.fc1 = nn.Linear(10000 * 3, 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, points):
        x = points.reshape(points.shape[0], -1)  # (B, N*3): only N = 10000 fits
        return self.fc2(F.relu(self.fc1(x)))
'''
CLS_BN_UNTRANSPOSED = '''
class cls_model(nn.Module):
    def __init__(self, num_classes=3):
        super(cls_model, self).__init__()
        self.fc1, self.bn1 = nn.Linear(3, 64), nn.BatchNorm1d(64)
        self.fc2, self.bn2 = nn.Linear(64, 256), nn.BatchNorm1d(256)
        self.out = nn.Linear(256, num_classes)

    def forward(self, points):
        x = F.relu(self.bn1(self.fc1(points)))  # BatchNorm1d over (B, N, 64): N is taken for the channels
        x = F.relu(self.bn2(self.fc2(x)))
        return self.out(x.max(dim=1).values)
'''
CLS_LINEAR = '''
class cls_model(nn.Module):
    def __init__(self, num_classes=3):
        super(cls_model, self).__init__()
        self.mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 256))
        self.fc = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, points):
        x = self.mlp(points)  # (B, N, 256): Linear acts on the last axis of every point
        return self.fc(torch.max(x, dim=1)[0])
'''
CLS_LINEAR_BN = '''
class cls_model(nn.Module):
    def __init__(self, num_classes=3):
        super(cls_model, self).__init__()
        self.fc1, self.bn1 = nn.Linear(3, 64), nn.BatchNorm1d(64)
        self.fc2, self.bn2 = nn.Linear(64, 256), nn.BatchNorm1d(256)
        self.out = nn.Linear(256, num_classes)

    def forward(self, points):
        x = F.relu(self.bn1(self.fc1(points).transpose(1, 2)).transpose(1, 2))  # (B, N, 64)
        x = F.relu(self.bn2(self.fc2(x).transpose(1, 2)))  # (B, 256, N)
        return F.log_softmax(self.out(x.max(dim=2)[0]), dim=-1)
'''
SEG_LINEAR = '''
class seg_model(nn.Module):
    def __init__(self, num_seg_classes=6):
        super(seg_model, self).__init__()
        self.local = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.glob = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(320, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                  nn.Linear(64, num_seg_classes))

    def forward(self, points):
        local = self.local(points)  # (B, N, 64)
        g = self.glob(local).max(dim=1, keepdim=True)[0]  # (B, 1, 256)
        return self.head(torch.cat([local, g.expand(-1, points.shape[1], -1)], dim=-1))  # (B, N, classes)
'''

CLS_RET = "return self.head(x)  # (B, num_classes) logits"
SEG_RET = "return self.head(x).transpose(1, 2)  # (B, N, num_seg_classes) logits"
CLS_POOL = "x = x.max(dim=2).values"
SEG_POOL = "glob = self.global_mlp(local).max(dim=2, keepdim=True).values"
M, U = "models", "utils"

MISTAKES = [
    # TASKS.md: a Linear over all N*3 coordinates (only N = 10000 fits; no invariance)
    Variant("cls-linear-over-n-times-3", M, replace_class(M, "cls_model", CLS_FLATTEN),
            {"1.1": ("maps (B, N, 3)", "shuffling", "short training")}),
    # pooling on the channel axis instead of the point axis: (B, N) features, a crash for N != 256
    Variant("cls-pool-over-channels", M, sub(CLS_POOL, "x = x.max(dim=1).values"),
            {"1.1": ("maps (B, N, 3)", "shuffling", "short training")}),
    # BatchNorm1d on (B, N, C) without transposing to (B, C, N)
    Variant("cls-batchnorm-on-points-last", M, replace_class(M, "cls_model", CLS_BN_UNTRANSPOSED),
            {"1.1": ("maps (B, N, 3)", "training mode", "shuffling", "short training")}),
    # a softmax applied twice: argmax survives but the model can never be confident
    Variant("cls-softmax-twice", M, sub(CLS_RET, "return F.softmax(F.softmax(self.head(x), dim=1), dim=1)"),
            {"1.1": ("short training",)}),
    # the first point's features instead of a symmetric pooling
    Variant("cls-first-point-no-pooling", M, sub(CLS_POOL, "x = x[:, :, 0]"),
            {"1.1": ("shuffling", "short training")}),
    # the number of classes hard-coded
    Variant("cls-hard-coded-3-classes", M, sub("nn.Linear(128, num_classes)", "nn.Linear(128, 3)"),
            {"1.1": ("num_classes=k",)}),
    # softmax over the batch axis
    Variant("cls-softmax-over-the-batch", M, sub(CLS_RET, "return F.softmax(self.head(x), dim=0)"),
            {"1.1": ("rest of its batch",)}),
    # segmentation scores returned channels-first, (B, 6, N)
    Variant("seg-output-b-6-n", M, sub(SEG_RET, "return self.head(x)"),
            {"2.1": ("maps (B, N, 3)", "training mode", "shuffling", "short training")}),
    # (B, C, N) reshaped instead of transposed to (B, N, C): the right shape, scrambled scores
    Variant("seg-reshape-instead-of-transpose", M,
            sub(SEG_RET, "out = self.head(x)\n        return out.reshape(out.shape[0], out.shape[2], out.shape[1])"),
            {"2.1": ("shuffling", "short training")}),
    Variant("seg-softmax-twice", M, sub(SEG_RET, "return F.softmax(F.softmax(self.head(x), dim=1), dim=1).transpose(1, 2)"),
            {"2.1": ("short training",)}),
    # the global feature pooled over the channels
    Variant("seg-global-pool-over-channels", M, sub(SEG_POOL, SEG_POOL.replace("dim=2", "dim=1")),
            {"2.1": ("maps (B, N, 3)", "shuffling", "short training")}),
    Variant("seg-hard-coded-6-classes", M, sub("nn.Conv1d(64, num_seg_classes, 1)", "nn.Conv1d(64, 6, 1)"),
            {"2.1": ("num_seg_classes=k",)}),
    # Q3 rotation helper
    Variant("rot-angle-taken-as-radians", U, sub("a = np.deg2rad(float(angle_deg))", "a = float(angle_deg)"),
            {"3.1.1": ("angle given in degrees", "rotate_points")}),
    Variant("rot-reflection", U, sub("c, -s, s, c\n", "c, s, s, -c\n"), {"3.1.1": ("orthonormal",)}),
    Variant("rot-sine-signs-not-orthonormal", U, sub("c, -s, s, c\n", "c, -s, -s, c\n"),
            {"3.1.1": ("orthonormal", "rotate_points")}),
    Variant("rot-always-about-z", U, sub('i = "xyz".index(axis)', "i = 2"),
            {"3.1.1": ("keeps its axis", "rotate_points")}),
    Variant("rot-points-as-columns", U, sub("return points @ R.T", "return R @ points.transpose(-1, -2)"),
            {"3.1.1": ("rotate_points",)}),
]

ALTERNATIVES = [
    Variant("mean-pooling", M, sub(CLS_POOL, "x = x.mean(dim=2)") + sub(SEG_POOL, SEG_POOL.replace(".max(", ".mean(").replace(".values", "")),
            items=("1.1", "2.1")),
    Variant("linear-layers-on-b-n-c", M, replace_class(M, "cls_model", CLS_LINEAR) + replace_class(M, "seg_model", SEG_LINEAR),
            items=("1.1", "2.1")),
    Variant("log-softmax-outputs", M, sub(CLS_RET, "return F.log_softmax(self.head(x), dim=-1)")
            + sub(SEG_RET, "return F.log_softmax(self.head(x), dim=1).transpose(1, 2)"), items=("1.1", "2.1")),
    Variant("probability-outputs", M, sub(CLS_RET, "return F.softmax(self.head(x), dim=1)")
            + sub(SEG_RET, "return torch.softmax(self.head(x).transpose(1, 2), dim=-1)"), items=("1.1", "2.1")),
    Variant("linear-with-transposed-batchnorm", M, replace_class(M, "cls_model", CLS_LINEAR_BN), items=("1.1",)),
    Variant("rot-opposite-sense", U, sub("return points @ R.T", "return points @ R"), items=("3.1.1",)),
    Variant("rot-numpy-matrix", U, sub("return torch.tensor(R, dtype=torch.float32)", "return R")
            + sub("R = rotation_matrix(angle_deg, axis).to(points.device, points.dtype)",
                  "R = torch.as_tensor(rotation_matrix(angle_deg, axis), dtype=points.dtype, device=points.device)"),
            items=("3.1.1",)),
]


def fabricate(v: Variant) -> str:
    source = REFERENCE[v.module]
    for old, new in v.edits:
        assert source.count(old) == 1, f"{v.id}: {old[:60]!r} should occur exactly once in the reference {v.module}.py"
        source = source.replace(old, new)
    return source


def graded_items(v: Variant) -> set[str]:
    return set(v.items or v.loses)


# -- machinery ------------------------------------------------------------------------------------
def grade(grader: dict, box: Path, files: dict[str, str], items: set[str],
          aimed: dict[str, tuple[str, ...]] | None = None) -> tuple[dict[str, float], list[Outcome]]:
    """Grade `files` on `items`; with `aimed`, only the checks a mistake is aimed at (fragments of their names)."""
    for module, text in files.items():
        (box / f"{module}.py").write_text(text)
    box.chmod(0o777)
    checks = [c for c in grader["checks"] if aimed is None or any(f in c.name for f in aimed.get(c.item, ()))]
    outcomes = run_checks(checks, box, {m: f"{m}.py" for m in files}, grader["mode"], only=items,
                          data_dir=grader["assignment"].public_data_dir, timeout_scale=3.0)
    scored = {s.item.id: s.score for s in score_items(grader["assignment"], outcomes) if s.item.id in items}
    return scored, outcomes


@pytest.fixture(scope="module")
def grader() -> dict:
    return {"checks": load_checks(SOLUTION / "hidden"), "assignment": spec.load(A), "mode": detect_mode()}


@pytest.fixture(scope="module")
def graded(grader: dict, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    """Every submission the selected tests need, graded once, WORKERS sandboxes at a time."""
    starter = {m: (STARTER / f"{m}.py").read_text() for m in MODULES}
    jobs = {"reference": lambda: (REFERENCE, set(AUTO), None), "starter": lambda: (starter, set(AUTO), None),
            "course": lambda: (COURSE, set(AUTO), None)}
    for v in MISTAKES:  # only the checks aimed at the mistake run (the short trainings are the slow part)
        jobs[v.id] = lambda v=v: ({**REFERENCE, v.module: fabricate(v)}, graded_items(v), v.loses)
    for v in ALTERNATIVES:  # every check of the items an alternative touches
        jobs[v.id] = lambda v=v: ({**REFERENCE, v.module: fabricate(v)}, graded_items(v), None)
    wanted = set()
    for t in request.session.items:
        if t.module is request.module:
            if hasattr(t, "callspec") and isinstance(t.callspec.params.get("variant"), Variant):
                wanted.add(t.callspec.params["variant"].id)
            wanted.update(n for n in ("reference", "starter", "course") if f"_{n}_" in t.name)
    jobs = {k: v for k, v in jobs.items() if k in wanted}

    def run(name: str):
        files, items, aimed = jobs[name]()
        return grade(grader, tmp_path_factory.mktemp(name), files, items, aimed)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run, name) for name in jobs}
        wait(futures.values())
    return futures


def report(scored: dict, outcomes: list[Outcome]) -> str:
    return "\n".join([f"scores: {scored}"] + [f"  {o.item} {o.status:8} {o.seconds:5.1f}s {o.name}: {o.message[:200]} {o.detail[:120]}"
                                              for o in outcomes])


def no_sandbox_failure(outcomes: list[Outcome], why: str) -> None:
    assert not [o for o in outcomes if o.status in ("timeout", "crashed")], f"the sandbox timed out or crashed\n{why}"


def test_reference_scores_full_marks(grader, graded):
    """Does the reference pass every check of every automatic item, short trainings included?"""
    scored, outcomes = graded["reference"].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert all(o.passed for o in outcomes), why
    assert scored == {i: grader["assignment"].item(i).marks for i in AUTO}, why


def test_starter_scores_zero_without_crashing(graded):
    """Does the generated starter score 0 on every automatic item, each failing on its own stub?"""
    scored, outcomes = graded["starter"].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert scored == {i: 0.0 for i in AUTO}, why
    assert all("NotImplementedError" in o.message for o in outcomes), why


def test_course_style_submission_keeps_model_marks_and_sends_the_missing_helper_to_a_ta(grader, graded):
    """Does the course-style example (the paper's PointNet with log-softmax outputs and `.cuda()`, the course's
    pytorch3d utils.py with its own rotate_x) get full marks on both models, and 3.1.1 sent to a TA, not zero?"""
    scored, outcomes = graded["course"].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    for item in ("1.1", "2.1"):
        assert scored[item] == grader["assignment"].item(item).marks, why
    rot = [o for o in outcomes if o.item == "3.1.1"]
    assert rot and all(o.status == "review" for o in rot), why


@pytest.mark.parametrize("variant", MISTAKES, ids=lambda v: v.id)
def test_plausible_mistake_loses_marks(grader, graded, variant: Variant):
    """Does this plausible mistake lose marks on its item, through the checks aimed at it?"""
    scored, outcomes = graded[variant.id].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    for item, fragments in variant.loses.items():
        assert scored[item] < grader["assignment"].item(item).marks, f"item {item} should lose marks\n{why}"
        for fragment in fragments:
            named = [o for o in outcomes if o.item == item and fragment in o.name]
            assert named, f"no check of {item} named like {fragment!r}\n{why}"
            assert not any(o.passed for o in named), f"check {fragment!r} should fail\n{why}"


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.id)
def test_correct_alternative_keeps_full_marks(grader, graded, variant: Variant):
    """Does this correct alternative pass every check of the items it touches?"""
    scored, outcomes = graded[variant.id].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert outcomes and all(o.passed for o in outcomes), why
    assert scored == {i: grader["assignment"].item(i).marks for i in graded_items(variant)}, why


def test_variants_change_the_reference():
    """Does every fabricated variant differ from the reference file it was made from?"""
    for v in MISTAKES + ALTERNATIVES:
        assert fabricate(v) != REFERENCE[v.module], v.id
