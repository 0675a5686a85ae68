"""Hidden tests for DLCV HW4 Problem 2, BYOL (byol_pytorch.py, the byol-pytorch package's names): the loss
(2.1), the EMA target update (2.2), the stop-gradient and the symmetrised loss of BYOL.forward (2.3). Trusted code.

Small networks are built inside the sandbox from the student's own `torch` / `nn` names (a backbone of
Flatten -> Linear -> ReLU -> Linear, the hidden layer being the ReLU); their weights are set from here, so the
expected values come from the grader's float64 algebra, never from the student's functions.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array, expect_close, helper_module
from grader.protocol import Handle
from grader.sandbox import StudentError

oracle = helper_module(__file__, "dlcv_oracle")
MOD = "byol_pytorch"
SEED = 4


def _vectors(seed: int, shape=(6, 16)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def _per_sample(student: Student, x: np.ndarray, y: np.ndarray, what: str) -> np.ndarray:
    """loss_fn(x, y) as per-sample values; a scalar is taken as the batch mean (the forward averages anyway)."""
    got = as_array(student.call(MOD, "loss_fn", Tensor(x), Tensor(y)), what)
    if got.size == 1 and x.shape[0] > 1:
        return np.full(x.shape[0], float(got.reshape(())))
    return got.reshape(-1)


def _expect_loss(got: np.ndarray, expected: np.ndarray, what: str, hint: str, atol: float = 1e-5) -> None:
    if got.size == expected.size:
        expect_close(got, expected, what, atol=atol, hint=hint)
    else:
        raise CheckFailed(f"{what} has {got.size} values", f"expected one per sample ({expected.size}) or one mean", hint)


# -- 2.1 loss ----------------------------------------------------------------------------------------------------
@pytest.mark.item("2.1", weight=2, timeout=20, module=MOD)
def test_loss_values(student):
    """loss_fn is 2 - 2 cos per sample"""
    x, y = _vectors(1)
    got = _per_sample(student, x, y, "loss_fn(x, y)")
    expected = oracle.byol_loss(x, y)
    if got.size == x.shape[0] and np.allclose(got, got[0]) and not np.allclose(expected, expected[0]):
        expected = np.full_like(expected, expected.mean())  # a mean over the batch: compare the mean
    _expect_loss(got, expected, "loss_fn(x, y)", "normalise both vectors (L2, along the feature axis), then 2 - 2 x.y")


@pytest.mark.item("2.1", weight=2, timeout=20, module=MOD)
def test_loss_identical_and_opposite(student):
    """the loss is 0 for vectors with the same direction and 4 for opposite ones"""
    x, _ = _vectors(2)
    same = _per_sample(student, x, 2.5 * x, "loss_fn(x, 2.5 x)")
    _expect_loss(same, np.zeros(x.shape[0]), "loss_fn(x, 2.5 x)", "only the directions of the vectors count")
    opposite = _per_sample(student, x, -0.5 * x, "loss_fn(x, -0.5 x)")
    _expect_loss(opposite, np.full(x.shape[0], 4.0), "loss_fn(x, -0.5 x)", "cos = -1 for opposite vectors")


@pytest.mark.item("2.1", weight=1, timeout=20, module=MOD)
def test_loss_scale_invariant(student):
    """the loss does not change when the vectors are scaled"""
    x, y = _vectors(3)
    a = _per_sample(student, x, y, "loss_fn(x, y)")
    b = _per_sample(student, 7.0 * x, 0.05 * y, "loss_fn(7 x, 0.05 y)")
    expect_close(b, a, "loss_fn(7 x, 0.05 y) against loss_fn(x, y)", atol=1e-5,
                 hint="BYOL compares L2-normalised vectors (not a plain mean squared error)")


# -- 2.2 EMA -----------------------------------------------------------------------------------------------------
@pytest.mark.item("2.2", weight=2, timeout=20, module=MOD)
@pytest.mark.parametrize("beta", [0.99, 0.9], ids=["0.99", "0.9"])
def test_update_average(student, beta):
    """EMA(beta).update_average(old, new) = beta old + (1 - beta) new"""
    old, new = _vectors(5, (4, 5))
    ema = student.call(MOD, "EMA", beta, ret="handle")
    got = student.call(ema, "update_average", Tensor(old), Tensor(new))
    expected = beta * old.astype(np.float64) + (1 - beta) * new.astype(np.float64)
    expect_close(got, expected, "update_average(old, new)", atol=1e-6,
                 hint="the target (old) keeps the weight beta; the online value (new) gets 1 - beta")


@pytest.mark.item("2.2", weight=1, timeout=20, module=MOD)
def test_update_average_first_call(student):
    """update_average with no previous average returns the new value"""
    _, new = _vectors(6, (3, 4))
    ema = student.call(MOD, "EMA", 0.99, ret="handle")
    expect_close(student.call(ema, "update_average", None, Tensor(new)), new, "update_average(None, new)", atol=0)


def _nn(student: Student) -> str:
    """The prefix under which the student's module reaches torch.nn (it imports torch to build BYOL)."""
    names = student.names(MOD)
    if "nn" in names:
        return "nn"
    if "torch" in names:
        return "torch.nn"
    raise NeedsReview("the module does not import torch or torch.nn under the usual names, so the grader cannot "
                      "build test networks inside it", f"top-level names: {sorted(names)[:40]}")


