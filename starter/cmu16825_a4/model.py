"""CMU 16-825 Assignment 4, Q1: 3D Gaussian splatting in plain torch.

Conventions (pytorch3d's, which lite3d keeps; see lite3d/cameras.py):
* Cameras are lite3d PerspectiveCameras defined in screen space (in_ndc=False): focal length and principal
  point in pixels. A world point X (row vector) goes to view space as X_view = X @ R + T, so the usual
  column-vector world-to-view rotation is W = R^T. The camera looks along +Z (in front: Z > 0).
* Pixels: x_screen = fx * X / Z + px, y_screen = fy * Y / Z + py (view-space X, Y, Z).
* img_size is (width, height), as in the course's code; images come out as (H, W, C).
* Quaternions are (w, x, y, z); scales and opacities are stored before their activations
  (exp and sigmoid, see Gaussians.apply_activations).
"""
import math
from typing import Optional, Tuple

import numpy as np
import torch

from data_utils import colours_from_spherical_harmonics, load_gaussians_from_ply
from lite3d.cameras import PerspectiveCameras
from lite3d.transforms import quaternion_to_matrix


def _knn_mean_distance(points: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) mean squared distance of each point to its k nearest other points (the course uses
    pytorch3d's knn_points, which returns squared distances)."""
    d2 = torch.cdist(points, points) ** 2  # (N, N)
    k = max(1, min(k, len(points) - 1))
    nearest = torch.topk(d2, k + 1, dim=1, largest=False).values[:, 1:]  # drop the point itself
    return nearest.mean(dim=1).clamp_min(1e-12)


class Gaussians:

    def __init__(self, init_type: str, device: str, load_path: Optional[str] = None,
                 num_points: Optional[int] = None, isotropic: Optional[bool] = None):
        self.device = device
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"Unsupported device: {self.device}")

        if init_type == "gaussians":
            if isotropic is not None:
                raise ValueError("isotropy is read from the pre-trained Gaussians; leave isotropic=None")
            if load_path is None:
                raise ValueError("init_type='gaussians' needs load_path")
            data, self.is_isotropic = self._load_gaussians(load_path)
        elif init_type in ("points", "random"):
            if isotropic is not None and type(isotropic) is not bool:
                raise TypeError("isotropic must be None, True or False")
            self.is_isotropic = bool(isotropic)
            if init_type == "points":
                if load_path is None:
                    raise ValueError("init_type='points' needs load_path")
                data = self._load_points(load_path)
            else:
                if num_points is None:
                    raise ValueError("init_type='random' needs num_points")
                data = self._load_random(num_points)
        else:
            raise ValueError(f"Invalid init_type: {init_type}")

        self.pre_act_quats = data["pre_act_quats"]  # (N, 4)
        self.means = data["means"]  # (N, 3)
        self.pre_act_scales = data["pre_act_scales"]  # (N, 1) isotropic or (N, 3)
        self.colours = data["colours"]  # (N, 3)
        self.pre_act_opacities = data["pre_act_opacities"]  # (N,)

        # [Q 1.3.1] spherical harmonics, when the file has them
        if data.get("spherical_harmonics") is not None:
            self.spherical_harmonics = data["spherical_harmonics"]

        if self.device == "cuda":
            self.to_cuda()

    def __len__(self):
        return len(self.means)

    def _load_gaussians(self, ply_path: str):
        ply = load_gaussians_from_ply(ply_path)
        data = {
            "means": torch.tensor(ply["xyz"]),
            "pre_act_quats": torch.tensor(ply["rot"]),
            "pre_act_scales": torch.tensor(ply["scale"]),
            "pre_act_opacities": torch.tensor(ply["opacity"]).reshape(-1),
            "colours": torch.tensor(ply["dc_colours"]),
        }
        if ply.get("sh") is not None:
            data["spherical_harmonics"] = torch.tensor(ply["sh"])
        if data["pre_act_scales"].shape[1] != 3:
            raise NotImplementedError("pre-trained isotropic Gaussians are not supported")
        return data, False

    def _init_common(self, means: torch.Tensor, pre_act_scales: torch.Tensor):
        n = len(means)
        quats = torch.zeros((n, 4), dtype=torch.float32)
        quats[:, 0] = 1.0  # the identity rotation
        if not self.is_isotropic:
            pre_act_scales = pre_act_scales.repeat(1, 3)  # (N, 3)
        return {
            "means": means,  # (N, 3)
            "pre_act_opacities": 8.0 * torch.ones((n,), dtype=torch.float32),  # sigmoid(8) ~ 1
            "colours": torch.rand((n, 3), dtype=torch.float32),  # (N, 3)
            "pre_act_quats": quats,  # (N, 4)
            "pre_act_scales": pre_act_scales,
        }

    def _load_points(self, path: str):
        means = torch.tensor(np.load(path).astype(np.float32))  # (N, 3)
        # scale from the mean (squared) distance to the 50 nearest points, as the course initialises it
        pre_act_scales = torch.log(_knn_mean_distance(means, 50)).unsqueeze(1)  # (N, 1)
        return self._init_common(means, pre_act_scales)

    def _load_random(self, num_points: int):
        means = torch.randn((num_points, 3)).to(torch.float32) * 0.2  # (N, 3)
        pre_act_scales = torch.log((torch.rand((num_points, 1), dtype=torch.float32) + 1e-6) * 0.01)
        return self._init_common(means, pre_act_scales)

    def _compute_jacobian(self, means_3D: torch.Tensor, camera: PerspectiveCameras, img_size: Tuple):
        """(N, 2, 3) Jacobian of the screen projection at each mean (given code)."""
        if camera.in_ndc():
            raise RuntimeError("the splatting code needs a camera defined in screen space (in_ndc=False)")

        fx, fy = camera.focal_length.flatten()
        W, H = img_size

        half_tan_fov_x = 0.5 * W / fx
        half_tan_fov_y = 0.5 * H / fy

        means_view_space = camera.get_world_to_view_transform().transform_points(means_3D)  # (N, 3)
        tx, ty, tz = means_view_space[:, 0], means_view_space[:, 1], means_view_space[:, 2]
        tz2 = tz * tz

        # limit the projected position to 1.3 times the field of view (as the 3DGS paper's code does)
        lim_x, lim_y = 1.3 * half_tan_fov_x, 1.3 * half_tan_fov_y
        tx = torch.clamp(tx / tz, -lim_x, lim_x) * tz
        ty = torch.clamp(ty / tz, -lim_y, lim_y) * tz

        J = torch.zeros((len(tx), 2, 3), dtype=means_view_space.dtype, device=means_view_space.device)
        J[:, 0, 0] = fx / tz
        J[:, 1, 1] = fy / tz
        J[:, 0, 2] = -(fx * tx) / tz2
        J[:, 1, 2] = -(fy * ty) / tz2
        return J  # (N, 2, 3)

    def check_if_trainable(self):
        attrs = ["means", "pre_act_scales", "colours", "pre_act_opacities"]
        if not self.is_isotropic:
            attrs += ["pre_act_quats"]
        for attr in attrs:
            if not getattr(getattr(self, attr), "requires_grad", False):
                raise Exception("Please use function make_trainable to make parameters trainable")
        if self.is_isotropic and self.pre_act_quats.requires_grad:
            raise RuntimeError("You do not need to optimize quaternions in isotropic mode.")

    def to_cuda(self):
        for name in ("pre_act_quats", "means", "pre_act_scales", "colours", "pre_act_opacities", "spherical_harmonics"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).cuda())

    def compute_cov_3D(self, quats: torch.Tensor, scales: torch.Tensor):
        """Covariances of the 3D Gaussians, Sigma = R S S^T R^T (equation (6) of the 3DGS paper).

        Args:
            quats:  (N, 4) unit quaternions (w, x, y, z): the rotations R.
            scales: (N, 1) if self.is_isotropic else (N, 3): the standard deviations along the
                    Gaussian's own axes, already activated (positive).

        Returns:
            cov_3D: (N, 3, 3) symmetric positive definite.
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        return cov_3D

    def compute_cov_2D(self, means_3D: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                       camera: PerspectiveCameras, img_size: Tuple):
        """Covariances of the projected 2D Gaussians in pixels^2, Sigma' = J W Sigma W^T J^T
        (equation (5) of the 3DGS paper), plus 0.3 on the diagonal.

        Args:
            means_3D: (N, 3) world-space means.
            quats:    (N, 4) unit quaternions.
            scales:   (N, 1) or (N, 3) activated scales.
            camera:   a PerspectiveCameras in screen space (one camera).
            img_size: (width, height) of the image.

        Returns:
            cov_2D: (N, 2, 2).
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

        # Post processing to make sure that each 2D Gaussian covers at least approximately 1 pixel
        cov_2D[:, 0, 0] += 0.3
        cov_2D[:, 1, 1] += 0.3
        return cov_2D

    @staticmethod
    def compute_means_2D(means_3D: torch.Tensor, camera: PerspectiveCameras):
        """Means of the projected 2D Gaussians, in pixels (screen space, not NDC).

        Args:
            means_3D: (N, 3) world-space means.
            camera:   a PerspectiveCameras in screen space.

        Returns:
            means_2D: (N, 2) pixel coordinates (x, y).
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        return means_2D

    @staticmethod
    def invert_cov_2D(cov_2D: torch.Tensor):
        """(N, 2, 2) inverses of 2x2 matrices by the closed form (given code)."""
        det = (cov_2D[:, 0, 0] * cov_2D[:, 1, 1] - cov_2D[:, 1, 0] * cov_2D[:, 0, 1])[:, None, None]
        adj = torch.stack([torch.stack([cov_2D[:, 1, 1], -cov_2D[:, 0, 1]], -1),
                           torch.stack([-cov_2D[:, 1, 0], cov_2D[:, 0, 0]], -1)], -2)  # (N, 2, 2)
        return adj / det

    @staticmethod
    def evaluate_gaussian_2D(points_2D: torch.Tensor, means_2D: torch.Tensor, cov_2D_inverse: torch.Tensor):
        """The exponent ("power") of the 2D Gaussians at every pixel: P = -1/2 (x - mu)^T Sigma'^-1 (x - mu).

        Args:
            points_2D:      (1, H*W, 2) pixel positions (x, y).
            means_2D:       (N, 1, 2) means in pixels.
            cov_2D_inverse: (N, 2, 2) inverse 2D covariances.

        Returns:
            power: (N, H*W), at most 0 (0 at the mean).
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        return power

    @staticmethod
    def apply_activations(pre_act_quats, pre_act_scales, pre_act_opacities):
        scales = torch.exp(pre_act_scales)  # log-scales to scales
        quats = torch.nn.functional.normalize(pre_act_quats)  # unit quaternions
        opacities = torch.sigmoid(pre_act_opacities)  # in (0, 1)
        return quats, scales, opacities


