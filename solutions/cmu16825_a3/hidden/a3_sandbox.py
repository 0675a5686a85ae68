"""What the A3 checks share: objects built inside the sandbox (configs, cameras, ray bundles, the given
analytic SDFs) and the grader's own geometry (rays of a look-at camera, ray-sphere hits), computed here
from the formulas and never from the student's objects."""
from __future__ import annotations

import numpy as np

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array
from grader.protocol import Handle


def f32(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float32))


def _importer(student: Student, via: str) -> Handle:
    """The sandbox's importlib, reached through the student's module (every course file imports torch)."""
    if "torch" not in student.names(via):
        raise NeedsReview(f"{via}.py does not import torch under the name `torch`, which the grader uses to build "
                          "cameras and configs in the sandbox", "a TA runs the code")
    return student.call(via, "torch.sys.modules.get", "importlib", ret="handle")


def sandbox_module(student: Student, name: str, via: str = "ray_utils") -> Handle:
    """A handle to a library module inside the sandbox (lite3d, argparse)."""
    return student.call(_importer(student, via), "import_module", name, ret="handle")


def config(student: Student, via: str = "ray_utils", **fields) -> Handle:
    """A config object in the sandbox with attribute access and `in` (an argparse.Namespace), like the
    course's hydra configs; nested dicts become nested configs."""
    argparse = sandbox_module(student, "argparse", via)
    builtins = sandbox_module(student, "builtins", via)
    return _namespace(student, argparse, builtins, fields)


_CALL_KEYWORDS = {"where", "path", "repeat", "stack", "seed", "ret", "timeout"}  # Student.call's own


def _namespace(student: Student, argparse: Handle, builtins: Handle, fields: dict) -> Handle:
    built = {k: (_namespace(student, argparse, builtins, v) if isinstance(v, dict) else v) for k, v in fields.items()}
    ns = student.call(argparse, "Namespace", ret="handle", **{k: v for k, v in built.items() if k not in _CALL_KEYWORDS})
    for k in _CALL_KEYWORDS & set(built):
        student.call(builtins, "setattr", ns, k, built[k], ret="none")
    return ns


# -- cameras: pytorch3d's conventions, computed here --------------------------------------------------
def look_at(dist: float, elev: float, azim: float, at=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R (3, 3) row-vector world-to-view rotation, T (3,), centre C (3,)) of a camera at spherical angles
    (degrees) around `at`, looking at it with +y up: X_view = X_world R + T."""
    e, a = np.radians(elev), np.radians(azim)
    at = np.asarray(at, float)
    C = at + dist * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    z = (at - C) / np.linalg.norm(at - C)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)  # columns are the camera axes: X_view = (X_world - C) @ R
    T = -C @ R
    return R, T, C


def camera(student: Student, R: np.ndarray, T: np.ndarray, focal, principal=(0.0, 0.0)) -> Handle:
    """A lite3d PerspectiveCameras (pytorch3d's class) in NDC, built in the sandbox."""
    lite3d = sandbox_module(student, "lite3d")
    return student.call(lite3d, "PerspectiveCameras", focal_length=f32([focal]), principal_point=f32([principal]),
                        R=f32(R[None]), T=f32(T[None]), ret="handle")


def ray_directions(R: np.ndarray, T: np.ndarray, focal, principal, xy: np.ndarray) -> np.ndarray:
    """Unit world directions of the rays through NDC points xy (N, 2): the view point
    ((x - px) / fx, (y - py) / fy, 1) taken back to the world, minus the centre."""
    f = np.broadcast_to(np.asarray(focal, float), (2,))
    p = np.asarray(principal, float)
    view = np.concatenate([(xy - p) / f, np.ones((len(xy), 1))], axis=1)
    world = (view - T) @ R.T
    C = -T @ R.T
    d = world - C
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def ray_bundle(student: Student, origins: np.ndarray, directions: np.ndarray) -> Handle:
    """The student's RayBundle of rays, with the empty samples get_rays_from_pixels leaves."""
    r = len(origins)
    return student.call("ray_utils", "RayBundle", f32(origins), f32(directions), f32(np.zeros((r, 1, 3))),
                        f32(np.zeros((r, 1, 1))), ret="handle")


def ray_bundle_with_samples(student: Student, points: np.ndarray, lengths: np.ndarray) -> Handle:
    r = points.shape[0]
    return student.call("ray_utils", "RayBundle", f32(points[:, 0]), f32(np.tile([0.0, 0.0, 1.0], (r, 1))),
                        f32(points), f32(lengths), ret="handle")


def field(student: Student, bundle: Handle, name: str, what: str) -> np.ndarray:
    value = student.get(bundle, name)
    return as_array(value, what)


# -- analytic geometry --------------------------------------------------------------------------------
def sphere_hits(origins: np.ndarray, directions: np.ndarray, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """First intersections of rays with the sphere |x| = radius: (t (N,), hit (N,) bool); t along unit
    directions, only forward hits (t >= 0)."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    b = np.sum(origins * d, axis=1)
    c = np.sum(origins ** 2, axis=1) - radius ** 2
    disc = b ** 2 - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return t, (disc > 0) & (t >= 0)


def torus_sdf(points: np.ndarray, R: float, r: float) -> np.ndarray:
    """Torus around the y axis through the origin, radii (R, r)."""
    q = np.stack([np.linalg.norm(points[:, [0, 2]], axis=1) - R, points[:, 1]], axis=1)
    return np.linalg.norm(q, axis=1) - r


def first_crossing(sdf, origins: np.ndarray, directions: np.ndarray, far: float, steps: int = 20000):
    """Brute-force march: (t of the first sign change (NaN if none before `far`), min SDF along the ray)."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    ts = np.linspace(0.0, far, steps)
    t_hit = np.full(len(origins), np.nan)
    lowest = np.zeros(len(origins))
    for i in range(len(origins)):
        vals = sdf(origins[i] + ts[:, None] * d[i])
        lowest[i] = vals.min()
        neg = np.nonzero(vals < 0)[0]
        if len(neg):
            k = neg[0]
            t0, t1, v0, v1 = ts[k - 1], ts[k], vals[k - 1], vals[k]
            t_hit[i] = t0 + (t1 - t0) * v0 / (v0 - v1)
    return t_hit, lowest


def need(condition: bool, what: str, detail: str = "", hint: str = "") -> None:
    if not condition:
        raise CheckFailed(what, detail, hint)
