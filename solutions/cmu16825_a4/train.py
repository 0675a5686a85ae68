"""CMU 16-825 Assignment 4, Q1.2: train isotropic 3D Gaussians on posed images.

    python train.py --data_path <folder with train.npz, test.npz, points.npy> --device cuda
"""
import argparse
import os

import imageio
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_utils import TruckDataset, visualize_renders
from model import Gaussians, Scene


def make_trainable(gaussians):
    """Make the Gaussians' parameters trainable: the tensors stored before their activations
    (means, pre_act_scales, colours, pre_act_opacities, and pre_act_quats unless isotropic) become
    leaf tensors that require grad, with their values unchanged."""
    # BEGIN SOLUTION 1.2
    names = ["means", "pre_act_scales", "colours", "pre_act_opacities"]
    if not gaussians.is_isotropic:
        names.append("pre_act_quats")
    for name in names:
        setattr(gaussians, name, getattr(gaussians, name).detach().clone().requires_grad_(True))
    # END SOLUTION


def setup_optimizer(gaussians):
    """An optimizer over the trainable parameters, one group (and one learning rate) per parameter."""
    gaussians.check_if_trainable()

    # HINT: the learning rates below are deliberately far too high. Lower them, more for the
    # parameters that change too fast, and use different learning rates for different parameters.
    # BEGIN SOLUTION 1.2
    parameters = [
        {"params": [gaussians.pre_act_opacities], "lr": 0.02, "name": "opacities"},
        {"params": [gaussians.pre_act_scales], "lr": 0.01, "name": "scales"},
        {"params": [gaussians.colours], "lr": 0.05, "name": "colours"},
        {"params": [gaussians.means], "lr": 0.002, "name": "means"},
    ]
    if not gaussians.is_isotropic:
        parameters.append({"params": [gaussians.pre_act_quats], "lr": 0.001, "name": "quats"})
    # STARTER
    # parameters = [
    #     {"params": [gaussians.pre_act_opacities], "lr": 0.05, "name": "opacities"},
    #     {"params": [gaussians.pre_act_scales], "lr": 0.05, "name": "scales"},
    #     {"params": [gaussians.colours], "lr": 0.05, "name": "colours"},
    #     {"params": [gaussians.means], "lr": 0.05, "name": "means"},
    # ]
    # END SOLUTION
    optimizer = torch.optim.Adam(parameters, lr=0.0, eps=1e-15)
    return optimizer


def run_training(args):
    os.makedirs(args.out_path, exist_ok=True)

    train_dataset = TruckDataset(root=args.data_path, split="train")
    test_dataset = TruckDataset(root=args.data_path, split="test")
    train_loader = DataLoader(train_dataset, batch_size=1, shuffle=True, num_workers=0, drop_last=True,
                              collate_fn=TruckDataset.collate_fn)
    test_loader = DataLoader(test_dataset, batch_size=1, shuffle=False, num_workers=0, drop_last=True,
                             collate_fn=TruckDataset.collate_fn)
    train_itr = iter(train_loader)

    viz_gif_path_1 = os.path.join(args.out_path, "q1_training_progress.gif")
    viz_gif_path_2 = os.path.join(args.out_path, "q1_training_final_renders.gif")
    viz_idxs = np.linspace(0, len(train_dataset) - 1, 5).astype(np.int32)[:4]
    gt_viz_img = np.concatenate([(train_dataset[i][0] * 255.0).numpy().astype(np.uint8) for i in viz_idxs], axis=1)
    viz_cameras = [train_dataset[i][1].to(args.device) for i in viz_idxs]

    # Isotropic Gaussians initialised from the dataset's points
    gaussians = Gaussians(load_path=train_dataset.points_path, init_type="points", device=args.device, isotropic=True)
    scene = Scene(gaussians)

    make_trainable(gaussians)
    optimizer = setup_optimizer(gaussians)

    viz_frames = []
    for itr in range(args.num_itrs):
        try:
            data = next(train_itr)
        except StopIteration:
            train_itr = iter(train_loader)
            data = next(train_itr)
        gt_img, camera, gt_mask = data
        gt_img = gt_img[0].to(args.device)
        camera = camera[0].to(args.device)

        # BEGIN SOLUTION 1.2
        pred_img, _, _ = scene.render(camera, per_splat=args.gaussians_per_splat, img_size=train_dataset.img_size,
                                      bg_colour=(0.0, 0.0, 0.0))
        loss = torch.abs(pred_img - gt_img).mean()  # L1
        # END SOLUTION

        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"[*] Itr: {itr:07d} | Loss: {loss:0.3f}")

        if itr % args.viz_freq == 0:
            viz_frames.append(visualize_renders(scene, gt_viz_img, viz_cameras, train_dataset.img_size))

    print("[*] Training Completed.")
    imageio.mimwrite(viz_gif_path_1, viz_frames, loop=0, duration=100)

    frames = []
    for gt_img, camera, _ in tqdm(DataLoader(train_dataset, batch_size=1, shuffle=False, num_workers=0,
                                             collate_fn=TruckDataset.collate_fn), desc="Creating Visualization"):
        with torch.no_grad():
            pred_img, _, _ = scene.render(camera[0].to(args.device), per_splat=args.gaussians_per_splat,
                                          img_size=train_dataset.img_size, bg_colour=(0.0, 0.0, 0.0))
        frames.append((np.clip(pred_img.cpu().numpy(), 0.0, 1.0) * 255.0).astype(np.uint8))
    imageio.mimwrite(viz_gif_path_2, frames, loop=0, duration=100)

    psnr_vals, ssim_vals = [], []
    for gt_img, camera, _ in tqdm(test_loader, desc="Running Evaluation"):
        with torch.no_grad():
            pred_img, _, _ = scene.render(camera[0].to(args.device), per_splat=args.gaussians_per_splat,
                                          img_size=test_dataset.img_size, bg_colour=(0.0, 0.0, 0.0))
        gt_npy, pred_npy = gt_img[0].numpy(), pred_img.cpu().numpy()
        psnr_vals.append(peak_signal_noise_ratio(gt_npy, pred_npy, data_range=1.0))
        ssim_vals.append(structural_similarity(gt_npy, pred_npy, channel_axis=-1, data_range=1.0))
    print(f"[*] Evaluation --- Mean PSNR: {np.mean(psnr_vals):.3f}")
    print(f"[*] Evaluation --- Mean SSIM: {np.mean(ssim_vals):.3f}")
    return scene


def get_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_path", default="./output", type=str)
    parser.add_argument("--data_path", default="./data/toy", type=str)
    parser.add_argument("--gaussians_per_splat", default=-1, type=int)
    parser.add_argument("--num_itrs", default=1000, type=int)
    parser.add_argument("--viz_freq", default=20, type=int)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", type=str, choices=["cuda", "cpu"])
    return parser.parse_args()


if __name__ == "__main__":
    run_training(get_args())
