"""Do COMP4423 A2's hidden checks tell plausible mistakes from correct alternatives?

Every variant is fabricated from the reference solution by text substitution (each `old` text must
occur exactly once in the reference, so a drifting reference fails loudly), written alone into a
fresh box and graded in the real sandbox, restricted to the items of the module it changes. The
mistakes and alternatives are those catalogued in /work/shared/TASKS.md sections 3 to 5
(stratified sampling = items 4.1/4.2, volume rendering = 5.1/5.2, deformable conv = 2.1).
"""
from __future__ import annotations

import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
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
from variants import apply_edits, full_marks, report, sub  # noqa: E402,F401 - report and sub: used here and by test_task6

ASSIGNMENT = "comp4423_a2"
SOLUTION = ROOT / "solutions" / ASSIGNMENT
STARTER = ROOT / "starter" / ASSIGNMENT
ITEMS = {"Raysampling": ("4.1", "4.2"), "volume_rendering": ("5.1", "5.2"), "dcnn": ("2.1",)}
REFERENCE = {module: (SOLUTION / f"{module}.py").read_text() for module in ITEMS}


def function_source(module: str, name: str) -> str:
    """The exact text of a top-level def or class in the reference, up to the next top-level statement."""
    match = re.search(rf"^(?:def|class) {name}\b.*?(?=^\S)", REFERENCE[module], flags=re.S | re.M)
    assert match, f"{name} is no longer defined at top level in the reference {module}.py"
    return match.group(0)


# -- expectations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """What one item should score: full marks, an exact score, or anything below full marks."""

    full: bool = False
    marks: float | None = None
    failing: tuple[str, ...] = ()  # substrings of check names that must not pass
    only_failing: bool = False  # the named checks are the only ones of the module that do not pass


FULL = Expect(full=True)


def loses(*checks: str) -> Expect:
    return Expect(failing=checks)


def scores(marks: float, *checks: str, only: bool = False) -> Expect:
    return Expect(marks=marks, failing=checks, only_failing=only)


@dataclass(frozen=True)
class Variant:
    id: str
    module: str
    edits: tuple[tuple[str, str], ...]  # (old, new) substitutions on the reference source
    expect: dict[str, Expect]  # item id -> expectation; items not named are not asserted on


# -- Task 4: stratified sampling (items 4.1 and 4.2) ---------------------------------------------
RS = "Raysampling"
MID = "midpoints = (t_vals[:-1] + t_vals[1:]) / 2"
JIT = "jitter = (np.random.rand(num_samples) - 0.5) * (t_vals[1] - t_vals[0])"
RAND = "(np.random.rand(num_samples) - 0.5)"
SUM = "t_samples = midpoints + jitter"
W = "(t_vals[1] - t_vals[0])"
STRAT = function_source(RS, "stratified_sampling")
VIS_CALL = "_, uniform_samples = uniform_sampling(rays_o[0, 0], rays_d[0, 0], near, far, num_samples)"

RS_TORCH = '''def stratified_sampling(near, far, num_samples):
    import torch
    edges = torch.linspace(near, far, num_samples + 1, dtype=torch.float64)
    mid = (edges[:-1] + edges[1:]) / 2
    return mid + (torch.rand(num_samples, dtype=torch.float64) - 0.5) * (edges[1] - edges[0])


'''
RS_DEFAULT_RNG = '''def stratified_sampling(near, far, num_samples):
    rng = np.random.default_rng()
    edges = np.linspace(near, far, num_samples + 1)
    return np.array([rng.uniform(edges[i], edges[i + 1]) for i in range(num_samples)])


'''
RS_ARANGE = '''def stratified_sampling(near, far, num_samples):
    w = (far - near) / num_samples
    return near + (np.arange(num_samples) + np.random.rand(num_samples)) * w


'''
RS_BATCHED = '''def stratified_sampling(near, far, num_samples, batch_shape=()):
    edges = np.linspace(near, far, num_samples + 1)
    return np.random.uniform(edges[:-1], edges[1:], size=tuple(batch_shape) + (num_samples,))


'''
RS_TINY_NERF = '''def stratified_sampling(near, far, num_samples):
    t_vals = np.linspace(near, far, num_samples)
    return t_vals + np.random.rand(num_samples) * (far - near) / num_samples


'''

