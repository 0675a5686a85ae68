"""Cameras in plain torch with pytorch3d's conventions (the course code depends on them).

Conventions, stated once:
* World to view, row vectors: X_view = X_world @ R + T, with R (N, 3, 3) and T (N, 3). So the usual
  column-vector world-to-view rotation is W = R^T, and the camera centre is C = -T @ R^T.
* View space: +X left, +Y up, +Z forward (the camera looks along +Z; points in front have Z > 0).
* NDC: +x left, +y up; the shorter image side spans [-1, 1], the longer one [-s, s] with s the aspect
  ratio (longer / shorter). Pixel centres sit at 1 - (2i + 1) / min(H, W) ... (align_corners=False).
* Screen: pixels, (0, 0) the top-left corner of the top-left pixel and (W, H) the bottom-right corner:
  x_screen = W / 2 - x_ndc * min(H, W) / 2, y_screen = H / 2 - y_ndc * min(H, W) / 2.
* image_size is (H, W), height first, as in pytorch3d.
* PerspectiveCameras: in NDC (in_ndc=True, the default) x_ndc = fx X / Z + px, y_ndc = fy Y / Z + py.
  Defined in screen space (in_ndc=False, focal length and principal point in pixels, image_size
  required) x_screen = fx X / Z + px, y_screen = fy Y / Z + py, then screen to NDC as above.
* FoVPerspectiveCameras: x_ndc = X / (Z tan(fov/2) aspect_ratio), y_ndc = Y / (Z tan(fov/2)).
* look_at_view_transform(dist, elev, azim): the camera sits at
  dist * (cos(elev) sin(azim), sin(elev), cos(elev) cos(azim)) looking at `at` with `up` as up.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .transforms import Transform3d, _as_tensor

_R = torch.eye(3)[None]
_T = torch.zeros(1, 3)


def _batch(x, n_last: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """A parameter as (N, n_last): scalars and single rows broadcast, as pytorch3d accepts them."""
    t = _as_tensor(x, dtype, device).to(dtype)
    if t.dim() == 0:
        t = t.reshape(1, 1)
    elif t.dim() == 1:  # one row (fx, fy) / (H, W), or one scalar per camera
        t = t[None] if t.shape[0] == n_last else t[:, None]
    if t.shape[-1] == 1 and n_last > 1:
        t = t.expand(-1, n_last)
    return t


def _broadcast(*tensors: torch.Tensor) -> list[torch.Tensor]:
    n = max(t.shape[0] for t in tensors)
    out = []
    for t in tensors:
        if t.shape[0] not in (1, n):
            raise ValueError(f"camera parameters have batch sizes {[u.shape[0] for u in tensors]}; they must be 1 or equal")
        out.append(t.expand((n,) + t.shape[1:]) if t.shape[0] == 1 else t)
    return out


def camera_position_from_spherical_angles(distance, elevation, azimuth, degrees: bool = True, device="cpu") -> torch.Tensor:
    """(N, 3) camera positions at `distance` from the origin; elevation above the XZ plane, azimuth from +Z."""
    dist, elev, azim = (_as_tensor(v, torch.float32, device).reshape(-1) for v in (distance, elevation, azimuth))
    if degrees:
        elev, azim = elev * math.pi / 180.0, azim * math.pi / 180.0
    dist, elev, azim = torch.broadcast_tensors(dist, elev, azim)
    return torch.stack([dist * torch.cos(elev) * torch.sin(azim), dist * torch.sin(elev),
                        dist * torch.cos(elev) * torch.cos(azim)], dim=1)


def look_at_rotation(camera_position, at=((0, 0, 0),), up=((0, 1, 0),), device="cpu") -> torch.Tensor:
    """(N, 3, 3) row-vector rotations R of cameras at `camera_position` looking at `at`."""
    eye, at, up = (_as_tensor(v, torch.float32, device).reshape(-1, 3) for v in (camera_position, at, up))
    eye, at, up = _broadcast(eye, at, up)
    z = torch.nn.functional.normalize(at - eye, dim=1, eps=1e-5)
    x = torch.nn.functional.normalize(torch.cross(up, z, dim=1), dim=1, eps=1e-5)
    y = torch.nn.functional.normalize(torch.cross(z, x, dim=1), dim=1, eps=1e-5)
    degenerate = x.norm(dim=1, keepdim=True) < 5e-3  # looking along `up`: any x perpendicular to z
    if degenerate.any():
        alt = torch.nn.functional.normalize(torch.cross(y, z, dim=1), dim=1, eps=1e-5)
        x = torch.where(degenerate, alt, x)
    R = torch.stack([x, y, z], dim=1)  # rows are the camera axes in world coordinates
    return R.transpose(1, 2)


def look_at_view_transform(dist=1.0, elev=0.0, azim=0.0, degrees: bool = True, eye=None, at=((0, 0, 0),),
                           up=((0, 1, 0),), device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(R, T) of cameras looking at `at`: from spherical angles around it, or from `eye` when given."""
    at_t = _as_tensor(at, torch.float32, device).reshape(-1, 3)
    if eye is not None:
        C = _as_tensor(eye, torch.float32, device).reshape(-1, 3)
    else:
        C = camera_position_from_spherical_angles(dist, elev, azim, degrees, device)
        C, at_b = _broadcast(C, at_t)
        C = C + at_b
    R = look_at_rotation(C, at_t, up, device)
    C = C.expand(R.shape[0], 3) if C.shape[0] == 1 else C
    T = -torch.bmm(R.transpose(1, 2), C[:, :, None])[:, :, 0]
    return R, T


