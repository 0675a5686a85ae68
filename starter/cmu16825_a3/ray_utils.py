"""Rays of a camera: the pixel grid in NDC, random pixels, and rays through pixels (Q1.3, Q2.1).

Conventions are pytorch3d's (here `lite3d`): NDC has +x to the LEFT and +y UP, each image axis
spanning [-1, 1]; `camera.unproject_points` takes (x_ndc, y_ndc, depth) and returns world points.
image_size is (W, H), width first, as in the course's configs.
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from lite3d import CamerasBase


class RayBundle(object):
    """A batch of rays and, once a sampler has run, the points sampled along them.

    origins (R, 3), directions (R, 3), sample_points (R, n, 3), sample_lengths (R, n, 1).
    """

    def __init__(self, origins, directions, sample_points, sample_lengths):
        self.origins = origins
        self.directions = directions
        self.sample_points = sample_points
        self.sample_lengths = sample_lengths

    def __getitem__(self, idx):
        return RayBundle(self.origins[idx], self.directions[idx], self.sample_points[idx], self.sample_lengths[idx])

    @property
    def shape(self):
        return self.origins.shape[:-1]

    @property
    def sample_shape(self):
        return self.sample_points.shape[:-1]

    def reshape(self, *args):
        return RayBundle(self.origins.reshape(*args, 3), self.directions.reshape(*args, 3),
                         self.sample_points.reshape(*args, self.sample_points.shape[-2], 3),
                         self.sample_lengths.reshape(*args, self.sample_lengths.shape[-2], 1))

    def view(self, *args):
        return RayBundle(self.origins.view(*args, 3), self.directions.view(*args, 3),
                         self.sample_points.view(*args, self.sample_points.shape[-2], 3),
                         self.sample_lengths.view(*args, self.sample_lengths.shape[-2], 1))

    def _replace(self, **kwargs):
        """A copy with some fields replaced (the sampler's way of adding samples)."""
        fields = dict(origins=self.origins, directions=self.directions, sample_points=self.sample_points,
                      sample_lengths=self.sample_lengths)
        fields.update(kwargs)
        return RayBundle(**fields)


def sample_images_at_xy(images: torch.Tensor, xy_grid: torch.Tensor):
    """Colours of `images` (B, H, W, C) at NDC points xy_grid (B, N, 2) (+x left, +y up): (B, N, C)."""
    batch_size = images.shape[0]
    spatial_size = images.shape[1:-1]
    xy_grid = -xy_grid.view(batch_size, -1, 1, 2)  # grid_sample's x points right and y down
    images_sampled = F.grid_sample(images.permute(0, 3, 1, 2), xy_grid, align_corners=True, mode="bilinear")
    return images_sampled.permute(0, 2, 3, 1).view(-1, images.shape[-1])


def get_pixels_from_image(image_size, camera: CamerasBase):
    """NDC coordinates of every pixel of an image of size (W, H).

    Returns xy_grid (W * H, 2): row-major (the pixels of the top row first, left to right), each row
    (x, y) in [-1, 1] with pytorch3d's NDC signs: the top-left pixel is at (+1, +1).
    """
    W, H = image_size[0], image_size[1]

    # Pixel coordinates from 0 to W - 1 in x and 0 to H - 1 in y
    # Mapped to [-1, 1] (the first pixel to -1, the last to +1)
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")

    # Grid of coordinates, (H, W, 2) -> (W * H, 2), then flipped to pytorch3d's NDC (+x left, +y up)
    xy_grid = torch.stack(tuple(reversed(torch.meshgrid(y, x, indexing="ij"))), dim=-1).view(W * H, 2)
    return -xy_grid


def get_random_pixels_from_image(n_pixels, image_size, camera: CamerasBase):
    """`n_pixels` rows of get_pixels_from_image's grid drawn at random: (n_pixels, 2)."""
    xy_grid = get_pixels_from_image(image_size, camera)

    # Random subsampling of pixel coordinates
    # TODO Task 2.1: replace this raise with your code.
    raise NotImplementedError("Task 2.1: fill in the missing lines here")

    return xy_grid_sub.reshape(-1, 2)[:n_pixels]


def get_rays_from_pixels(xy_grid, image_size, camera: CamerasBase):
    """Rays through NDC points xy_grid (R, 2) of `camera`.

    Returns a RayBundle with origins (R, 3) at the camera centre, unit directions (R, 3) in world
    space, and zeros (R, 1, 3) / (R, 1, 1) for the samples (the sampler fills them in).
    """
    W, H = image_size[0], image_size[1]

    # Points on the image plane (depth 1) in NDC, then unprojected to world space
    # Ray origins at the camera centre, directions towards the unprojected points (unit length)
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")

    return RayBundle(rays_o, rays_d, torch.zeros_like(rays_o).unsqueeze(1), torch.zeros_like(rays_o[..., :1]).unsqueeze(1))
