"""Q3: the NeRF MLP (implicit.py NeuralRadianceField)."""
import numpy as np
import pytest

from grader.checks import CheckFailed, as_array, helper_module

box = helper_module(__file__, "a3_sandbox")

CFG = dict(n_harmonic_functions_xyz=6, n_harmonic_functions_dir=2, n_hidden_neurons_xyz=64, n_hidden_neurons_dir=32,
           density_noise_std=0.0, n_layers_xyz=4, append_xyz=[2])


def _nerf(student, seed):
    return student.call("implicit", "NeuralRadianceField", box.config(student, via="implicit", **CFG), seed=seed,
                        ret="handle")


def _points(R, n, seed):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1.5, 1.5, (R, n, 3))
    lengths = np.sort(rng.uniform(1, 5, (R, n, 1)), axis=1)
    return pts, lengths


def _run(student, model, R, n, seed):
    pts, lengths = _points(R, n, seed)
    out = student.call(model, "", box.ray_bundle_with_samples(student, pts, lengths), seed=seed)
    if not isinstance(out, dict) or "density" not in out or "feature" not in out:
        raise CheckFailed("NeuralRadianceField(ray_bundle) should return a dict with 'density' and 'feature'",
                          f"got {type(out).__name__}" + (f" with keys {sorted(out)}" if isinstance(out, dict) else ""))
    density = as_array(out["density"], "out['density']")
    feature = as_array(out["feature"], "out['feature']")
    if density.size != R * n or feature.size != R * n * 3 or feature.shape[-1] != 3:
        raise CheckFailed("the NeRF's outputs have the wrong shapes",
                          f"for {R} rays of {n} samples: density {density.shape}, feature {feature.shape}",
                          "one density and one RGB colour per sample point: (R * n, 1) and (R * n, 3)")
    return density.reshape(-1), feature.reshape(-1, 3)


@pytest.mark.item("3", weight=3, timeout=60, module="implicit")
def test_outputs(student):
    """the NeRF returns a density and a colour per sample point"""
    density, feature = _run(student, _nerf(student, 0), 8, 5, 1)
    assert np.ptp(feature) > 0 or np.ptp(density) > 0, "the outputs do not depend on the points"


@pytest.mark.item("3", weight=4, timeout=60, module="implicit")
def test_density_non_negative(student):
    """densities are never negative"""
    for seed in range(3):
        density, _ = _run(student, _nerf(student, seed), 40, 10, seed)
        if density.min() < 0:
            raise CheckFailed("the NeRF gives negative densities", f"the smallest is {density.min():.3g}",
                              "a density is non-negative: put an activation (ReLU, softplus) on the density output")


@pytest.mark.item("3", weight=4, timeout=60, module="implicit")
def test_colour_range(student):
    """colours lie in (0, 1)"""
    for seed in range(3):
        _, feature = _run(student, _nerf(student, seed), 40, 10, seed)
        if feature.min() < 0 or feature.max() > 1:
            raise CheckFailed("the NeRF's colours leave [0, 1]", f"they range over [{feature.min():.3g}, {feature.max():.3g}]",
                              "squash the colour output into (0, 1), e.g. with a sigmoid")


@pytest.mark.item("3", weight=4, timeout=90, module="implicit")
def test_trains(student):
    """a few optimiser steps fit two colours at two places"""
    model = _nerf(student, 0)
    rng = np.random.default_rng(7)
    pts = np.concatenate([rng.uniform(-1, -0.5, (16, 4, 3)), rng.uniform(0.5, 1, (16, 4, 3))])
    lengths = np.sort(rng.uniform(1, 5, (32, 4, 1)), axis=1)
    target = np.repeat(np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.7]]), 64, axis=0).astype(np.float32)
    bundle = box.ray_bundle_with_samples(student, pts, lengths)
    params = student.call(model, "parameters", ret="handle")
    opt = student.call("implicit", "torch.optim.Adam", params, lr=3e-3, ret="handle")
    losses = []
    for step in range(60):
        out = student.call(model, "", bundle, ret="handle")
        feat = student.call(out, "get", "feature", ret="handle")
        diff = student.call(student.call(feat, "reshape", -1, 3, ret="handle"), "sub", box.f32(target), ret="handle")
        loss = student.call(student.call(diff, "square", ret="handle"), "mean", ret="handle")
        if step in (0, 59):
            losses.append(float(as_array(student.call(loss, "item"), "the loss")))
        student.call(opt, "zero_grad", ret="none")
        student.call(loss, "backward", ret="none")
        student.call(opt, "step", ret="none")
    if not losses[1] < 0.3 * losses[0]:
        raise CheckFailed("the NeRF does not learn a simple colour field",
                          f"the colour error went from {losses[0]:.3g} to {losses[1]:.3g} in 60 Adam steps",
                          "the outputs must be differentiable functions of trainable parameters (nn.Linear layers "
                          "registered on the module)")
