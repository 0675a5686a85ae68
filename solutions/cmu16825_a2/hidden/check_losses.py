"""Hidden checks for Q1 (losses.py): voxel BCE on logits (1.1), chamfer from scratch (1.2), Laplacian
smoothing (1.3). Chamfer is checked up to a positive factor that depends only on the shapes (ratios to
the grader's value); smoothing through properties every Laplacian has, never a value."""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, Tensor, as_array, helper_module

box = helper_module(__file__, "a2_sandbox")
MOD = "losses"


# -- 1.1 voxel loss -----------------------------------------------------------------------------------
def _voxels(seed: int, spread: float, shape=(2, 8, 8, 8)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-spread, spread, shape).astype(np.float32), (rng.random(shape) < 0.4).astype(np.float32))


def _voxel_loss(student, scores, target) -> float:
    return box.scalar(student.call(MOD, "voxel_loss", box.f32(scores), box.f32(target)), "voxel_loss(...)")


LOGIT_HINT = ("voxel_src holds logits (fit_data.py feeds raw parameters, no sigmoid): use "
              "binary_cross_entropy_with_logits(voxel_src, voxel_tgt), or a sigmoid before binary_cross_entropy; "
              "the prediction comes first, the target second")


@pytest.mark.item("1.1", weight=2, timeout=30, module=MOD)
@pytest.mark.parametrize("seed,spread", [(1, 3.0), (2, 6.0)], ids=["scores in (-3, 3)", "scores in (-6, 6)"])
def test_voxel_bce_on_logits(student, seed, spread):
    """voxel_loss is the mean binary cross entropy of sigmoid(voxel_src) against the target"""
    scores, target = _voxels(seed, spread)
    got, want = _voxel_loss(student, scores, target), box.bce_logits(scores, target)
    if not np.isclose(got, want, rtol=2e-3, atol=1e-6):
        raise CheckFailed("voxel_loss is not the mean BCE of the occupancy probabilities sigmoid(voxel_src)",
                          f"got {got:.6g}, expected {want:.6g} (ratio {got / want:.4g})", LOGIT_HINT)


@pytest.mark.item("1.1", weight=1, timeout=30, module=MOD)
def test_voxel_loss_finite_for_any_scores(student):
    """voxel_loss stays finite, with finite gradients, for scores far outside [0, 1]"""
    scores, target = _voxels(3, 30.0)
    scores.reshape(-1)[:4] = [-40.0, 40.0, 0.0, 1.5]
    src = box.leaf(student, scores)
    loss = student.call(MOD, "voxel_loss", src, box.f32(target), ret="handle")
    box.scalar(student.call(loss, "detach"), "voxel_loss on scores outside [0, 1]")
    student.call(loss, "backward", ret="none")
    grad = as_array(student.get(src, "grad"), "the gradient of voxel_loss")
    box.need(grad.shape == scores.shape, "voxel_loss's gradient has the wrong shape", f"got {grad.shape}")


@pytest.mark.item("1.1", weight=0.5, timeout=30, module=MOD)
def test_voxel_loss_gradient_direction(student):
    """the gradient of voxel_loss raises scores of occupied voxels and lowers those of empty ones"""
    scores, target = _voxels(4, 4.0)
    src = box.leaf(student, scores)
    student.call(student.call(MOD, "voxel_loss", src, box.f32(target), ret="handle"), "backward", ret="none")
    grad = as_array(student.get(src, "grad"), "the gradient of voxel_loss").reshape(-1)
    want = box.bce_logits_grad(scores, target).reshape(-1)
    cos = float(grad @ want / max(1e-30, np.linalg.norm(grad) * np.linalg.norm(want)))
    box.need(cos > 0.99, "voxel_loss's gradient does not point where the BCE of sigmoid(scores) does",
             f"cosine similarity {cos:.3f} with the expected gradient", LOGIT_HINT)