RS_MISTAKES = [
    Variant("unscaled-jitter", RS, sub(JIT, f"jitter = {RAND}"), {"4.1": loses("inside its own bin")}),
    Variant("jitter-times-range", RS, sub(W, "(far - near)"), {"4.1": loses("inside its own bin")}),
    Variant("shared-scalar-jitter", RS, sub("np.random.rand(num_samples)", "np.random.rand()"),
            {"4.1": loses("independently")}),
    Variant("gaussian-jitter", RS, sub(RAND, "np.random.randn(num_samples)"), {"4.1": loses("inside its own bin")}),
    Variant("narrow-gaussian-jitter", RS, sub(RAND, "(np.random.randn(num_samples) / 6)"),
            {"4.1": loses("inside its own bin", "uniform inside each bin")}),
    Variant("half-bin-jitter-right", RS, sub(JIT, f"jitter = np.random.rand(num_samples) * 0.5 * {W}"),
            {"4.1": loses("uniform inside each bin")}),
    Variant("half-bin-jitter-left", RS, sub(JIT, f"jitter = -np.random.rand(num_samples) * 0.5 * {W}"),
            {"4.1": loses("uniform inside each bin")}),
    Variant("left-edges-centred-jitter", RS, sub(MID, "midpoints = t_vals[:-1]"), {"4.1": loses("inside its own bin")}),
    Variant("n-plus-one-samples", RS, ((MID, "midpoints = t_vals"),
                                       ("np.random.rand(num_samples)", "np.random.rand(num_samples + 1)")),
            {"4.1": loses("num_samples finite floats")}),
    Variant("midpoints-without-jitter", RS, sub(SUM, "t_samples = midpoints"),
            {"4.1": loses("afresh", "uniform inside each bin")}),
    Variant("seeded-inside-function", RS, sub(JIT, f"np.random.seed(0)\n    {JIT}"), {"4.1": loses("afresh")}),
    Variant("tiny-nerf-scheme", RS, sub(STRAT, RS_TINY_NERF), {"4.1": loses("inside its own bin")}),
    # issue 12: NaN samples of the right shape (NaN compares False, so only reading them rejects them); the
    # figure's uniform row is still right (3 of 8), its NaN row is not drawn
    Variant("nan-samples", RS, sub(SUM, "t_samples = midpoints + jitter * np.nan"), {"4.1": scores(0), "4.2": scores(3)}),
    Variant("starter-visualize-call", RS, sub(VIS_CALL, "_, uniform_samples = uniform_sampling(near, far, num_samples)"),
            {"4.1": FULL, "4.2": scores(0)}),
]

RS_ALTERNATIVES = [
    Variant("left-edge-plus-rand-w", RS, ((MID, "midpoints = t_vals[:-1]"),
                                          (RAND, "np.random.rand(num_samples)")), {}),
    Variant("near-plus-arange-plus-rand", RS, sub(STRAT, RS_ARANGE), {}),
    Variant("np-random-uniform-edges", RS, sub(JIT + "  # (N,)\n", "")
            + sub(SUM, "t_samples = np.random.uniform(t_vals[:-1], t_vals[1:])"), {}),
    Variant("torch-tensor", RS, sub(STRAT, RS_TORCH), {}),
    Variant("default-rng-uniform-per-bin", RS, sub(STRAT, RS_DEFAULT_RNG), {}),
    Variant("sorted-after-sampling", RS, sub(SUM, "t_samples = np.sort(midpoints + jitter)"), {}),
    Variant("batched-signature", RS, sub(STRAT, RS_BATCHED), {}),
]

# -- Task 5: volume rendering (items 5.1 and 5.2) ------------------------------------------------
VR = "volume_rendering"
ALPHA = "alpha = 1.0 - np.exp(-sigma * dists)"
CUM = "cumulative = np.cumsum(sigma * dists, axis=-1)"
TRANS = "transmittance = np.exp(-np.concatenate([np.zeros_like(cumulative[..., :1]), cumulative[..., :-1]], axis=-1))"
WEIGHTS = "weights = transmittance * alpha"
COLOUR = "pixel_color = np.sum(weights[..., None] * rgb, axis=-2)"
DISTS = "dists = np.diff(t_vals, axis=-1, append=t_vals[..., -1:])"
VR_FN = function_source(VR, "volume_rendering")

VR_CUMPROD_ROLL = '''def cumprod_exclusive(x):
        c = np.cumprod(x, axis=-1)
        c = np.roll(c, 1, axis=-1)
        c[..., 0] = 1.0
        return c

    transmittance = cumprod_exclusive(1.0 - alpha + 1e-10)'''
