"""Quick local checks for Task 6 (tiny NeRF). Run from the assignment folder: pytest tests

They run on a few random 8x8 views, so they take seconds. Passing them means the pipeline runs, your
IMPROVED version differs from BASELINE and one training step works; the marking trains both versions
on a real scene and compares their PSNR on views that were never trained on.
"""
import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent


def _tiny_nerf():
    cached = sys.modules.get("tiny_nerf")
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != ASSIGNMENT_DIR:
        del sys.modules["tiny_nerf"]
    try:
        return importlib.import_module("tiny_nerf")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Task 6: cannot import tiny_nerf.py from {ASSIGNMENT_DIR} ({type(exc).__name__}: {exc})")


def _views(n=3, size=8):
    import torch

    rng = np.random.default_rng(0)
    images = torch.tensor(rng.uniform(size=(n, size, size, 3)), dtype=torch.float32)
    poses = torch.eye(4).repeat(n, 1, 1)
    poses[:, 2, 3] = 4.0  # cameras on the +z axis looking at the origin
    return images, poses, 1.3889 * size


def test_task_6_helpers_shapes():
    """Task 6: ray bundle (H, W, 3), query points (H, W, N, 3), encoding 3 + 6L, model output (..., 4)."""
    import torch

    tn = _tiny_nerf()
    o, d = tn.get_ray_bundle(6, 10, 12.0, torch.eye(4))
    assert tuple(o.shape) == (6, 10, 3) and tuple(d.shape) == (6, 10, 3), "Task 6: get_ray_bundle shapes"
    pts, depth = tn.compute_query_points_from_rays(o, d, 2.0, 6.0, 16)
    assert tuple(pts.shape) == (6, 10, 16, 3) and tuple(depth.shape) == (6, 10, 16)
    for cfg_name in ("BASELINE", "IMPROVED"):
        cfg = getattr(tn, cfg_name)
        enc = tn.positional_encoding(pts.reshape(-1, 3), cfg["num_encoding_functions"])
        assert enc.shape[-1] == 3 + 6 * cfg["num_encoding_functions"]
        out = tn.build_model(cfg)(enc)
        assert tuple(out.shape) == (6 * 10 * 16, 4), (
            f"Task 6: the {cfg_name} model should map each encoded point to 4 numbers (input size 3 + 3*2*L)")


def test_task_6_mse2psnr():
    """Task 6: PSNR of images in [0, 1] is -10 log10(MSE)."""
    tn = _tiny_nerf()
    assert math.isclose(tn.mse2psnr(0.01), 20.0, rel_tol=1e-9)
    assert math.isclose(tn.mse2psnr(1e-3), 30.0, rel_tol=1e-9)


def test_task_6_1_improved_differs_from_baseline():
    """Task 6.1: IMPROVED must make ONE change to BASELINE (as given, it is the baseline itself)."""
    tn = _tiny_nerf()
    assert isinstance(tn.BASELINE, dict) and isinstance(tn.IMPROVED, dict)
    assert tn.IMPROVED != tn.BASELINE, "Task 6.1: IMPROVED is still identical to BASELINE: make your one improvement"


@pytest.mark.parametrize("which", ["BASELINE", "IMPROVED"])
def test_task_6_one_training_step(which):
    """Task 6: make_trainer + train_step run, return a finite loss and change the weights; render gives (H, W, 3)."""
    import torch

    tn = _tiny_nerf()
    images, poses, focal = _views()
    trainer = tn.make_trainer(getattr(tn, which), images, poses, focal, 0, "cpu")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss = float(trainer.train_step(1))
    assert math.isfinite(loss), f"Task 6: train_step of {which} returned {loss}"
    after = list(trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before)), f"Task 6: train_step of {which} did not update the model"
    image = np.asarray(trainer.render(poses[0]))
    assert image.shape == (8, 8, 3) and np.all(np.isfinite(image))


def test_task_6_same_seed_same_run():
    """Task 6: two trainers made with the same seed give the same rendering after a step."""
    tn = _tiny_nerf()
    images, poses, focal = _views()
    renders = []
    for _ in range(2):
        trainer = tn.make_trainer(tn.BASELINE, images, poses, focal, 7, "cpu")
        trainer.train_step(0)
        renders.append(np.asarray(trainer.render(poses[2])))
    assert np.allclose(renders[0], renders[1], atol=1e-6), "Task 6: make_trainer should seed torch with its seed"
