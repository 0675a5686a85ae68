"""Nearest neighbours and surface sampling with pytorch3d.ops' names and conventions, in plain torch.

knn_points(p1, p2, K=1): for each point of p1 (N, P1, D) its K nearest points of p2 (N, P2, D), batch
by batch (never across the batch): a named tuple (dists, idx, knn) with SQUARED distances (N, P1, K)
sorted ascending, indices into p2 (N, P1, K) and, with return_nn=True, the neighbours (N, P1, K, D).
Brute force (all pairs, in chunks of p1), so it needs no compiled extension; gradients flow to p1
and p2 through the distances and neighbours.

sample_points_from_meshes(meshes, num_samples): points on each mesh's surface, faces chosen with
probability proportional to their area and uniform barycentric coordinates inside the face;
gradients flow to the vertices.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

_CHUNK = 1 << 22  # pairs of points per block of the distance matrix


class KNN(NamedTuple):
    dists: torch.Tensor
    idx: torch.Tensor
    knn: torch.Tensor | None


def _lengths(lengths: torch.Tensor | None, n: int, p: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.full((n,), p, dtype=torch.int64, device=device)
    return torch.as_tensor(lengths, device=device).to(torch.int64)


def knn_gather(x: torch.Tensor, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """x (N, P2, U), idx (N, P1, K) -> (N, P1, K, U): x[n, idx[n, i, k]]; entries with idx < 0 are 0."""
    if x.dim() != 3 or idx.dim() != 3 or x.shape[0] != idx.shape[0]:
        raise ValueError(f"knn_gather: x must be (N, P2, U) and idx (N, P1, K); got {tuple(x.shape)} and {tuple(idx.shape)}")
    n, p1, k = idx.shape
    safe = idx.clamp(min=0)
    out = x.gather(1, safe.reshape(n, p1 * k, 1).expand(-1, -1, x.shape[2])).reshape(n, p1, k, x.shape[2])
    return out.masked_fill((idx < 0)[..., None], 0.0)


def knn_points(p1: torch.Tensor, p2: torch.Tensor, lengths1: torch.Tensor | None = None,
               lengths2: torch.Tensor | None = None, norm: int = 2, K: int = 1, version: int = -1,
               return_nn: bool = False, return_sorted: bool = True) -> KNN:
    """The K nearest points of p2 for every point of p1, per batch element (see the module docstring).

    p1: (N, P1, D), p2: (N, P2, D) float; lengths1/lengths2: (N,) how many points of each cloud are real
    (the rest is padding, ignored). norm=2 gives squared Euclidean distances (pytorch3d's default),
    norm=1 L1 distances. Padded query points get dists 0 and idx -1; so does k >= lengths2[n]."""
    if p1.dim() != 3 or p2.dim() != 3 or p1.shape[0] != p2.shape[0] or p1.shape[2] != p2.shape[2]:
        raise ValueError(f"knn_points: p1 and p2 must be (N, P1, D) and (N, P2, D); got {tuple(p1.shape)} and {tuple(p2.shape)}")
    if norm not in (1, 2):
        raise ValueError(f"knn_points: norm must be 1 or 2; got {norm}")
    n, q, d = p1.shape
    p = p2.shape[1]
    K = int(K)
    l1 = _lengths(lengths1, n, q, p1.device)
    l2 = _lengths(lengths2, n, p, p1.device)
    kk = min(K, p)
    idx = torch.full((n, q, K), -1, dtype=torch.int64, device=p1.device)
    if kk > 0 and q > 0:
        valid2 = torch.arange(p, device=p1.device)[None, :] < l2[:, None]  # (N, P2)
        step = max(1, _CHUNK // max(1, p * max(1, d)))
        with torch.no_grad():  # choose the neighbours without gradients; distances are recomputed below
            a, b = p1.detach(), p2.detach()
            for s in range(0, q, step):
                block = a[:, s:s + step]
                if norm == 2:
                    dd = (block[:, :, None, :] - b[:, None, :, :]).pow(2).sum(-1)
                else:
                    dd = (block[:, :, None, :] - b[:, None, :, :]).abs().sum(-1)
                dd = dd.masked_fill(~valid2[:, None, :], float("inf"))
                top = dd.topk(kk, dim=2, largest=False, sorted=True)
                found = top.indices.masked_fill(torch.isinf(top.values), -1)
                idx[:, s:s + step, :kk] = found
        idx = idx.masked_fill((torch.arange(q, device=p1.device)[None, :] >= l1[:, None])[..., None], -1)
    nn = knn_gather(p2, idx)  # (N, P1, K, D)
    diff = p1[:, :, None, :] - nn
    dists = diff.pow(2).sum(-1) if norm == 2 else diff.abs().sum(-1)
    dists = dists.masked_fill(idx < 0, 0.0)
    return KNN(dists=dists, idx=idx, knn=nn if return_nn else None)


def sample_points_from_meshes(meshes, num_samples: int = 10000, return_normals: bool = False,
                              return_textures: bool = False):
    """(N, num_samples, 3) points on each mesh's surface (area-weighted faces, uniform barycentrics);
    with return_normals also (N, num_samples, 3) unit normals of the faces they lie on. Uses torch's
    global random generator (seed it with torch.manual_seed for repeatable samples)."""
    if return_textures:
        raise NotImplementedError("sample_points_from_meshes(return_textures=True) is not available in lite3d")
    if meshes.isempty():
        raise ValueError("sample_points_from_meshes: the meshes are empty")
    num_samples = int(num_samples)
    points, normals = [], []
    for verts, faces in zip(meshes.verts_list(), meshes.faces_list()):
        if faces.shape[0] == 0:
            raise ValueError("sample_points_from_meshes: a mesh has no faces")
        a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
        cross = torch.linalg.cross(b - a, c - a, dim=1)
        with torch.no_grad():
            areas = 0.5 * cross.norm(dim=1)
            if not torch.isfinite(areas).all() or float(areas.sum()) <= 0:
                raise ValueError("sample_points_from_meshes: the faces have no area to sample")
            chosen = torch.multinomial(areas, num_samples, replacement=True)
            r1 = torch.rand(num_samples, 1, device=verts.device, dtype=verts.dtype).sqrt()
            r2 = torch.rand(num_samples, 1, device=verts.device, dtype=verts.dtype)
        w0, w1, w2 = 1.0 - r1, r1 * (1.0 - r2), r1 * r2
        points.append(w0 * a[chosen] + w1 * b[chosen] + w2 * c[chosen])
        normals.append(torch.nn.functional.normalize(cross[chosen], dim=1, eps=1e-12))
    pts = torch.stack(points, 0)
    return (pts, torch.stack(normals, 0)) if return_normals else pts


__all__ = ["KNN", "knn_gather", "knn_points", "sample_points_from_meshes"]
