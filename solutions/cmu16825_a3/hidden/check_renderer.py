"""Q1.5: volume rendering (renderer.py): weights, aggregation, and colour and depth of an analytic scene."""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from grader.checks import CheckFailed, as_array, expect_close, expect_shape, helper_module
from grader.oracles import volume

box = helper_module(__file__, "a3_sandbox")

EXCLUSIVE = "T_i is the product over the segments BEFORE sample i (exclusive), so T_0 = 1"


def _renderer(student, chunk=4096):
    return student.call("renderer", "VolumeRenderer", box.config(student, via="renderer", chunk_size=chunk,
                                                                 white_background=False), ret="handle")


def _weights(student, sigma, t):
    deltas = volume.deltas(t, volume.NERF_LAST_DELTA)
    got = student.call(_renderer(student), "_compute_weights", box.f32(deltas[..., None]), box.f32(sigma[..., None]))
    return as_array(got, "_compute_weights(deltas, density)"), volume.render(sigma, t).weights


def _scene(R=7, n=9, seed=0):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.0, 3.0, (R, n))
    sigma[1] = 0.0  # an empty ray
    sigma[2, 4] = 40.0  # an opaque sample in the middle of a ray
    t = np.sort(rng.uniform(1.0, 4.0, (R, n)), axis=1)
    return sigma, t


@pytest.mark.item("1.5", weight=4, timeout=30, module="renderer")
def test_weights(student):
    """weights T_i (1 - exp(-sigma_i delta_i)) match the closed form"""
    sigma, t = _scene()
    got, want = _weights(student, sigma, t)
    expect_shape(got, want.shape + (1,), "the weights", "(rays, samples, 1), like the density")
    expect_close(got[..., 0], want, "the weights", atol=1e-5, rtol=1e-4, hint=EXCLUSIVE)


@pytest.mark.item("1.5", weight=2, timeout=60, module="renderer")
def test_weights_properties(student):
    """weights match the closed form on random rays of any length and density (property test)"""
    rend = _renderer(student)
    failures: list[tuple[str, str]] = []

    @settings(max_examples=30, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(sigma=arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 12)), elements=st.floats(0, 50)),
           gaps=st.lists(st.floats(0.01, 1.0), min_size=12, max_size=12))
    def prop(sigma, gaps):
        t = np.broadcast_to(0.5 + np.cumsum(gaps[:sigma.shape[1]]), sigma.shape)
        deltas = volume.deltas(t, volume.NERF_LAST_DELTA)
        got = as_array(student.call(rend, "_compute_weights", box.f32(deltas[..., None]), box.f32(sigma[..., None])),
                       "_compute_weights(deltas, density)")
        want = volume.render(sigma, t).weights
        if got.shape != want.shape + (1,) or not np.allclose(got[..., 0], want, atol=1e-5, rtol=1e-4):
            worst = float(np.abs(got.reshape(want.shape) - want).max()) if got.size == want.size else float("nan")
            failures.append((f"for {sigma.shape[0]} ray(s) of {sigma.shape[1]} samples the weights differ by up to {worst:.3g}"
                             if got.size == want.size else f"shape {got.shape} for {want.shape + (1,)}", EXCLUSIVE))
            raise AssertionError

    try:
        prop()
    except AssertionError:
        detail, hint = failures[-1] if failures else ("", "")
        raise CheckFailed("the weights fail on random rays", detail, hint) from None


@pytest.mark.item("1.5", weight=2, timeout=30, module="renderer")
def test_first_transmittance(student):
    """the first sample sees all the light (T_0 = 1) and an infinite last segment absorbs the rest"""
    sigma, t = _scene(R=5, n=6, seed=1)
    sigma[:, -1] = np.maximum(sigma[:, -1], 0.5)
    got, want = _weights(student, sigma, t)
    expect_shape(got, want.shape + (1,), "the weights")
    expect_close(got[:, 0, 0], 1.0 - np.exp(-sigma[:, 0] * (t[:, 1] - t[:, 0])), "the first sample's weights",
                 atol=1e-5, rtol=1e-4, hint=EXCLUSIVE)
    expect_close(got[..., 0].sum(1), np.ones(5), "the sum of the weights along each ray", atol=1e-4,
                 hint="with an infinite last segment and density there, the weights along a ray sum to 1")


