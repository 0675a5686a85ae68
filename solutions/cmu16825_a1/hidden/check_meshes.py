"""Hidden checks of the meshes (2.1 tetrahedron, 2.2 cube) and of the retexturing (3). Trusted code:
counts, closedness, winding and volume are computed here from the student's vertices and faces."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from grader.checks import CheckFailed, Student, Tensor, as_array

MOD = "meshes"
SHAPES = {"tetrahedron": (4, 4, "2.1.1"), "cube": (8, 12, "2.2.1")}


def _unbatch(arr: np.ndarray) -> np.ndarray:
    """A batch of one, as pytorch3d's structures take them, read as the single item."""
    return arr[0] if arr.ndim == 3 and arr.shape[0] == 1 else arr


def _mesh(student: Student, shape: str) -> tuple[np.ndarray, np.ndarray]:
    out = student.call(MOD, shape)
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        raise CheckFailed(f"{shape}() should return (vertices, faces)", f"got {type(out).__name__}")
    verts = _unbatch(as_array(out[0], f"{shape} vertices"))
    faces = _unbatch(as_array(out[1], f"{shape} faces"))
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise CheckFailed(f"{shape} vertices should be (V, 3)", f"got shape {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise CheckFailed(f"{shape} faces should be (F, 3) triangles", f"got shape {faces.shape}",
                          "a square side is two triangles" if faces.ndim == 2 and faces.shape[1] == 4 else "")
    if not np.array_equal(faces, np.round(faces)) or faces.min() < 0 or faces.max() >= len(verts):
        raise CheckFailed(f"{shape} faces index vertices that do not exist",
                          f"indices must be integers in [0, {len(verts) - 1}]; got range [{faces.min():g}, {faces.max():g}]")
    return verts, faces.astype(np.int64)


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _counts(student: Student, shape: str) -> None:
    verts, faces = _mesh(student, shape)
    nv, nf, _ = SHAPES[shape]
    if (len(verts), len(faces)) != (nv, nf):
        raise CheckFailed(f"the {shape} has the wrong number of vertices or triangles",
                          f"got {len(verts)} vertices and {len(faces)} triangles",
                          "every vertex is shared by the faces that meet there; a square is two triangles")
    if shape == "cube":
        dist = np.linalg.norm(verts[:, None] - verts[None], axis=-1)[np.triu_indices(8, 1)]
        side = dist.min()
        expected = np.sort(np.repeat(side * np.array([1.0, np.sqrt(2), np.sqrt(3)]), [12, 12, 4]))
        if side <= 1e-9 or not np.allclose(np.sort(dist), expected, rtol=1e-5):
            raise CheckFailed("the eight vertices are not the corners of a cube",
                              "the pairwise distances should be s (12 pairs), s sqrt 2 (12) and s sqrt 3 (4)")


def _closed(student: Student, shape: str) -> None:
    verts, faces = _mesh(student, shape)
    directed = Counter((int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])))
    undirected = Counter(tuple(sorted(e)) for e in directed.elements())
    open_edges = [e for e, k in undirected.items() if k != 2]
    if open_edges:
        raise CheckFailed(f"the {shape} is not closed", f"{len(open_edges)} edge(s) belong to a number of triangles other than two",
                          "each edge of a closed surface is shared by exactly two triangles")
    twice = [e for e, k in directed.items() if k > 1]
    if twice:
        raise CheckFailed(f"the {shape}'s triangles are not wound consistently",
                          f"{len(twice)} edge(s) are run in the same direction by both of their triangles",
                          "neighbouring triangles run their shared edge in opposite directions")


def _outward(student: Student, shape: str) -> None:
    verts, faces = _mesh(student, shape)
    volume = _signed_volume(verts, faces)
    centre = verts.mean(0)
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    normals = np.cross(b - a, c - a)
    facing = np.einsum("ij,ij->i", normals, (a + b + c) / 3 - centre)  # the shapes are convex
    if volume <= 1e-9 or (facing <= 0).any():
        raise CheckFailed(f"the {shape}'s faces do not all face outwards",
                          f"signed volume {volume:.4g}; {int((facing <= 0).sum())} of {len(faces)} triangles face inwards",
                          "list each triangle's vertices counter-clockwise as seen from outside")


@pytest.mark.item("2.1.1", weight=1, timeout=30, module=MOD)
@pytest.mark.parametrize("prop", ["counts", "closed", "outward"], ids=["counts", "closed", "outward"])
def test_tetrahedron(student: Student, prop: str) -> None:
    """the tetrahedron: 4 vertices and 4 triangles, closed with consistent winding, faces outwards"""
    {"counts": _counts, "closed": _closed, "outward": _outward}[prop](student, "tetrahedron")


@pytest.mark.item("2.2.1", weight=1, timeout=30, module=MOD)
@pytest.mark.parametrize("prop", ["counts", "closed", "outward"], ids=["counts", "closed", "outward"])
def test_cube(student: Student, prop: str) -> None:
    """the cube: 8 corners and 12 triangles, closed with consistent winding, faces outwards"""
    {"counts": _counts, "closed": _closed, "outward": _outward}[prop](student, "cube")


# -- 3: retexturing -----------------------------------------------------------------------------------
def _retexture(student: Student, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    verts = (rng.normal(size=(60, 3)) * [0.5, 0.7, 1.3] + [0.2, -0.1, 0.4]).astype(np.float32)
    c1, c2 = rng.random(3).round(3), rng.random(3).round(3)
    got = _unbatch(as_array(student.call(MOD, "retexture", Tensor(verts), c1.tolist(), c2.tolist()), "retexture(...)"))
    if got.shape != (60, 3):
        raise CheckFailed("retexture should return one RGB colour per vertex", f"expected (60, 3), got {got.shape}")
    return verts.astype(np.float64), c1, c2, got


@pytest.mark.item("3.1", weight=2, timeout=30, module=MOD)
def test_retexture_endpoints(student: Student) -> None:
    """the front vertex (smallest z) gets color1 and the back vertex (largest z) gets color2"""
    verts, c1, c2, got = _retexture(student, 31)
    front, back = int(np.argmin(verts[:, 2])), int(np.argmax(verts[:, 2]))
    if not np.allclose(got[front], c1, atol=1e-5) or not np.allclose(got[back], c2, atol=1e-5):
        hint = "alpha is 0 at z_min and 1 at z_max"
        if np.allclose(got[front], c2, atol=1e-5) and np.allclose(got[back], c1, atol=1e-5):
            hint = "color1 belongs to the front, the smallest z"
        raise CheckFailed("the end colours are not color1 at the front and color2 at the back",
                          f"front vertex got {got[front].round(4)}, back vertex got {got[back].round(4)}", hint)


@pytest.mark.item("3.1", weight=4, timeout=30, module=MOD)
def test_retexture_linear_in_z(student: Student) -> None:
    """every vertex's colour blends color1 and color2 linearly in its z"""
    verts, c1, c2, got = _retexture(student, 32)
    z = verts[:, 2]
    alpha = ((z - z.min()) / (z.max() - z.min()))[:, None]
    expected = alpha * c2 + (1 - alpha) * c1
    bad = ~np.isclose(got, expected, atol=1e-5).all(1)
    if bad.any():
        raise CheckFailed("the colours are not a linear blend in z", f"{int(bad.sum())} of {len(z)} vertices differ "
                          f"(max abs diff {np.abs(got - expected).max():.3g})",
                          "alpha = (z - z_min) / (z_max - z_min) from the vertices' z coordinate alone")
