"""The grader's own float64 oracles for DLCV HW4 (never the student's code, nor the reference's).

SSIM is the mip-NeRF formula that the TA's grade.py pins (a normalised Gaussian of `filter_size` taps, separable,
'valid' borders, clipped variances), written here as one explicit 2-D window sum so that it shares no code with
the reference solution.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def gaussian_taps(filter_size: int = 11, filter_sigma: float = 1.5) -> np.ndarray:
    half = filter_size // 2
    offset = (2 * half - filter_size + 1) / 2
    taps = np.exp(-0.5 * ((np.arange(filter_size, dtype=np.float64) - half + offset) / filter_sigma) ** 2)
    return taps / taps.sum()


def _window_mean(z: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Weighted sum of every full n x n window of each channel: (H, W, C) -> (H - n + 1, W - n + 1, C)."""
    n = window.shape[0]
    h, w = z.shape[0] - n + 1, z.shape[1] - n + 1
    out = np.zeros((h, w, z.shape[2]))
    for a in range(n):
        for b in range(n):
            out += window[a, b] * z[a:a + h, b:b + w]
    return out


def ssim(img0: np.ndarray, img1: np.ndarray, max_val: float, filter_size: int = 11, filter_sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    x, y = np.asarray(img0, np.float64), np.asarray(img1, np.float64)
    taps = gaussian_taps(filter_size, filter_sigma)
    window = np.outer(taps[::-1], taps[::-1])  # a convolution flips the kernel (symmetric anyway)
    mx, my = _window_mean(x, window), _window_mean(y, window)
    vx = np.maximum(_window_mean(x * x, window) - mx * mx, 0.0)
    vy = np.maximum(_window_mean(y * y, window) - my * my, 0.0)
    cxy = _window_mean(x * y, window) - mx * my
    cxy = np.clip(cxy, -np.sqrt(vx * vy), np.sqrt(vx * vy))
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def rgba(path: Path) -> np.ndarray:
    """A PNG as float32 RGBA in [0, 1] (alpha 1 for an RGB file), as the TA's script reads it."""
    with Image.open(path) as im:
        return (np.asarray(im.convert("RGBA")) / 255.0).astype(np.float32)


def folder_metrics(pred_dir: Path, gt_dir: Path) -> tuple[float, float, list[float]]:
    """Mean PSNR, mean SSIM and the per-image PSNRs of two folders paired by sorted name, with the TA's
    compositing (prediction rgb*a; ground truth onto white)."""
    preds, gts = sorted(Path(pred_dir).glob("*.png")), sorted(Path(gt_dir).glob("*.png"))
    psnrs, ssims = [], []
    for p, g in zip(preds, gts):
        a, b = rgba(p), rgba(g)
        rgb = a[..., :3] * a[..., 3:]
        gt = b[..., :3] * b[..., 3:] + (1.0 - b[..., 3:])
        psnrs.append(psnr(rgb, gt))
        ssims.append(ssim(rgb, gt, max_val=1.0))
    return float(np.mean(psnrs)), float(np.mean(ssims)), psnrs


def byol_loss(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per row: 2 - 2 cos(p, z)."""
    p, z = np.asarray(p, np.float64), np.asarray(z, np.float64)
    cos = (p * z).sum(-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(z, axis=-1))
    return 2.0 - 2.0 * cos
