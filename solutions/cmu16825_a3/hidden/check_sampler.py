"""Q1.4: points along rays, sampler.py."""
import numpy as np
import pytest

from grader.checks import as_array, expect_close, expect_shape, helper_module

box = helper_module(__file__, "a3_sandbox")

N_PTS, NEAR, FAR = 16, 0.5, 4.5


def _sample(student, R):
    rng = np.random.default_rng(R)
    o = rng.normal(size=(R, 3))
    d = rng.normal(size=(R, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cfg = box.config(student, via="sampler", n_pts_per_ray=N_PTS, min_depth=NEAR, max_depth=FAR)
    sampler = student.call("sampler", "StratifiedRaysampler", cfg, ret="handle")
    out = student.call(sampler, "", box.ray_bundle(student, o, d), ret="handle", seed=0)
    pts = box.field(student, out, "sample_points", "sample_points")
    z = box.field(student, out, "sample_lengths", "sample_lengths")
    return o, d, pts, z


@pytest.mark.item("1.4", weight=2, timeout=30, module="sampler")
@pytest.mark.parametrize("R", [10, 16], ids=["R!=n", "R=n"])
def test_depths(student, R):
    """depths: (R, n, 1), sorted along each ray, inside [min_depth, max_depth] and covering it"""
    _, _, pts, z = _sample(student, R)
    expect_shape(pts, (R, N_PTS, 3), "sample_points", "(rays, points per ray, 3)")
    expect_shape(z, (R, N_PTS, 1), "sample_lengths", "one depth per sample: (rays, points per ray, 1); "
                 "z_vals of shape (n,) broadcasts against (R, n, 1) the wrong way")
    z = z[..., 0]
    box.need(bool(np.all(z >= NEAR - 1e-5) and np.all(z <= FAR + 1e-5)), "depths outside [min_depth, max_depth]",
             f"they range over [{z.min():.4g}, {z.max():.4g}]")
    box.need(bool(np.all(np.diff(z, axis=1) >= -1e-6)), "depths are not sorted along the rays",
             hint="the renderer's deltas are differences of consecutive depths")
    step = (FAR - NEAR) / N_PTS
    box.need(bool(np.all(z[:, 0] <= NEAR + step + 1e-5) and np.all(z[:, -1] >= FAR - step - 1e-5)),
             "the depths do not cover [min_depth, max_depth]")


@pytest.mark.item("1.4", weight=2, timeout=30, module="sampler")
@pytest.mark.parametrize("R", [10, 16], ids=["R!=n", "R=n"])
def test_points_on_rays(student, R):
    """sample points are origin + depth * direction"""
    o, d, pts, z = _sample(student, R)
    expect_shape(z, (R, N_PTS, 1), "sample_lengths")
    expect_close(pts, o[:, None, :] + z * d[:, None, :], "sample_points", atol=1e-4,
                 hint="each point is the ray's origin plus its depth times the ray's direction")
