"""lite3d's nearest neighbours, surface sampling and Laplacian smoothing against independent brute-force
computations (pytorch3d.ops / pytorch3d.loss conventions: squared distances, per-batch neighbours)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grader.lite3d import Meshes, ico_sphere, knn_gather, knn_points, mesh_laplacian_smoothing, sample_points_from_meshes


def _brute_knn(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d, axis=2, kind="stable")[..., :k]
    return np.take_along_axis(d, idx, 2), idx


def test_knn_points_matches_all_pairs_per_batch_element():
    """Are the K nearest neighbours, their squared distances (sorted) and the gathered points those of an
    all-pairs search done batch element by batch element?"""
    g = torch.Generator().manual_seed(0)
    p1, p2 = torch.randn(3, 40, 3, generator=g, dtype=torch.float64), torch.randn(3, 25, 3, generator=g, dtype=torch.float64)
    out = knn_points(p1, p2, K=4, return_nn=True)
    d, idx = _brute_knn(p1.numpy(), p2.numpy(), 4)
    assert out.dists.shape == (3, 40, 4) and out.idx.shape == (3, 40, 4) and out.knn.shape == (3, 40, 4, 3)
    np.testing.assert_allclose(out.dists.numpy(), d, atol=1e-12)
    assert (out.idx.numpy() == idx).all()
    np.testing.assert_allclose(out.knn.numpy(), np.take_along_axis(p2.numpy()[:, None], idx[..., None], 2), atol=0)
    assert knn_points(p1, p2).knn is None and knn_points(p1, p2).dists.shape == (3, 40, 1)


def test_knn_points_never_looks_across_the_batch():
    """Does a query find its neighbour in its own batch element even when another element's points are closer?"""
    p1 = torch.tensor([[[0.0, 0, 0]], [[10.0, 0, 0]]])
    p2 = torch.tensor([[[9.0, 0, 0]], [[1.0, 0, 0]]])
    assert knn_points(p1, p2).dists[:, 0, 0].tolist() == [81.0, 81.0]


def test_knn_points_lengths_and_k_beyond_the_cloud():
    """Are padded points of p2 never chosen, padded queries and missing neighbours idx -1 with distance 0?"""
    p1 = torch.tensor([[[0.0, 0, 0], [5.0, 5, 5]]])
    p2 = torch.tensor([[[1.0, 0, 0], [0.1, 0, 0], [2.0, 0, 0]]])
    out = knn_points(p1, p2, lengths1=torch.tensor([1]), lengths2=torch.tensor([2]), K=3)
    assert out.idx[0, 0].tolist() == [1, 0, -1]
    assert out.idx[0, 1].tolist() == [-1, -1, -1] and out.dists[0, 1].abs().sum() == 0
    assert out.dists[0, 0, :2].tolist() == pytest.approx([0.01, 1.0])


