"""Q1: fit a voxel grid, a point cloud and a mesh to a target with your losses (given; do not edit).

The course fits the first chair of its ShapeNet split; without the dataset this script fits a
procedural target (a torus) so that you can watch your losses work:
    python fit_data.py --type vox | point | mesh [--max_iter N]
As in the course, the voxel source is a raw parameter (torch.rand, no sigmoid) fed straight to
losses.voxel_loss, and the mesh source is ico_sphere(4) deformed by per-vertex offsets.
"""
import argparse
import math
import time

import torch

import losses
from lite3d import Meshes, ico_sphere, sample_points_from_meshes


def get_args_parser():
    parser = argparse.ArgumentParser("Model Fit", add_help=False)
    parser.add_argument("--lr", default=4e-4, type=float)
    parser.add_argument("--max_iter", default=2000, type=int)
    parser.add_argument("--log_freq", default=100, type=int)
    parser.add_argument("--type", default="vox", choices=["vox", "point", "mesh"], type=str)
    parser.add_argument("--n_points", default=5000, type=int)
    parser.add_argument("--w_chamfer", default=1.0, type=float)
    parser.add_argument("--w_smooth", default=0.1, type=float)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", type=str)
    return parser


def torus_mesh(R=0.6, r=0.25, n=48, m=24, device="cpu"):
    """A torus in the xz-plane as a triangle mesh (the stand-in target)."""
    u = torch.arange(n, dtype=torch.float32) * 2 * math.pi / n
    v = torch.arange(m, dtype=torch.float32) * 2 * math.pi / m
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    verts = torch.stack([(R + r * vv.cos()) * uu.cos(), r * vv.sin(), (R + r * vv.cos()) * uu.sin()], -1).reshape(-1, 3)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
    a, b = i * m + j, ((i + 1) % n) * m + j
    c, d = ((i + 1) % n) * m + (j + 1) % m, i * m + (j + 1) % m
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return Meshes([verts.to(device)], [faces.to(device)])


def torus_voxels(R=0.6, r=0.25, size=32, device="cpu"):
    """1 x size^3 occupancy of the same torus in the cube [-1, 1]^3."""
    t = torch.linspace(-1, 1, size)
    x, y, z = torch.meshgrid(t, t, t, indexing="ij")
    return (((x ** 2 + z ** 2).sqrt() - R) ** 2 + y ** 2 <= r ** 2).float()[None].to(device)


def fit(params, loss_fn, args):
    optimizer = torch.optim.Adam(params, lr=args.lr)
    start_time = time.time()
    for step in range(args.max_iter):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.log_freq == 0 or step == args.max_iter - 1:
            print("[%4d/%4d]; ttime: %.0f; loss: %.4f" % (step, args.max_iter, time.time() - start_time, loss.item()))


def main(args):
    device = args.device
    if args.type == "vox":
        voxels_tgt = torus_voxels(device=device)
        voxels_src = torch.rand(voxels_tgt.shape, requires_grad=True, device=device)
        fit([voxels_src], lambda: losses.voxel_loss(voxels_src, voxels_tgt), args)
        pred = voxels_src.detach() > 0  # logits: occupied where sigmoid(score) > 0.5
        iou = (pred & (voxels_tgt > 0.5)).sum() / (pred | (voxels_tgt > 0.5)).sum()
        print(f"IoU with the target: {iou.item():.3f}")
    elif args.type == "point":
        pointclouds_tgt = sample_points_from_meshes(torus_mesh(device=device), args.n_points)
        pointclouds_src = torch.randn([1, args.n_points, 3], requires_grad=True, device=device)
        fit([pointclouds_src], lambda: losses.chamfer_loss(pointclouds_src, pointclouds_tgt), args)
    else:
        mesh_src, mesh_tgt = ico_sphere(4, device), torus_mesh(device=device)
        deform = torch.zeros(mesh_src.verts_packed().shape, requires_grad=True, device=device)

        def loss_fn():
            new_mesh_src = mesh_src.offset_verts(deform)
            sample_src = sample_points_from_meshes(new_mesh_src, args.n_points)
            sample_tgt = sample_points_from_meshes(mesh_tgt, args.n_points)
            return (args.w_chamfer * losses.chamfer_loss(sample_src, sample_tgt)
                    + args.w_smooth * losses.smoothness_loss(new_mesh_src))

        fit([deform], loss_fn, args)
    print("Done!")


if __name__ == "__main__":
    parser = argparse.ArgumentParser("Model Fit", parents=[get_args_parser()])
    main(parser.parse_args())
