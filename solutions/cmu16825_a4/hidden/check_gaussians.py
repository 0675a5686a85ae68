"""Hidden checks for Q1.1 (Gaussians and Scene in model.py). Trusted code.

Each piece is compared with a float64 oracle written from the definitions (splat_oracle.py) on new
inputs: oblique screen-space cameras (pytorch3d's row-vector R, so the column-vector W is R^T), a
non-square image with an off-centre principal point, anisotropic Gaussians. Plus the closed forms:
s^2 I, a 90 degree turn about z swapping the x and y variances, the principal point, P = 0 and -1/2,
T_0 = S, a lone Gaussian giving c * alpha and a nearly opaque front Gaussian hiding the one behind.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, Tensor, as_array, expect_close, expect_shape, helper_module

orc = helper_module(__file__, "splat_oracle")

MOD = "model"
WIDTH, HEIGHT = 40, 30  # img_size is (width, height) in the course's code
FOCAL, PRINCIPAL = (38.0, 41.0), (21.5, 13.0)
R_CAM, T_CAM = orc.look_at(4.0, 25.0, 40.0)


def f32(x) -> Tensor:
    return Tensor(np.asarray(x, np.float32))


def gaussians(student, isotropic: bool, n: int = 4):
    return student.call(MOD, "Gaussians", init_type="random", device="cpu", num_points=n, isotropic=isotropic,
                        ret="handle")


def cam(student):
    return orc.camera(student, MOD, R_CAM, T_CAM, FOCAL, PRINCIPAL, WIDTH, HEIGHT)


def random_gaussians(seed: int, n: int):
    """Means near the origin (in view of the camera), unit quaternions, scales, colours, opacities."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-0.5, 0.5, (n, 3))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scales = rng.uniform(0.05, 0.25, (n, 3))
    return means, quats, scales, rng.uniform(0.1, 0.9, (n, 3)), rng.uniform(0.4, 0.95, n)


def rel_tol(expected) -> float:
    return 2e-4 * max(1.0, float(np.abs(expected).max()))


# -- covariances ---------------------------------------------------------------------------------------
@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_cov3d_anisotropic(student):
    """compute_cov_3D matches R S S^T R^T for rotated anisotropic Gaussians"""
    _, quats, scales, _, _ = random_gaussians(1, 5)
    scales = scales * 6.0  # some above 1, so s and s^2 differ visibly
    got = as_array(student.call(gaussians(student, False), "compute_cov_3D", f32(quats), f32(scales)), "cov_3D")
    expected = orc.cov_3d(quats, scales)
    expect_shape(got, expected.shape, "cov_3D")
    expect_close(got, expected, "cov_3D of rotated anisotropic Gaussians", atol=rel_tol(expected),
                 hint="Sigma = R S S^T R^T: the scales are standard deviations, so the variances are their squares; "
                      "the scales passed in are already activated")


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_cov3d_quarter_turn(student):
    """a quarter turn about z swaps the x and y variances"""
    quats = np.array([[np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]])
    got = as_array(student.call(gaussians(student, False), "compute_cov_3D", f32(quats), f32([[1.0, 2.0, 3.0]])), "cov_3D")
    expect_close(got, np.diag([4.0, 1.0, 9.0])[None], "cov_3D of scales (1, 2, 3) turned 90 degrees about z", atol=1e-4,
                 hint="rotate the covariance with the quaternion's rotation matrix R (w first): R S S^T R^T")


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_cov3d_isotropic(student):
    """isotropic Gaussians have covariance s^2 I"""
    scales = np.array([[0.5], [2.0], [1.5]])
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (3, 1))
    got = as_array(student.call(gaussians(student, True), "compute_cov_3D", f32(quats), f32(scales)), "cov_3D")
    expect_close(got, scales[:, :, None] ** 2 * np.eye(3), "cov_3D of isotropic Gaussians", atol=1e-4,
                 hint="one standard deviation s on every axis: the covariance is s^2 times the identity, shape (N, 3, 3)")


