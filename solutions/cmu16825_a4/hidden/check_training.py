"""Hidden checks for Q1.2 (train.py: make_trainable and setup_optimizer). Trusted code.

make_trainable must turn the stored, pre-activation tensors into trainable leaves without changing their
values (quaternions only for anisotropic Gaussians: the given check_if_trainable insists); setup_optimizer
must return an optimizer over exactly those tensors with learning rates chosen per parameter group,
no longer the starter's deliberately high 0.05 everywhere.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from grader.checks import CheckFailed, as_array

MOD = "train"
NAMES = ["means", "pre_act_scales", "colours", "pre_act_opacities", "pre_act_quats"]


def _gaussians(student, isotropic: bool):
    return student.call(MOD, "Gaussians", init_type="random", device="cpu", num_points=9, isotropic=isotropic,
                        ret="handle")


def _values(student, g) -> dict[str, np.ndarray]:
    return {n: as_array(student.get(g, n), f"gaussians.{n}") for n in NAMES}


def _trainable(student, isotropic: bool):
    g = _gaussians(student, isotropic)
    before = _values(student, g)
    student.call(MOD, "make_trainable", g, ret="none")
    return g, before


@pytest.mark.item("1.2", weight=3, timeout=30, module=MOD)
@pytest.mark.parametrize("isotropic", [True, False], ids=["isotropic", "anisotropic"])
def test_make_trainable(student, isotropic):
    """make_trainable makes the pre-activation tensors trainable leaves"""
    g, before = _trainable(student, isotropic)
    wanted = NAMES if not isotropic else NAMES[:-1]
    for name in wanted:
        if not student.get(g, f"{name}.requires_grad"):
            raise CheckFailed(f"gaussians.{name} is not trainable after make_trainable",
                              "requires_grad is False", "every parameter the optimizer updates must require grad")
        if not student.get(g, f"{name}.is_leaf"):
            raise CheckFailed(f"gaussians.{name} is not a leaf tensor after make_trainable",
                              "it was computed from another tensor",
                              "the optimizer can update only leaf tensors (or nn.Parameters); detach before requires_grad_")
    if isotropic and student.get(g, "pre_act_quats.requires_grad"):
        raise CheckFailed("isotropic Gaussians' quaternions were made trainable", "",
                          "an isotropic Gaussian looks the same under any rotation: leave pre_act_quats alone")
    after = _values(student, g)
    for name in NAMES:
        if after[name].shape != before[name].shape or not np.allclose(after[name], before[name], atol=1e-6):
            raise CheckFailed(f"make_trainable changed the values of gaussians.{name}", "",
                              "train the stored pre-activation values as they are; render applies the activations")


@pytest.mark.item("1.2", weight=3, timeout=30, module=MOD)
@pytest.mark.parametrize("isotropic", [True, False], ids=["isotropic", "anisotropic"])
def test_optimizer_groups(student, isotropic):
    """setup_optimizer optimises each trainable tensor exactly once"""
    g, before = _trainable(student, isotropic)
    groups = _groups(student, g)
    wanted = NAMES if not isotropic else NAMES[:-1]
    seen: dict[str, int] = {n: 0 for n in NAMES}
    for group in groups:
        for p in group["params"]:
            arr = np.asarray(p, dtype=np.float64)
            for name in NAMES:
                if arr.shape == before[name].shape and np.allclose(arr, before[name], atol=1e-6):
                    seen[name] += 1
    for name in wanted:
        if seen[name] != 1:
            raise CheckFailed(f"gaussians.{name} is in {seen[name]} optimizer groups", "",
                              "give the optimizer every trainable parameter once")


@pytest.mark.item("1.2", weight=3, timeout=30, module=MOD)
def test_learning_rates(student):
    """the learning rates are set per parameter, lower than the starter's"""
    g, before = _trainable(student, True)
    groups = _groups(student, g)
    lrs = {}
    for group in groups:
        lr = group.get("lr")
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise CheckFailed("a learning rate is not a positive number", f"got {lr!r}", "")
        for p in group["params"]:
            arr = np.asarray(p, dtype=np.float64)
            for name in NAMES:
                if arr.shape == before[name].shape and np.allclose(arr, before[name], atol=1e-6):
                    lrs[name] = float(lr)
    if len(set(lrs.values())) < 2:
        raise CheckFailed("every parameter has the same learning rate", f"{len(lrs)} parameters",
                          "the parameters live on different scales (positions, log-scales, colours, logits): "
                          "give them different learning rates")
    if lrs.get("means", 0.0) >= 0.05 or all(abs(v - 0.05) < 1e-12 for k, v in lrs.items() if k != "means"):
        raise CheckFailed("the learning rates are still the starter's", "",
                          "the starter's learning rates are deliberately far too high; the means especially "
                          "move much too fast")


def _groups(student, g) -> list:
    opt = student.call(MOD, "setup_optimizer", g, ret="handle")
    groups = student.get(opt, "param_groups")
    if not isinstance(groups, list) or not all(isinstance(x, dict) and isinstance(x.get("params"), list) for x in groups):
        raise CheckFailed("setup_optimizer should return a torch optimizer", "its param_groups could not be read",
                          "return the torch.optim optimizer built from the parameter groups")
    return groups
