"""Do the hidden checks of COMP4423 A2 Task 1 (ResNet vs VGG, items 1.1-1.3) tell mistakes from alternatives?

Variants are fabricated from the reference resnet_vgg.py by exact text substitution (each `old` text
must occur exactly once) and graded in the real sandbox on items 1.1-1.3, two sandboxes at a time.
Every sandbox builds VGG16 (several seconds), so orthogonal mistakes, each aimed at a different
check, share one fabricated file, and the test asserts the exact set of checks that do not pass:
each mistake fails its own check and nothing else. The mistakes and alternatives are those of
/work/shared/TASKS.md section 9, plus a few of the data pipeline and the plots.
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
from variants import apply_edits, full_marks, report  # noqa: E402

ASSIGNMENT = "comp4423_a2"
MODULE = "resnet_vgg"
ITEMS = ("1.1", "1.2", "1.3")
SOLUTION = ROOT / "solutions" / ASSIGNMENT
REFERENCE = (SOLUTION / f"{MODULE}.py").read_text()
WORKERS = 2  # the CI machine has 2 cores; each sandbox uses one thread


def function_source(name: str) -> str:
    match = re.search(rf"^def {name}\b.*?(?=^\S)", REFERENCE, flags=re.S | re.M)
    assert match, f"{name} is no longer a top-level def in the reference {MODULE}.py"
    return match.group(0)


# -- reference texts that the variants edit ---------------------------------------------------------
ZERO_GRAD = "    model.zero_grad()\n"
COND = 'if param.requires_grad and "weight" in name and param.grad is not None:'
MEAN = "means.append(param.grad.abs().mean().item())"
VGG_HEAD = "    vgg.classifier[6] = nn.Linear(4096, num_classes)\n"
COPY = "work = copy.deepcopy(model).cpu().eval()"
METRIC = "metric = Loss(criterion, inputs.cpu(), labels.cpu())"
NO_DEEPCOPY = 'normalization="filter", deepcopy_model=False)'
NORMALIZE = "transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),"
RESIZE = "transforms.Resize((image_size, image_size)),"
FLOW_LABEL = ', label=f"{label} ({len(means)} weight tensors)")'
FLOW_PLOT = 'ax.plot(np.arange(len(means)), means, marker="o"'
LANDSCAPE_TITLE = 'ax.set_title(f"{label} loss landscape")'
CONTOURS = '''        filled = ax.contourf(z, levels=30, cmap="viridis")
        ax.contour(z, levels=10, colors="k", linewidths=0.5)
        fig.colorbar(filled, ax=ax, label="loss")
'''

LANDSCAPE_3D = '''def plot_loss_landscape(surfaces):
    fig = plt.figure(figsize=(12, 5))
    for k, (label, z) in enumerate(surfaces.items()):
        z = np.log(np.asarray(z, dtype=float))
        ax = fig.add_subplot(1, len(surfaces), k + 1, projection="3d")
        xx, yy = np.meshgrid(np.arange(z.shape[1]), np.arange(z.shape[0]))
        ax.plot_surface(xx, yy, z, cmap="viridis")
        ax.set_title(label)
    return fig


'''


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]
    failing: frozenset[str]  # fragments of the names of exactly the checks that must not pass


def variant(vid: str, edits: list[tuple[str, str]], *failing: str) -> Variant:
    return Variant(vid, tuple(edits), frozenset(failing))


SHUFFLE = "loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0)"
LAYER_NORM = 'normalization="filter", deepcopy_model=False)'
DISTANCE = "distance=distance, steps=steps,"
GRAD_STEP = "    # Step 1: clear old gradients, then forward, loss and backward"

MISTAKES = [
    # no zero_grad (means double on a second call); the surface mutates the caller's model (no deep
    # copy) and uses layer instead of filter normalisation; VGG16's head not replaced (1000 outputs);
    # gradient-flow curves not labelled; the loader ignores shuffle
    variant("no-zero-grad+surface-mutates+layer-normalisation+vgg-head-kept+unlabelled-flow+shuffle-ignored",
            [(ZERO_GRAD, ""), (COPY, "work = model.cpu().eval()"), (LAYER_NORM, 'normalization="layer", deepcopy_model=False)'),
             (VGG_HEAD, ""), (FLOW_LABEL, ")"), ('ax.set_title("Gradient flow")', 'ax.set_title("layers")'),
             (SHUFFLE, "loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)")],
            "a second call gives the same means", "leaves the model's parameters unchanged", "filter-normalised random plane",
            "heads replaced", "plot_gradient_flow", "shuffle argument"),
    # biases listed too; a closure over the caller's model (not the wrapper) with deepcopy_model=True
    # (flat surface: the perturbed copy is never evaluated); inputs not normalised
    variant("biases-included+closure-ignores-wrapper+no-normalize",
            [(COND, "if param.requires_grad and param.grad is not None:"),
             (COPY, "work = model"), (METRIC, "metric = lambda wrapper: criterion(model(inputs), labels).item()"),
             (NO_DEEPCOPY, 'normalization="filter", deepcopy_model=True)'), (NORMALIZE, "")],
            "ResNet18: one mean", "VGG16: one mean", "finite, non-constant", "filter-normalised random plane",
            "normalised per channel"),
    # signed mean; crashes on grad None (no check of it); a fixed 224 resize; subplots without names;
    # the plane's distance ignored
    variant("signed-mean+crash-on-none+fixed-resize+untitled-landscape+distance-ignored",
            [(COND, 'if param.requires_grad and "weight" in name:'), (MEAN, "means.append(param.grad.mean().item())"),
             (RESIZE, "transforms.Resize((224, 224)),"), (LANDSCAPE_TITLE, 'ax.set_title("loss landscape")'),
             (DISTANCE, "distance=10.0, steps=steps,")],
            "ResNet18: one mean", "VGG16: one mean", "skipped, not a crash", "reads CIFAR-10's files",
            "resized to image_size", "titled with its name", "filter-normalised random plane"),
    # issue 12, unearned marks: no backward pass at all (two empty lists), random numbers of the right
    # shape for the surface, Normalize with its arguments swapped
    variant("no-backward-empty-lists+random-surface+normalize-swapped",
            [(GRAD_STEP, "    return [], []\n" + GRAD_STEP),
             (COPY, "return 2.3 + 0.1 * np.random.rand(steps, steps)\n    " + COPY),
             (NORMALIZE, "transforms.Normalize(CIFAR10_STD, CIFAR10_MEAN),")],
            "ResNet18: one mean", "VGG16: one mean", "a second call gives the same means", "skipped, not a crash",
            "finite, non-constant", "filter-normalised random plane", "leaves the model's parameters unchanged",
            "normalised per channel"),
]

ALTERNATIVES = [
    # .cpu().numpy() instead of .item(); BatchNorm (1-D) weights left out, consistently; eval mode;
    # a metric closure that evaluates through the wrapper; semilogy; a 3-D surface of log(loss);
    # ImageNet's normalisation constants
    variant("numpy-means+no-bn-weights+eval-mode+wrapper-closure+semilogy+3d-log-surface+imagenet-norm",
            [(MEAN, "means.append(param.grad.abs().mean().cpu().numpy())"),
             (COND, 'if param.requires_grad and "weight" in name and param.grad is not None and param.dim() > 1:'),
             (ZERO_GRAD, "    model.eval()\n    model.zero_grad()\n"),
             (METRIC, "metric = lambda wrapper: criterion(wrapper.forward(inputs.cpu()), labels.cpu()).item()"),
             (FLOW_PLOT, 'ax.semilogy(np.arange(len(means)), means, marker="o"'),
             (function_source("plot_loss_landscape"), LANDSCAPE_3D),
             (NORMALIZE, "transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),")]),
    # loss-landscapes' own deepcopy_model=True on the wrapper (in train mode); imshow; the handout's
    # plain plot of the means against their index; means returned as one numpy array; (0.5, 0.5) norm
    variant("library-deepcopy+imshow+plain-plot+array-means+half-norm",
            [(COPY, "work = model"), (NO_DEEPCOPY, 'normalization="filter", deepcopy_model=True)'),
             (CONTOURS, '        fig.colorbar(ax.imshow(z, origin="lower"), ax=ax)\n'),
             (FLOW_PLOT, "ax.plot(means"), ("    return names, means\n", "    return names, np.array(means)\n"),
             (NORMALIZE, "transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),")]),
]


# Issue 11: Task 1 as the original course had it, a script (its work under __main__) with none of the
# starter's functions. Nothing can be called, so every check of 1.1-1.3 goes to a TA, never to 0.
ORIGINAL_SCRIPT = '''import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as transforms
import loss_landscapes
import loss_landscapes.metrics


def plot_grad_flow(named_parameters):
    ave_grads, layers = [], []
    for name, param in named_parameters:
        if param.requires_grad and "weight" in name and param.grad is not None:
            layers.append(name)
            ave_grads.append(param.grad.abs().mean().item())
    plt.plot(ave_grads, alpha=0.3, color="b")
    plt.xticks(range(len(ave_grads)), layers, rotation="vertical")


if __name__ == "__main__":
    transform = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])
    trainset = torchvision.datasets.CIFAR10(root="./data", train=True, download=True, transform=transform)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=1, shuffle=True)
    model = torchvision.models.vgg16(weights="IMAGENET1K_V1")
    model.classifier[6] = nn.Linear(4096, 10)
    x, y = next(iter(trainloader))
    nn.CrossEntropyLoss()(model(x), y).backward()
    plot_grad_flow(model.named_parameters())
    metric = loss_landscapes.metrics.Loss(nn.CrossEntropyLoss(), x, y)
    surface = loss_landscapes.random_plane(model, metric, distance=0.5, steps=20, normalization="filter")
'''


def fabricate(v: Variant) -> str:
    return apply_edits(REFERENCE, v.edits, v.id)


@pytest.fixture(scope="module")
def grader() -> dict:
    return {"checks": load_checks(SOLUTION / "hidden"), "assignment": spec.load(ASSIGNMENT), "mode": detect_mode()}


@pytest.fixture(scope="module")
def graded(grader: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    starter = (ROOT / "starter" / ASSIGNMENT / f"{MODULE}.py").read_text()
    sources = {"reference": REFERENCE, "starter": starter, "original-script": ORIGINAL_SCRIPT,
               **{v.id: fabricate(v) for v in MISTAKES + ALTERNATIVES}}

    def run(name: str) -> tuple[dict[str, float], list[Outcome]]:
        box = tmp_path_factory.mktemp("task1")
        (box / f"{MODULE}.py").write_text(sources[name])
        outcomes = run_checks(grader["checks"], box, {MODULE: f"{MODULE}.py"}, grader["mode"], only=set(ITEMS),
                              data_dir=grader["assignment"].public_data_dir)
        scored = {s.item.id: s.score for s in score_items(grader["assignment"], outcomes) if s.item.id in ITEMS}
        return scored, outcomes

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run, name) for name in sources}
        wait(futures.values())
    return futures


def not_sandbox_failure(outcomes: list[Outcome]) -> bool:
    return not any(o.status in ("timeout", "crashed") for o in outcomes)


def test_reference_scores_full_marks(grader: dict, graded: dict[str, Future]) -> None:
    """Does the reference pass every check of items 1.1-1.3?"""
    scored, outcomes = graded["reference"].result()
    why = report(scored, outcomes)
    assert outcomes and all(o.passed for o in outcomes), why
    assert scored == {i: full_marks(grader, i) for i in ITEMS}, why


def test_starter_scores_zero_without_crashing(graded: dict[str, Future]) -> None:
    """Does the generated starter score 0 on items 1.1-1.3, failing cleanly?"""
    scored, outcomes = graded["starter"].result()
    why = report(scored, outcomes)
    assert not_sandbox_failure(outcomes), why
    assert scored == {i: 0.0 for i in ITEMS}, why


def test_original_script_goes_to_review(graded: dict[str, Future]) -> None:
    """Does a Task 1 written as the original course's script (none of the starter's functions) go to a
    TA with the names it defines as evidence, instead of scoring 0 (issue 11)?"""
    scored, outcomes = graded["original-script"].result()
    why = report(scored, outcomes)
    assert outcomes and all(o.status == "review" for o in outcomes), why
    assert all("defines no" in o.message and "plot_grad_flow" in o.detail for o in outcomes), why
    assert not any(scored.get(i) for i in ITEMS), why


@pytest.mark.parametrize("v", MISTAKES, ids=lambda v: v.id)
def test_mistakes_fail_exactly_their_checks(grader: dict, graded: dict[str, Future], v: Variant) -> None:
    """Does each mistake fail the check aimed at it, and no other check?"""
    scored, outcomes = graded[v.id].result()
    why = report(scored, outcomes)
    assert not_sandbox_failure(outcomes), why
    for fragment in v.failing:
        named = [o for o in outcomes if fragment in o.name]
        assert named, f"no check is named like {fragment!r}\n{why}"
        assert not any(o.passed for o in named), f"the check {fragment!r} should not pass\n{why}"
    others = [o for o in outcomes if not o.passed and not any(f in o.name for f in v.failing)]
    assert not others, f"only the checks aimed at these mistakes should fail\n{why}"
    for item in {o.item for o in outcomes if not o.passed}:
        assert scored[item] < full_marks(grader, item), why


@pytest.mark.parametrize("v", ALTERNATIVES, ids=lambda v: v.id)
def test_alternatives_keep_full_marks(grader: dict, graded: dict[str, Future], v: Variant) -> None:
    """Do these correct alternatives keep full marks on items 1.1-1.3?"""
    scored, outcomes = graded[v.id].result()
    why = report(scored, outcomes)
    assert all(o.passed for o in outcomes), why
    assert scored == {i: full_marks(grader, i) for i in ITEMS}, why


def test_variants_differ_from_the_reference() -> None:
    for v in MISTAKES + ALTERNATIVES:
        assert fabricate(v) != REFERENCE, v.id
