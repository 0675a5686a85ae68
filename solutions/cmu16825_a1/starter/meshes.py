"""
1.1 360-degree renders, 2. Practicing with meshes, 3. Re-texturing a mesh.

Usage:
    python -m starter.meshes --shape tetrahedron --output_file images/tetrahedron.gif
    python -m starter.meshes --shape cube --output_file images/cube.gif
    python -m starter.meshes --shape cow --retexture --output_file images/cow_retextured.gif

Meshes are triangle meshes: vertices (V, 3) float and faces (F, 3) int64, each face three vertex
indices listed counter-clockwise seen from OUTSIDE the solid (so the normal (v1 - v0) x (v2 - v0)
points outwards), as pytorch3d and lite3d expect.
"""
import argparse

import torch

from lite3d import FoVPerspectiveCameras, Meshes, TexturesVertex, look_at_view_transform
from starter.utils import get_device, get_mesh_renderer, load_cow_mesh


def tetrahedron():
    """2.1: a tetrahedron (not necessarily regular).

    Returns:
        vertices (V, 3) float32 and faces (F, 3) int64: a closed triangle mesh, faces wound
        counter-clockwise seen from outside.
    """
    # BEGIN SOLUTION 2.1.1
    vertices = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) - 0.25
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=torch.int64)
    # END SOLUTION
    return vertices, faces


def cube():
    """2.2: an axis-aligned cube, each square side made of two triangles.

    Returns:
        vertices (V, 3) float32 and faces (F, 3) int64: a closed triangle mesh, faces wound
        counter-clockwise seen from outside.
    """
    # BEGIN SOLUTION 2.2.1
    # vertex i has coordinates (bit 0, bit 1, bit 2) of i, centred on the origin
    vertices = torch.tensor([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=torch.float32) - 0.5
    quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    faces = torch.tensor([tri for a, b, c, d in quads for tri in ([a, b, c], [a, c, d])], dtype=torch.int64)
    # END SOLUTION
    return vertices, faces


def retexture(vertices, color1, color2):
    """3: per-vertex colours fading from color1 at the front (smallest z) to color2 at the back.

    Args:
        vertices: (V, 3) float tensor.
        color1, color2: RGB triples in [0, 1].
    Returns:
        (V, 3) colours: alpha = (z - z_min) / (z_max - z_min), colour = alpha * color2 + (1 - alpha) * color1.
    """
    # BEGIN SOLUTION 3.1
    z = vertices[:, 2]
    alpha = ((z - z.min()) / (z.max() - z.min()))[:, None]  # (V, 1)
    color1 = torch.as_tensor(color1, dtype=vertices.dtype, device=vertices.device)
    color2 = torch.as_tensor(color2, dtype=vertices.dtype, device=vertices.device)
    return alpha * color2 + (1 - alpha) * color1
    # END SOLUTION


def turntable_cameras(num_frames=36, distance=3.0, elevation=30.0, device=None):
    """1.1: cameras on a circle around the origin, looking at it (azimuth 0 .. 360 degrees)."""
    azimuths = torch.linspace(0, 360, num_frames + 1)[:-1]
    R, T = look_at_view_transform(dist=distance, elev=elevation, azim=azimuths)
    return FoVPerspectiveCameras(R=R, T=T, device=device or "cpu")


def render_360(vertices, faces, colors, output_file, image_size=256, num_frames=36, fps=15, device=None):
    """Renders a turntable GIF of a mesh (needs pytorch3d's renderer; see starter/utils.py)."""
    import imageio
    import numpy as np

    device = device or get_device()
    mesh = Meshes([vertices], [faces], TexturesVertex([colors])).to(device)
    renderer = get_mesh_renderer(image_size=image_size, device=device)
    cameras = turntable_cameras(num_frames, device=device)
    images = renderer(mesh.extend(num_frames), cameras=cameras)[..., :3].cpu().numpy()  # (N, H, W, 3)
    imageio.mimsave(output_file, [(im * 255).astype(np.uint8) for im in images], fps=fps)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["tetrahedron", "cube", "cow"], default="cow")
    parser.add_argument("--retexture", action="store_true")
    parser.add_argument("--output_file", type=str, default="images/mesh_360.gif")
    parser.add_argument("--image_size", type=int, default=256)
    args = parser.parse_args()
    verts, faces = {"tetrahedron": tetrahedron, "cube": cube, "cow": load_cow_mesh}[args.shape]()
    colors = retexture(verts, [0, 0, 1], [1, 0, 0]) if args.retexture else torch.ones_like(verts) * torch.tensor([0.7, 0.7, 1])
    render_360(verts, faces, colors, args.output_file, image_size=args.image_size)
