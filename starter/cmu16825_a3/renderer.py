"""Renderers: emission-absorption volume rendering (Q1.5), sphere tracing (Q5), VolSDF (Q7) and the
NeuS density (Q8.3).

Volume rendering along a ray with samples i = 0 .. n-1, densities sigma_i and segment lengths delta_i
(the last delta is 1e10, so the last sample absorbs whatever light is left):
    T_i = prod_{j<i} exp(-sigma_j delta_j)   (T_0 = 1),   w_i = T_i (1 - exp(-sigma_i delta_i)),
    feature = sum_i w_i c_i,   depth = sum_i w_i z_i.
"""
import torch

from ray_utils import RayBundle


class VolumeRenderer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self._chunk_size = cfg.chunk_size
        self._white_background = getattr(cfg, "white_background", False)

    def _compute_weights(self, deltas, rays_density: torch.Tensor, eps: float = 1e-10):
        """deltas (R, n, 1), rays_density (R, n, 1) -> weights (R, n, 1)."""
        # Opacity of each segment, then the transmittance T_i = prod_{j<i} (1 - alpha_j), T_0 = 1
        # Weights used for rendering
        # TODO Task 1.5: replace this raise with your code.
        raise NotImplementedError("Task 1.5: fill in the missing lines here")
        return weights

    def _aggregate(self, weights: torch.Tensor, rays_feature: torch.Tensor):
        """weights (R, n, 1), rays_feature (R, n, C) -> feature (R, C): the weighted sum along each ray."""
        # TODO Task 1.5: replace this raise with your code.
        raise NotImplementedError("Task 1.5: fill in the missing lines here")
        return feature

    def forward(self, sampler, implicit_fn, ray_bundle):
        """{'feature': (R, C), 'depth': (R, 1)} of the rays of `ray_bundle`, rendered in chunks."""
        B = ray_bundle.shape[0]
        chunk_outputs = []
        for chunk_start in range(0, B, self._chunk_size):
            cur_ray_bundle = ray_bundle[chunk_start:chunk_start + self._chunk_size]

            # Sample points along the rays, then ask the implicit function about them
            cur_ray_bundle = sampler(cur_ray_bundle)
            n_pts = cur_ray_bundle.sample_shape[1]
            implicit_output = implicit_fn(cur_ray_bundle)
            density = implicit_output["density"]
            feature = implicit_output["feature"]

            # Length of each segment along the rays (the last one is "infinite")
            depth_values = cur_ray_bundle.sample_lengths[..., 0]
            deltas = torch.cat(
                (depth_values[..., 1:] - depth_values[..., :-1], 1e10 * torch.ones_like(depth_values[..., :1])),
                dim=-1)[..., None]

            weights = self._compute_weights(deltas.view(-1, n_pts, 1), density.view(-1, n_pts, 1))

            # Render the features and the depth with the weights
            # TODO Task 1.5: replace this raise with your code.
            raise NotImplementedError("Task 1.5: fill in the missing lines here")

            if self._white_background:
                feature = feature + (1.0 - weights.sum(dim=1))
            chunk_outputs.append({"feature": feature, "depth": depth})

        return {k: torch.cat([chunk[k] for chunk in chunk_outputs], dim=0) for k in chunk_outputs[0]}


class SphereTracingRenderer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self._chunk_size = cfg.chunk_size
        self.near = cfg.near
        self.far = cfg.far
        self.max_iters = cfg.max_iters

    def sphere_tracing(self, implicit_fn, origins, directions):
        """First intersections of rays with the zero level set of implicit_fn (a signed distance).

        origins (N, 3), directions (N, 3) (not assumed unit length: the SDF step is a distance, so it
        is taken along the unit direction). Starting at `near`, step each ray by the SDF at its point,
        max_iters times. Returns points (N, 3) and mask (N, 1) bool: True where the ray reached the
        surface (|SDF| below a small threshold) before travelling `far`.
        """
        # TODO Task 5: replace this raise with your code.
        raise NotImplementedError("Task 5: fill in the missing lines here")
        return points, mask

    def forward(self, sampler, implicit_fn, ray_bundle, light_dir=None):
        B = ray_bundle.shape[0]
        chunk_outputs = []
        for chunk_start in range(0, B, self._chunk_size):
            cur_ray_bundle = ray_bundle[chunk_start:chunk_start + self._chunk_size]
            points, mask = self.sphere_tracing(implicit_fn, cur_ray_bundle.origins, cur_ray_bundle.directions)
            mask = mask.repeat(1, 3)
            isect_points = points[mask].view(-1, 3)
            isect_color = implicit_fn.get_color(isect_points)
            color = torch.zeros_like(cur_ray_bundle.origins)
            color[mask] = isect_color.view(-1)
            chunk_outputs.append({"color": color.view(-1, 3)})
        return {k: torch.cat([chunk[k] for chunk in chunk_outputs], dim=0) for k in chunk_outputs[0]}


def sdf_to_density(signed_distance, alpha, beta):
    """VolSDF density sigma = alpha * Psi_beta(-d), Psi_beta the CDF of a Laplace(0, beta) variable:
    alpha/2 on the surface, towards alpha inside (d < 0) and towards 0 outside (d > 0)."""
    # Written with |d| so that no exp() overflows (the other branch of a torch.where would)
    # TODO Task 7: replace this raise with your code.
    raise NotImplementedError("Task 7: fill in the missing lines here")


def neus_sdf_to_density(signed_distance, s):
    """NeuS' logistic density phi_s(d) = s e^{-s d} / (1 + e^{-s d})^2: the derivative of the sigmoid
    sigmoid(s d), peaked at the surface (phi_s(0) = s / 4), symmetric, integrating to 1 over d."""
    # TODO Task 8.3: replace this raise with your code.
    raise NotImplementedError("Task 8.3: fill in the missing lines here")


class VolumeSDFRenderer(VolumeRenderer):
    def __init__(self, cfg):
        super().__init__(cfg)
        self._chunk_size = cfg.chunk_size
        self._white_background = getattr(cfg, "white_background", False)
        self.alpha = cfg.alpha
        self.beta = cfg.beta

    def forward(self, sampler, implicit_fn, ray_bundle, light_dir=None):
        B = ray_bundle.shape[0]
        chunk_outputs = []
        for chunk_start in range(0, B, self._chunk_size):
            cur_ray_bundle = ray_bundle[chunk_start:chunk_start + self._chunk_size]
            cur_ray_bundle = sampler(cur_ray_bundle)
            n_pts = cur_ray_bundle.sample_shape[1]
            distance, color = implicit_fn.get_distance_color(cur_ray_bundle.sample_points)
            # TODO Task 7: replace this raise with your code.
            raise NotImplementedError("Task 7: fill in the missing lines here")
            depth_values = cur_ray_bundle.sample_lengths[..., 0]
            deltas = torch.cat(
                (depth_values[..., 1:] - depth_values[..., :-1], 1e10 * torch.ones_like(depth_values[..., :1])),
                dim=-1)[..., None]
            weights = self._compute_weights(deltas.view(-1, n_pts, 1), density.view(-1, n_pts, 1))
            color = self._aggregate(weights, color.view(-1, n_pts, color.shape[-1]))
            chunk_outputs.append({"color": color})
        return {k: torch.cat([chunk[k] for chunk in chunk_outputs], dim=0) for k in chunk_outputs[0]}


renderer_dict = {
    "volume": VolumeRenderer,
    "sphere_tracing": SphereTracingRenderer,
    "volume_sdf": VolumeSDFRenderer,
}
