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
    # TODO Task 7.1: replace this raise with your code.
    raise NotImplementedError("Task 7.1: fill in the missing lines here")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_samples", type=int, default=1000)
    parser.add_argument("--cow_path", type=str, default="data/cow.obj")
    args = parser.parse_args()
    vertices, faces = load_cow_mesh(args.cow_path)
    points = sample_points_on_mesh(vertices, faces, args.num_samples)
    print(points.shape)