class CamerasBase:
    """What every camera shares: the extrinsics, the camera centre and the screen/NDC conversions."""

    def __init__(self, R=_R, T=_T, device="cpu", image_size=None) -> None:
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.R = _as_tensor(R, torch.float32, self.device).reshape(-1, 3, 3)
        self.T = _as_tensor(T, torch.float32, self.device).reshape(-1, 3)
        self.image_size = None if image_size is None else _batch(image_size, 2, torch.float32, self.device)

    # -- extrinsics --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return max(self.R.shape[0], self.T.shape[0])

    def get_world_to_view_transform(self, R=None, T=None) -> Transform3d:
        R = self.R if R is None else _as_tensor(R).reshape(-1, 3, 3)
        T = self.T if T is None else _as_tensor(T).reshape(-1, 3)
        R, T = _broadcast(R, T.to(R))
        m = torch.zeros(R.shape[0], 4, 4, dtype=R.dtype, device=R.device)
        m[:, :3, :3] = R
        m[:, 3, :3] = T
        m[:, 3, 3] = 1.0
        return Transform3d(m)

    def get_camera_center(self) -> torch.Tensor:
        """(N, 3) camera centres in world coordinates: C = -T @ R^T."""
        R, T = _broadcast(self.R, self.T)
        return -torch.bmm(T[:, None, :], R.transpose(1, 2))[:, 0, :]

    def is_perspective(self) -> bool:
        return True

    def in_ndc(self) -> bool:
        return True

    # -- projection ----------------------------------------------------------------------------------
    def get_projection_transform(self) -> Transform3d:  # pragma: no cover - each camera defines its own
        raise NotImplementedError

    def get_full_projection_transform(self) -> Transform3d:
        """World to NDC (or to screen for a camera defined in screen space)."""
        return self.get_world_to_view_transform().compose(self.get_projection_transform())

    def _image_size(self, image_size=None) -> torch.Tensor:
        size = self.image_size if image_size is None else _batch(image_size, 2, torch.float32, self.device)
        if size is None:
            raise ValueError("this conversion needs image_size=(H, W)")
        return size

    def get_ndc_to_screen_transform(self, image_size=None) -> Transform3d:
        size = self._image_size(image_size)
        h, w = size[:, 0], size[:, 1]
        s = torch.minimum(h, w) / 2.0
        m = torch.zeros(size.shape[0], 4, 4, device=size.device)
        m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 3, 3] = -s, -s, 1.0, 1.0
        m[:, 3, 0], m[:, 3, 1] = w / 2.0, h / 2.0
        return Transform3d(m)

    def get_ndc_camera_transform(self) -> Transform3d:
        """Projected space to NDC: identity for cameras defined in NDC."""
        if self.in_ndc():
            return Transform3d(device=self.device)
        return self.get_ndc_to_screen_transform().inverse()

    def transform_points(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """World points (P, 3) or (N, P, 3) to the camera's projected space (NDC or screen): (x, y, z')."""
        return self.get_full_projection_transform().transform_points(points, eps=eps)

    def transform_points_ndc(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        full = self.get_full_projection_transform().compose(self.get_ndc_camera_transform())
        return full.transform_points(points, eps=eps)

    def transform_points_screen(self, points: torch.Tensor, eps: float | None = None, image_size=None,
                                with_xyflip: bool = True) -> torch.Tensor:
        """World points to pixels (x right, y down, from the image's top-left corner); z as in NDC."""
        ndc = self.transform_points_ndc(points, eps=eps)
        if not with_xyflip:
            raise NotImplementedError("with_xyflip=False is not supported")
        return self.get_ndc_to_screen_transform(image_size).transform_points(ndc)

    def unproject_points(self, xy_depth: torch.Tensor, world_coordinates: bool = True, scaled_depth_input: bool = False,
                         from_ndc: bool = False) -> torch.Tensor:  # pragma: no cover - each camera defines its own
        raise NotImplementedError

    def _view_to_world(self, view: torch.Tensor, world_coordinates: bool) -> torch.Tensor:
        if not world_coordinates:
            return view
        return self.get_world_to_view_transform().inverse().transform_points(view)

    # -- device --------------------------------------------------------------------------------------
    def to(self, device) -> "CamerasBase":
        device = torch.device(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self.device = device
        return self

    def cuda(self) -> "CamerasBase":
        return self.to("cuda" if torch.cuda.is_available() else "cpu")

    def cpu(self) -> "CamerasBase":
        return self.to("cpu")

    def get_image_size(self):
        return self.image_size


class PerspectiveCameras(CamerasBase):
    """Pinhole cameras by focal length and principal point, in NDC (default) or in screen space."""

    def __init__(self, focal_length=1.0, principal_point=((0.0, 0.0),), R=_R, T=_T, K=None, device="cpu",
                 in_ndc: bool = True, image_size=None) -> None:
        super().__init__(R, T, device, image_size)
        if K is not None:
            raise NotImplementedError("PerspectiveCameras(K=...) is not supported; give focal_length and principal_point")
        if not in_ndc and image_size is None:
            raise ValueError("a camera defined in screen space (in_ndc=False) needs image_size=(H, W)")
        self.focal_length = _batch(focal_length, 2, torch.float32, self.device)
        self.principal_point = _batch(principal_point, 2, torch.float32, self.device)
        self._in_ndc = in_ndc

    def in_ndc(self) -> bool:
        return self._in_ndc

    def __len__(self) -> int:
        return max(super().__len__(), self.focal_length.shape[0], self.principal_point.shape[0])

    def get_projection_transform(self) -> Transform3d:
        f, p = _broadcast(self.focal_length, self.principal_point)
        m = torch.zeros(f.shape[0], 4, 4, device=f.device)
        # row-vector form of x' = fx X + px Z, y' = fy Y + py Z, z' = 1, w = Z (so z' / w = 1 / Z)
        m[:, 0, 0], m[:, 1, 1] = f[:, 0], f[:, 1]
        m[:, 2, 0], m[:, 2, 1] = p[:, 0], p[:, 1]
        m[:, 3, 2], m[:, 2, 3] = 1.0, 1.0
        return Transform3d(m)

    def unproject_points(self, xy_depth: torch.Tensor, world_coordinates: bool = True, scaled_depth_input: bool = False,
                         from_ndc: bool = False, **kwargs) -> torch.Tensor:
        """(..., 3) image points (x, y, depth): x, y in the camera's space (NDC, or pixels for a screen-space
        camera unless from_ndc=True), depth the view-space Z. Returns world points (or view points)."""
        pts = _as_tensor(xy_depth, torch.float32, self.device)
        xy, depth = pts[..., :2], pts[..., 2:3]
        if scaled_depth_input:
            depth = 1.0 / depth
        if not self._in_ndc and from_ndc:
            size = self._image_size()
            h, w = size[:, 0], size[:, 1]
            s = (torch.minimum(h, w) / 2.0)[:, None]
            centre = torch.stack([w / 2.0, h / 2.0], -1)
            xy = (centre - s * xy) if xy.dim() == 2 and centre.shape[0] == 1 else centre[:, None] - s[:, None] * xy
            xy = xy[0] if pts.dim() == 2 and xy.dim() == 3 and xy.shape[0] == 1 else xy
        f, p = _broadcast(self.focal_length, self.principal_point)
        if pts.dim() == 2 and f.shape[0] == 1:
            f, p = f[0], p[0]
        elif pts.dim() == 3:
            f, p = f[:, None], p[:, None]
        view = torch.cat([(xy - p) / f * depth, depth], dim=-1)
        return self._view_to_world(view, world_coordinates)


class FoVPerspectiveCameras(CamerasBase):
    """Pinhole cameras by vertical field of view (OpenGL-style), always in NDC."""

    def __init__(self, znear=1.0, zfar=100.0, aspect_ratio=1.0, fov=60.0, degrees: bool = True, R=_R, T=_T, K=None,
                 device="cpu") -> None:
        super().__init__(R, T, device)
        if K is not None:
            raise NotImplementedError("FoVPerspectiveCameras(K=...) is not supported")
        self.znear, self.zfar, self.aspect_ratio, self.fov = (
            _as_tensor(v, torch.float32, self.device).reshape(-1) for v in (znear, zfar, aspect_ratio, fov))
        self.degrees = degrees

    def _tan_half(self) -> torch.Tensor:
        fov = self.fov * math.pi / 180.0 if self.degrees else self.fov
        return torch.tan(fov / 2.0)

    def get_projection_transform(self) -> Transform3d:
        tan, near, far, aspect = _broadcast(*(v[:, None] for v in (self._tan_half(), self.znear, self.zfar, self.aspect_ratio)))
        tan, near, far, aspect = tan[:, 0], near[:, 0], far[:, 0], aspect[:, 0]
        m = torch.zeros(tan.shape[0], 4, 4, device=tan.device)
        m[:, 0, 0] = 1.0 / (tan * aspect)
        m[:, 1, 1] = 1.0 / tan
        m[:, 2, 2] = far / (far - near)
        m[:, 3, 2] = -(far * near) / (far - near)
        m[:, 2, 3] = 1.0
        return Transform3d(m)

    def unproject_points(self, xy_depth: torch.Tensor, world_coordinates: bool = True, scaled_depth_input: bool = False,
                         from_ndc: bool = False, **kwargs) -> torch.Tensor:
        pts = _as_tensor(xy_depth, torch.float32, self.device)
        xy, depth = pts[..., :2], pts[..., 2:3]
        if scaled_depth_input:
            raise NotImplementedError("scaled_depth_input=True is not supported")
        tan = self._tan_half()[0]
        aspect = self.aspect_ratio[0]
        view = torch.cat([xy[..., :1] * tan * aspect * depth, xy[..., 1:2] * tan * depth, depth], dim=-1)
        return self._view_to_world(view, world_coordinates)


def ndc_grid(image_size: Sequence[int], dtype=torch.float32, device="cpu") -> torch.Tensor:
    """(H, W, 2) NDC coordinates (x, y) of the pixel centres, +x left and +y up (align_corners=False)."""
    h, w = int(image_size[0]), int(image_size[1])
    s = min(h, w)
    xs = (w - 1 - 2 * torch.arange(w, dtype=dtype, device=device)) / s  # left column: +(w - 1) / s
    ys = (h - 1 - 2 * torch.arange(h, dtype=dtype, device=device)) / s
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)
