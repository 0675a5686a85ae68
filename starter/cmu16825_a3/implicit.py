"""Implicit functions: analytic SDFs (given), the SDF volume of Q1-Q2 (given), the NeRF MLP (Q3) and
the neural surface (Q6, Q7).

Configs are objects with attributes (the course's yaml files become such objects): e.g.
cfg.sdf.type, cfg.sdf.center.val, cfg.sdf.radius.val, cfg.feature.val, cfg.alpha.val.
"""
import torch
import torch.nn.functional as F

from ray_utils import RayBundle


def _opt(node, default=False):
    return bool(getattr(node, "opt", default))


class SphereSDF(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.radius = torch.nn.Parameter(torch.tensor(cfg.radius.val).float(), requires_grad=_opt(cfg.radius))
        self.center = torch.nn.Parameter(torch.tensor(cfg.center.val).float().unsqueeze(0), requires_grad=_opt(cfg.center))

    def forward(self, points):
        points = points.view(-1, 3)
        return torch.linalg.norm(points - self.center, dim=-1, keepdim=True) - self.radius


class BoxSDF(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.center = torch.nn.Parameter(torch.tensor(cfg.center.val).float().unsqueeze(0), requires_grad=_opt(cfg.center))
        self.side_lengths = torch.nn.Parameter(torch.tensor(cfg.side_lengths.val).float().unsqueeze(0),
                                               requires_grad=_opt(cfg.side_lengths))

    def forward(self, points):
        points = points.view(-1, 3)
        diff = torch.abs(points - self.center) - self.side_lengths / 2.0
        outside = torch.linalg.norm(torch.clamp(diff, min=0.0), dim=-1)
        inside = torch.clamp(diff.max(dim=-1)[0], max=0.0)
        return (outside + inside).unsqueeze(-1)


class TorusSDF(torch.nn.Module):
    """A torus around the y axis of `center`: radii (R, r), R from the axis to the tube's centre."""

    def __init__(self, cfg):
        super().__init__()
        self.center = torch.nn.Parameter(torch.tensor(cfg.center.val).float().unsqueeze(0), requires_grad=_opt(cfg.center))
        self.radii = torch.nn.Parameter(torch.tensor(cfg.radii.val).float().unsqueeze(0), requires_grad=_opt(cfg.radii))

    def forward(self, points):
        points = points.view(-1, 3)
        diff = points - self.center
        q = torch.stack([torch.linalg.norm(diff[..., [0, 2]], dim=-1) - self.radii[..., 0], diff[..., 1]], dim=-1)
        return (torch.linalg.norm(q, dim=-1) - self.radii[..., 1]).unsqueeze(-1)


sdf_dict = {"sphere": SphereSDF, "box": BoxSDF, "torus": TorusSDF}


class SDFSurface(torch.nn.Module):
    """An analytic SDF with a constant colour, for sphere tracing (Q5)."""

    def __init__(self, cfg):
        super().__init__()
        self.sdf = sdf_dict[cfg.sdf.type](cfg.sdf)
        self.rainbow = bool(getattr(cfg.feature, "rainbow", False))
        self.feature = torch.nn.Parameter(torch.tensor(cfg.feature.val).float().unsqueeze(0), requires_grad=_opt(cfg.feature))

    def get_distance(self, points):
        return self.sdf(points.view(-1, 3))

    def get_color(self, points):
        points = points.view(-1, 3)
        if self.rainbow:
            base = torch.clamp(torch.abs(points - self.sdf.center), 0.02, 0.98)
        else:
            base = torch.ones_like(points)
        return base * self.feature

    def forward(self, points):
        return self.get_distance(points)


class SDFVolume(torch.nn.Module):
    """An analytic SDF turned into a density (Q1-Q2): the box the course fits in Q2."""

    def __init__(self, cfg):
        super().__init__()
        self.sdf = sdf_dict[cfg.sdf.type](cfg.sdf)
        self.rainbow = bool(getattr(cfg.feature, "rainbow", False))
        self.feature = torch.nn.Parameter(torch.tensor(cfg.feature.val).float().unsqueeze(0), requires_grad=_opt(cfg.feature))
        self.alpha = torch.nn.Parameter(torch.tensor(cfg.alpha.val).float(), requires_grad=_opt(cfg.alpha))
        self.beta = torch.nn.Parameter(torch.tensor(cfg.beta.val).float(), requires_grad=_opt(cfg.beta))

    def _sdf_to_density(self, signed_distance):
        # The Laplace CDF of VolSDF; here an opacity in [0, alpha]
        return torch.where(
            signed_distance > 0,
            0.5 * torch.exp(-signed_distance / self.beta),
            1 - 0.5 * torch.exp(signed_distance / self.beta),
        ) * self.alpha

    def forward(self, ray_bundle):
        sample_points = ray_bundle.sample_points.view(-1, 3)
        depth_values = ray_bundle.sample_lengths[..., 0]
        deltas = torch.cat(
            (depth_values[..., 1:] - depth_values[..., :-1], 1e10 * torch.ones_like(depth_values[..., :1])),
            dim=-1).view(-1, 1)
        signed_distance = self.sdf(sample_points)
        opacity = self._sdf_to_density(signed_distance).clamp(max=1.0 - 1e-6)
        if self.rainbow:
            base_color = torch.clamp(torch.abs(sample_points - self.sdf.center), 0.02, 0.98)
        else:
            base_color = 1.0
        # the density whose segment opacity 1 - exp(-density * delta) is the SDF-derived opacity
        return {
            "density": -torch.log(1.0 - opacity) / deltas,
            "feature": base_color * self.feature * sample_points.new_ones(sample_points.shape[0], 1),
        }


class HarmonicEmbedding(torch.nn.Module):
    """x -> (sin(f_k x), cos(f_k x), [x]) with frequencies f_k = omega0 * 2^k, k < n_harmonic_functions."""

    def __init__(self, in_channels: int = 3, n_harmonic_functions: int = 6, omega0: float = 1.0,
                 include_input: bool = True) -> None:
        super().__init__()
        self.register_buffer("_frequencies", omega0 * (2.0 ** torch.arange(n_harmonic_functions, dtype=torch.float32)),
                             persistent=False)
        self.include_input = include_input
        self.output_dim = n_harmonic_functions * 2 * in_channels + (in_channels if include_input else 0)

    def forward(self, x: torch.Tensor):
        embed = (x[..., None] * self._frequencies).view(*x.shape[:-1], -1)
        parts = [embed.sin(), embed.cos()] + ([x] if self.include_input else [])
        return torch.cat(parts, dim=-1)


class MLPWithInputSkips(torch.nn.Module):
    """n_layers Linear+ReLU layers; the layers listed in input_skips also see the (embedded) input."""

    def __init__(self, n_layers: int, input_dim: int, output_dim: int, skip_dim: int, hidden_dim: int,
                 input_skips=()):
        super().__init__()
        layers = []
        for layer in range(n_layers):
            dim_in = input_dim if layer == 0 else hidden_dim
            if layer in input_skips:
                dim_in += skip_dim
            dim_out = output_dim if layer == n_layers - 1 else hidden_dim
            layers.append(torch.nn.Sequential(torch.nn.Linear(dim_in, dim_out), torch.nn.ReLU(True)))
        self.mlp = torch.nn.ModuleList(layers)
        self._input_skips = set(input_skips)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = x
        for layer_idx, layer in enumerate(self.mlp):
            if layer_idx in self._input_skips:
                y = torch.cat((y, z), dim=-1)
            y = layer(y)
        return y


class NeuralRadianceField(torch.nn.Module):
    """The NeRF MLP (Q3): forward(ray_bundle) -> {'density': (R * n, 1) >= 0, 'feature': (R * n, 3) in (0, 1)}."""

    def __init__(self, cfg):
        super().__init__()
        # TODO Task 3: replace this raise with your code.
        raise NotImplementedError("Task 3: fill in the missing lines here")

    def forward(self, ray_bundle):
        # TODO Task 3: replace this raise with your code.
        raise NotImplementedError("Task 3: fill in the missing lines here")


class NeuralSurface(torch.nn.Module):
    """A neural SDF with a colour head (Q6, Q7). Points (..., 3) are read as (N, 3).

    get_distance(points) -> (N, 1), unbounded (negative inside); get_color(points) -> (N, 3) in [0, 1].
    """

    def __init__(self, cfg):
        super().__init__()
        # TODO Task 6: replace this raise with your code.
        raise NotImplementedError("Task 6: fill in the missing lines here")
        # TODO Task 7: replace this raise with your code.
        raise NotImplementedError("Task 7: fill in the missing lines here")

    def _features(self, points):
        points = points.view(-1, 3)
        embedded = self.harmonic_embedding_xyz(points)
        return embedded, self.distance_mlp(embedded, embedded)

    def get_distance(self, points):
        """points (N, 3) -> signed distances (N, 1)."""
        # TODO Task 6: replace this raise with your code.
        raise NotImplementedError("Task 6: fill in the missing lines here")

    def get_color(self, points):
        """points (N, 3) -> colours (N, 3) in [0, 1]."""
        # TODO Task 7: replace this raise with your code.
        raise NotImplementedError("Task 7: fill in the missing lines here")

    def get_distance_color(self, points):
        """points (N, 3) -> (distances (N, 1), colours (N, 3)), sharing one pass through the MLP."""
        # TODO Task 7: replace this raise with your code.
        raise NotImplementedError("Task 7: fill in the missing lines here")

    def forward(self, points):
        return self.get_distance(points)

    def get_distance_and_gradient(self, points):
        has_grad = torch.is_grad_enabled()
        points = points.view(-1, 3)
        with torch.enable_grad():
            points = points.requires_grad_(True)
            distance = self.get_distance(points)
            gradient = torch.autograd.grad(distance, points, torch.ones_like(distance), create_graph=has_grad,
                                           retain_graph=has_grad, only_inputs=True)[0]
        return distance, gradient


implicit_dict = {
    "sdf_volume": SDFVolume,
    "nerf": NeuralRadianceField,
    "sdf_surface": SDFSurface,
    "neural_surface": NeuralSurface,
}