def test_knn_points_gradients_are_those_of_the_squared_distances():
    """Does the gradient of the summed nearest distances equal 2 (p1 - nn) for p1 and the opposite, summed, for p2?"""
    g = torch.Generator().manual_seed(1)
    p1 = torch.randn(2, 30, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p2 = torch.randn(2, 20, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = knn_points(p1, p2, return_nn=True)
    out.dists.sum().backward()
    nn = out.knn[:, :, 0].detach()
    np.testing.assert_allclose(p1.grad.numpy(), 2 * (p1 - nn).detach().numpy(), atol=1e-12)
    expected = torch.zeros_like(p2).scatter_add_(1, out.idx.expand(-1, -1, 3), -2 * (p1 - nn).detach())
    np.testing.assert_allclose(p2.grad.numpy(), expected.numpy(), atol=1e-12)


def test_knn_gather_picks_rows_and_zeros_missing_ones():
    """Does knn_gather return x[n, idx] per batch element, with zeros where idx is -1?"""
    x = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    idx = torch.tensor([[[3, 0]], [[-1, 2]]])
    out = knn_gather(x, idx)
    assert out.shape == (2, 1, 2, 2)
    assert out[0, 0].tolist() == [x[0, 3].tolist(), x[0, 0].tolist()]
    assert out[1, 0].tolist() == [[0.0, 0.0], x[1, 2].tolist()]


def _two_triangles() -> Meshes:
    """A unit square in z=0 split at x=0.25: one triangle of area 0.125 and a quad of area 0.375 (two triangles)."""
    verts = torch.tensor([[0, 0, 0], [0.25, 0, 0], [0.25, 1, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2]])
    return Meshes([verts], [faces])


def test_sampled_points_lie_on_the_faces_with_area_weights_and_normals():
    """Do samples lie on the square, fall in each part in proportion to its area, spread uniformly inside
    a triangle (mean at its centroid), and come with the faces' unit normals?"""
    torch.manual_seed(0)
    pts, normals = sample_points_from_meshes(_two_triangles(), 40000, return_normals=True)
    assert pts.shape == (1, 40000, 3) and normals.shape == (1, 40000, 3)
    p = pts[0].numpy()
    assert np.abs(p[:, 2]).max() == 0 and p[:, :2].min() >= 0 and p[:, :2].max() <= 1
    assert np.mean(p[:, 0] < 0.25) == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(normals[0].numpy(), np.tile([0, 0, 1.0], (40000, 1)), atol=1e-12)
    torch.manual_seed(1)
    one = sample_points_from_meshes(Meshes([torch.tensor([[0.0, 0, 0], [3, 0, 0], [0, 3, 0]])], [torch.tensor([[0, 1, 2]])]), 60000)
    np.testing.assert_allclose(one[0].mean(0).numpy(), [1.0, 1.0, 0.0], atol=0.02)


def test_sampling_is_batched_repeatable_and_differentiable():
    """Does a batch of two meshes give (2, S, 3), the same samples under the same seed, and gradients to the vertices?"""
    sphere = ico_sphere(2)
    verts = sphere.verts_list()[0].clone().requires_grad_(True)
    meshes = Meshes([verts, verts * 2], [sphere.faces_list()[0]] * 2)
    torch.manual_seed(3)
    a = sample_points_from_meshes(meshes, 500)
    torch.manual_seed(3)
    b = sample_points_from_meshes(meshes, 500)
    assert a.shape == (2, 500, 3) and torch.equal(a, b)
    r = a.detach().norm(dim=-1)
    assert float(r[0].max()) <= 1 + 1e-6 and float(r[0].min()) > 0.9 and float(r[1].min()) > 1.8
    a.sum().backward()
    assert verts.grad is not None and float(verts.grad.abs().sum()) > 0


def _dense_uniform_loss(verts: np.ndarray, faces: np.ndarray) -> float:
    n = len(verts)
    adj = np.zeros((n, n))
    for f in faces:
        for i in range(3):
            a, b = f[i], f[(i + 1) % 3]
            adj[a, b] = adj[b, a] = 1
    lap = adj @ verts / adj.sum(1, keepdims=True) - verts
    return float(np.linalg.norm(lap, axis=1).mean())


def _hexagon_fan(height: float) -> tuple[torch.Tensor, torch.Tensor]:
    ring = [[math.cos(k * math.pi / 3), math.sin(k * math.pi / 3), 0.0] for k in range(6)]
    verts = torch.tensor([[0.0, 0.0, height]] + ring, dtype=torch.float64)
    faces = torch.tensor([[0, 1 + k, 1 + (k + 1) % 6] for k in range(6)])
    return verts, faces


def test_uniform_laplacian_is_the_mean_norm_of_v_minus_its_neighbours_mean():
    """Does the uniform loss equal a dense computation on a bumped hexagon fan and on a noisy icosphere,
    and average over the meshes of a batch?"""
    verts, faces = _hexagon_fan(0.5)
    got = float(mesh_laplacian_smoothing(Meshes([verts], [faces])))
    assert got == pytest.approx(_dense_uniform_loss(verts.numpy(), faces.numpy()), rel=1e-12)
    sphere = ico_sphere(1)
    noisy = sphere.verts_list()[0].double() * (1 + 0.1 * torch.randn(42, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    f = sphere.faces_list()[0]
    want = _dense_uniform_loss(noisy.numpy(), f.numpy())
    assert float(mesh_laplacian_smoothing(Meshes([noisy], [f]))) == pytest.approx(want, rel=1e-10)
    both = float(mesh_laplacian_smoothing(Meshes([noisy, verts], [f, faces])))
    assert both == pytest.approx((want + got) / 2, rel=1e-10)


def test_cotangent_laplacian_on_equilateral_triangles_and_flat_interiors():
    """On the icosahedron (equilateral triangles, every edge between two faces) the cotangent weights are
    all equal, so 'cot' equals 'uniform'; raising a flat fan's centre raises the loss under every method."""
    ico = ico_sphere(0)
    assert float(mesh_laplacian_smoothing(ico, "cot")) == pytest.approx(float(mesh_laplacian_smoothing(ico)), rel=1e-5)
    verts, faces = _hexagon_fan(0.0)
    flat = Meshes([verts], [faces])
    for method in ("uniform", "cot", "cotcurv"):
        bumped = Meshes([_hexagon_fan(0.3)[0]], [faces])
        assert float(mesh_laplacian_smoothing(bumped, method)) > float(mesh_laplacian_smoothing(flat, method))
    curv = float(mesh_laplacian_smoothing(ico_sphere(3), "cotcurv"))
    assert curv == pytest.approx(0.5, abs=0.02)  # |Laplace-Beltrami x| / 4 = 2H / 4 on the unit sphere


def test_laplacian_gradients_flow_to_the_vertices_only():
    """Do gradients reach the vertices (not through the weights), and is an unknown method refused?"""
    sphere = ico_sphere(1)
    verts = (sphere.verts_list()[0] * 1.1).requires_grad_(True)
    mesh_laplacian_smoothing(Meshes([verts], sphere.faces_list()), "cot").backward()
    assert verts.grad is not None and torch.isfinite(verts.grad).all()
    with pytest.raises(ValueError, match="method"):
        mesh_laplacian_smoothing(sphere, "harmonic")