def _linear(student: Student, w: np.ndarray, b: np.ndarray) -> Handle:
    layer = student.call(MOD, f"{_nn(student)}.Linear", w.shape[1], w.shape[0], ret="handle")
    student.call(layer, "weight.data.copy_", Tensor(w), ret="none")
    student.call(layer, "bias.data.copy_", Tensor(b), ret="none")
    return layer


@pytest.mark.item("2.2", weight=3, timeout=30, module=MOD)
def test_update_moving_average(student):
    """update_moving_average moves the target's parameters towards the online ones and leaves the online ones alone"""
    rng = np.random.default_rng(7)
    w_online, b_online, w_target, b_target = (rng.standard_normal(s).astype(np.float32) for s in [(3, 5), 3, (3, 5), 3])
    online, target = _linear(student, w_online, b_online), _linear(student, w_target, b_target)
    ema = student.call(MOD, "EMA", 0.9, ret="handle")
    student.call(MOD, "update_moving_average", ema, target, online, ret="none")
    for name, t0, o0 in (("weight", w_target, w_online), ("bias", b_target, b_online)):
        expect_close(student.get(target, name), 0.9 * t0.astype(np.float64) + 0.1 * o0, f"the target's {name}",
                     atol=1e-6, hint="xi <- beta xi + (1 - beta) theta: the target (ma_model) follows the online model")
        expect_close(student.get(online, name), o0, f"the online model's {name}", atol=0,
                     hint="only the target (ma_model) is updated; the online network is trained by gradients")


# -- 2.3 stop-gradient, symmetrised loss -----------------------------------------------------------------------
def _learner(student: Student) -> Handle:
    """BYOL around a tiny backbone on 8x8 images; view 1 = the images, view 2 = sigmoid(images)."""
    nn = _nn(student)
    rng = np.random.default_rng(8)
    flat = student.call(MOD, f"{nn}.Flatten", ret="handle")
    hidden = _linear(student, (0.2 * rng.standard_normal((24, 192))).astype(np.float32), np.zeros(24, np.float32))
    relu = student.call(MOD, f"{nn}.ReLU", ret="handle")
    head = _linear(student, (0.2 * rng.standard_normal((5, 24))).astype(np.float32), np.zeros(5, np.float32))
    net = student.call(MOD, f"{nn}.Sequential", flat, hidden, relu, head, ret="handle")
    one = student.call(MOD, f"{nn}.Identity", ret="handle")
    two = student.call(MOD, f"{nn}.Sigmoid", ret="handle")
    try:
        return student.call(MOD, "BYOL", net, 8, hidden_layer=-2, projection_size=12, projection_hidden_size=20,
                            augment_fn=one, augment_fn2=two, moving_average_decay=0.99, seed=SEED, ret="handle")
    except StudentError as exc:
        if exc.error == "TypeError":  # another constructor than byol-pytorch's
            raise NeedsReview("BYOL(...) does not take byol-pytorch's arguments", f"{exc.error}: {exc.message}") from None
        raise


def _images(seed: int = 9) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, (4, 3, 8, 8)).astype(np.float32)


