"""Hidden checks for Q1 (cls_model, item 1.1) and Q2 (seg_model, item 2.1). Trusted code.

What a PointNet must do, checked on the student's own (randomly initialised or briefly trained) model:
map (B, N, 3) to (B, classes) or (B, N, classes) for any batch size and number of points; in eval mode
give the same class scores whatever the order of the points (segmentation: scores that follow the points),
and each object's scores whatever else is in the batch; honour the constructor's class count; and learn
the fixture's procedural chairs / vases / lamps (or chair parts) in a short training run driven here.
Scores may be logits, log-probabilities or probabilities; they are read as class probabilities for the
confidence test (grader-side, `pointnet_training.probabilities`).
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, Student, expect_shape, helper_module

pt = helper_module(__file__, "pointnet_training")

MOD = "models"
SIZES = [(1, 100), (4, 100), (1, 1000), (4, 1000), (1, 5000), (4, 5000)]
SIZE_IDS = [f"B={b},N={n}" for b, n in SIZES]


def cloud(b: int, n: int, seed: int) -> np.ndarray:
    """b point clouds of n points drawn from the fixture's objects (with replacement and a little jitter)."""
    rng = np.random.default_rng(seed)
    x, _ = pt.split("cls", "test")
    objs = x[rng.choice(len(x), b, replace=False)]
    pts = np.stack([o[rng.choice(len(o), n, replace=n > len(o))] for o in objs])
    return (pts + rng.normal(scale=0.01, size=pts.shape)).astype(np.float32)


def eval_model(student: Student, name: str, seed: int = 3, **kwargs):
    model = pt.build(student, name, seed, **kwargs)
    student.call(model, "eval", ret="none")
    return model


def out_shape(name: str, b: int, n: int, classes: int) -> tuple[int, ...]:
    return (b, classes) if name == "cls_model" else (b, n, classes)


SHAPE_HINT = {
    "cls_model": "one row of class scores per object: pool over the points, so the number of points may vary",
    "seg_model": "one row of class scores per point, points on the second axis: (B, N, classes)",
}


def _shapes(student: Student, name: str, b: int, n: int, classes: int) -> None:
    model = eval_model(student, name)
    got = pt.forward(student, model, cloud(b, n, seed=n + b), f"{name}'s output for B={b}, N={n}")
    expect_shape(got, out_shape(name, b, n, classes), f"{name}'s output for B={b}, N={n}", SHAPE_HINT[name])


def _train_mode(student: Student, name: str, classes: int) -> None:
    model = pt.build(student, name, 4)
    student.call(model, "train", ret="none")
    got = pt.forward(student, model, cloud(4, 300, seed=9), f"{name}'s output in training mode")
    expect_shape(got, out_shape(name, 4, 300, classes), f"{name}'s output in training mode", SHAPE_HINT[name])


def _class_count(student: Student, name: str, kwarg: str) -> None:
    model = eval_model(student, name, **{kwarg: 5})
    got = pt.forward(student, model, cloud(2, 200, seed=5), f"{name}({kwarg}=5)'s output")
    expect_shape(got, out_shape(name, 2, 200, 5), f"{name}({kwarg}=5)'s output",
                 f"use the {kwarg} argument for the size of the last layer, not a fixed number")


def _batch_independence(student: Student, name: str) -> None:
    model = eval_model(student, name)
    x = cloud(4, 400, seed=21)
    together = pt.forward(student, model, x, f"{name}'s output for a batch")
    for i in range(4):
        alone = pt.forward(student, model, x[i:i + 1], f"{name}'s output for one object")
        expect_shape(alone, together[i:i + 1].shape, f"{name}'s output for one object")
        scale = max(1.0, float(np.abs(together).max()))
        diff = float(np.abs(alone[0] - together[i]).max())
        if diff > 1e-4 * scale:
            raise CheckFailed(f"in eval mode, {name}'s output for an object depends on the other objects in its batch",
                              f"object {i}: max abs difference {diff:.3g} between alone and in a batch of 4",
                              "pool over the points of each object (the point axis), never over the batch axis")


# -- item 1.1: classification -----------------------------------------------------------------------
@pytest.mark.item("1.1", weight=0.5, timeout=60, module=MOD)
@pytest.mark.parametrize("b,n", SIZES, ids=SIZE_IDS)
def test_cls_output_shape(student: Student, b: int, n: int) -> None:
    """cls_model maps (B, N, 3) to (B, num_classes) for any B and N"""
    _shapes(student, "cls_model", b, n, 3)


@pytest.mark.item("1.1", weight=0.5, timeout=60, module=MOD)
def test_cls_train_mode(student: Student) -> None:
    """cls_model runs in training mode on a batch"""
    _train_mode(student, "cls_model", 3)


@pytest.mark.item("1.1", weight=0.5, timeout=60, module=MOD)
def test_cls_num_classes(student: Student) -> None:
    """cls_model(num_classes=k) gives k scores per object"""
    _class_count(student, "cls_model", "num_classes")


