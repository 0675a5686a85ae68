"""Hidden checks of 7 (extra credit): sampling points uniformly on a mesh's surface. Trusted code: the
samples are located and counted here; the statistics use fixed seeds, so a verdict is repeatable."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array

MOD = "sample_points"
N = 24000
P_FAIL = 1e-4  # a correct sampler fails a test with this probability (fixed seed: the same for every run)
# Two triangles far apart, areas 1 : 3 (the same shape scaled by sqrt 3), not in a coordinate plane.
TRI = np.array([[0.0, 0.0, 0.0], [1.0, 0.2, 0.1], [0.3, 1.1, -0.2]])


def _two_triangles() -> tuple[np.ndarray, np.ndarray]:
    big = TRI * np.sqrt(3.0) + np.array([5.0, -2.0, 1.0])
    verts = np.concatenate([TRI, big]).astype(np.float32)
    return verts, np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int64)


def _sample(student: Student, verts: np.ndarray, faces: np.ndarray, seed: int) -> np.ndarray:
    if "sample_points_on_mesh" not in student.names(MOD):
        raise NeedsReview(f"{MOD}.py has no sample_points_on_mesh(); the submission may use another layout",
                          f"names the file defines: {', '.join(sorted(student.names(MOD)))[:500]}")
    got = as_array(student.call(MOD, "sample_points_on_mesh", Tensor(verts), Tensor(faces), N, seed=seed, timeout=60),
                   "sample_points_on_mesh(...)")
    if got.shape != (N, 3):
        raise CheckFailed("sample_points_on_mesh should return (num_samples, 3) points", f"expected {(N, 3)}, got {got.shape}")
    return got


def _barycentric(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(barycentric coordinates (n, 3), distance from the triangle's plane (n,))."""
    a, b, c = tri.astype(np.float64)
    e1, e2 = b - a, c - a
    normal = np.cross(e1, e2)
    normal /= np.linalg.norm(normal)
    d = points - a
    off = d @ normal
    gram = np.array([[e1 @ e1, e1 @ e2], [e1 @ e2, e2 @ e2]])
    vw = np.linalg.solve(gram, np.stack([d @ e1, d @ e2]))  # (2, n)
    return np.stack([1 - vw.sum(0), vw[0], vw[1]], 1), off


@pytest.mark.item("7.1", weight=2, timeout=60, module=MOD)
def test_faces_chosen_by_area(student: Student) -> None:
    """on two triangles of areas 1 : 3 the samples split 1 : 3"""
    verts, faces = _two_triangles()
    points = _sample(student, verts, faces, seed=71)
    big = np.linalg.norm(points - verts[3:].mean(0), axis=1) < np.linalg.norm(points - verts[:3].mean(0), axis=1)
    counts = np.array([N - big.sum(), big.sum()])
    p = stats.chisquare(counts, N * np.array([0.25, 0.75])).pvalue
    if p < P_FAIL:
        hint = "choose each face with probability proportional to its area"
        if abs(counts[0] / N - 0.5) < 0.02:
            hint = "the faces are chosen equally often; a larger face must get proportionally more samples"
        raise CheckFailed("the samples do not split between the faces in proportion to their areas",
                          f"{counts[0]} and {counts[1]} samples for areas 1 : 3 (chi-square p = {p:.2g})", hint)


@pytest.mark.item("7.1", weight=2, timeout=60, module=MOD)
def test_samples_inside_triangle_mean_at_centroid(student: Student) -> None:
    """every sample lies inside its triangle and their mean is the centroid"""
    verts = TRI.astype(np.float32)
    points = _sample(student, verts, np.array([[0, 1, 2]], dtype=np.int64), seed=72)
    bary, off = _barycentric(points, TRI)
    outside = (bary < -1e-5).any(1) | (np.abs(off) > 1e-5)
    if outside.any():
        raise CheckFailed("some samples fall outside the triangle", f"{int(outside.sum())} of {N} samples",
                          "barycentric coordinates must all be non-negative and sum to 1")
    mean = bary.mean(0)
    se = bary.std(0) / np.sqrt(N)
    z = np.abs(mean - 1 / 3) / se
    if z.max() > 4.5:
        raise CheckFailed("the samples' mean is not the triangle's centroid",
                          f"mean barycentric coordinates {mean.round(4)} (expected 1/3 each, {z.max():.1f} standard errors off)",
                          "uniform barycentrics need u = 1 - sqrt(r1), not u = 1 - r1")


@pytest.mark.item("7.1", weight=2, timeout=60, module=MOD)
def test_samples_uniform_over_triangle(student: Student) -> None:
    """the samples are spread uniformly: each of 16 equal sub-triangles gets 1/16 of them"""
    verts = TRI.astype(np.float32)
    points = _sample(student, verts, np.array([[0, 1, 2]], dtype=np.int64), seed=73)
    bary, _ = _barycentric(points, TRI)
    bary = np.clip(bary, 0, 1 - 1e-12)
    n = 4
    i, j, k = (np.floor(n * bary[:, m]).astype(int) for m in range(3))
    up = (i + j + k) == n - 1  # the 16 sub-triangles: (i, j) and whether it points up or down
    cell = np.where(up, i * n + j, n * n + i * n + j)
    used = np.bincount(cell, minlength=2 * n * n)
    valid = [(a, b, u) for a in range(n) for b in range(n) for u in (True, False)
             if (u and a + b <= n - 1) or (not u and a + b <= n - 2)]
    observed = np.array([used[a * n + b] if u else used[n * n + a * n + b] for a, b, u in valid])
    p = stats.chisquare(observed, np.full(len(observed), observed.sum() / len(observed))).pvalue
    if p < P_FAIL:
        raise CheckFailed("the samples are not uniform over the triangle",
                          f"the 16 equal sub-triangles got between {observed.min()} and {observed.max()} samples "
                          f"(expected about {N // 16} each; chi-square p = {p:.2g})",
                          "draw barycentric coordinates uniformly over the triangle (u = 1 - sqrt(r1), ...)")
