"""Mesh helpers with pytorch3d's names: ico_sphere (the unit icosphere the mesh decoders deform)."""
from __future__ import annotations

import math

import torch

from .structures import Meshes


def _icosahedron() -> tuple[torch.Tensor, torch.Tensor]:
    g = (1.0 + math.sqrt(5.0)) / 2.0
    verts = torch.tensor([
        [-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0],
        [0, -1, g], [0, 1, g], [0, -1, -g], [0, 1, -g],
        [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1],
    ], dtype=torch.float64)
    faces = torch.tensor([
        [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
        [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
        [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
        [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
    ], dtype=torch.int64)
    return verts / verts.norm(dim=1, keepdim=True), faces


def _subdivide(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each triangle into four at its edge midpoints (shared edges share their midpoint)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 0)
    unique, inverse = torch.unique(torch.sort(edges, dim=1).values, dim=0, return_inverse=True)
    mids = (verts[unique[:, 0]] + verts[unique[:, 1]]) / 2.0
    m = inverse.reshape(3, -1) + verts.shape[0]  # midpoint index of edge (0,1), (1,2), (2,0) per face
    a, b, c = faces.unbind(1)
    ab, bc, ca = m[0], m[1], m[2]
    new_faces = torch.cat([torch.stack(f, 1) for f in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))], 0)
    return torch.cat([verts, mids], 0), new_faces


def ico_sphere(level: int = 0, device=None) -> Meshes:
    """The unit sphere as an icosahedron subdivided `level` times (level 4: 2562 vertices, 5120 faces),
    faces wound counter-clockwise seen from outside."""
    verts, faces = _icosahedron()
    for _ in range(int(level)):
        verts, faces = _subdivide(verts, faces)
        verts = verts / verts.norm(dim=1, keepdim=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if str(device).startswith("cuda") else device
    return Meshes([verts.to(torch.float32).to(device)], [faces.to(device)])
