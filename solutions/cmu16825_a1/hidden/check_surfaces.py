"""Hidden checks of 5.1 (point clouds from RGB-D), 5.2 (the parametric torus) and 5.3 (the implicit
torus and its mesh). Trusted code: the expected clouds come from the analytic scene of a1_scene.py,
unprojected here; the torus is checked against its equations in float64."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array, helper_module
from grader.protocol import Handle

scene = helper_module(__file__, "a1_scene")
MOD = "render_generic"
R_MAJOR, R_MINOR = 1.3, 0.45


def _need(student: Student, name: str) -> None:
    names = student.names(MOD)
    if name not in names:
        raise NeedsReview(f"{MOD}.py has no {name}(); the submission may use another layout",
                          f"names the file defines: {', '.join(sorted(names))[:500]}")


# -- 5.1 -------------------------------------------------------------------------------------------
def _camera(student: Student, view: dict) -> Handle:
    """A lite3d PerspectiveCameras (pytorch3d's class) in NDC, built inside the sandbox."""
    if "torch" not in student.names(MOD):
        raise NeedsReview(f"{MOD}.py does not import torch, which the grader uses to build cameras in the sandbox",
                          "a TA runs the code")
    importlib = student.call(MOD, "torch.sys.modules.get", "importlib", ret="handle")
    lite3d = student.call(importlib, "import_module", "lite3d", ret="handle")
    return student.call(lite3d, "PerspectiveCameras", ret="handle",
                        focal_length=Tensor(view["focal_length"][None]), principal_point=Tensor(view["principal_point"][None]),
                        R=Tensor(view["R"][None]), T=Tensor(view["T"][None]))


def _clouds(student: Student) -> tuple[list, list]:
    """(the student's three (points, rgb) clouds, the expected two) on a hidden pair of views."""
    _need(student, "rgbd_point_clouds")
    views = scene.views(seed=7)
    data = {}
    for i, view in enumerate(views, 1):
        data.update({f"rgb{i}": Tensor(view["rgb"]), f"mask{i}": Tensor(view["mask"]),
                     f"depth{i}": Tensor(view["depth"]), f"cameras{i}": _camera(student, view)})
    got = student.call(MOD, "rgbd_point_clouds", data)
    if not isinstance(got, (list, tuple)) or len(got) != 3:
        raise CheckFailed("rgbd_point_clouds should return three (points, rgba) pairs", f"got {type(got).__name__}")
    clouds = []
    for name, pair in zip(("first", "second", "union"), got):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise CheckFailed(f"the {name} cloud should be a pair (points, rgba)")
        pts = as_array(pair[0], f"the {name} cloud's points").reshape(-1, 3)
        rgb = as_array(pair[1], f"the {name} cloud's colours")
        rgb = rgb.reshape(len(pts), -1)[:, :3] if rgb.size and rgb.size % max(len(pts), 1) == 0 else rgb
        clouds.append((pts, rgb))
    expected = [scene.unproject(v["rgb"], v["mask"], v["depth"], v["focal_length"].astype(np.float64),
                                v["principal_point"].astype(np.float64), v["R"].astype(np.float64),
                                v["T"].astype(np.float64)) for v in views]
    return clouds, expected


def _same_cloud(got: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray], name: str) -> None:
    pts, rgb = got
    want_pts, want_rgb = expected
    if len(pts) != len(want_pts):
        raise CheckFailed(f"the {name} cloud has the wrong number of points", f"expected {len(want_pts)}, got {len(pts)}",
                          "one point per pixel of the object's mask")
    if rgb.shape != (len(pts), 3):
        raise CheckFailed(f"the {name} cloud's colours should be one RGB(A) row per point", f"got shape {rgb.shape}")
    dist, idx = cKDTree(want_pts).query(pts)
    far = dist > 1e-4
    if far.any() or len(set(idx.tolist())) != len(idx):
        raise CheckFailed(f"the {name} cloud's points are not where the depth image puts them",
                          f"{int(far.sum())} of {len(pts)} points are more than 1e-4 from the surface points "
                          f"(worst {dist.max():.3g})",
                          "unproject each view with its own camera; keep only the masked pixels")
    if not np.allclose(rgb, want_rgb[idx], atol=1e-5):
        raise CheckFailed(f"the {name} cloud's colours do not belong to their points",
                          f"{int((~np.isclose(rgb, want_rgb[idx], atol=1e-5).all(1)).sum())} points have another pixel's colour")


@pytest.mark.item("5.1.1", weight=3, timeout=60, module=MOD)
def test_rgbd_clouds_of_each_view(student: Student) -> None:
    """the clouds of the two views are their depth images unprojected with their own cameras"""
    clouds, expected = _clouds(student)
    _same_cloud(clouds[0], expected[0], "first")
    _same_cloud(clouds[1], expected[1], "second")


@pytest.mark.item("5.1.1", weight=2, timeout=60, module=MOD)
def test_rgbd_union(student: Student) -> None:
    """the third cloud is the union of the two views' clouds"""
    clouds, expected = _clouds(student)
    union = (np.concatenate([expected[0][0], expected[1][0]]), np.concatenate([expected[0][1], expected[1][1]]))
    _same_cloud(clouds[2], union, "union")


# -- 5.2 -------------------------------------------------------------------------------------------
def _angles(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)


