"""Do the hidden checks of COMP4423 A2 Task 6 (tiny NeRF, items 6.1 and 6.2) mark what they should?

Variants are fabricated from the reference tiny_nerf.py by text substitution (as in test_mistakes.py:
each `old` text must occur exactly once) and graded in the real sandbox, with the public fixture
mounted. The reference (whose improvement is the seed-000 student's: hidden size 128 -> 256) and
correct alternative improvements keep full marks; the starter scores 0 without crashing; the
plausible mistakes of /work/shared/TASKS.md section 8 lose marks through the check aimed at them.
Mistakes that only need one or two checks run only those (named by a fragment of the check's name),
which keeps the file to a few minutes: every full grade trains both versions (about 15-60 s of CPU).
"""
from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from grader import spec  # noqa: E402
from grader.checks import load_checks  # noqa: E402
from grader.runner import Outcome, run_checks  # noqa: E402
from grader.sandbox import detect_mode  # noqa: E402
from grader.scoring import score_items  # noqa: E402
from test_mistakes import FULL, Expect, assert_expectation, assert_no_sandbox_failure, loses, scores  # noqa: E402
from variants import apply_edits, report, sub  # noqa: E402

ASSIGNMENT = "comp4423_a2"
MOD = "tiny_nerf"
ITEMS = ("6.1", "6.2")
SOLUTION = ROOT / "solutions" / ASSIGNMENT
REFERENCE = (SOLUTION / f"{MOD}.py").read_text()
STARTER = ROOT / "starter" / ASSIGNMENT / f"{MOD}.py"
WORKERS = 2


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]
    expect: dict[str, Expect]  # item -> expectation (FULL for alternatives)
    only: tuple[str, ...] = ()  # fragments of the names of the checks to run (empty: all of 6.1 and 6.2)


IMPROVED = "\nIMPROVED = dict(BASELINE, filter_size=256)\n"
BUILD = 'return VeryTinyNerfModel(filter_size=config["filter_size"], num_encoding_functions=config["num_encoding_functions"])'
SEEDING = "        torch.manual_seed(seed)\n        np.random.seed(seed)\n"
ZERO_GRAD = "        self.optimizer.zero_grad()\n"
STEP_START = '        target = self.images[int(index)]\n'
ENCODE = 'return positional_encoding(points, num_encoding_functions=self.config["num_encoding_functions"])'
OPTIMIZER = 'self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config["lr"])'
OPT_STEP = "        self.optimizer.step()\n"

DEEPER = '''class DeeperNerfModel(torch.nn.Module):
    """Improvement: a third hidden layer of the same width."""

    def __init__(self, filter_size=128, num_encoding_functions=6, hidden_layers=3):
        super().__init__()
        sizes = [3 + 3 * 2 * num_encoding_functions] + [filter_size] * hidden_layers
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = torch.nn.Linear(filter_size, 4)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


def build_model(config):
    """The network for a configuration."""
    if config.get("hidden_layers", 2) != 2:
        return DeeperNerfModel(config["filter_size"], config["num_encoding_functions"], config["hidden_layers"])
    '''

RENDER = '''        pose = torch.as_tensor(pose, dtype=torch.float32).to(self.device)
        return self.run_one_iter(pose, randomize=False).cpu().numpy()
'''
# Issue 12: no NeRF at all. render() returns the nearest training view (BASELINE) or the mean of the two
# nearest (IMPROVED); both scored above the old floor and "improved" on each other.
IMAGE_BASED = '''        pose = torch.as_tensor(pose, dtype=torch.float32).to(self.device)
        order = torch.argsort(((self.poses[:, :3, 3] - pose[:3, 3]) ** 2).sum(-1))
        return self.images[order[: self.config.get("views", 1)]].mean(0).cpu().numpy()
'''
# Issue 12: the improved version plays dead (no step at its first call) at the marking seed only, so
# that the old marker moved on to a seed of the submission's choosing.
SEED_CHOOSER = ('        if self.seed == 4423 and self.steps == 0 and self.config["filter_size"] == 256:\n'
                '            self.steps += 1\n'
                '            return 0.0\n')