@pytest.mark.item("1.5", weight=2, timeout=30, module="renderer")
def test_aggregate_one_hot(student):
    """a one-hot weight picks that sample's feature (colour (R, 3) and depth (R, 1))"""
    rng = np.random.default_rng(2)
    R, n = 5, 7
    pick = rng.integers(0, n, R)
    w = np.zeros((R, n, 1))
    w[np.arange(R), pick] = 1.0
    feat = rng.uniform(size=(R, n, 3))
    depth = np.sort(rng.uniform(1, 5, (R, n, 1)), axis=1)
    rend = _renderer(student)
    got = as_array(student.call(rend, "_aggregate", box.f32(w), box.f32(feat)), "_aggregate(weights, features)")
    expect_close(got, feat[np.arange(R), pick], "_aggregate(one-hot weights, colours)", atol=1e-6,
                 hint="sum weights * features over the samples of each ray: (R, n, 1) * (R, n, C) -> (R, C)")
    got = as_array(student.call(rend, "_aggregate", box.f32(w), box.f32(depth)), "_aggregate(weights, depths)")
    expect_close(got, depth[np.arange(R), pick], "_aggregate(one-hot weights, depths)", atol=1e-6)


@pytest.mark.item("1.5", weight=2, timeout=30, module="renderer")
def test_aggregate_sums_over_samples(student):
    """aggregation sums over the samples of each ray (R = n, different rays)"""
    rng = np.random.default_rng(3)
    R = n = 6
    w = rng.uniform(size=(R, n, 1))
    feat = rng.uniform(size=(R, n, 3))
    got = as_array(student.call(_renderer(student), "_aggregate", box.f32(w), box.f32(feat)), "_aggregate(...)")
    expect_close(got, np.einsum("rn,rnc->rc", w[..., 0], feat), "_aggregate(weights, features)", atol=1e-5,
                 hint="sum over the samples axis (dim 1), one result per ray")


SPHERE = {"sdf": {"type": "sphere", "center": {"val": [0.0, 0.0, 0.0], "opt": False}, "radius": {"val": 1.0, "opt": False}},
          "feature": {"val": [0.9, 0.5, 0.2], "opt": False, "rainbow": False},
          "alpha": {"val": 1.0, "opt": False}, "beta": {"val": 0.02, "opt": False}}


@pytest.mark.item("1.5", weight=4, timeout=60, module="renderer")
def test_render_sphere(student):
    """rendering the given SDF volume of a sphere: its colour and the depth of its surface, nothing around it"""
    rng = np.random.default_rng(4)
    C = np.array([0.0, 0.0, -3.0])
    targets = np.concatenate([rng.uniform(-0.6, 0.6, (10, 2)), rng.uniform(1.7, 2.2, (6, 2)) * rng.choice([-1, 1], (6, 2))])
    d = np.concatenate([targets, np.full((16, 1), 3.0)], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(C, d.shape).copy()
    t_hit, hit = box.sphere_hits(o, d)
    volume_fn = student.call("implicit", "SDFVolume", box.config(student, via="implicit", **SPHERE), ret="handle")
    sampler = student.call("sampler", "StratifiedRaysampler",
                           box.config(student, via="sampler", n_pts_per_ray=160, min_depth=1.0, max_depth=5.0), ret="handle")
    out = student.call(_renderer(student, chunk=5), "forward", sampler, volume_fn, box.ray_bundle(student, o, d), seed=0)
    if not isinstance(out, dict) or "feature" not in out or "depth" not in out:
        raise AssertionError("forward(...) should return a dict with 'feature' and 'depth'")
    feat, depth = as_array(out["feature"], "out['feature']"), as_array(out["depth"], "out['depth']")
    expect_shape(feat, (16, 3), "out['feature']", "one colour per ray: (R, 3)")
    expect_shape(depth, (16, 1), "out['depth']", "one depth per ray: (R, 1)")
    want_feat = np.where(hit[:, None], SPHERE["feature"]["val"], 0.0)
    expect_close(feat, want_feat, "the rendered colours", atol=0.03,
                 hint="aggregate the features (reshaped to (R, n, C)) with the weights")
    want_depth = np.where(hit, t_hit, 0.0)
    raw_ok = np.allclose(depth[:, 0], want_depth, atol=0.08)
    scaled = depth[:, 0] / max(depth.max(), 1e-12)
    if not raw_ok:  # a depth normalised for display is fine too
        expect_close(scaled, want_depth / want_depth.max(), "the rendered depths", atol=0.03,
                     hint="aggregate the sample depths (sample_lengths) with the weights")