@pytest.mark.item("1.1", weight=1.5, timeout=90, module=MOD)
def test_voxel_fit_sphere(student):
    """fitting raw voxel parameters to a 32^3 sphere with Adam and voxel_loss recovers it (IoU > 0.95)"""
    target = box.sphere_voxels(32, 0.6)[None]
    init = np.random.default_rng(5).random(target.shape).astype(np.float32)  # like torch.rand in fit_data.py
    src = box.leaf(student, init)
    opt = student.call(box.torch_in(student, MOD), "torch.optim.Adam", [src], lr=0.1, ret="handle")
    tgt = box.f32(target)
    for _ in range(40):
        loss = student.call(MOD, "voxel_loss", src, tgt, ret="handle")
        student.call(opt, "zero_grad", ret="none")
        student.call(loss, "backward", ret="none")
        student.call(opt, "step", ret="none")
    scores = as_array(student.call(src, "detach"), "the fitted voxel parameters")
    score = box.iou(scores > 0, target)
    box.need(score > 0.95, "fitting a voxel grid with voxel_loss does not recover the sphere",
             f"IoU {score:.3f} of the voxels with score > 0 (sigmoid > 0.5) after 40 Adam steps (lr 0.1)", LOGIT_HINT)


# -- 1.2 chamfer loss ---------------------------------------------------------------------------------
def _chamfer(student, src, tgt) -> float:
    return box.scalar(student.call(MOD, "chamfer_loss", box.f32(src), box.f32(tgt)), "chamfer_loss(...)")


def _clouds(seed: int, b: int, n: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(b, n, 3)) * scale
    tgt = rng.normal(size=(b, n, 3)) * scale + rng.normal(size=(b, 1, 3)) * 0.3 * scale
    return src.astype(np.float32), tgt.astype(np.float32)


SCALE_HINT = ("squared distances to the nearest neighbour, in both directions (src to tgt and tgt to src), "
              "averaged (or summed) over the points of each cloud and over the batch")


def _factor(student, b: int, n: int) -> float:
    """The student's constant factor for clouds of this shape, from one random pair."""
    src, tgt = _clouds(100 + b * 7 + n, b, n)
    got, want = _chamfer(student, src, tgt), box.chamfer(src, tgt)
    box.need(got > 0, "chamfer_loss is not positive for two different clouds", f"got {got:.4g}", SCALE_HINT)
    return got / want


def _expect_factor(got: float, want: float, factor: float, what: str, hint: str = SCALE_HINT) -> None:
    if not np.isclose(got, factor * want, rtol=2e-3, atol=1e-6 * abs(factor)):
        raise CheckFailed(what, f"got {got:.6g}; the grader's chamfer distance times the loss's own factor for this "
                                f"shape ({factor:.4g}) is {factor * want:.6g}", hint)


@pytest.mark.item("1.2", weight=0.5, timeout=30, module=MOD)
def test_chamfer_identical_zero(student):
    """the chamfer loss of a cloud with itself is 0"""
    src, _ = _clouds(1, 2, 64)
    got = _chamfer(student, src, src)
    box.need(abs(got) <= 1e-5 * max(1.0, abs(_factor(student, 2, 64))), "chamfer_loss of a cloud with itself is not 0",
             f"got {got:.4g}", "each point's nearest neighbour in the same cloud is itself, at distance 0")


@pytest.mark.item("1.2", weight=1.5, timeout=30, module=MOD)
@pytest.mark.parametrize("b,n", [(1, 64), (3, 50)], ids=["B=1", "B=3"])
def test_chamfer_matches_definition_up_to_scale(student, b, n):
    """chamfer_loss is the squared chamfer distance times one positive factor, at every spread of the points"""
    factor = _factor(student, b, n)
    for k, spread in enumerate((0.25, 1.0, 3.0)):
        src, tgt = _clouds(10 + k, b, n, spread)
        _expect_factor(_chamfer(student, src, tgt), box.chamfer(src, tgt), factor,
                       f"chamfer_loss does not follow the squared chamfer distance (clouds of spread {spread})")


@pytest.mark.item("1.2", weight=0.5, timeout=30, module=MOD)
def test_chamfer_symmetric(student):
    """swapping the two clouds leaves chamfer_loss unchanged"""
    src, tgt = _clouds(20, 2, 60)
    tgt = tgt * 1.7  # clouds of different spread: one direction alone is far from symmetric
    a, b = _chamfer(student, src, tgt), _chamfer(student, tgt, src)
    box.need(np.isclose(a, b, rtol=1e-4), "chamfer_loss(src, tgt) differs from chamfer_loss(tgt, src)",
             f"{a:.6g} against {b:.6g}", "add both directions: src to tgt and tgt to src")