VR_TORCH = '''def volume_rendering(rgb, sigma, t_vals):
    import torch
    rgb, sigma, t_vals = (torch.as_tensor(np.asarray(v), dtype=torch.float64) for v in (rgb, sigma, t_vals))
    t_vals = t_vals.expand(sigma.shape)
    dists = torch.cat([t_vals[..., 1:] - t_vals[..., :-1], torch.zeros_like(t_vals[..., :1])], dim=-1)
    alpha = 1.0 - torch.exp(-sigma * dists)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1]], dim=-1), dim=-1)
    weights = transmittance * alpha
    pixel_color = (weights[..., None] * rgb).sum(dim=-2)
    return pixel_color, weights, alpha, transmittance


'''

VR_MISTAKES = [
    Variant("inclusive-transmittance", VR, sub(TRANS, "transmittance = np.exp(-cumulative)"),
            {"5.1": loses("transmittance starts full", "closed form", "opaque sample")}),
    Variant("inclusive-cumprod", VR, sub(TRANS, "transmittance = np.cumprod(1.0 - alpha, axis=-1)"),
            {"5.1": loses("transmittance starts full", "closed form")}),
    Variant("transmittance-without-delta", VR, sub(CUM, "cumulative = np.cumsum(sigma, axis=-1)"),
            {"5.1": loses("closed form", "constant density")}),
    Variant("alpha-sigma-delta", VR, sub(ALPHA, "alpha = sigma * dists"), {"5.1": loses("closed form")}),
    Variant("alpha-exp", VR, sub(ALPHA, "alpha = np.exp(-sigma * dists)"), {"5.1": loses("closed form", "empty space")}),
    Variant("weights-T-one-minus-alpha", VR, sub(WEIGHTS, "weights = transmittance * (1.0 - alpha)"),
            {"5.1": loses("closed form", "opaque sample")}),
    Variant("weights-T-only", VR, sub(WEIGHTS, "weights = transmittance"), {"5.1": loses("closed form", "opaque sample")}),
    Variant("weights-alpha-only", VR, sub(WEIGHTS, "weights = alpha"), {"5.1": loses("closed form")}),
    Variant("cumsum-axis-0", VR, sub(CUM, "cumulative = np.cumsum(sigma * dists, axis=0)"), {"5.1": loses("batches")}),
    Variant("colour-from-alpha", VR, sub(COLOUR, "pixel_color = np.sum(alpha[..., None] * rgb, axis=-2)"),
            {"5.1": loses("closed form")}),
    # NeRF's convention instead of the given one: loses the dedicated check and nothing else.
    Variant("last-delta-1e10", VR, sub(DISTS, "dists = np.concatenate([np.diff(t_vals, axis=-1), "
                                              "np.full_like(t_vals[..., :1], 1e10)], axis=-1)"),
            {"5.1": scores(11, "last sample's spacing", only=True), "5.2": FULL}),
]

VR_ALTERNATIVES = [
    Variant("cumprod-exclusive-concatenate", VR, sub(TRANS, "transmittance = np.concatenate([np.ones_like(alpha[..., :1]), "
                                                            "np.cumprod(1.0 - alpha, axis=-1)[..., :-1]], axis=-1)"), {}),
    Variant("cumprod-exclusive-roll-eps", VR, sub(TRANS, VR_CUMPROD_ROLL), {}),
    Variant("torch-tensors", VR, sub(VR_FN, VR_TORCH), {}),
    Variant("log-space-cumsum-eps", VR, sub(TRANS, "log_t = np.cumsum(np.log(1.0 - alpha + 1e-10), axis=-1)\n"
                                                   "    transmittance = np.exp(np.concatenate([np.zeros_like(log_t[..., :1]), "
                                                   "log_t[..., :-1]], axis=-1))"), {}),
]

# -- Task 2: deformable convolution (item 2.1) ---------------------------------------------------
DC = "dcnn"
OFFSET = "self.offset = nn.Conv2d(in_channels, 2 * kernel_size * kernel_size, kernel_size=kernel_size, padding=padding, stride=stride)"
CHANNELS = "2 * kernel_size * kernel_size,"
FORWARD_RET = "return self.deform_conv(x, offsets)"
OFFSETS = "offsets = self.offset(x)"

DC_MODULATED_FORWARD = '''out = self.offset(x)
        kk = self.kernel_size * self.kernel_size
        offsets, mask = out[:, : 2 * kk], torch.sigmoid(out[:, 2 * kk :])
        return self.deform_conv(x, offsets, mask=mask)'''
DC_MASK_CONV = OFFSET + '''
        self.mask = nn.Conv2d(in_channels, kernel_size * kernel_size, kernel_size=kernel_size, padding=padding, stride=stride)'''