@pytest.mark.item("1.1", weight=4, timeout=30, module=MOD)
def test_cov2d(student):
    """compute_cov_2D matches J W Sigma W^T J^T + 0.3 I for an oblique camera"""
    means, quats, scales, _, _ = random_gaussians(2, 6)
    scales = scales * 2.0
    got = student.call(gaussians(student, False), "compute_cov_2D", f32(means), f32(quats), f32(scales), cam(student),
                       (WIDTH, HEIGHT))
    expected = orc.cov_2d(means, quats, scales, R_CAM, T_CAM, FOCAL, (WIDTH, HEIGHT))
    expect_close(as_array(got, "cov_2D"), expected, "cov_2D of anisotropic Gaussians seen by an oblique camera",
                 atol=rel_tol(expected),
                 hint="W is the world-to-view rotation for column vectors; the camera's R acts on row vectors "
                      "(X_view = X R + T)")


# -- means, power ----------------------------------------------------------------------------------------
@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_means2d_axis(student):
    """points on the optical axis land on the principal point, sideways ones at p + f X / Z, in pixels"""
    eye = np.eye(3)
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0], [0.6, 0.0, 3.0], [-0.6, 0.0, 3.0], [0.0, 0.4, 2.0]])
    c = orc.camera(student, MOD, eye, np.zeros(3), FOCAL, PRINCIPAL, WIDTH, HEIGHT)
    got = student.call(MOD, "Gaussians.compute_means_2D", f32(points), c)
    expected = orc.means_2d(points, eye, np.zeros(3), FOCAL, PRINCIPAL)
    expect_close(as_array(got, "means_2D"), expected, "means_2D of points in front of an identity camera", atol=1e-3,
                 hint="means_2D are in pixels (screen space), not NDC: a point on the optical axis projects to the "
                      "principal point")


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_means2d_oblique(student):
    """compute_means_2D matches the pinhole projection for an oblique camera"""
    means = random_gaussians(3, 7)[0]
    got = student.call(MOD, "Gaussians.compute_means_2D", f32(means), cam(student))
    expected = orc.means_2d(means, R_CAM, T_CAM, FOCAL, PRINCIPAL)
    expect_close(as_array(got, "means_2D"), expected, "means_2D for an oblique camera", atol=2e-3,
                 hint="transform the world points to the camera's screen space (pixels)")


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_power_closed_form(student):
    """the power is 0 at the mean and -1/2 one standard deviation away along an eigen-axis"""
    theta = 0.6
    axes = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    sd = np.array([3.0, 1.5])
    cov = axes @ np.diag(sd ** 2) @ axes.T
    mu = np.array([10.0, 7.0])
    points = np.stack([mu, mu + sd[0] * axes[:, 0], mu - sd[1] * axes[:, 1], mu + 2 * sd[1] * axes[:, 1]])
    got = student.call(MOD, "Gaussians.evaluate_gaussian_2D", f32(points[None]), f32(mu[None, None]),
                       f32(np.linalg.inv(cov)[None]))
    expect_close(as_array(got, "power"), np.array([[0.0, -0.5, -0.5, -2.0]]),
                 "power at the mean, one and two standard deviations along the axes", atol=1e-4,
                 hint="the exponent of a Gaussian is -1/2 (x - mu)^T Sigma^-1 (x - mu), at most 0")


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_power_many(student):
    """evaluate_gaussian_2D matches the definition for several Gaussians and pixels"""
    rng = np.random.default_rng(4)
    mu = rng.uniform(0, 20, (3, 2))
    a = rng.normal(size=(3, 2, 2))
    cov = a @ np.swapaxes(a, 1, 2) + 2.0 * np.eye(2)
    points = orc.pixel_grid(8, 6)
    got = student.call(MOD, "Gaussians.evaluate_gaussian_2D", f32(points[None]), f32(mu[:, None]),
                       f32(np.linalg.inv(cov)))
    expected = orc.power(points, mu, np.linalg.inv(cov))
    expect_close(as_array(got, "power"), expected, "power of 3 Gaussians at 48 pixels (shape (N, H*W))",
                 atol=rel_tol(expected), hint="one value per Gaussian and pixel: -1/2 d^T Sigma^-1 d with d = x - mu")