MISTAKES = [
    # L changed for the improved version, but the model's input size still assumes L = 6 (39 inputs).
    Variant("L-changed-input-size-not", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, num_encoding_functions=10)\n")
            + sub(BUILD, 'return VeryTinyNerfModel(filter_size=config["filter_size"])'),
            {"6.1": scores(2, "trains"), "6.2": loses("helpers", "at least as good")}),
    Variant("relu-on-sigma-removed", sub("sigma_a = F.relu(radiance_field[..., 3])", "sigma_a = radiance_field[..., 3]"),
            {"6.2": loses("analytic spheres")}, only=("analytic spheres",)),
    Variant("sigmoid-on-rgb-removed", sub("rgb = torch.sigmoid(radiance_field[..., :3])", "rgb = radiance_field[..., :3]"),
            {"6.2": loses("analytic spheres")}, only=("analytic spheres",)),
    Variant("zero-grad-lost", sub(ZERO_GRAD, ""), {"6.2": loses("baseline reaches")}, only=("baseline reaches",)),
    # the "improvement" trains only every other call (fewer iterations than the marker gives)
    Variant("improved-trains-half-the-steps", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, filter_size=256, train_every=2)\n")
            + sub(STEP_START, '        self.steps += 1\n        if self.steps % self.config.get("train_every", 1):\n'
                              '            return 0.0\n' + STEP_START),
            {"6.1": loses("trains")}, only=("trains",)),
    Variant("ignores-the-seed", sub(SEEDING, "        torch.seed()\n"), {"6.2": loses("same seed")}, only=("same seed",)),
    Variant("worse-model-filter-8", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, filter_size=8)\n"),
            {"6.1": FULL, "6.2": loses("at least as good")}, only=("differs", "trains", "at least as good")),
    # a setting nothing reads: same training, same result
    Variant("cosmetic-config-change", sub(IMPROVED, '\nIMPROVED = dict(BASELINE, note="wider")\n'),
            {"6.1": scores(2, "changes the result"), "6.2": loses("at least as good")},
            only=("differs", "trains", "at least as good")),
    Variant("render-copies-training-views", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, filter_size=256, views=2)\n")
            + sub(RENDER, IMAGE_BASED),
            {"6.1": scores(2, "changes the result"), "6.2": scores(5, "baseline reaches", "at least as good")}),
]

REVIEWED = [
    # the marking seed is the grader's: playing dead there sends the items to a TA, not to another seed
    Variant("plays-dead-at-the-marking-seed", sub(SEEDING, SEEDING + "        self.seed = seed\n")
            + sub(STEP_START, SEED_CHOOSER + STEP_START), {}, only=("changes the result", "baseline reaches")),
    # a correct deeper MLP that happens to be dead at the marking seed (alive at a later one): a TA marks it
    Variant("deeper-mlp", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, hidden_layers=3)\n") + sub("def build_model(config):\n    \"\"\"The network for a configuration. An improvement that needs a new architecture goes here.\"\"\"\n    ", DEEPER), {}),
]

ALTERNATIVES = [
    Variant("more-frequencies-matching-input", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, num_encoding_functions=8)\n"), {}),
    Variant("more-depth-samples", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, depth_samples_per_ray=48)\n"), {}),
    Variant("pi-scaled-encoding", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, pi=True)\n")
            + sub(ENCODE, 'scale = math.pi if self.config.get("pi") else 1.0\n'
                          '        return positional_encoding(points * scale, num_encoding_functions=self.config["num_encoding_functions"])'),
            {}),
    Variant("lr-schedule", sub(IMPROVED, "\nIMPROVED = dict(BASELINE, lr=4e-3, lr_decay=0.995)\n")
            + sub(OPTIMIZER, OPTIMIZER + '\n        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, '
                                         'self.config.get("lr_decay", 1.0))')
            + sub(OPT_STEP, OPT_STEP + "        self.scheduler.step()\n"), {}),
]


def fabricate(variant: Variant) -> str:
    return apply_edits(REFERENCE, variant.edits, f"{variant.id} ({MOD}.py)")


@pytest.fixture(scope="module")
def grader() -> dict:
    assignment = spec.load(ASSIGNMENT)
    checks = [c for c in load_checks(SOLUTION / "hidden") if c.item in ITEMS]
    return {"checks": checks, "assignment": assignment, "mode": detect_mode()}


def grade(grader: dict, box: Path, source: str, only: tuple[str, ...]) -> tuple[dict[str, float], list[Outcome]]:
    (box / f"{MOD}.py").write_text(source)
    box.chmod(0o777)
    checks = [c for c in grader["checks"] if not only or any(f in c.name for f in only)]
    outcomes = run_checks(checks, box, {MOD: f"{MOD}.py"}, grader["mode"], only=set(ITEMS),
                          data_dir=grader["assignment"].public_data_dir)
    scored = {s.item.id: s.score for s in score_items(grader["assignment"], outcomes) if s.item.id in ITEMS}
    return scored, outcomes


@pytest.fixture(scope="module")
def graded(grader: dict, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    jobs = {"reference": (REFERENCE, ()), "starter": (STARTER.read_text(), ())}
    for v in MISTAKES + ALTERNATIVES + REVIEWED:
        jobs[v.id] = (fabricate(v), v.only)
    selected = {t.callspec.params["variant"].id if hasattr(t, "callspec") else t.name.split("_")[1]
                for t in request.session.items if t.module is request.module}
    jobs = {name: job for name, job in jobs.items() if name in selected}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(grade, grader, tmp_path_factory.mktemp(name), *job) for name, job in jobs.items()}
        wait(futures.values())
    return futures