DC_MISTAKES = [
    Variant("k-k-channels", DC, sub(CHANNELS, "kernel_size * kernel_size,"), {"2.1": loses("channel counts", "shape of a plain conv")}),
    Variant("2-k-channels", DC, sub(CHANNELS, "2 * kernel_size,"), {"2.1": loses("channel counts", "shape of a plain conv")}),
    Variant("2-channels", DC, sub(CHANNELS, "2,"), {"2.1": loses("channel counts", "shape of a plain conv")}),
    Variant("3-k-k-passed-whole", DC, sub(CHANNELS, "3 * kernel_size * kernel_size,"), {"2.1": loses("shape of a plain conv")}),
    Variant("offset-stride-missing", DC, sub(", stride=stride)\n        # END", ")\n        # END"),
            {"2.1": loses("shape of a plain conv")}),
    Variant("offset-padding-missing", DC, sub("kernel_size=kernel_size, padding=padding, stride=stride)\n        # END",
                                              "kernel_size=kernel_size, stride=stride)\n        # END"),
            {"2.1": loses("shape of a plain conv")}),
    Variant("offset-1x1-no-stride", DC, sub("kernel_size=kernel_size, padding=padding, stride=stride)\n        # END",
                                            "kernel_size=1, padding=0)\n        # END"),
            {"2.1": loses("shape of a plain conv")}),
    Variant("offsets-detached", DC, sub(OFFSETS, "offsets = self.offset(x).detach()"),
            {"2.1": scores(11, "gradients reach", only=True)}),
    Variant("offsets-no-grad", DC, sub(OFFSETS, "with torch.no_grad():\n            offsets = self.offset(x)"),
            {"2.1": scores(11, "gradients reach", only=True)}),
    Variant("deform-conv-without-offsets", DC, sub(FORWARD_RET, "return self.deform_conv(x)"), {"2.1": loses("offsets are used")}),
    Variant("deform-conv-zero-offsets", DC, sub(FORWARD_RET, "return self.deform_conv(x, torch.zeros_like(offsets))"),
            {"2.1": loses("offsets are used", "gradients reach")}),
]

DC_ALTERNATIVES = [
    Variant("dcnv2-modulated-3kk", DC, sub(CHANNELS, "3 * kernel_size * kernel_size,")
            + sub(OFFSETS + "  # (B, 2*k*k, H_out, W_out)\n        " + FORWARD_RET, DC_MODULATED_FORWARD), {}),
    Variant("zero-initialised-offset-conv", DC, sub(OFFSET, OFFSET + "\n        nn.init.zeros_(self.offset.weight)"
                                                                     "\n        nn.init.zeros_(self.offset.bias)"), {}),
    Variant("separate-mask-conv", DC, sub(OFFSET, DC_MASK_CONV)
            + sub(FORWARD_RET, "return self.deform_conv(x, offsets, mask=torch.sigmoid(self.mask(x)))"), {}),
    Variant("dilation-passed-through", DC, sub("padding=1, stride=1):", "padding=1, stride=1, dilation=1):")
            + sub("padding=padding, stride=stride)\n        # END", "padding=padding, stride=stride, dilation=dilation)\n        # END")
            + sub("padding=padding, stride=stride, bias=False", "padding=padding, stride=stride, dilation=dilation, bias=False"), {}),
]

MISTAKES = RS_MISTAKES + VR_MISTAKES + DC_MISTAKES
ALTERNATIVES = RS_ALTERNATIVES + VR_ALTERNATIVES + DC_ALTERNATIVES


# -- machinery ------------------------------------------------------------------------------------
ALL_ITEMS = {i for items in ITEMS.values() for i in items}
WORKERS = 2  # sandboxes at a time: the CI machine has 2 cores and each sandbox uses one thread


def fabricate(variant: Variant) -> str:
    return apply_edits(REFERENCE[variant.module], variant.edits, f"{variant.id} ({variant.module}.py)")


def grade(grader: dict, box: Path, modules: dict[str, str], items: set[str]) -> tuple[dict[str, float], list[Outcome]]:
    """Write the modules into the box, run the checks of `items` in the sandbox, return (scores, outcomes)."""
    for module, text in modules.items():
        (box / f"{module}.py").write_text(text)
    outcomes = run_checks(grader["checks"], box, {m: f"{m}.py" for m in modules}, grader["mode"], only=items)
    scored = {s.item.id: s.score for s in score_items(grader["assignment"], outcomes) if s.item.id in items}
    return scored, outcomes


