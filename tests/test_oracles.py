"""Is the shared volume-rendering oracle (grader/oracles/volume.py) right? Closed forms for the three
last-delta conventions, exclusive transmittance, the weight sum, an opaque sample, a start
transmittance, and agreement with a loop written independently, sample by sample."""
from __future__ import annotations

import math

import numpy as np
import pytest

from grader.oracles import volume

T = np.array([0.0, 1.0, 3.0])
SIGMA = np.array([0.5, 0.25, 2.0])


def _loop(sigma: np.ndarray, t: np.ndarray, rgb: np.ndarray, last_delta: float | None) -> tuple[np.ndarray, ...]:
    """One ray at a time, one sample at a time, with math.exp: T_{i+1} = T_i (1 - alpha_i)."""
    rays = sigma.reshape(-1, sigma.shape[-1])
    ts = np.broadcast_to(t, sigma.shape).reshape(rays.shape)
    cols = rgb.reshape(rays.shape + (rgb.shape[-1],))
    n = rays.shape[1] - (1 if last_delta is None else 0)
    alpha, trans, w = (np.zeros((len(rays), n)) for _ in range(3))
    colour, depth = np.zeros((len(rays), rgb.shape[-1])), np.zeros(len(rays))
    for r in range(len(rays)):
        light = 1.0
        for i in range(n):
            delta = ts[r, i + 1] - ts[r, i] if i + 1 < rays.shape[1] else last_delta
            alpha[r, i] = 1.0 - math.exp(-rays[r, i] * delta)
            trans[r, i] = light
            w[r, i] = light * alpha[r, i]
            colour[r] += w[r, i] * cols[r, i]
            depth[r] += w[r, i] * ts[r, i]
            light *= 1.0 - alpha[r, i]
    lead = sigma.shape[:-1]
    return (alpha.reshape(lead + (n,)), trans.reshape(lead + (n,)), w.reshape(lead + (n,)),
            colour.reshape(lead + (rgb.shape[-1],)), depth.reshape(lead))


def test_closed_form_with_a_zero_last_delta():
    """COMP4423's convention: the last sample absorbs nothing, T and the weights follow exp(-sum sigma delta)."""
    out = volume.render(SIGMA, T, np.eye(3), last_delta=0.0)
    np.testing.assert_allclose(out.alpha, [1 - math.exp(-0.5), 1 - math.exp(-0.5), 0.0], atol=1e-15)
    np.testing.assert_allclose(out.transmittance, [1.0, math.exp(-0.5), math.exp(-1.0)], atol=1e-15)
    np.testing.assert_allclose(out.weights, [1 - math.exp(-0.5), math.exp(-0.5) - math.exp(-1.0), 0.0], atol=1e-15)
    np.testing.assert_allclose(out.feature, out.weights, atol=1e-15)  # one-hot colours pick out the weights
    assert out.depth == pytest.approx(math.exp(-0.5) - math.exp(-1.0), abs=1e-15)
    assert out.accumulated == pytest.approx(1 - math.exp(-1.0), abs=1e-15)


def test_closed_form_with_nerfs_last_delta():
    """NeRF's 1e10: the last sample takes all the light left, so the weights sum to 1 with a dense last sample."""
    out = volume.render(SIGMA, T, last_delta=volume.NERF_LAST_DELTA)
    np.testing.assert_allclose(out.alpha, [1 - math.exp(-0.5), 1 - math.exp(-0.5), 1.0], atol=1e-15)
    np.testing.assert_allclose(out.weights, [1 - math.exp(-0.5), math.exp(-0.5) - math.exp(-1.0), math.exp(-1.0)], atol=1e-15)
    assert out.accumulated == pytest.approx(1.0, abs=1e-15)
    assert out.depth == pytest.approx(math.exp(-0.5) - math.exp(-1.0) + 3 * math.exp(-1.0), abs=1e-14)


def test_closed_form_with_intervals_only():
    """last_delta=None: N-1 intervals, every output one entry shorter, the last sample's depth unused."""
    out = volume.render(SIGMA, T, np.ones((3, 2)), last_delta=None)
    assert out.alpha.shape == out.transmittance.shape == out.weights.shape == (2,)
    np.testing.assert_allclose(out.transmittance, [1.0, math.exp(-0.5)], atol=1e-15)
    np.testing.assert_allclose(out.feature, [1 - math.exp(-1.0)] * 2, atol=1e-15)
    assert out.depth == pytest.approx(math.exp(-0.5) - math.exp(-1.0), abs=1e-15)
    np.testing.assert_allclose(volume.deltas(T, None), [1.0, 2.0])