@pytest.mark.item("1.2", weight=0.5, timeout=30, module=MOD)
def test_chamfer_permutation_invariant(student):
    """shuffling the points of either cloud leaves chamfer_loss unchanged"""
    src, tgt = _clouds(21, 2, 60)
    rng = np.random.default_rng(22)
    a = _chamfer(student, src, tgt)
    b = _chamfer(student, src[:, rng.permutation(60)], tgt[:, rng.permutation(60)])
    box.need(np.isclose(a, b, rtol=1e-4), "chamfer_loss changes when the points are shuffled",
             f"{a:.6g} against {b:.6g}", "match each point with its nearest neighbour, not with the point at the same index")


@pytest.mark.item("1.2", weight=0.5, timeout=30, module=MOD)
def test_chamfer_two_point_example(student):
    """a two-point example worked by hand: (0,0,0),(1,0,0) against (0,0,0),(0,2,0)"""
    factor = _factor(student, 1, 2)
    src = np.array([[[0, 0, 0], [1, 0, 0]]], dtype=np.float32)
    tgt = np.array([[[0, 0, 0], [0, 2, 0]]], dtype=np.float32)
    _expect_factor(_chamfer(student, src, tgt), (0 + 1) / 2 + (0 + 4) / 2, factor,
                   "chamfer_loss of the two-point example is wrong")


@pytest.mark.item("1.2", weight=0.75, timeout=30, module=MOD)
def test_chamfer_no_cross_batch(student):
    """each cloud is matched only with the cloud of the same batch element"""
    factor = _factor(student, 2, 40)
    rng = np.random.default_rng(23)
    far = np.array([[0, 0, 0], [20, 0, 0]], dtype=np.float32)[:, None]
    tgt = rng.normal(size=(2, 40, 3)).astype(np.float32) + far
    src = tgt[::-1] + rng.normal(scale=0.05, size=(2, 40, 3)).astype(np.float32)  # each near the OTHER target
    _expect_factor(_chamfer(student, src, tgt), box.chamfer(src, tgt), factor,
                   "chamfer_loss matches points across batch elements",
                   "find neighbours per batch element (knn_points on (B, N, 3) does), never in the flattened batch")


@pytest.mark.item("1.2", weight=0.75, timeout=30, module=MOD)
def test_chamfer_gradient_step(student):
    """one gradient-descent step on the source cloud, along chamfer_loss's gradient, lowers the chamfer distance"""
    src, tgt = _clouds(24, 2, 50)
    handle = box.leaf(student, src)
    student.call(student.call(MOD, "chamfer_loss", handle, box.f32(tgt), ret="handle"), "backward", ret="none")
    grad = as_array(student.get(handle, "grad"), "the gradient of chamfer_loss with respect to the source cloud")
    box.need(grad.shape == src.shape and np.abs(grad).max() > 0, "chamfer_loss gives no gradient to the source cloud",
             f"gradient of shape {grad.shape}, largest magnitude {np.abs(grad).max() if grad.size else 0:.3g}",
             "keep the computation in torch, differentiable in the points (no .detach(), numpy or .item())")
    want = box.chamfer_grad(src, tgt)
    cos = float((grad * want).sum() / (np.linalg.norm(grad) * np.linalg.norm(want)))
    step = src - 0.05 * grad / np.abs(grad).max()
    before, after = box.chamfer(src, tgt), box.chamfer(step.astype(np.float32), tgt)
    box.need(after < before and cos > 0.95, "a gradient step on chamfer_loss does not lower the chamfer distance",
             f"chamfer {before:.4g} before and {after:.4g} after the step; cosine with the expected gradient {cos:.3f}",
             SCALE_HINT)


