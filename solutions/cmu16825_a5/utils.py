"""Helpers for training, evaluation and the Q3 robustness experiments.

Given: create_dir, save_checkpoint, viz_cls, viz_seg (matplotlib pictures; the course's version renders GIFs
with pytorch3d, which you may use instead on your own machine).
To do (Q3, experiment 1): rotation_matrix and rotate_points, used by `eval_cls.py --rot_angle` and
`eval_seg.py --rot_angle`.
"""
import os

import numpy as np
import torch


def create_dir(directory):
    """Create a directory (and its parents) if it does not exist yet."""
    os.makedirs(directory, exist_ok=True)


def save_checkpoint(epoch, model, args, best=False):
    """Save the model's state_dict to <checkpoint_dir>/best_model.pt or model_epoch_<epoch>.pt."""
    name = "best_model.pt" if best else "model_epoch_{}.pt".format(epoch)
    path = os.path.join(args.checkpoint_dir, name)
    torch.save(model.state_dict(), path)


def rotation_matrix(angle_deg, axis="x"):
    """Rotation by `angle_deg` degrees about the coordinate axis `axis` ("x", "y" or "z").

    Returns a (3, 3) float32 tensor R, a proper rotation (R^T R = I, det R = +1), counter-clockwise when
    looking down the axis towards the origin (right-hand rule), so that a column vector p turns to R @ p.
    """
    # BEGIN SOLUTION 3.1.1
    a = np.deg2rad(float(angle_deg))
    c, s = np.cos(a), np.sin(a)
    i = "xyz".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    R = np.eye(3)
    R[j, j], R[j, k], R[k, j], R[k, k] = c, -s, s, c
    return torch.tensor(R, dtype=torch.float32)
    # END SOLUTION


def rotate_points(points, angle_deg, axis="x"):
    """Rotate point clouds by `angle_deg` degrees about `axis` (see rotation_matrix).

    points: tensor of size (B, N, 3) or (N, 3), float32.
    Returns a tensor of the same size, type and device, each point p turned to R @ p.
    """
    # BEGIN SOLUTION 3.1.1
    R = rotation_matrix(angle_deg, axis).to(points.device, points.dtype)
    return points @ R.T  # (..., N, 3): row vectors, so p^T R^T = (R p)^T
    # END SOLUTION


def _axes3d(fig, position, title):
    ax = fig.add_subplot(*position, projection="3d")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return ax


def viz_cls(points, title, path):
    """Save a picture of one point cloud (N, 3) with a title (e.g. its true and predicted class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points)
    fig = plt.figure(figsize=(3, 3))
    ax = _axes3d(fig, (1, 1, 1), title)
    ax.scatter(pts[:, 0], pts[:, 2], pts[:, 1], s=1)  # the data is y up
    fig.savefig(path, dpi=100)
    plt.close(fig)


def viz_seg(points, labels, path, title=""):
    """Save a picture of one point cloud (N, 3) coloured by its per-point labels (N,)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points)
    lab = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels)
    fig = plt.figure(figsize=(3, 3))
    ax = _axes3d(fig, (1, 1, 1), title)
    ax.scatter(pts[:, 0], pts[:, 2], pts[:, 1], s=1, c=lab, cmap="tab10", vmin=0, vmax=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
