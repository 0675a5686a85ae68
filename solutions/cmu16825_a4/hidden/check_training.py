"""Hidden checks for Q1.2 (train.py: make_trainable and setup_optimizer). Trusted code.

make_trainable must turn the stored, pre-activation tensors into trainable leaves without changing their
values (quaternions only for anisotropic Gaussians: the given check_if_trainable insists); setup_optimizer
must return an optimizer over exactly those tensors with learning rates chosen per parameter group,
no longer the starter's deliberately high 0.05 everywhere. Then the student's own run_training runs for
a few iterations on the fixture's toy scene (a few Gaussians, 32x32 views); its final renders, read back
from the GIF it writes, must be clearly closer to the training images than a black image is.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, as_array
from grader.sandbox import StudentError
from grader.spec import ROOT

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


@pytest.mark.item("1.2", weight=2, timeout=30, module=MOD)
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


@pytest.mark.item("1.2", weight=2, timeout=30, module=MOD)
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


TOY = ROOT / "fixtures" / "data" / "cmu16825_a4" / "public" / "toy"
FIT_ITERATIONS = 80
FIT_PSNR = 17.5  # dB over the 8 training views; a black image scores 16.9, the initial render about 11


@pytest.mark.item("1.2", weight=3, timeout=90, module=MOD)
def test_training_fits_toy_scene(student):
    """run_training fits a toy scene of a few Gaussians"""
    gt = np.load(TOY / "train.npz")["images"].astype(np.float64)
    out = "/tmp/a4_training"
    args = student.call(MOD, "argparse.Namespace", out_path=out, data_path=f"{student.data_dir}/toy",
                        gaussians_per_splat=-1, num_itrs=FIT_ITERATIONS, viz_freq=10 * FIT_ITERATIONS, device="cpu",
                        ret="handle")
    try:
        student.call(MOD, "run_training", args, seed=0, ret="none", timeout=90)
    except StudentError as exc:
        if "is not available in the grader" in exc.message:  # a pytorch3d name lite3d lacks: not the student's fault
            raise NeedsReview("run_training needs a pytorch3d function the grader does not have", exc.message) from None
        raise
    if "imageio" not in student.names(MOD):
        raise NeedsReview("train.py does not import imageio, so its final renders cannot be read back",
                          "run_training ran without error")
    frames = student.call(MOD, "imageio.mimread", f"{out}/q1_training_final_renders.gif")
    if not isinstance(frames, list) or len(frames) != len(gt):
        got = len(frames) if isinstance(frames, list) else 0
        raise CheckFailed("the final renders GIF does not hold one frame per training view",
                          f"{got} frame(s) for {len(gt)} views (a GIF merges identical consecutive frames)",
                          "after training, the renders of different views should differ: check the rendering")
    pred = np.stack([as_array(f, "a final render")[..., :3] for f in frames]) / 255.0
    if pred.shape != gt.shape:
        raise CheckFailed("the final renders have the wrong size", f"expected {gt.shape[1:]}, got {pred.shape[1:]}",
                          "render at the dataset's img_size")
    psnr = -10 * np.log10(max(float(np.mean((pred - gt) ** 2)), 1e-10))
    if psnr < FIT_PSNR:
        raise CheckFailed("training does not fit the toy scene", f"PSNR {psnr:.1f} dB after {FIT_ITERATIONS} "
                          f"iterations, below {FIT_PSNR} dB (a black image scores about 16.9 dB)",
                          "render the training view with Scene.render and minimise a per-pixel loss (L1) against "
                          "the ground-truth image")
