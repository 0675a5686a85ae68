"""
5. Rendering generic 3D representations: point clouds from RGB-D images, parametric and implicit surfaces.

Usage:
    python -m starter.render_generic --render point_cloud  # 5.1
    python -m starter.render_generic --render parametric --num_samples 100  # 5.2
    python -m starter.render_generic --render implicit  # 5.3
"""
import argparse
import math

import numpy as np
import torch

from lite3d import FoVPerspectiveCameras, Meshes, PerspectiveCameras, Pointclouds, TexturesVertex, look_at_view_transform
from starter.utils import get_device, get_mesh_renderer, get_points_renderer, unproject_depth_image


def load_rgbd_data(path="data/rgbd_data.npz"):
    """The two RGB-D views of 5.1 (given code).

    Returns a dict with, for i in 1 and 2: "rgb{i}" (S, S, 3) float in [0, 1], "mask{i}" (S, S),
    "depth{i}" (S, S) view-space depth, and "cameras{i}" the PerspectiveCameras (in NDC) of that view.
    """
    raw = np.load(path)
    data = {}
    for i in (1, 2):
        for key in ("rgb", "mask", "depth"):
            data[f"{key}{i}"] = torch.from_numpy(raw[f"{key}{i}"])
        data[f"cameras{i}"] = PerspectiveCameras(
            focal_length=torch.from_numpy(raw[f"focal_length{i}"])[None],
            principal_point=torch.from_numpy(raw[f"principal_point{i}"])[None],
            R=torch.from_numpy(raw[f"R{i}"])[None], T=torch.from_numpy(raw[f"T{i}"])[None])
    return data


def rgbd_point_clouds(data):
    """5.1: the three point clouds of the RGB-D data: the first view's, the second view's, and their union.

    Args:
        data: the dict load_rgbd_data returns.
    Returns:
        a list of three (points (N, 3), rgba (N, 4)) pairs in world coordinates, built with
        unproject_depth_image: [first image, second image, union of the two].
    """
    # TODO Task 5.1.1: replace this raise with your code.
    raise NotImplementedError("Task 5.1.1: fill in the missing lines here")


def torus_parametric(theta, phi, R=1.0, r=0.4):
    """5.2: points of the torus around the z axis from their angles.

    Args:
        theta: tensor of angles around the tube (any shape); phi: tensor of the same shape, angles
            around the z axis; R: distance from the z axis to the tube's centre line; r: tube radius.
    Returns:
        (..., 3) points (x, y, z) in theta's dtype: the tube's circle at angle phi, at angle theta on it.
    """
    # TODO Task 5.2.1: replace this raise with your code.
    raise NotImplementedError("Task 5.2.1: fill in the missing lines here")


def torus_point_cloud(num_samples=100, R=1.0, r=0.4):
    """A num_samples x num_samples grid of (theta, phi) on the torus: points (num_samples^2, 3), colours."""
    angles = torch.linspace(0, 2 * math.pi, num_samples)
    Theta, Phi = torch.meshgrid(angles, angles, indexing="ij")
    points = torus_parametric(Theta, Phi, R, r).reshape(-1, 3)
    color = (points - points.min()) / (points.max() - points.min())
    return points, color


def torus_implicit(X, Y, Z, R=1.0, r=0.4):
    """5.3: the implicit function F of the torus around the z axis, zero exactly on its surface.

    Args:
        X, Y, Z: tensors of the same shape (e.g. a voxel grid from torch.meshgrid); R, r as in torus_parametric.
    Returns:
        F, same shape and dtype: 0 on the torus, one sign inside the tube and the other outside.
    """
    # TODO Task 5.3.1: replace this raise with your code.
    raise NotImplementedError("Task 5.3.1: fill in the missing lines here")


def marching_cubes(voxels, isovalue=0.0):
    """Vertices (in voxel index units) and faces of the isovalue level set of a 3D grid (PyMCubes, as the
    course, or scikit-image when PyMCubes is not installed)."""
    voxels = np.asarray(voxels, dtype=np.float64)
    try:
        import mcubes

        return mcubes.marching_cubes(mcubes.smooth(voxels), isovalue)
    except ImportError:
        from skimage.measure import marching_cubes as skimage_marching_cubes

        vertices, faces, _, _ = skimage_marching_cubes(voxels, level=isovalue)
        return vertices, faces


def torus_mesh(voxel_size=64, R=1.0, r=0.4):
    """5.3: the torus as a triangle mesh: the zero level set of torus_implicit on a voxel grid.

    Returns:
        vertices (V, 3) float32 in world coordinates and faces (F, 3) int64.
    """
    min_value, max_value = -(R + r) * 1.1, (R + r) * 1.1
    axis = torch.linspace(min_value, max_value, voxel_size)
    X, Y, Z = torch.meshgrid([axis] * 3, indexing="ij")
    voxels = torus_implicit(X, Y, Z, R, r)
    vertices, faces = marching_cubes(voxels.numpy(), 0.0)
    vertices = torch.tensor(np.ascontiguousarray(vertices), dtype=torch.float32)
    # voxel indices -> world coordinates: index 0 is min_value, index voxel_size - 1 is max_value
    vertices = vertices / (voxel_size - 1) * (max_value - min_value) + min_value
    return vertices, torch.tensor(np.ascontiguousarray(faces, dtype=np.int64))


def render_point_cloud(points, colors, image_size=256, distance=3.0, elevation=30.0, azimuth=0.0, device=None):
    """One image of a point cloud (needs pytorch3d's renderer; see starter/utils.py)."""
    device = device or get_device()
    cloud = Pointclouds(points=[points], features=[colors]).to(device)
    R, T = look_at_view_transform(distance, elevation, azimuth)
    renderer = get_points_renderer(image_size=image_size, device=device)
    return renderer(cloud, cameras=FoVPerspectiveCameras(R=R, T=T, device=device))[0, ..., :3].cpu().numpy()


def render_mesh(vertices, faces, image_size=256, distance=3.0, elevation=30.0, azimuth=0.0, device=None):
    """One image of a mesh coloured by position (needs pytorch3d's renderer; see starter/utils.py)."""
    device = device or get_device()
    colors = (vertices - vertices.min()) / (vertices.max() - vertices.min())
    mesh = Meshes([vertices], [faces], textures=TexturesVertex([colors])).to(device)
    R, T = look_at_view_transform(distance, elevation, azimuth)
    renderer = get_mesh_renderer(image_size=image_size, device=device)
    return renderer(mesh, cameras=FoVPerspectiveCameras(R=R, T=T, device=device))[0, ..., :3].cpu().numpy().clip(0, 1)


if __name__ == "__main__":
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser()
    parser.add_argument("--render", type=str, default="point_cloud", choices=["point_cloud", "parametric", "implicit"])
    parser.add_argument("--output_path", type=str, default="images/render.jpg")
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--num_samples", type=int, default=100)
    args = parser.parse_args()
    if args.render == "point_cloud":
        points, rgba = rgbd_point_clouds(load_rgbd_data())[2]
        image = render_point_cloud(points, rgba[:, :3], image_size=args.image_size, distance=6.0)
    elif args.render == "parametric":
        image = render_point_cloud(*torus_point_cloud(args.num_samples), image_size=args.image_size)
    else:
        image = render_mesh(*torus_mesh(), image_size=args.image_size)
    plt.imsave(args.output_path, image)
