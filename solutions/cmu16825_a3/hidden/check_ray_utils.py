"""Q1.3 (the pixel grid and rays from pixels) and Q2.1 (random pixels), ray_utils.py."""
import numpy as np
import pytest

from grader.checks import CheckFailed, as_array, expect_close, expect_shape, helper_module

box = helper_module(__file__, "a3_sandbox")

CAMERAS = [  # (dist, elev, azim, focal, principal point)
    (3.0, 20.0, 35.0, 1.6, (0.0, 0.0)),
    (4.5, -30.0, 200.0, (2.2, 1.4), (0.15, -0.1)),
]


def _grid(student, W, H):
    R, T, _ = box.look_at(3.0, 10.0, 20.0)
    cam = box.camera(student, R, T, 1.5)
    return as_array(student.call("ray_utils", "get_pixels_from_image", [W, H], cam), "get_pixels_from_image(...)")


@pytest.mark.item("1.3", weight=2, timeout=30, module="ray_utils")
def test_pixel_grid(student):
    """the pixel grid of a non-square image: one NDC point per pixel, row by row, in [-1, 1], +x left, +y up"""
    W, H = 7, 5
    grid = _grid(student, W, H)
    expect_shape(grid, (W * H, 2), "get_pixels_from_image((W, H), camera)",
                 "one (x, y) row per pixel: W * H rows")
    box.need(np.all(np.abs(grid) <= 1.0 + 1e-5), "the pixel grid is not in [-1, 1]",
             f"values range over [{grid.min():.3g}, {grid.max():.3g}]",
             "map the pixel coordinates from [0, W] x [0, H] to [-1, 1] (NDC)")
    g = grid.reshape(H, W, 2)
    box.need(np.allclose(g[:, :, 0], g[:1, :, 0], atol=1e-5) and np.allclose(g[:, :, 1], g[:, :1, 1], atol=1e-5),
             "the grid's order is wrong: x should change along a row of the image and y from row to row",
             "rows of the result go through the image row by row (W pixels per row)")
    x, y = g[0, :, 0], g[:, 0, 1]
    box.need(bool(np.all(np.diff(x) < 0) and np.all(np.diff(y) < 0)), "the grid has the wrong NDC signs",
             f"x goes from {x[0]:.3g} to {x[-1]:.3g} along a row, y from {y[0]:.3g} to {y[-1]:.3g} down the image",
             "pytorch3d's NDC has +x to the left and +y up, so the top-left pixel has the largest x and y; "
             "the given tail already negates the grid")
    box.need(np.allclose(np.diff(x), np.diff(x)[0], atol=1e-5) and np.allclose(np.diff(y), np.diff(y)[0], atol=1e-5),
             "the pixel grid is not evenly spaced")
    box.need(x[0] >= 1 - 2.0 / W - 1e-5 and x[-1] <= -1 + 2.0 / W + 1e-5 and y[0] >= 1 - 2.0 / H - 1e-5
             and y[-1] <= -1 + 2.0 / H + 1e-5, "the pixel grid does not span [-1, 1]",
             f"x spans [{x.min():.3g}, {x.max():.3g}] and y [{y.min():.3g}, {y.max():.3g}]",
             "each image axis, whatever its length, maps onto [-1, 1]")


def _rays(student, case):
    dist, elev, azim, focal, pp = case
    R, T, C = box.look_at(dist, elev, azim)
    cam = box.camera(student, R, T, focal, pp)
    xy = np.random.default_rng(3).uniform(-1, 1, (12, 2))
    xy[0] = pp  # the ray through the principal point
    bundle = student.call("ray_utils", "get_rays_from_pixels", box.f32(xy), [16, 12], cam, ret="handle")
    o = box.field(student, bundle, "origins", "ray_bundle.origins")
    d = box.field(student, bundle, "directions", "ray_bundle.directions")
    expect_shape(o, (12, 3), "ray_bundle.origins", "one origin per pixel")
    expect_shape(d, (12, 3), "ray_bundle.directions", "one direction per pixel")
    return o, d, C, box.ray_directions(R, T, focal, pp, xy)


