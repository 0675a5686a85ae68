"""
1.2 Re-creating the Dolly Zoom.

Usage:
    python -m starter.dolly_zoom --num_frames 10
"""
import argparse
import math

import numpy as np
import torch

from lite3d import FoVPerspectiveCameras
from starter.utils import get_device, get_mesh_renderer, load_cow_mesh


def dolly_zoom_camera(fov, device="cpu"):
    """The camera of one frame of the dolly zoom.

    The camera looks at the cow (at the origin) down +Z with R = I, from the distance at which the
    cow keeps the same size in the image whatever the field of view.

    Args:
        fov (float): the vertical field of view in DEGREES (the sweep goes 5 .. 120).
        device: torch device of the camera.

    Returns:
        FoVPerspectiveCameras with fov=fov and T = [[0, 0, distance]] (a batch of one camera).
    """
    # the distance at which the cow has the same size as in the 60-degree view from distance 3
    # TODO Task 1.2.1: replace this raise with your code.
    raise NotImplementedError("Task 1.2.1: fill in the missing lines here")
    return FoVPerspectiveCameras(fov=fov, T=T, device=device)


def dolly_zoom(image_size=256, num_frames=10, duration=3, device=None, output_file="output/dolly.gif"):
    """Renders the dolly zoom of the cow as a GIF (needs pytorch3d's renderer; see starter/utils.py)."""
    import imageio
    from PIL import Image, ImageDraw

    if device is None:
        device = get_device()
    renderer = get_mesh_renderer(image_size=image_size, device=device)
    from lite3d import Meshes, TexturesVertex  # the course: pytorch3d.io.load_objs_as_meshes(["data/cow_on_plane.obj"])

    verts, faces = load_cow_mesh("data/cow_on_plane.obj")
    mesh = Meshes([verts], [faces], TexturesVertex([torch.ones_like(verts) * 0.7])).to(device)
    fovs = torch.linspace(5, 120, num_frames)
    images = []
    for fov in fovs:
        cameras = dolly_zoom_camera(float(fov), device=device)
        rend = renderer(mesh, cameras=cameras)[0, ..., :3].cpu().numpy()  # (H, W, 3)
        image = Image.fromarray((rend * 255).astype(np.uint8))
        ImageDraw.Draw(image).text((20, 20), f"fov: {fov:.2f}", fill=(255, 0, 0))
        images.append(np.array(image))
    imageio.mimsave(output_file, images, duration=duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_frames", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--output_file", type=str, default="images/dolly.gif")
    parser.add_argument("--image_size", type=int, default=256)
    args = parser.parse_args()
    dolly_zoom(image_size=args.image_size, num_frames=args.num_frames, duration=args.duration,
               output_file=args.output_file)
