"""Batches of meshes and point clouds with pytorch3d's interface (lists, padded and packed views).

Meshes(verts, faces): verts a list of (V_i, 3) tensors or a (N, V, 3) tensor, faces likewise with
int64 vertex indices per triangle (counter-clockwise seen from outside = outward normal). Packed
faces index the packed vertices (each mesh's indices offset by the vertices before it); padded faces
are -1 where a mesh has fewer faces.
"""
from __future__ import annotations

from typing import Sequence

import torch


def _as_list(x, dtype=None) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        if x.dim() == 2:
            x = x[None]
        items = list(x.unbind(0))
    else:
        items = [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in x]
    return [t.to(dtype) if dtype is not None else t for t in items]


def _padded(items: Sequence[torch.Tensor], fill: float, width: int) -> torch.Tensor:
    n = max((t.shape[0] for t in items), default=0)
    if not items:
        return torch.zeros(0, 0, width)
    out = items[0].new_full((len(items), n, width), fill)
    for i, t in enumerate(items):
        out[i, : t.shape[0]] = t
    return out


class TexturesVertex:
    """Per-vertex features (colours) of each mesh: a list of (V_i, C) or a (N, V, C) tensor."""

    def __init__(self, verts_features) -> None:
        self._features = _as_list(verts_features)

    def verts_features_list(self) -> list[torch.Tensor]:
        return self._features

    def verts_features_padded(self) -> torch.Tensor:
        return _padded(self._features, 0.0, self._features[0].shape[-1])

    def verts_features_packed(self) -> torch.Tensor:
        return torch.cat(self._features, 0)

    def extend(self, n: int) -> "TexturesVertex":
        return TexturesVertex([f.clone() for _ in range(n) for f in self._features])

    def to(self, device) -> "TexturesVertex":
        return TexturesVertex([f.to(device) for f in self._features])


class Meshes:
    def __init__(self, verts, faces, textures: TexturesVertex | None = None) -> None:
        self._verts = _as_list(verts)
        self._faces = [f[(f >= 0).all(-1)] if f.dim() == 2 else f for f in _as_list(faces, torch.int64)]
        if len(self._verts) != len(self._faces):
            raise ValueError(f"Meshes: {len(self._verts)} vertex sets but {len(self._faces)} face sets")
        for v, f in zip(self._verts, self._faces):
            if v.dim() != 2 or v.shape[-1] != 3:
                raise ValueError(f"Meshes: vertices must be (V, 3); got {tuple(v.shape)}")
            if f.dim() != 2 or f.shape[-1] != 3:
                raise ValueError(f"Meshes: faces must be (F, 3) triangles; got {tuple(f.shape)}")
            if f.numel() and (f.min() < 0 or f.max() >= v.shape[0]):
                raise ValueError(f"Meshes: a face indexes vertex {int(f.max())} of a mesh with {v.shape[0]} vertices")
        self.textures = textures

    # -- views -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._verts)

    def __getitem__(self, index: int) -> "Meshes":
        tex = None if self.textures is None else TexturesVertex([self.textures.verts_features_list()[index]])
        return Meshes([self._verts[index]], [self._faces[index]], tex)

    @property
    def device(self) -> torch.device:
        return self._verts[0].device

    def isempty(self) -> bool:
        return len(self._verts) == 0 or all(v.shape[0] == 0 for v in self._verts)

    def verts_list(self) -> list[torch.Tensor]:
        return self._verts

    def faces_list(self) -> list[torch.Tensor]:
        return self._faces

    def num_verts_per_mesh(self) -> torch.Tensor:
        return torch.tensor([v.shape[0] for v in self._verts], device=self.device)

    def num_faces_per_mesh(self) -> torch.Tensor:
        return torch.tensor([f.shape[0] for f in self._faces], device=self.device)

    def mesh_to_verts_packed_first_idx(self) -> torch.Tensor:
        counts = self.num_verts_per_mesh()
        return torch.cumsum(counts, 0) - counts

    def verts_packed_to_mesh_idx(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self), device=self.device), self.num_verts_per_mesh())

    def faces_packed_to_mesh_idx(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self), device=self.device), self.num_faces_per_mesh())

    def verts_packed(self) -> torch.Tensor:
        return torch.cat(self._verts, 0)

    def faces_packed(self) -> torch.Tensor:
        first = self.mesh_to_verts_packed_first_idx()
        return torch.cat([f + first[i] for i, f in enumerate(self._faces)], 0)

    def verts_padded(self) -> torch.Tensor:
        return _padded(self._verts, 0.0, 3)

    def faces_padded(self) -> torch.Tensor:
        return _padded(self._faces, -1, 3)

    def edges_packed(self) -> torch.Tensor:
        """(E, 2) unique undirected edges of the packed mesh, each as (smaller, larger) index."""
        f = self.faces_packed()
        e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
        e = torch.sort(e, dim=1).values
        return torch.unique(e, dim=0)

    def faces_areas_packed(self) -> torch.Tensor:
        v, f = self.verts_packed(), self.faces_packed()
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        return 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=1)

    def faces_normals_packed(self) -> torch.Tensor:
        v, f = self.verts_packed(), self.faces_packed()
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        return torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=1, eps=1e-12)

    def verts_normals_packed(self) -> torch.Tensor:
        v, f = self.verts_packed(), self.faces_packed()
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        n = torch.linalg.cross(b - a, c - a)  # area-weighted face normals
        out = torch.zeros_like(v).index_add_(0, f[:, 0], n).index_add_(0, f[:, 1], n).index_add_(0, f[:, 2], n)
        return torch.nn.functional.normalize(out, dim=1, eps=1e-12)

    # -- new meshes ----------------------------------------------------------------------------------
    def offset_verts(self, vert_offsets_packed: torch.Tensor) -> "Meshes":
        """A new batch with each packed vertex moved by its offset ((sum V_i, 3), or (3,) for all)."""
        offsets = vert_offsets_packed.expand(self.verts_packed().shape) if vert_offsets_packed.dim() == 1 else vert_offsets_packed
        if offsets.shape != self.verts_packed().shape:
            raise ValueError(f"offset_verts: offsets must be {tuple(self.verts_packed().shape)}; got {tuple(offsets.shape)}")
        moved = list((self.verts_packed() + offsets).split(self.num_verts_per_mesh().tolist(), 0))
        return Meshes(moved, self._faces, self.textures)

    def offset_verts_(self, vert_offsets_packed: torch.Tensor) -> "Meshes":
        """In place: move each packed vertex by its offset."""
        self._verts = self.offset_verts(vert_offsets_packed)._verts
        return self

    def laplacian_packed(self) -> torch.Tensor:
        """The uniform Laplacian L (sum V_i, sum V_i), sparse: L[i, j] = 1 / deg(i) for each neighbour j of
        vertex i, and L[i, i] = -1 (so L @ verts is each vertex's offset from the mean of its neighbours)."""
        v = self.verts_packed()
        e = self.edges_packed()
        n = v.shape[0]
        rows = torch.cat([e[:, 0], e[:, 1]])
        cols = torch.cat([e[:, 1], e[:, 0]])
        deg = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, rows, torch.ones_like(rows, dtype=v.dtype))
        vals = 1.0 / deg.clamp(min=1)[rows]
        idx = torch.cat([torch.stack([rows, cols]), torch.arange(n, device=v.device).expand(2, n)], dim=1)
        data = torch.cat([vals, -torch.ones(n, dtype=v.dtype, device=v.device)])
        return torch.sparse_coo_tensor(idx, data, (n, n), check_invariants=False).coalesce()

    def update_padded(self, new_verts_padded: torch.Tensor) -> "Meshes":
        return Meshes([new_verts_padded[i, : v.shape[0]] for i, v in enumerate(self._verts)], self._faces, self.textures)

    def extend(self, n: int) -> "Meshes":
        tex = None if self.textures is None else self.textures.extend(n)
        return Meshes([v.clone() for _ in range(n) for v in self._verts], [f.clone() for _ in range(n) for f in self._faces], tex)

    def clone(self) -> "Meshes":
        return Meshes([v.clone() for v in self._verts], [f.clone() for f in self._faces], self.textures)

    def detach(self) -> "Meshes":
        return Meshes([v.detach() for v in self._verts], self._faces, self.textures)

    def to(self, device) -> "Meshes":
        tex = None if self.textures is None else self.textures.to(device)
        return Meshes([v.to(device) for v in self._verts], [f.to(device) for f in self._faces], tex)

    def cuda(self) -> "Meshes":
        return self.to("cuda" if torch.cuda.is_available() else "cpu")

    def cpu(self) -> "Meshes":
        return self.to("cpu")