@pytest.mark.item("1.3", weight=1, timeout=30, module="ray_utils")
@pytest.mark.parametrize("case", CAMERAS, ids=["square-pixels", "off-centre"])
def test_ray_origins(student, case):
    """every ray starts at the camera centre"""
    o, _, C, _ = _rays(student, case)
    expect_close(o, np.broadcast_to(C, o.shape), "the ray origins", atol=1e-4,
                 hint="the origins are the camera's centre in world coordinates (camera.get_camera_center())")


@pytest.mark.item("1.3", weight=1, timeout=30, module="ray_utils")
@pytest.mark.parametrize("case", CAMERAS, ids=["square-pixels", "off-centre"])
def test_ray_directions(student, case):
    """rays point from the camera centre through the unprojected pixels"""
    _, d, _, want = _rays(student, case)
    n = np.linalg.norm(d, axis=1, keepdims=True)
    box.need(bool(np.all(n > 1e-8)), "some ray directions are zero")
    expect_close(d / n, want, "the ray directions (normalised here)", atol=1e-4,
                 hint="unproject (x, y, depth 1) with camera.unproject_points and subtract the camera centre")
    if case[4] == (0.0, 0.0):
        _, _, C = box.look_at(*case[:3])
        expect_close(d[0] / n[0], -C / np.linalg.norm(C), "the direction of the centre ray", atol=1e-4,
                     hint="the ray through the image centre points at what the camera looks at")


@pytest.mark.item("1.3", weight=1, timeout=30, module="ray_utils")
def test_unit_directions(student):
    """ray directions have unit length"""
    _, d, _, _ = _rays(student, CAMERAS[1])
    n = np.linalg.norm(d, axis=1)
    box.need(bool(np.allclose(n, 1.0, atol=1e-4)), "the ray directions are not unit vectors",
             f"their lengths range over [{n.min():.4g}, {n.max():.4g}]",
             "normalise the directions: the sampler's depths and sphere tracing's steps are distances along them")


@pytest.mark.item("2.1", weight=3, timeout=30, module="ray_utils")
def test_random_pixels_from_grid(student):
    """random pixels are n rows of the full pixel grid"""
    W, H, n = 9, 6, 20
    grid = _grid(student, W, H)
    R, T, _ = box.look_at(3.0, 10.0, 20.0)
    cam = box.camera(student, R, T, 1.5)
    sub = as_array(student.call("ray_utils", "get_random_pixels_from_image", n, [W, H], cam, seed=5),
                   "get_random_pixels_from_image(n, ...)")
    expect_shape(sub, (n, 2), "get_random_pixels_from_image(n, (W, H), camera)", "n rows of (x, y)")
    dist = np.abs(sub[:, None, :] - grid[None, :, :]).max(-1).min(1)
    bad = int(np.sum(dist > 1e-5))
    if bad:
        raise CheckFailed("some random pixels are not pixels of the grid", f"{bad} of {n} rows are not rows of "
                          "get_pixels_from_image's grid", "take rows of the full grid at random indices")


@pytest.mark.item("2.1", weight=2, timeout=30, module="ray_utils")
def test_random_pixels_vary(student):
    """two draws of random pixels differ"""
    R, T, _ = box.look_at(3.0, 10.0, 20.0)
    cam = box.camera(student, R, T, 1.5)
    a = as_array(student.call("ray_utils", "get_random_pixels_from_image", 30, [16, 16], cam, seed=1), "a draw")
    b = as_array(student.call("ray_utils", "get_random_pixels_from_image", 30, [16, 16], cam, seed=2), "a draw")
    box.need(a.shape == b.shape and not np.allclose(a, b), "two draws of random pixels are the same",
             hint="draw the indices at random on every call (torch.randperm or np.random.choice)")
    box.need(len(np.unique(a.round(6), axis=0)) > 1, "every random pixel is the same pixel")