def test_reference_scores_full_marks(grader: dict, graded: dict[str, Future]) -> None:
    """Does the reference (the seed-000 student's 128 -> 256 improvement) pass every check of 6.1 and 6.2?"""
    scored, outcomes = graded["reference"].result()
    why = report(scored, outcomes)
    assert_no_sandbox_failure(outcomes, why)
    assert all(o.passed for o in outcomes), why
    assert scored == {"6.1": 4.0, "6.2": 12.0}, why


def test_starter_scores_zero_without_crashing(graded: dict[str, Future]) -> None:
    """Does the starter (IMPROVED is the baseline) score 0 on 6.1 and 6.2, failing cleanly?"""
    scored, outcomes = graded["starter"].result()
    why = report(scored, outcomes)
    assert_no_sandbox_failure(outcomes, why)
    assert scored == {"6.1": 0.0, "6.2": 0.0}, why
    assert all("no improved version" in o.message for o in outcomes if not o.passed), why


@pytest.mark.parametrize("variant", MISTAKES, ids=lambda v: v.id)
def test_plausible_mistake_loses_marks(grader: dict, graded: dict[str, Future], variant: Variant) -> None:
    scored, outcomes = graded[variant.id].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    for item, expect in variant.expect.items():
        if expect.full:  # a subset of checks ran: every one of this item's must pass
            assert all(o.passed for o in outcomes if o.item == item), report(scored, outcomes)
        else:
            assert_expectation(grader, item, expect, scored, outcomes)


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.id)
def test_correct_alternative_keeps_full_marks(grader: dict, graded: dict[str, Future], variant: Variant) -> None:
    scored, outcomes = graded[variant.id].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    for item in ITEMS:
        assert_expectation(grader, item, FULL, scored, outcomes)


@pytest.mark.parametrize("variant", REVIEWED, ids=lambda v: v.id)
def test_dead_at_the_marking_seed_goes_to_review(graded: dict[str, Future], variant: Variant) -> None:
    """Is a version that gets no gradient at the grader's marking seed (but does at another) sent to a TA
    with the seeds as evidence, instead of being marked at a seed the submission could steer?"""
    scored, outcomes = graded[variant.id].result()
    why = report(scored, outcomes)
    assert_no_sandbox_failure(outcomes, why)
    trained = [o for o in outcomes if "changes the result" in o.name or "baseline reaches" in o.name]
    assert trained and all(o.status == "review" for o in trained), why
    assert all("marking seed" in o.message and "it moves at seeds" in o.detail for o in trained), why
    assert scored["6.1"] is None and scored["6.2"] is None, why


def test_original_notebook_form_goes_to_review(grader: dict, tmp_path: Path) -> None:
    """Does a Task 6 without the starter's BASELINE / IMPROVED / make_trainer (the original notebook's
    own training loop) go to a TA with the names it defines, instead of scoring 0 (issue 11)?"""
    original = REFERENCE.split("\n# BEGIN SOLUTION 6.1")[0].replace("BASELINE = {", "SETTINGS = {")
    original += "\n" + REFERENCE[REFERENCE.index("# -- helpers from the notebook"):REFERENCE.index("def build_model(config)")]
    scored, outcomes = grade(grader, tmp_path, original, ())
    why = report(scored, outcomes)
    assert outcomes and all(o.status == "review" for o in outcomes), why
    assert all("defines no" in o.message and "VeryTinyNerfModel" in o.detail for o in outcomes), why
    assert scored == {"6.1": None, "6.2": None}, why


def test_a_shared_file_shares_no_training(grader: dict, tmp_path: Path) -> None:
    """Two submissions graded one after the other in the same folder, both a thin tiny_nerf.py importing
    real_nerf.py: does the second (whose real_nerf never steps) get its own verdict, not the first's
    cached training results (issue 12)?"""
    box = tmp_path / "pool"
    box.mkdir()
    thin = "from real_nerf import *  # noqa: F401,F403\nfrom real_nerf import BASELINE, IMPROVED, make_trainer  # noqa: F401\n"
    (box / "real_nerf.py").write_text(REFERENCE)
    first, outcomes = grade(grader, box, thin, ("changes the result",))
    assert first["6.1"] == 4.0, report(first, outcomes)
    (box / "real_nerf.py").write_text(apply_edits(REFERENCE, sub(OPT_STEP, ""), "no optimizer step"))
    second, outcomes = grade(grader, box, thin, ("changes the result",))
    assert second["6.1"] < 4.0, report(second, outcomes)
    assert any("changes the result" in o.name and not o.passed for o in outcomes), report(second, outcomes)


def test_substitutions_change_the_reference() -> None:
    for variant in MISTAKES + ALTERNATIVES + REVIEWED:
        assert fabricate(variant) != REFERENCE, variant.id