def _torus_points(student: Student, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    _need(student, "torus_parametric")
    got = as_array(student.call(MOD, "torus_parametric", Tensor(theta), Tensor(phi), R=R_MAJOR, r=R_MINOR),
                   "torus_parametric(...)")
    if got.shape != theta.shape + (3,):
        raise CheckFailed("torus_parametric should return one (x, y, z) point per angle pair",
                          f"expected {theta.shape + (3,)}, got {got.shape}")
    return got


@pytest.mark.item("5.2.1", weight=2, timeout=30, module=MOD)
def test_torus_points_on_surface(student: Student) -> None:
    """the parametric samples satisfy the torus's implicit equation (R - sqrt(x^2 + y^2))^2 + z^2 = r^2"""
    theta, phi = _angles(52)
    p = _torus_points(student, theta, phi)
    residual = (R_MAJOR - np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)) ** 2 + p[:, 2] ** 2 - R_MINOR ** 2
    if np.abs(residual).max() > 1e-9:
        raise CheckFailed("the samples are not on the torus", f"{int((np.abs(residual) > 1e-9).sum())} of {len(p)} points "
                          f"miss it (max |F| {np.abs(residual).max():.3g}, tolerance 1e-9)",
                          "R is the distance from the z axis to the tube's centre, r the tube's radius; keep the input's dtype")


@pytest.mark.item("5.2.1", weight=3, timeout=30, module=MOD)
def test_torus_parametric_form(student: Student) -> None:
    """each (theta, phi) maps to the tube's point at angle theta on the circle at angle phi around the z axis"""
    theta, phi = _angles(53)
    p = _torus_points(student, theta, phi)
    ring = R_MAJOR + R_MINOR * np.cos(theta)
    expected = np.stack([ring * np.cos(phi), ring * np.sin(phi), R_MINOR * np.sin(theta)], -1)
    bad = ~np.isclose(p, expected, atol=1e-9).all(1)
    if bad.any():
        raise CheckFailed("the points do not follow the torus's parametrisation", f"{int(bad.sum())} of {len(p)} points differ",
                          "theta turns around the tube, phi around the z axis")


# -- 5.3 -------------------------------------------------------------------------------------------
@pytest.mark.item("5.3.1", weight=3, timeout=30, module=MOD)
def test_torus_implicit_zero_set(student: Student) -> None:
    """the implicit function is zero on the torus and has opposite signs inside and outside the tube"""
    _need(student, "torus_implicit")
    theta, phi = _angles(54, 300)
    rng = np.random.default_rng(55)
    scale = np.concatenate([np.ones(300), rng.uniform(0.1, 0.9, 300), rng.uniform(1.1, 2.0, 300)])  # on, inside, outside
    theta, phi = np.tile(theta, 3), np.tile(phi, 3)
    ring = R_MAJOR + scale * R_MINOR * np.cos(theta)
    X, Y, Z = ring * np.cos(phi), ring * np.sin(phi), scale * R_MINOR * np.sin(theta)
    F = as_array(student.call(MOD, "torus_implicit", Tensor(X), Tensor(Y), Tensor(Z), R=R_MAJOR, r=R_MINOR),
                 "torus_implicit(...)").reshape(-1)
    if F.shape != X.shape:
        raise CheckFailed("torus_implicit should return one value per point", f"expected {X.shape}, got {F.shape}")
    on, inside, outside = F[:300], F[300:600], F[600:]
    if np.abs(on).max() > 1e-9:
        raise CheckFailed("the implicit function is not zero on the torus", f"max |F| on the surface {np.abs(on).max():.3g}",
                          "the surface is the set of points at distance r from the circle of radius R around the z axis")
    sign = np.sign(inside[0])
    if sign == 0 or not ((np.sign(inside) == sign).all() and (np.sign(outside) == -sign).all()):
        raise CheckFailed("the implicit function does not separate the inside of the tube from the outside",
                          f"{int((np.sign(inside) != sign).sum() + (np.sign(outside) != -sign).sum())} points have the wrong sign")


@pytest.mark.item("5.3.1", weight=3, timeout=60, module=MOD)
def test_torus_mesh_on_surface(student: Student) -> None:
    """the marching-cubes mesh's vertices lie on the torus, in world coordinates, and its faces are valid triangles"""
    _need(student, "torus_mesh")
    out = student.call(MOD, "torus_mesh", voxel_size=40, R=R_MAJOR, r=R_MINOR)
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        raise CheckFailed("torus_mesh should return (vertices, faces)")
    verts, faces = as_array(out[0], "torus mesh vertices"), as_array(out[1], "torus mesh faces")
    if verts.ndim != 2 or verts.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3 or len(faces) < 100:
        raise CheckFailed("torus_mesh should return (V, 3) vertices and (F, 3) faces", f"got {verts.shape} and {faces.shape}")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise CheckFailed("the torus mesh's faces index vertices that do not exist")
    dist = np.abs(np.sqrt((np.sqrt(verts[:, 0] ** 2 + verts[:, 1] ** 2) - R_MAJOR) ** 2 + verts[:, 2] ** 2) - R_MINOR)
    spacing = 2 * 1.1 * (R_MAJOR + R_MINOR) / 39
    if dist.max() > spacing:
        raise CheckFailed("the torus mesh's vertices are not on the torus", f"the farthest is {dist.max():.3g} from it "
                          f"(one voxel is about {spacing:.3g})",
                          "marching cubes returns voxel indices: map them back to world coordinates")
    extent = verts.max(0) - verts.min(0)
    if not np.allclose(extent, [2 * (R_MAJOR + R_MINOR)] * 2 + [2 * R_MINOR], atol=spacing):
        raise CheckFailed("the torus mesh does not span the whole torus", f"its extent is {extent.round(3)}")
