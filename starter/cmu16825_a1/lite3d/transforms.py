"""Rotations and rigid transforms in plain torch, with pytorch3d's conventions.

Row vectors: a Transform3d holds a (N, 4, 4) matrix M and maps points p (..., 3) to [p, 1] @ M
(then divides by the last coordinate). A rotation R in this convention maps p to p @ R, so it is the
transpose of the usual column-vector rotation matrix. Quaternions are real part first: (w, x, y, z).
The rotation-matrix helpers below (quaternion_to_matrix, axis_angle_to_matrix, euler_angles_to_matrix)
return the usual column-vector matrices, as pytorch3d's do.
"""
from __future__ import annotations

import torch


def _as_tensor(x, dtype=torch.float32, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device) if device is not None else x
    return torch.as_tensor(x, dtype=dtype, device=device)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), any norm, to (..., 3, 3) rotation matrices (column vectors)."""
    q = quaternions / quaternions.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis * angle (radians) to (..., 3, 3) rotation matrices (Rodrigues)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    half = angle / 2
    small = angle < 1e-8
    scale = torch.where(small, 0.5 - angle * angle / 48, torch.sin(half) / torch.where(small, torch.ones_like(angle), angle))
    quat = torch.cat([torch.cos(half), axis_angle * scale], dim=-1)
    return quaternion_to_matrix(quat)


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    flat = {
        "X": (one, zero, zero, zero, c, -s, zero, s, c),
        "Y": (c, zero, s, zero, one, zero, -s, zero, c),
        "Z": (c, -s, zero, s, c, zero, zero, zero, one),
    }[axis]
    return torch.stack(flat, -1).reshape(angle.shape + (3, 3))


def euler_angles_to_matrix(euler_angles: torch.Tensor, convention: str = "XYZ") -> torch.Tensor:
    """(..., 3) angles (radians) about the axes named by `convention`, composed as R_0 @ R_1 @ R_2."""
    if len(convention) != 3 or set(convention) - set("XYZ"):
        raise ValueError(f"convention must be three letters of X, Y, Z; got {convention!r}")
    mats = [_axis_rotation(c, a) for c, a in zip(convention, torch.unbind(euler_angles, -1))]
    return mats[0] @ mats[1] @ mats[2]


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices to (..., 4) unit quaternions (w, x, y, z) with w >= 0."""
    m = matrix
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack([
        torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # (..., 4, 4): candidate k is 4 * q_k * q (exact for the largest |q_k|)
    best = torch.stack([1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1).argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


class Transform3d:
    """A batch of 4x4 transforms in the row-vector convention: points map to [p, 1] @ M."""

    def __init__(self, matrix: torch.Tensor | None = None, dtype=torch.float32, device=None) -> None:
        if matrix is None:
            matrix = torch.eye(4, dtype=dtype, device=device)
        matrix = _as_tensor(matrix, dtype, device)
        self._matrix = matrix[None] if matrix.dim() == 2 else matrix
        if self._matrix.shape[-2:] != (4, 4):
            raise ValueError(f"a Transform3d matrix is (N, 4, 4); got {tuple(matrix.shape)}")

    @property
    def device(self) -> torch.device:
        return self._matrix.device

    def get_matrix(self) -> torch.Tensor:
        return self._matrix

    def __len__(self) -> int:
        return self._matrix.shape[0]

    def compose(self, *others: "Transform3d") -> "Transform3d":
        """This transform, then each of `others` in turn."""
        m = self._matrix
        for o in others:
            m = m @ o.get_matrix().to(m)
        return Transform3d(m)

    def inverse(self) -> "Transform3d":
        return Transform3d(torch.linalg.inv(self._matrix))

    def transform_points(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """(P, 3) or (N, P, 3) points through the transform, divided by the homogeneous coordinate."""
        pts = _as_tensor(points, self._matrix.dtype, self.device)
        squeeze = pts.dim() == 2
        p = pts[None] if squeeze else pts
        homo = torch.cat([p, torch.ones_like(p[..., :1])], -1) @ self._matrix.to(p.dtype)
        w = homo[..., 3:]
        if eps is not None:
            w = torch.where(w.abs() < eps, torch.full_like(w, eps) * torch.where(w < 0, -1.0, 1.0), w)
        out = homo[..., :3] / w
        return out[0] if squeeze and out.shape[0] == 1 else out

    def transform_normals(self, normals: torch.Tensor) -> torch.Tensor:
        n = _as_tensor(normals, self._matrix.dtype, self.device)
        inv_t = torch.linalg.inv(self._matrix[:, :3, :3]).transpose(1, 2)
        out = (n[None] if n.dim() == 2 else n) @ inv_t
        return out[0] if n.dim() == 2 and out.shape[0] == 1 else out

    def to(self, device=None, dtype=None) -> "Transform3d":
        return Transform3d(self._matrix.to(device=device, dtype=dtype or self._matrix.dtype))

    def cuda(self) -> "Transform3d":
        return self.to("cuda" if torch.cuda.is_available() else "cpu")

    def cpu(self) -> "Transform3d":
        return self.to("cpu")


def Rotate(R: torch.Tensor, dtype=torch.float32, device=None) -> Transform3d:  # noqa: N802 - pytorch3d's name
    """p -> p @ R (row vectors): R is the transpose of the column-vector rotation."""
    R = _as_tensor(R, dtype, device)
    R = R[None] if R.dim() == 2 else R
    m = torch.eye(4, dtype=R.dtype, device=R.device).repeat(R.shape[0], 1, 1)
    m[:, :3, :3] = R
    return Transform3d(m)


def Translate(T: torch.Tensor, dtype=torch.float32, device=None) -> Transform3d:  # noqa: N802 - pytorch3d's name
    """p -> p + T."""
    T = _as_tensor(T, dtype, device)
    T = T[None] if T.dim() == 1 else T
    m = torch.eye(4, dtype=T.dtype, device=T.device).repeat(T.shape[0], 1, 1)
    m[:, 3, :3] = T
    return Transform3d(m)