@pytest.mark.parametrize("last_delta", [0.0, volume.NERF_LAST_DELTA, None], ids=["zero", "nerf", "intervals"])
def test_transmittance_is_exclusive_and_weights_sum_to_one_minus_the_light_left(last_delta):
    """T_0 = 1 whatever the first density; sum of weights = 1 - T_N with T_N = exp(-total optical depth)."""
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0, 4, size=(5, 9))
    sigma[:, 0] = [0.0, 1.0, 50.0, 1e3, np.inf]
    t = np.sort(rng.uniform(2, 6, size=(5, 9)), axis=-1)
    out = volume.render(sigma, t, last_delta=last_delta)
    np.testing.assert_array_equal(out.transmittance[:, 0], 1.0)
    delta = volume.deltas(t, last_delta)
    left = np.exp(-volume.optical_depth(sigma[:, :delta.shape[-1]], delta).sum(-1))
    np.testing.assert_allclose(out.accumulated, 1.0 - left, atol=1e-12)
    assert np.all(out.weights >= 0) and np.all(np.diff(out.transmittance, axis=-1) <= 0)


@pytest.mark.parametrize("k", [0, 3, 7])
def test_one_opaque_sample_takes_all_the_weight(k):
    """Empty space but one opaque sample: one-hot weights, its colour and its depth."""
    t = np.linspace(2.0, 6.0, 8)
    sigma = np.zeros(8)
    sigma[k] = np.inf
    rgb = np.random.default_rng(k).uniform(size=(8, 3))
    out = volume.render(sigma, t, rgb, last_delta=volume.NERF_LAST_DELTA)
    np.testing.assert_array_equal(out.weights, np.eye(8)[k])
    np.testing.assert_allclose(out.feature, rgb[k], atol=1e-15)
    assert out.depth == pytest.approx(t[k])
    assert np.all(out.transmittance[k + 1:] == 0) and np.all(out.transmittance[:k + 1] == 1)


def test_an_infinite_density_over_an_empty_interval_absorbs_nothing():
    """With the last delta 0, an infinite last density is no NaN: alpha 0, weight 0."""
    out = volume.render(np.array([0.0, 1.0, np.inf]), T, last_delta=0.0)
    assert np.isfinite(out.weights).all() and out.alpha[-1] == 0.0 and out.weights[-1] == 0.0


def test_start_transmittance_scales_every_sample():
    """A ray entering with light s (scalar or one per ray): T and the weights scale by s."""
    rng = np.random.default_rng(4)
    sigma, delta = rng.uniform(0, 3, size=(4, 6)), rng.uniform(0.1, 0.5, size=(4, 6))
    base = volume.transmittance(sigma, delta)
    np.testing.assert_allclose(volume.transmittance(sigma, delta, start=0.25), 0.25 * base, rtol=1e-15)
    start = np.array([1.0, 0.5, 0.1, 0.0])
    np.testing.assert_allclose(volume.transmittance(sigma, delta, start=start), start[:, None] * base, rtol=1e-15)
    alpha = volume.alphas(sigma, delta)
    np.testing.assert_allclose(volume.transmittance_from_alphas(alpha, start=start), start[:, None] * base, rtol=1e-12)


@pytest.mark.parametrize("last_delta", [0.0, volume.NERF_LAST_DELTA, None], ids=["zero", "nerf", "intervals"])
@pytest.mark.parametrize("shared_depths", [True, False], ids=["shared-t", "per-ray-t"])
@pytest.mark.parametrize("densest", [0.7, 50.0])
def test_agrees_with_a_loop_over_rays_and_samples(last_delta, shared_depths, densest):
    """Batches of rays (depths shared or per ray), thin and dense media: every output within 1e-12 of the loop."""
    rng = np.random.default_rng(5)
    sigma = rng.uniform(0, densest, size=(3, 4, 12)) * (rng.uniform(size=(3, 4, 12)) < 0.6)
    t = np.linspace(2.0, 6.0, 12) if shared_depths else np.sort(rng.uniform(2, 6, size=(3, 4, 12)), axis=-1)
    rgb = rng.uniform(size=(3, 4, 12, 3))
    out = volume.render(sigma, t, rgb, last_delta=last_delta)
    alpha, trans, w, colour, depth = _loop(sigma, t, rgb, last_delta)
    for got, want in ((out.alpha, alpha), (out.transmittance, trans), (out.weights, w), (out.feature, colour),
                      (out.depth, depth), (out.accumulated, w.sum(-1))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
