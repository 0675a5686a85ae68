"""What the A1 checks and the fixture generator share: an analytic RGB-D scene (spheres seen by
pytorch3d-convention cameras in NDC) and the grader's own unprojection of it, both from the formulas
(never from the student's objects nor from the reference solution)."""
from __future__ import annotations

import numpy as np

SPHERES = ((np.array([0.0, 0.0, 0.0]), 1.0), (np.array([0.9, 0.7, 0.4]), 0.45))


def look_at(dist: float, elev: float, azim: float) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), T (3,)) of a camera at spherical angles (degrees) looking at the origin, +y up, in
    pytorch3d's row-vector convention X_view = X_world @ R + T (+X left, +Y up, +Z forward)."""
    e, a = np.radians(elev), np.radians(azim)
    C = dist * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    z = -C / np.linalg.norm(C)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)
    return R, -C @ R


def ndc_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The course's unproject_depth_image grid: X, Y (S, S) from linspace(1, -1, S), rows first."""
    ndc = np.linspace(1.0, -1.0, size)
    Y, X = np.meshgrid(ndc, ndc, indexing="ij")
    return X, Y


def rgbd_view(size: int, focal, principal, R: np.ndarray, T: np.ndarray, spheres=SPHERES):
    """(rgb (S, S, 3), mask (S, S), depth (S, S)) float32 of the spheres seen by a PerspectiveCameras in
    NDC: the depth is the view-space Z of the nearest hit at each pixel's NDC point (0 where none)."""
    X, Y = ndc_grid(size)
    d_view = np.stack([(X - principal[0]) / focal[0], (Y - principal[1]) / focal[1], np.ones_like(X)], -1)  # Z = 1
    d_world = d_view @ R.T  # (S, S, 3) world displacement per unit of view Z
    C = -T @ R.T
    depth = np.full((size, size), np.inf)
    normal = np.zeros((size, size, 3))
    for centre, radius in spheres:
        oc = C - centre
        a = (d_world ** 2).sum(-1)
        b = 2 * (d_world @ oc)
        c = oc @ oc - radius ** 2
        disc = b ** 2 - 4 * a * c
        hit = disc >= 0
        z = np.where(hit, (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a), np.inf)
        z = np.where(z > 0, z, np.inf)
        nearer = z < depth
        depth = np.where(nearer, z, depth)
        point = C + z[..., None] * d_world
        normal = np.where(nearer[..., None], (point - centre) / radius, normal)
    mask = np.isfinite(depth)
    rgb = np.where(mask[..., None], (normal + 1) / 2, 1.0)
    return rgb.astype(np.float32), mask.astype(np.float32), np.where(mask, depth, 0.0).astype(np.float32)


def unproject(rgb, mask, depth, focal, principal, R, T) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) and rgb (N, 3) of the masked pixels, row-major, in float64."""
    X, Y = ndc_grid(rgb.shape[0])
    view = np.stack([(X - principal[0]) / focal[0] * depth, (Y - principal[1]) / focal[1] * depth, depth], -1)
    world = (view - T) @ R.T  # X_view = X_world @ R + T
    keep = mask > 0.5
    return world[keep], np.asarray(rgb, np.float64)[keep]


def views(seed: int) -> list[dict[str, np.ndarray]]:
    """Two views of the scene with their cameras (the fixture's public pair is seed 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for azim in (-35.0 + 10 * rng.random(), 40.0 + 10 * rng.random()):
        R, T = look_at(4.0 + rng.random(), 10.0 + 10 * rng.random(), azim)
        focal = np.array([2.0, 2.0]) + 0.2 * rng.random()
        principal = 0.05 * (rng.random(2) - 0.5)
        rgb, mask, depth = rgbd_view(24, focal, principal, R, T)
        out.append(dict(rgb=rgb, mask=mask, depth=depth, focal_length=focal.astype(np.float32),
                        principal_point=principal.astype(np.float32), R=R.astype(np.float32), T=T.astype(np.float32)))
    return out