@pytest.mark.item("1.1", weight=2, timeout=60, module=MOD)
def test_cls_permutation_invariance(student: Student) -> None:
    """in eval mode, shuffling the points leaves cls_model's output unchanged"""
    model = eval_model(student, "cls_model")
    x = cloud(4, 1000, seed=11)
    base = pt.forward(student, model, x, "cls_model's output")
    expect_shape(base, (4, 3), "cls_model's output", SHAPE_HINT["cls_model"])
    rng = np.random.default_rng(12)
    for k in range(2):
        perm = rng.permutation(x.shape[1])
        got = pt.forward(student, model, x[:, perm], "cls_model's output on shuffled points")
        diff = float(np.abs(got - base).max())
        if diff > 1e-5 * max(1.0, float(np.abs(base).max())):
            raise CheckFailed("cls_model's output changes when the points are shuffled",
                              f"max abs difference {diff:.3g} (tolerance 1e-5)",
                              "apply the same MLP to every point and combine the points with a symmetric function "
                              "(max or mean over the point axis), not a layer over all N*3 coordinates")


@pytest.mark.item("1.1", weight=1, timeout=60, module=MOD)
def test_cls_batch_independence(student: Student) -> None:
    """in eval mode, an object's class scores do not depend on the rest of its batch"""
    _batch_independence(student, "cls_model")


@pytest.mark.item("1.1", weight=3, timeout=120, module=MOD)
def test_cls_learns(student: Student) -> None:
    """after a short training, cls_model classifies the held-out chairs, vases and lamps"""
    model = pt.train(student, "cls_model", "cls", classes=3, epochs=5, batch=15, points=200)
    out, y = pt.evaluate(student, model, "cls", points=200)
    expect_shape(out, (len(y), 3), "the trained cls_model's output")
    acc = float((out.argmax(-1) == y).mean())
    if acc <= 0.9:
        raise CheckFailed("cls_model does not learn the three classes in the short training run",
                          f"held-out accuracy {acc:.1%} after 5 epochs of Adam (more than 90% expected)",
                          "check that every point gets the same MLP, the pooling is over the points, and the "
                          "output is one score per class (no activation after the last layer but an optional "
                          "(log-)softmax)")
    conf = float(pt.probabilities(out)[np.arange(len(y)), y].mean())
    if conf < 0.65:
        raise CheckFailed("cls_model's outputs stay unsure of the right class after training",
                          f"mean probability of the right class {conf:.2f} on the held-out objects",
                          "return logits, log-probabilities or probabilities, with one softmax at most")


# -- item 2.1: segmentation -------------------------------------------------------------------------
@pytest.mark.item("2.1", weight=0.5, timeout=60, module=MOD)
@pytest.mark.parametrize("b,n", SIZES, ids=SIZE_IDS)
def test_seg_output_shape(student: Student, b: int, n: int) -> None:
    """seg_model maps (B, N, 3) to (B, N, num_seg_classes) for any B and N"""
    _shapes(student, "seg_model", b, n, 6)


@pytest.mark.item("2.1", weight=0.5, timeout=60, module=MOD)
def test_seg_train_mode(student: Student) -> None:
    """seg_model runs in training mode on a batch"""
    _train_mode(student, "seg_model", 6)


@pytest.mark.item("2.1", weight=0.5, timeout=60, module=MOD)
def test_seg_num_classes(student: Student) -> None:
    """seg_model(num_seg_classes=k) gives k scores per point"""
    _class_count(student, "seg_model", "num_seg_classes")


@pytest.mark.item("2.1", weight=2, timeout=60, module=MOD)
def test_seg_permutation_equivariance(student: Student) -> None:
    """in eval mode, shuffling the points shuffles seg_model's per-point output the same way"""
    model = eval_model(student, "seg_model")
    x = cloud(4, 1000, seed=13)
    base = pt.forward(student, model, x, "seg_model's output")
    expect_shape(base, (4, 1000, 6), "seg_model's output", SHAPE_HINT["seg_model"])
    rng = np.random.default_rng(14)
    for k in range(2):
        perm = rng.permutation(x.shape[1])
        got = pt.forward(student, model, x[:, perm], "seg_model's output on shuffled points")
        diff = float(np.abs(got - base[:, perm]).max())
        if diff > 1e-5 * max(1.0, float(np.abs(base).max())):
            raise CheckFailed("seg_model's per-point output does not follow the points when they are shuffled",
                              f"max abs difference {diff:.3g} (tolerance 1e-5)",
                              "per-point layers shared by all points, and a global feature pooled symmetrically "
                              "over the point axis")


@pytest.mark.item("2.1", weight=1, timeout=60, module=MOD)
def test_seg_batch_independence(student: Student) -> None:
    """in eval mode, an object's per-point scores do not depend on the rest of its batch"""
    _batch_independence(student, "seg_model")


@pytest.mark.item("2.1", weight=3, timeout=120, module=MOD)
def test_seg_learns(student: Student) -> None:
    """after a short training, seg_model labels the parts of held-out chairs"""
    model = pt.train(student, "seg_model", "seg", classes=6, epochs=10, batch=10, points=200)
    out, y = pt.evaluate(student, model, "seg", points=200)
    expect_shape(out, y.shape + (6,), "the trained seg_model's output", SHAPE_HINT["seg_model"])
    acc = float((out.argmax(-1) == y).mean())
    if acc <= 0.6:
        raise CheckFailed("seg_model does not learn the chair parts in the short training run",
                          f"held-out per-point accuracy {acc:.1%} after 10 epochs of Adam (more than 60% expected; about 85% is usual)",
                          "give each point its own features and the object's pooled global feature, and return "
                          "(B, N, classes)")
    conf = float(np.take_along_axis(pt.probabilities(out), y[..., None], -1).mean())
    if conf < 0.4:
        raise CheckFailed("seg_model's outputs stay unsure of the right part after training",
                          f"mean probability of the right part {conf:.2f} on the held-out points",
                          "return logits, log-probabilities or probabilities, with one softmax at most")
