"""Points along rays (Q1.4)."""
import torch

from ray_utils import RayBundle


class StratifiedRaysampler(torch.nn.Module):
    """n_pts_per_ray depths in [min_depth, max_depth] on every ray, sorted, the same on every ray
    (uniform spacing; a jittered stratified draw inside the same bounds is fine too)."""

    def __init__(self, cfg):
        super().__init__()
        self.n_pts_per_ray = cfg.n_pts_per_ray
        self.min_depth = cfg.min_depth
        self.max_depth = cfg.max_depth

    def forward(self, ray_bundle: RayBundle) -> RayBundle:
        """Fills sample_points (R, n, 3) = origin + z * direction and sample_lengths (R, n, 1) = z."""
        # z values of the n_pts_per_ray points between min_depth and max_depth: (1, n, 1)
        # Sample points from the z values: (R, n, 3)
        # TODO Task 1.4: replace this raise with your code.
        raise NotImplementedError("Task 1.4: fill in the missing lines here")

        return ray_bundle._replace(
            sample_points=sample_points,
            sample_lengths=z_vals * torch.ones_like(sample_points[..., :1]),
        )


sampler_dict = {"stratified": StratifiedRaysampler}
