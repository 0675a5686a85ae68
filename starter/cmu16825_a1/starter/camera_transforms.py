"""
4. Camera Transformations.

Usage:
    python -m starter.camera_transforms --image_size 512
"""
import argparse
import math

import torch

from lite3d import FoVPerspectiveCameras
from starter.utils import get_device, get_mesh_renderer

R_0 = [[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]
T_0 = [0.0, 0, 3]


def camera_extrinsics(R_relative, T_relative):
    """The new extrinsics: R = R_relative @ R_0 and T = R_relative @ T_0 + T_relative.

    Args:
        R_relative: (3, 3) rotation; T_relative: (3,) translation.
    Returns:
        R (3, 3), T (3,) float tensors (column-vector convention: x_view = R x_world + T).
    """
    R_relative = torch.as_tensor(R_relative, dtype=torch.float32)
    T_relative = torch.as_tensor(T_relative, dtype=torch.float32)
    R = R_relative @ torch.tensor(R_0)
    T = R_relative @ torch.tensor(T_0) + T_relative
    return R, T


def relative_transforms():
    """Your answers: the (R_relative, T_relative) that give each of the four target images of the
    handout (transform1 .. transform4, any order), starting from the image made with R_0 and T_0.

    Returns:
        a list of four (R_relative, T_relative) pairs: R_relative a (3, 3) rotation matrix (a nested
        list or tensor), T_relative a (3,) translation, used as in camera_extrinsics.
    """
    # TODO Task 4.1: replace this raise with your code.
    raise NotImplementedError("Task 4.1: fill in the missing lines here")


def render_cow(cow_path="data/cow_with_axis.obj", image_size=256, R_relative=R_0, T_relative=(0, 0, 0), device=None):
    """Renders the cow seen by the camera (R_relative, T_relative) (needs pytorch3d's renderer)."""
    from lite3d import Meshes, TexturesVertex
    from starter.utils import load_obj

    if device is None:
        device = get_device()
    verts, faces = load_obj(cow_path)
    meshes = Meshes([verts], [faces], TexturesVertex([torch.ones_like(verts) * 0.7])).to(device)
    R, T = camera_extrinsics(R_relative, T_relative)
    renderer = get_mesh_renderer(image_size=image_size)
    # pytorch3d uses row vectors (X_view = X_world @ R + T), hence R.t()
    cameras = FoVPerspectiveCameras(R=R.t().unsqueeze(0), T=T.unsqueeze(0), device=device)
    rend = renderer(meshes, cameras=cameras)
    return rend[0, ..., :3].cpu().numpy()


if __name__ == "__main__":
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser()
    parser.add_argument("--cow_path", type=str, default="data/cow_with_axis.obj")
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--output_path", type=str, default="images/transform_cow.jpg")
    args = parser.parse_args()
    for n, (R_rel, T_rel) in enumerate(relative_transforms(), 1):
        plt.imsave(args.output_path.replace(".jpg", f"{n}.jpg"),
                   render_cow(cow_path=args.cow_path, image_size=args.image_size, R_relative=R_rel, T_relative=T_rel))