def _parameters(student: Student, model: Handle, limit: int = 200):
    gen = student.call(model, "parameters", ret="handle")
    for _ in range(limit):
        try:
            yield student.call(gen, "send", None, ret="handle")
        except StudentError as exc:
            if exc.error == "StopIteration":
                return
            raise


def _target(student: Student, learner: Handle) -> Handle:
    target = student.get(learner, "target_encoder", ret="handle")
    if target.type_name == "NoneType":
        raise CheckFailed("BYOL has no target network after a forward pass",
                          hint="build the target (a copy of the online encoder) on first use")
    return target


@pytest.mark.item("2.3", weight=3, timeout=60, module=MOD)
def test_target_gets_no_gradient(student):
    """after loss.backward() the target network's parameters have no gradient"""
    learner = _learner(student)
    loss = student.call(learner, "", Tensor(_images()), ret="handle")
    student.call(loss, "backward", ret="none")
    count = 0
    for p in _parameters(student, _target(student, learner)):
        count += 1
        grad = student.get(p, "grad")
        if grad is not None and np.abs(as_array(grad, "a target gradient")).max() > 0:
            raise CheckFailed("a gradient reached the target network", f"parameter {count} has a non-zero .grad",
                              "the target branch is a constant for the loss: stop its gradient")
    if count == 0:
        raise CheckFailed("the target network has no parameters")


@pytest.mark.item("2.3", weight=1, timeout=60, module=MOD)
def test_online_gets_gradient(student):
    """after loss.backward() the online encoder and the predictor have gradients"""
    learner = _learner(student)
    loss = student.call(learner, "", Tensor(_images()), ret="handle")
    student.call(loss, "backward", ret="none")
    for part in ("online_encoder", "online_predictor"):
        grads = [student.get(p, "grad") for p in _parameters(student, student.get(learner, part, ret="handle"))]
        if not any(g is not None and np.abs(as_array(g, "a gradient")).max() > 0 for g in grads):
            raise CheckFailed(f"no gradient reached the {part}", hint="only the target branch is detached")


@pytest.mark.item("2.3", weight=4, timeout=60, module=MOD)
def test_symmetrised_loss(student):
    """the loss pairs each view's online prediction with the OTHER view's target projection, both ways"""
    learner = _learner(student)
    student.call(learner, "eval", ret="none")  # batch norm from running statistics: per-sample, deterministic
    x = _images(10)
    got = as_array(student.call(learner, "", Tensor(x)), "BYOL(x)").reshape(-1)
    target = _target(student, learner)
    views = [x, (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)]
    pred, proj = [], []
    for v in views:
        online = student.call(learner, "online_encoder", Tensor(v))
        target_out = student.call(target, "", Tensor(v))
        z = as_array(online[0] if isinstance(online, (tuple, list)) else online, "the online projection")
        pred.append(as_array(student.call(learner, "online_predictor", Tensor(z.astype(np.float32))), "the prediction"))
        proj.append(as_array(target_out[0] if isinstance(target_out, (tuple, list)) else target_out, "the target projection"))
    both = oracle.byol_loss(pred[0], proj[1]) + oracle.byol_loss(pred[1], proj[0])
    total, half = float(both.mean()), float(both.mean()) / 2
    if got.size != 1:
        raise CheckFailed("BYOL(x) should return one number (the batch mean)", f"got {got.size} values")
    if np.isclose(got[0], total, atol=1e-4) or np.isclose(got[0], half, atol=1e-4):
        return
    # marked once: a wrong loss_fn already loses 2.1; here only the pairing, the symmetry and the stop-gradient
    own = [_per_sample(student, pred[a].astype(np.float32), proj[b].astype(np.float32), "loss_fn(prediction, projection)")
           for a, b in ((0, 1), (1, 0))]
    own_total = float(np.mean(own[0] + own[1]))
    if not (np.isclose(got[0], own_total, atol=1e-4) or np.isclose(got[0], own_total / 2, atol=1e-4)):
        raise CheckFailed("BYOL(x) is not the symmetrised loss",
                          f"got {got[0]:.6f}; the sum over both pairings is {total:.6f} (their mean {half:.6f})",
                          "loss_fn(online prediction of view 1, target projection of view 2) + the same with the views swapped")
