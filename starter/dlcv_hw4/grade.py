"""DLCV Fall 2022 HW4, Problem 1: evaluating rendered novel views (PSNR and SSIM), as the TA's grade.py does.

    python grade.py <rendered_dir> <ground_truth_dir>

prints the mean PSNR and SSIM over the views. Rendered views come from your hw4_1.sh (one RGBA or RGB PNG
per frame of transforms_val.json); the ground truth is the Blender dataset's RGBA PNGs (hotdog/val/r_*.png),
whose background is transparent. Files are paired by sorted file name.

Conventions (the same as the TA's script, so your numbers match the leaderboard):
  * images are read as RGBA (an RGB PNG gets alpha 1) and scaled to float32 in [0, 1] by dividing by 255;
  * the rendered image counts as rgb * a (premultiplied);
  * the ground truth is composited onto a WHITE background: rgb * a + (1 - a);
  * PSNR and SSIM are computed per image, then averaged over the images.
LPIPS is left out (its backbone weights need a download).
"""
import glob
import os
import sys

import numpy as np
from PIL import Image


def read_rgba(path):
    """One PNG as float32 (H, W, 4) in [0, 1]: RGBA channels, alpha 1 where the file has none."""
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")


def composite_pred(rgba):
    """A rendered view (H, W, 4) float in [0, 1] -> its RGB (H, W, 3) as the TA's script counts it: rgb * a."""
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")


def composite_gt(rgba):
    """A ground-truth view (H, W, 4) float in [0, 1] -> RGB (H, W, 3) composited onto white: rgb * a + (1 - a)."""
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")


def psnr(pred, gt):
    """PSNR in dB of ONE image pair with values in [0, 1] (peak 1): -10 log10(mean((pred - gt)^2)).

    pred, gt: (H, W, 3) float arrays (numpy). Returns a Python float; identical images give inf.
    """
    # TODO Task 1.1: replace this raise with your code.
    raise NotImplementedError("Task 1.1: fill in the missing lines here")


def rgb_ssim(img0, img1, max_val, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, return_map=False):
    """SSIM of two (H, W, 3) images in [0, max_val], the mip-NeRF way (NOT skimage's default):

    * a normalised 1-D Gaussian of `filter_size` taps, f_i = exp(-0.5 ((i - hw + shift) / filter_sigma)^2),
      hw = filter_size // 2, shift = (2 hw - filter_size + 1) / 2, applied separably (columns then rows)
      to each channel with 'valid' borders (the map is (H - filter_size + 1, W - filter_size + 1, 3));
    * mu = blur(x), sigma_xx = blur(x^2) - mu_x^2 (clipped at 0), sigma_xy = blur(xy) - mu_x mu_y (its
      magnitude clipped at sqrt(sigma_xx sigma_yy));
    * ssim_map = (2 mu_x mu_y + c1)(2 sigma_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(sigma_xx + sigma_yy + c2)),
      c1 = (k1 max_val)^2, c2 = (k2 max_val)^2; returns the mean of the map (or the map).
    """
    assert img0.ndim == 3 and img0.shape[-1] == 3 and img0.shape == img1.shape
    # TODO Task 1.3: replace this raise with your code.
    raise NotImplementedError("Task 1.3: fill in the missing lines here")


def render_viewpoints(test_image_path, gt_image_path):
    """Mean PSNR and mean SSIM (max_val 1) over the PNG pairs of two folders, paired by sorted file name.

    Each rendered view goes through composite_pred, each ground truth through composite_gt; the metrics
    are computed per image and then averaged. Prints both means; returns (mean_psnr, mean_ssim) as floats.
    """
    test_paths = sorted(glob.glob(os.path.join(test_image_path, "*.png")))
    gt_paths = sorted(glob.glob(os.path.join(gt_image_path, "*.png")))
    # TODO Task 1.2: replace this raise with your code.
    raise NotImplementedError("Task 1.2: fill in the missing lines here")
    print("Testing psnr", mean_psnr, "(avg)")
    print("Testing ssim", mean_ssim, "(avg)")
    return mean_psnr, mean_ssim


if __name__ == "__main__":
    render_viewpoints(sys.argv[1], sys.argv[2])
