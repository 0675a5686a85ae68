"""Losses for fitting 3D shapes (Q1) and for training the single-view decoders (Q2).

pytorch3d is replaced by lite3d here (same names and conventions): `from lite3d import knn_points`
stands for `from pytorch3d.ops import knn_points`. You may use knn_points / knn_gather and
mesh_laplacian_smoothing; write the chamfer loss yourself (pytorch3d.loss.chamfer_distance is not
allowed, and lite3d does not have it).
"""
import torch
from lite3d import knn_points, mesh_laplacian_smoothing


def voxel_loss(voxel_src, voxel_tgt):
    """Binary cross entropy between a predicted occupancy grid and the target grid.

    voxel_src: (B, H, W, D) float, unnormalised occupancy scores (logits), any real value: the
        occupancy probability of a voxel is sigmoid(voxel_src). fit_data.py passes its raw
        parameters straight in (they start in [0, 1] but leave it as they are optimised).
    voxel_tgt: (B, H, W, D) float (or bool), 1 for occupied voxels and 0 for empty ones.
    Returns a scalar tensor: the mean over every voxel of the batch of
        -[t log(sigmoid(s)) + (1 - t) log(1 - sigmoid(s))],
    finite for any input and differentiable with respect to voxel_src.
    """
    # TODO Task 1.1: replace this raise with your code.
    raise NotImplementedError("Task 1.1: fill in the missing lines here")


def chamfer_loss(point_cloud_src, point_cloud_tgt):
    """Squared chamfer distance between two batches of point clouds, written from scratch.

    point_cloud_src: (B, N, 3) float; point_cloud_tgt: (B, N, 3) float (the same number of points).
    Returns a scalar tensor: the mean over the batch of
        mean_{a in src} min_{b in tgt} |a - b|^2  +  mean_{b in tgt} min_{a in src} |a - b|^2,
    each cloud matched only against the cloud of the same batch element. Graded up to a positive
    factor that depends only on the shapes (sums instead of means are fine); the distances must be
    squared. Differentiable with respect to both clouds.
    """
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")
    return loss_chamfer


def smoothness_loss(mesh_src):
    """Laplacian smoothing loss of a Meshes batch (a scalar tensor).

    Any Laplacian smoothing loss is accepted (uniform, cotangent, normalised): it depends only on the
    mesh's shape (not where it is in space), is small for a flat or smooth surface and grows with
    bumps and noise. A library call (mesh_laplacian_smoothing) is allowed.
    """
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")
    return loss_laplacian
