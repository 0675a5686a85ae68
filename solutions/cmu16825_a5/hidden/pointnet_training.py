"""Shared by the A5 checks: the fixture point clouds, how a model's outputs are read as class
probabilities, and a short training run driven from the grader. Trusted code (runs in the grader).

The training loop runs in the sandbox one remote call at a time (forward, loss, zero_grad, backward,
step) with torch's own Adam and NLL loss, reached through the student's `models` module; the batches,
their order and the points sampled from each object are chosen here, and the accuracy is computed
here from the outputs that come back. So only the model is the student's.

After so short a run BatchNorm's running statistics still lag the weights (a correct paper-size PointNet
scores anywhere between 30% and 90% in eval mode from one epoch to the next), so before the test they are
re-estimated: forward passes over training batches in train mode, without gradients, which change no
weight. The test itself runs in eval mode, as eval_cls.py / eval_seg.py do.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array
from grader.protocol import Handle
from grader.spec import FIXTURES

MOD = "models"
DATA = FIXTURES / "data" / "cmu16825_a5" / "public"


@lru_cache(maxsize=8)
def split(task: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(points (M, P, 3) float32, labels) of the public fixture, as the student's code reads them."""
    return (np.load(DATA / task / f"data_{which}.npy"), np.load(DATA / task / f"label_{which}.npy"))


def probabilities(out: np.ndarray) -> np.ndarray:
    """Class probabilities from a model's scores along the last axis: probabilities stay as they are,
    log-probabilities are exponentiated, anything else is read as logits (softmax)."""
    if out.size and out.min() >= -1e-6 and np.allclose(out.sum(-1), 1.0, atol=1e-3):
        return out
    if out.size and out.max() <= 1e-6 and np.allclose(np.exp(out).sum(-1), 1.0, atol=1e-3):
        return np.exp(out)
    z = out - out.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def build(student: Student, name: str, seed: int, **kwargs) -> Handle:
    model = student.call(MOD, name, seed=seed, ret="handle", **kwargs)
    if not isinstance(model, Handle):
        raise CheckFailed(f"{name}(...) did not build a model", f"got {type(model).__name__}")
    return model


def forward(student: Student, model: Handle, points: np.ndarray, what: str) -> np.ndarray:
    return as_array(student.call(model, "", Tensor(points.astype(np.float32))), what)


def torch_module(student: Student) -> str:
    """The student's module through which the sandbox's torch is reached (models.py imports it)."""
    if "torch" in student.names(MOD):
        return MOD
    raise NeedsReview("models.py does not import torch under the name `torch`, which the grader's training "
                      "run uses to make the optimiser", "a TA trains the model or reads the code")


def train(student: Student, name: str, task: str, classes: int, epochs: int, batch: int, points: int,
          lr: float = 1e-3, seed: int = 0) -> Handle:
    """A freshly built model after a short training on the fixture's training split (train mode)."""
    tmod = torch_module(student)
    x, y = split(task, "train")
    rng = np.random.default_rng(seed)
    model = build(student, name, seed)
    student.call(model, "train", ret="none")
    params = student.call(model, "parameters", ret="handle")
    opt = student.call(tmod, "torch.optim.Adam", params, lr=lr, ret="handle")
    probs_out = None
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start:start + batch]
            pick = rng.choice(x.shape[1], points, replace=False)
            xb = x[idx][:, pick]
            yb = y[idx] if task == "cls" else y[idx][:, pick].reshape(-1)
            out = student.call(model, "", Tensor(xb), ret="handle")
            if probs_out is None:  # the output's kind decides the loss: NLL of log-probabilities either way
                first = as_array(student.call(out, "detach"), f"{name}'s output")
                want = (batch, classes) if task == "cls" else (batch, points, classes)
                if first.shape != want:
                    raise CheckFailed(f"{name}'s output in training has the wrong shape", f"expected {want}, got {first.shape}")
                probs_out = bool(first.min() >= -1e-6 and np.allclose(first.sum(-1), 1.0, atol=1e-3))
            if task == "seg":
                out = student.call(out, "reshape", -1, classes, ret="handle")
            if probs_out:
                logp = student.call(student.call(out, "clamp_min", 1e-12, ret="handle"), "log", ret="handle")
            else:  # logits, or log-probabilities (log_softmax leaves those as they are)
                logp = student.call(out, "log_softmax", -1, ret="handle")
            loss = student.call(tmod, "torch.nn.functional.nll_loss", logp, Tensor(yb.astype(np.int64)), ret="handle")
            student.call(opt, "zero_grad", ret="none")
            student.call(loss, "backward", ret="none")
            student.call(opt, "step", ret="none")
    with no_grad(student, tmod):  # BatchNorm's running statistics caught up with the trained weights
        for _ in range(RECALIBRATION_PASSES):
            idx = rng.choice(len(x), batch, replace=False)
            student.call(model, "", Tensor(x[idx][:, rng.choice(x.shape[1], points, replace=False)]), ret="none")
    return model


RECALIBRATION_PASSES = 20


class no_grad:
    """torch.set_grad_enabled(False) in the sandbox for a block (no graphs kept for outputs never trained on)."""

    def __init__(self, student: Student, tmod: str) -> None:
        self.student, self.tmod = student, tmod

    def __enter__(self) -> None:
        self.student.call(self.tmod, "torch.set_grad_enabled", False, ret="none")

    def __exit__(self, *exc) -> None:
        self.student.call(self.tmod, "torch.set_grad_enabled", True, ret="none")


def evaluate(student: Student, model: Handle, task: str, points: int, seed: int = 1,
             chunk: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) on the fixture's test split, in eval mode, `points` points sampled per object."""
    x, y = split(task, "test")
    rng = np.random.default_rng(seed)
    pick = rng.choice(x.shape[1], points, replace=False)
    student.call(model, "eval", ret="none")
    with no_grad(student, torch_module(student)):
        outs = [forward(student, model, x[s:s + chunk][:, pick], "the trained model's output")
                for s in range(0, len(x), chunk)]
    return np.concatenate(outs), (y if task == "cls" else y[:, pick])
