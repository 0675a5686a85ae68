"""
7. (Extra credit) Sampling points on meshes.

Usage:
    python -m starter.sample_points --num_samples 1000
"""
import argparse

import torch

from starter.utils import load_cow_mesh


def sample_points_on_mesh(vertices, faces, num_samples):
    """Samples points uniformly on the surface of a triangle mesh.

    1. choose a face for each sample with probability proportional to the face's area;
    2. draw barycentric coordinates uniformly over the triangle;
    3. the point is the barycentric combination of the face's three vertices.

    Args:
        vertices: (V, 3) float tensor; faces: (F, 3) int64 tensor; num_samples: int.
    Returns:
        (num_samples, 3) points, in vertices' dtype, drawn with torch's random generator.
    """
    # BEGIN SOLUTION 7.1
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]  # (F, 3) each
    areas = 0.5 * torch.linalg.cross(b - a, c - a, dim=1).norm(dim=1)  # (F,)
    face = torch.multinomial(areas, num_samples, replacement=True)  # (num_samples,)
    r1 = torch.rand(num_samples, 1, dtype=vertices.dtype)
    r2 = torch.rand(num_samples, 1, dtype=vertices.dtype)
    s = torch.sqrt(r1)
    u, v, w = 1 - s, s * (1 - r2), s * r2  # uniform over the triangle
    return u * a[face] + v * b[face] + w * c[face]
    # END SOLUTION


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_samples", type=int, default=1000)
    parser.add_argument("--cow_path", type=str, default="data/cow.obj")
    args = parser.parse_args()
    vertices, faces = load_cow_mesh(args.cow_path)
    points = sample_points_on_mesh(vertices, faces, args.num_samples)
    print(points.shape)