# -- 1.3 smoothness loss ------------------------------------------------------------------------------
def _smooth(student, verts, faces, what: str) -> float:
    mesh = box.meshes(student, verts if isinstance(verts, list) else [verts],
                      faces if isinstance(faces, list) else [faces])
    value = box.scalar(student.call(MOD, "smoothness_loss", mesh), what)
    return value


def _noisy_sphere(seed: int, level: int = 2, noise: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    verts, faces = box.icosphere(level)
    rng = np.random.default_rng(seed)
    return verts * (1 + noise * rng.normal(size=(len(verts), 1))), faces


LAPLACE_HINT = ("a Laplacian compares each vertex with its neighbours (v - mean of the neighbours, or cotangent "
                "weights): mesh_laplacian_smoothing(mesh_src) does it")


@pytest.mark.item("1.3", weight=1, timeout=30, module=MOD)
def test_smoothness_positive_for_noise(student):
    """smoothness_loss is a positive finite number for a noisy sphere, and grows with the noise"""
    verts, faces = _noisy_sphere(1, noise=0.05)
    more, _ = _noisy_sphere(1, noise=0.2)
    a = _smooth(student, verts, faces, "smoothness_loss of a noisy sphere")
    b = _smooth(student, more, faces, "smoothness_loss of a noisier sphere")
    box.need(0 < a < b, "smoothness_loss does not grow with the noise on the vertices",
             f"{a:.4g} for noise 0.05 and {b:.4g} for noise 0.2", LAPLACE_HINT)


@pytest.mark.item("1.3", weight=1.25, timeout=30, module=MOD)
def test_smoothness_translation_rotation_invariant(student):
    """moving or rotating the whole mesh leaves smoothness_loss unchanged"""
    verts, faces = _noisy_sphere(2)
    base = _smooth(student, verts, faces, "smoothness_loss")
    moved = _smooth(student, verts + np.array([3.0, -2.0, 5.0]), faces, "smoothness_loss of the moved mesh")
    turned = _smooth(student, verts @ box.rotation(3).T, faces, "smoothness_loss of the rotated mesh")
    box.need(np.isclose(moved, base, rtol=1e-3, atol=1e-6) and np.isclose(turned, base, rtol=1e-3, atol=1e-6),
             "smoothness_loss depends on where the mesh is, not only on its shape",
             f"{base:.6g} for the mesh, {moved:.6g} moved by (3, -2, 5), {turned:.6g} rotated", LAPLACE_HINT)


@pytest.mark.item("1.3", weight=1.25, timeout=30, module=MOD)
def test_smoothness_flat_grid_lowest(student):
    """a flat regular grid scores lower than the same grid with its interior pushed out of the plane"""
    n = 8
    verts, faces = box.flat_grid(n)
    rot = box.rotation(4)
    flat = _smooth(student, verts @ rot.T, faces, "smoothness_loss of a flat grid")
    rng = np.random.default_rng(5)
    for k in range(2):
        bumped = verts.copy()
        bumped[box.interior(n), 2] = rng.normal(scale=0.3, size=int(box.interior(n).sum()))
        value = _smooth(student, bumped @ rot.T, faces, "smoothness_loss of a bumped grid")
        box.need(flat < value, "a flat grid does not score lower than a bumped one",
                 f"{flat:.4g} flat against {value:.4g} bumped", LAPLACE_HINT)


@pytest.mark.item("1.3", weight=1.5, timeout=30, module=MOD)
def test_smoothness_decreases_after_smoothing(student):
    """smoothing a noisy mesh (moving vertices towards their neighbours) lowers smoothness_loss, in a batch of two"""
    v1, faces = _noisy_sphere(6, level=2, noise=0.1)
    v2, _ = _noisy_sphere(7, level=2, noise=0.1)
    noisy = _smooth(student, [v1, v2], [faces, faces], "smoothness_loss of two noisy spheres")
    smooth = [box.jacobi_smooth(v, faces, 3) for v in (v1, v2)]
    after = _smooth(student, smooth, [faces, faces], "smoothness_loss after smoothing")
    box.need(after < 0.8 * noisy, "smoothing the meshes does not lower smoothness_loss",
             f"{noisy:.4g} before and {after:.4g} after three smoothing steps", LAPLACE_HINT)