# -- depth, order, alphas, transmittance -----------------------------------------------------------------
@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_depth_values(student):
    """compute_depth_values gives the view-space depth of each mean"""
    g = gaussians(student, True, n=6)
    means = as_array(student.get(g, "means"), "the Gaussians' means")
    got = student.call(student.call(MOD, "Scene", g, ret="handle"), "compute_depth_values", cam(student))
    expected = orc.to_view(means, R_CAM, T_CAM)[:, 2]
    expect_close(as_array(got, "z_vals"), expected, "z_vals", atol=1e-4,
                 hint="the depth is the z coordinate of the means in view space (world-to-view transform)")


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_filter_and_sort(student):
    """get_idxs_to_filter_and_sort drops negative depths and orders the rest nearest first, as int64"""
    z = np.array([2.5, -1.0, 0.5, 3.75, -0.25, 1.0, 0.125])
    scene = student.call(MOD, "Scene", gaussians(student, True, n=7), ret="handle")
    got = student.call(scene, "get_idxs_to_filter_and_sort", f32(z))
    arr = np.asarray(got)
    if arr.dtype != np.int64:
        raise CheckFailed("the indices have the wrong dtype", f"expected int64, got {arr.dtype}",
                          "index tensors for gathering are torch.long (int64)")
    expected = np.array([6, 2, 5, 0, 3])
    if arr.shape != expected.shape or not np.array_equal(arr, expected):
        order = "descending" if arr.shape == expected.shape and np.array_equal(arr, expected[::-1]) else ""
        raise CheckFailed("the indices do not filter and sort the Gaussians",
                          f"{arr.size} indices returned for 7 depths of which {expected.size} are not negative",
                          "nearest first (ascending depth)" if order else
                          "keep only the Gaussians with depth >= 0, then sort those by ascending depth")


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_alphas(student):
    """compute_alphas gives opacity * exp(power), with the given clamps"""
    means, quats, scales, _, opac = random_gaussians(5, 4)
    mu = orc.means_2d(means, R_CAM, T_CAM, FOCAL, PRINCIPAL)
    cov = orc.cov_2d(means, quats, scales, R_CAM, T_CAM, FOCAL, (WIDTH, HEIGHT))
    scene = student.call(MOD, "Scene", gaussians(student, False), ret="handle")
    got = student.call(scene, "compute_alphas", f32(opac), f32(mu), f32(cov), (WIDTH, HEIGHT))
    expected = orc.alphas(opac, mu, cov, WIDTH, HEIGHT)
    expect_close(as_array(got, "alphas"), expected, "alphas (N, H, W)", atol=2e-4,
                 hint="alpha = opacity * exp(power), with the power from the inverse 2D covariance")


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_transmittance(student):
    """compute_transmittance is exclusive: T_0 = 1 and T_i = prod_{j<i} (1 - alpha_j)"""
    rng = np.random.default_rng(6)
    a = rng.uniform(0.0, 0.8, (5, 3, 4))
    scene = student.call(MOD, "Scene", gaussians(student, True), ret="handle")
    got = student.call(scene, "compute_transmittance", f32(a))
    expect_close(as_array(got, "transmittance"), orc.transmittance(a), "transmittance of 5 Gaussians", atol=1e-5,
                 hint="T_0 must be 1: the transmittance in front of a Gaussian leaves out its own alpha (exclusive product)")


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_transmittance_start(student):
    """with start_transmittance S, T_i = S * prod_{j<i} (1 - alpha_j)"""
    rng = np.random.default_rng(7)
    a = rng.uniform(0.0, 0.8, (4, 3, 4))
    S = rng.uniform(0.3, 1.0, (1, 3, 4))
    scene = student.call(MOD, "Scene", gaussians(student, True), ret="handle")
    got = student.call(scene, "compute_transmittance", f32(a), f32(S))
    expect_close(as_array(got, "transmittance"), orc.transmittance(a, S), "transmittance after a start S", atol=1e-5,
                 hint="the given code puts S in front of the (1 - alpha) terms: use the whole product from S on")