class Scene:

    def __init__(self, gaussians: Gaussians):
        self.gaussians = gaussians
        self.device = self.gaussians.device

    def __repr__(self):
        return f"<Scene with {len(self.gaussians)} Gaussians>"

    def calculate_gaussian_directions(self, means_3D, camera):
        """[Q 1.3.1] (N, 3) unit directions from the camera centre to each mean, in world space."""
        # TODO Task 1.3: replace this raise with your code.
        raise NotImplementedError("Task 1.3: fill in the missing lines here")
        return gaussian_dirs

    def compute_depth_values(self, camera: PerspectiveCameras):
        """(N,) view-space depth Z of each Gaussian's mean (positive in front of the camera)."""
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        return z_vals

    def get_idxs_to_filter_and_sort(self, z_vals: torch.Tensor):
        """int64 indices of the Gaussians with z >= 0, in ascending order of depth (nearest first).

        Args:
            z_vals: (M,) depths.

        Returns:
            idxs: (N,) int64, N <= M; z_vals[idxs] is sorted ascending and has no negative value.
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        return idxs

    def compute_alphas(self, opacities, means_2D, cov_2D, img_size):
        """(N, H, W) alphas alpha = o * exp(P) of N depth-ordered Gaussians at every pixel.

        Args:
            opacities: (N,) in (0, 1).
            means_2D:  (N, 2) pixels.
            cov_2D:    (N, 2, 2).
            img_size:  (width, height).
        """
        W, H = img_size

        # points_2D holds every pixel position of the image (x, y), row by row
        xs, ys = torch.meshgrid(torch.arange(W), torch.arange(H), indexing="xy")
        points_2D = torch.stack((xs.flatten(), ys.flatten()), dim=1).to(means_2D)  # (H*W, 2)
        points_2D = points_2D.unsqueeze(0)  # (1, H*W, 2)
        means_2D = means_2D.unsqueeze(1)  # (N, 1, 2)

        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

        # exp(power) with some post processing for numerical stability
        exp_power = torch.where(power > 0.0, 0.0, torch.exp(power))

        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")
        alphas = torch.reshape(alphas, (-1, H, W))  # (N, H, W)

        # Post processing for numerical stability
        alphas = torch.minimum(alphas, torch.full_like(alphas, 0.99))
        alphas = torch.where(alphas < 1 / 255.0, 0.0, alphas)
        return alphas

    def compute_transmittance(self, alphas: torch.Tensor, start_transmittance: Optional[torch.Tensor] = None):
        """(N, H, W) transmittance T_i = S * prod_{j < i} (1 - alpha_j): what light reaches Gaussian i.

        Args:
            alphas:              (N, H, W) alphas of N depth-ordered Gaussians.
            start_transmittance: None (S = 1) or (1, H, W): the transmittance before the first of
                                 these Gaussians (mini-batch splatting).
        """
        _, H, W = alphas.shape
        if start_transmittance is None:
            S = torch.ones((1, H, W), device=alphas.device, dtype=alphas.dtype)
        else:
            S = start_transmittance

        one_minus_alphas = 1.0 - alphas
        one_minus_alphas = torch.concat((S, one_minus_alphas), dim=0)  # (N+1, H, W)

        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

        # Post processing for numerical stability
        transmittance = torch.where(transmittance < 1e-4, 0.0, transmittance)  # (N, H, W)
        return transmittance

    def splat(self, camera: PerspectiveCameras, means_3D: torch.Tensor, z_vals: torch.Tensor,
              quats: torch.Tensor, scales: torch.Tensor, colours: torch.Tensor, opacities: torch.Tensor,
              img_size: Tuple = (256, 256), start_transmittance: Optional[torch.Tensor] = None):
        """Splat N depth-ordered Gaussians: image = sum_i c_i alpha_i T_i, depth = sum_i z_i alpha_i T_i,
        mask = sum_i alpha_i T_i.

        Returns:
            image (H, W, 3), depth (H, W, 1), mask (H, W, 1) and final_transmittance (1, H, W).
        """
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

        # Some unsqueezing to set up broadcasting
        z_vals = z_vals[:, None, None, None]  # (N, 1, 1, 1)
        alphas = alphas[..., None]  # (N, H, W, 1)
        colours = colours[:, None, None, :]  # (N, 1, 1, 3)
        transmittance = transmittance[..., None]  # (N, H, W, 1)

        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

        final_transmittance = transmittance[-1, ..., 0].unsqueeze(0)  # (1, H, W)
        return image, depth, mask, final_transmittance

    def render(self, camera: PerspectiveCameras, per_splat: int = -1, img_size: Tuple = (256, 256),
               bg_colour: Tuple = (0.0, 0.0, 0.0)):
        """Render the scene from `camera`: image (H, W, 3), depth (H, W, 1) and mask (H, W, 1).
        per_splat: Gaussians splatted per call (-1: all at once). img_size: (width, height)."""
        bg_colour_ = torch.tensor(bg_colour)[None, None, :].to(self.gaussians.means)  # (1, 1, 3)

        # Globally sort the Gaussians by depth
        z_vals = self.compute_depth_values(camera)
        idxs = self.get_idxs_to_filter_and_sort(z_vals)

        pre_act_quats = self.gaussians.pre_act_quats[idxs]
        pre_act_scales = self.gaussians.pre_act_scales[idxs]
        pre_act_opacities = self.gaussians.pre_act_opacities[idxs]
        z_vals = z_vals[idxs]
        means_3D = self.gaussians.means[idxs]

        if getattr(self, "use_spherical_harmonics", False):  # [Q 1.3.1]
            gaussian_dirs = self.calculate_gaussian_directions(means_3D, camera)
            colours = colours_from_spherical_harmonics(self.gaussians.spherical_harmonics[idxs], gaussian_dirs)
        else:
            colours = self.gaussians.colours[idxs]

        quats, scales, opacities = self.gaussians.apply_activations(pre_act_quats, pre_act_scales, pre_act_opacities)

        if per_splat == -1:
            num_mini_batches = 1
        elif per_splat > 0:
            num_mini_batches = math.ceil(len(means_3D) / per_splat)
        else:
            raise ValueError("Invalid setting of per_splat")

        if num_mini_batches == 1:
            image, depth, mask, _ = self.splat(camera, means_3D, z_vals, quats, scales, colours, opacities, img_size)
        else:
            W, H = img_size
            D = means_3D.device
            start_transmittance = torch.ones((1, H, W), dtype=torch.float32).to(D)
            image = torch.zeros((H, W, 3), dtype=torch.float32).to(D)
            depth = torch.zeros((H, W, 1), dtype=torch.float32).to(D)
            mask = torch.zeros((H, W, 1), dtype=torch.float32).to(D)
            for b in range(num_mini_batches):
                sl = slice(b * per_splat, (b + 1) * per_splat)
                image_, depth_, mask_, start_transmittance = self.splat(
                    camera, means_3D[sl], z_vals[sl], quats[sl], scales[sl], colours[sl], opacities[sl],
                    img_size, start_transmittance)
                image, depth, mask = image + image_, depth + depth_, mask + mask_

        image = mask * image + (1.0 - mask) * bg_colour_
        return image, depth, mask