@pytest.fixture(scope="module")
def grader() -> dict:
    return {"checks": load_checks(SOLUTION / "hidden"), "assignment": spec.load(ASSIGNMENT), "mode": detect_mode()}


@pytest.fixture(scope="module")
def graded(grader: dict, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    """Every selected submission graded once, WORKERS sandboxes at a time; each test reads its own result."""
    starter = {module: (STARTER / f"{module}.py").read_text() for module in ITEMS}
    jobs = {"reference": lambda: (REFERENCE, ALL_ITEMS), "starter": lambda: (starter, ALL_ITEMS)}
    for v in MISTAKES + ALTERNATIVES:
        jobs[v.id] = lambda v=v: ({v.module: fabricate(v)}, set(ITEMS[v.module]))
    assert len(jobs) == 2 + len(MISTAKES + ALTERNATIVES), "variant ids must be unique"
    selected = {t.callspec.params["variant"].id if hasattr(t, "callspec") else t.name.split("_")[1]
                for t in request.session.items if t.module is request.module}  # test_reference_..., test_starter_...
    jobs = {name: job for name, job in jobs.items() if name in selected}

    def run(name: str) -> tuple[dict[str, float], list[Outcome]]:
        modules, items = jobs[name]()
        return grade(grader, tmp_path_factory.mktemp(name), modules, items)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run, name) for name in jobs}
        wait(futures.values())
    return futures


def assert_expectation(grader: dict, item: str, expect: Expect, scored: dict[str, float], outcomes: list[Outcome]) -> None:
    why = report(scored, outcomes)
    if expect.full:
        assert scored[item] == full_marks(grader, item), f"item {item} should keep full marks\n{why}"
        return
    if expect.marks is not None:
        assert scored[item] == expect.marks, f"item {item} should score {expect.marks}\n{why}"
    assert scored[item] < full_marks(grader, item), f"item {item} should lose marks\n{why}"
    mine = [o for o in outcomes if o.item == item]
    for fragment in expect.failing:
        named = [o for o in mine if fragment in o.name]
        assert named, f"no check of item {item} is named like {fragment!r}\n{why}"
        assert not any(o.passed for o in named), f"the check {fragment!r} should not pass\n{why}"
    if expect.only_failing:
        others = [o for o in outcomes if not o.passed and not any(f in o.name for f in expect.failing)]
        assert not others, f"only {expect.failing} should fail\n{why}"


def assert_no_sandbox_failure(outcomes: list[Outcome], why: str) -> None:
    broken = [o for o in outcomes if o.status in ("timeout", "crashed")]
    assert not broken, f"the sandbox timed out or crashed\n{why}"


# -- tests ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", MISTAKES, ids=lambda v: v.id)
def test_plausible_mistake_loses_marks(grader: dict, graded: dict[str, Future], variant: Variant) -> None:
    """Does this plausible mistake lose marks on the item it breaks, through the check aimed at it?"""
    scored, outcomes = graded[variant.id].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    for item, expect in variant.expect.items():
        assert_expectation(grader, item, expect, scored, outcomes)


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.id)
def test_correct_alternative_keeps_full_marks(grader: dict, graded: dict[str, Future], variant: Variant) -> None:
    """Does this correct alternative keep full marks on every item of its module?"""
    scored, outcomes = graded[variant.id].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    for item in ITEMS[variant.module]:
        assert_expectation(grader, item, FULL, scored, outcomes)


def test_reference_scores_full_marks(grader: dict, graded: dict[str, Future]) -> None:
    """Does the reference solution pass every check and score full marks on all five auto-graded items?"""
    scored, outcomes = graded["reference"].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    assert all(o.passed for o in outcomes), report(scored, outcomes)
    assert scored == {i: full_marks(grader, i) for i in ALL_ITEMS}, report(scored, outcomes)


def test_starter_scores_zero_without_crashing(graded: dict[str, Future]) -> None:
    """Does the generated starter score 0 on all five items, failing cleanly rather than timing out or crashing?"""
    scored, outcomes = graded["starter"].result()
    assert_no_sandbox_failure(outcomes, report(scored, outcomes))
    assert scored == {i: 0.0 for i in ALL_ITEMS}, report(scored, outcomes)


def test_substitutions_change_the_reference() -> None:
    """Does every fabricated variant differ from the reference it was made from?"""
    for variant in MISTAKES + ALTERNATIVES:
        assert fabricate(variant) != REFERENCE[variant.module], variant.id