# -- splatting ---------------------------------------------------------------------------------------------
def _splat(student, means, quats, scales, colours, opac, isotropic=False):
    g = gaussians(student, isotropic, n=len(means))
    scene = student.call(MOD, "Scene", g, ret="handle")
    z = orc.to_view(means, R_CAM, T_CAM)[:, 2]
    out = student.call(scene, "splat", cam(student), f32(means), f32(z), f32(quats), f32(scales), f32(colours),
                       f32(opac), (WIDTH, HEIGHT))
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise CheckFailed("splat should return (image, depth, mask, final_transmittance)",
                          f"got {type(out).__name__}")
    return [as_array(x, name) for x, name in zip(out[:3], ("image", "depth", "mask"))]


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_splat_single(student):
    """one Gaussian splats to image = c * alpha, depth = z * alpha, mask = alpha"""
    means, quats, scales = np.array([[0.1, 0.05, -0.1]]), np.array([[0.9, 0.1, -0.3, 0.2]]), np.array([[0.3, 0.15, 0.2]])
    quats = quats / np.linalg.norm(quats)
    colours, opac = np.array([[0.9, 0.4, 0.2]]), np.array([0.8])
    image, depth, mask = _splat(student, means, quats, scales, colours, opac)
    exp_image, exp_depth, exp_mask = orc.splat(means, quats, scales, colours, opac, R_CAM, T_CAM, FOCAL, PRINCIPAL,
                                               WIDTH, HEIGHT)
    hint = "a lone Gaussian is seen with transmittance 1: image = c alpha, depth = z alpha, mask = alpha"
    expect_close(image, exp_image, "image (H, W, 3) of one Gaussian", atol=5e-4, hint=hint)
    expect_close(mask, exp_mask, "mask (H, W, 1) of one Gaussian", atol=5e-4, hint=hint)
    expect_close(depth, exp_depth, "depth (H, W, 1) of one Gaussian", atol=5e-3, hint=hint)


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
def test_splat_occlusion(student):
    """a nearly opaque Gaussian in front hides the one behind it"""
    centre = -T_CAM @ R_CAM.T  # camera centre; both means on the line to the origin
    direction = -centre / np.linalg.norm(centre)
    means = np.stack([centre + 3.6 * direction, centre + 4.4 * direction])  # nearest first
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (2, 1))
    scales = np.full((2, 3), 0.25)
    colours, opac = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), np.array([0.995, 0.995])
    image, depth, mask = _splat(student, means, quats, scales, colours, opac)
    exp_image, exp_depth, exp_mask = orc.splat(means, quats, scales, colours, opac, R_CAM, T_CAM, FOCAL, PRINCIPAL,
                                               WIDTH, HEIGHT)
    hint = ("composite front to back: each Gaussian's colour is weighted by its alpha and the transmittance "
            "left by the Gaussians in front of it")
    expect_close(image, exp_image, "image of two overlapping Gaussians", atol=5e-4, hint=hint)
    expect_close(depth, exp_depth, "depth of two overlapping Gaussians", atol=5e-3, hint=hint)
    expect_close(mask, exp_mask, "mask of two overlapping Gaussians", atol=5e-4, hint=hint)


@pytest.mark.item("1.1", weight=2, timeout=60, module=MOD)
def test_render_scene(student):
    """Scene.render of a few random Gaussians matches the reference renderer"""
    g = gaussians(student, False, n=12)
    params = {name: as_array(student.get(g, name), name)
              for name in ("pre_act_quats", "means", "pre_act_scales", "colours", "pre_act_opacities")}
    scene = student.call(MOD, "Scene", g, ret="handle")
    got = student.call(scene, "render", cam(student), img_size=(WIDTH, HEIGHT))
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise CheckFailed("render should return (image, depth, mask)", f"got {type(got).__name__}")
    expected = orc.render(params["pre_act_quats"], params["means"], params["pre_act_scales"], params["colours"],
                          params["pre_act_opacities"], R_CAM, T_CAM, FOCAL, PRINCIPAL, WIDTH, HEIGHT)
    for arr, exp, name in zip(got, expected, ("image", "depth", "mask")):
        expect_close(as_array(arr, name), exp, f"rendered {name} of 12 Gaussians", atol=2e-3 if name == "depth" else 5e-4,
                     hint="render sorts by depth and splats; check depth, sorting and splatting together")