class Pointclouds:
    """A batch of point clouds: a list of (P_i, 3) or a (N, P, 3) tensor, optional (P_i, C) features."""

    def __init__(self, points, normals=None, features=None) -> None:
        self._points = _as_list(points)
        self._normals = None if normals is None else _as_list(normals)
        self._features = None if features is None else _as_list(features)
        for p in self._points:
            if p.dim() != 2 or p.shape[-1] != 3:
                raise ValueError(f"Pointclouds: points must be (P, 3); got {tuple(p.shape)}")

    def __len__(self) -> int:
        return len(self._points)

    @property
    def device(self) -> torch.device:
        return self._points[0].device

    def points_list(self) -> list[torch.Tensor]:
        return self._points

    def points_padded(self) -> torch.Tensor:
        return _padded(self._points, 0.0, 3)

    def points_packed(self) -> torch.Tensor:
        return torch.cat(self._points, 0)

    def num_points_per_cloud(self) -> torch.Tensor:
        return torch.tensor([p.shape[0] for p in self._points], device=self.device)

    def features_list(self) -> list[torch.Tensor] | None:
        return self._features

    def features_padded(self) -> torch.Tensor | None:
        return None if self._features is None else _padded(self._features, 0.0, self._features[0].shape[-1])

    def features_packed(self) -> torch.Tensor | None:
        return None if self._features is None else torch.cat(self._features, 0)

    def normals_list(self) -> list[torch.Tensor] | None:
        return self._normals

    def to(self, device) -> "Pointclouds":
        return Pointclouds([p.to(device) for p in self._points],
                           None if self._normals is None else [n.to(device) for n in self._normals],
                           None if self._features is None else [f.to(device) for f in self._features])

    def cuda(self) -> "Pointclouds":
        return self.to("cuda" if torch.cuda.is_available() else "cpu")

    def cpu(self) -> "Pointclouds":
        return self.to("cpu")
