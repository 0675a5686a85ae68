"""Grader-side oracles for the A4 checks, in float64 numpy, written from the definitions (never from a
student's objects): pytorch3d's row-vector cameras in screen space, the 3DGS projection, alpha
compositing, and the offline diffusion stand-in's schedule and noise prediction. Trusted code."""
from __future__ import annotations

import numpy as np

from grader.checks import Tensor


# -- cameras -----------------------------------------------------------------------------------------
def look_at(dist: float, elev_deg: float, azim_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-vector (R, T) of a camera at spherical angles looking at the origin with +Y up
    (X_view = X_world @ R + T; the camera looks along +Z)."""
    e, a = np.radians(elev_deg), np.radians(azim_deg)
    eye = dist * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    z = -eye / np.linalg.norm(eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)  # columns are the camera axes: X @ R gives view coordinates
    T = -eye @ R
    return R, T


def to_view(points: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    return points @ R + T


def camera(student, module: str, R, T, focal, principal, width: int, height: int):
    """A lite3d PerspectiveCameras in screen space, built in the sandbox from the student's module."""
    return student.call(module, "PerspectiveCameras", focal_length=Tensor(np.asarray([focal], np.float32)),
                        principal_point=Tensor(np.asarray([principal], np.float32)),
                        R=Tensor(np.asarray(R, np.float32)[None]), T=Tensor(np.asarray(T, np.float32)[None]),
                        in_ndc=False, image_size=((height, width),), ret="handle")


# -- Gaussians ---------------------------------------------------------------------------------------
def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def cov_3d(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(N, 3, 3) R diag(s^2) R^T; (N, 1) scales are isotropic."""
    s = np.broadcast_to(scales, (len(scales), 3))
    R = quat_to_matrix(quats)
    return np.einsum("nij,nj,nkj->nik", R, s ** 2, R)


def jacobian(means: np.ndarray, R, T, focal, img_size) -> np.ndarray:
    """(N, 2, 3) Jacobian of (fx X / Z, fy Y / Z) at the view-space means, with the course's clamp."""
    fx, fy = focal
    W, H = img_size
    v = to_view(means, R, T)
    tz = v[:, 2]
    tx = np.clip(v[:, 0] / tz, -1.3 * 0.5 * W / fx, 1.3 * 0.5 * W / fx) * tz
    ty = np.clip(v[:, 1] / tz, -1.3 * 0.5 * H / fy, 1.3 * 0.5 * H / fy) * tz
    J = np.zeros((len(means), 2, 3))
    J[:, 0, 0], J[:, 1, 1] = fx / tz, fy / tz
    J[:, 0, 2], J[:, 1, 2] = -fx * tx / tz ** 2, -fy * ty / tz ** 2
    return J


def cov_2d(means, quats, scales, R, T, focal, img_size) -> np.ndarray:
    """(N, 2, 2) J W Sigma W^T J^T + 0.3 I with W = R^T (R is row-vector)."""
    J = jacobian(means, R, T, focal, img_size)
    JW = J @ np.asarray(R).T
    return JW @ cov_3d(quats, scales) @ np.swapaxes(JW, 1, 2) + 0.3 * np.eye(2)


def means_2d(means, R, T, focal, principal) -> np.ndarray:
    v = to_view(means, R, T)
    return np.stack([focal[0] * v[:, 0] / v[:, 2] + principal[0], focal[1] * v[:, 1] / v[:, 2] + principal[1]], -1)


def power(points: np.ndarray, mu: np.ndarray, cov_inv: np.ndarray) -> np.ndarray:
    """(N, P) -1/2 (x - mu)^T Sigma^-1 (x - mu) for points (P, 2), means (N, 2)."""
    d = points[None, :, :] - mu[:, None, :]
    return -0.5 * np.einsum("npi,nij,npj->np", d, cov_inv, d)


def pixel_grid(width: int, height: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width), np.arange(height), indexing="xy")
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)  # (H*W, 2)


def alphas(opacities, mu, cov, width, height) -> np.ndarray:
    P = power(pixel_grid(width, height), mu, np.linalg.inv(cov))
    a = opacities[:, None] * np.where(P > 0, 0.0, np.exp(np.minimum(P, 0.0)))
    a = np.minimum(a, 0.99).reshape(-1, height, width)
    return np.where(a < 1 / 255.0, 0.0, a)


def transmittance(a: np.ndarray, start=None) -> np.ndarray:
    S = np.ones((1,) + a.shape[1:]) if start is None else np.asarray(start, np.float64)
    T = np.cumprod(np.concatenate([S, 1.0 - a], 0), 0)[:-1]
    return np.where(T < 1e-4, 0.0, T)


def splat(means, quats, scales, colours, opacities, R, T, focal, principal, width, height):
    """image (H, W, 3), depth (H, W, 1), mask (H, W, 1) of depth-ordered Gaussians (activated parameters)."""
    mu = means_2d(means, R, T, focal, principal)
    cov = cov_2d(means, quats, scales, R, T, focal, (width, height))
    a = alphas(opacities, mu, cov, width, height)
    w = (a * transmittance(a))[..., None]  # (N, H, W, 1)
    z = to_view(means, R, T)[:, 2]
    return (w * colours[:, None, None, :]).sum(0), (w * z[:, None, None, None]).sum(0), w.sum(0)


def render(pre_act_quats, means, pre_act_scales, colours, pre_act_opacities, R, T, focal, principal, width, height):
    """The whole scene: filter z >= 0, sort by depth, activate, splat in one call, black background."""
    z = to_view(means, R, T)[:, 2]
    keep = np.nonzero(z >= 0)[0]
    idx = keep[np.argsort(z[keep], kind="stable")]
    q = pre_act_quats[idx] / np.linalg.norm(pre_act_quats[idx], axis=1, keepdims=True)
    s = np.exp(pre_act_scales[idx])
    o = 1 / (1 + np.exp(-pre_act_opacities[idx]))
    image, depth, mask = splat(means[idx], q, s, colours[idx], o, R, T, focal, principal, width, height)
    return mask * image, depth, mask  # the given background blend with black


# -- the offline diffusion stand-in (sds_offline.py) ---------------------------------------------------
def alphas_cumprod(n: int = 1000) -> np.ndarray:
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, n, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas).astype(np.float32).astype(np.float64)


def predicted_noise(sample: np.ndarray, t: float, context: np.ndarray) -> np.ndarray:
    """sds_offline.predicted_noise for one sample (1, C, h, w) and one embedding (1, L, D)."""
    c = sample.shape[1]
    ctx = context.reshape(context.shape[0], -1)
    k = ctx.shape[1] - ctx.shape[1] % c
    per_channel = ctx[:, :k].reshape(ctx.shape[0], -1, c).mean(1)[:, :, None, None]
    channel = np.arange(c)[None, :, None, None]
    return 0.5 * np.tanh(sample) + 0.1 * np.sin(t / 100.0 + channel) + per_channel
