"""Hidden tests for DLCV HW4 Problem 1 (grade.py): PSNR (1.1), the TA script's reading and compositing with the
per-image mean (1.2) and the mip-NeRF SSIM (1.3). Trusted code; oracles in dlcv_oracle.py (float64), inputs made
here or read from fixtures/data/dlcv_hw4/public (the same files the sandbox sees at student.data_dir).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, as_array, expect_close, helper_module
from grader.spec import FIXTURES

oracle = helper_module(__file__, "dlcv_oracle")
MOD = "grade"
PUBLIC = FIXTURES / "data" / "dlcv_hw4" / "public"


def _data(student: Student, *parts: str) -> str:
    """A public fixture path as the student's code sees it."""
    return "/".join([student.data_dir or str(PUBLIC), *parts])


def _pair(shape=(20, 27, 3), seed=0, noise=0.1):
    """A smooth image and a noisy, slightly shifted copy (structure SSIM can see), float64 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = 0.5 + 0.4 * np.sin(xx[..., None] / 3.0 + yy[..., None] / 5.0 + np.arange(shape[2]))
    other = np.clip(np.roll(base, 1, axis=1) + noise * rng.standard_normal(shape), 0, 1)
    return base, other


def _scalar(value, what: str) -> float:
    arr = as_array(value, what, allow_nonfinite=True)
    if arr.size != 1:
        raise CheckFailed(f"{what} should be one number", f"got shape {arr.shape}")
    return float(arr.reshape(()))


# -- 1.1 PSNR ----------------------------------------------------------------------------------------------------
@pytest.mark.item("1.1", weight=2, timeout=20, module=MOD)
def test_psnr_constant_offset(student):
    """a constant error of 0.1 gives exactly 20 dB (peak 1)"""
    gt = np.random.default_rng(1).uniform(0.2, 0.8, (16, 12, 3)).astype(np.float32)
    got = _scalar(student.call(MOD, "psnr", gt + np.float32(0.1), gt), "psnr(gt + 0.1, gt)")
    expect_close(got, 20.0, "psnr(gt + 0.1, gt)", atol=1e-4,
                 hint="-10 log10(mean squared error), with images in [0, 1] (peak 1)")


@pytest.mark.item("1.1", weight=2, timeout=20, module=MOD)
@pytest.mark.parametrize("seed", [2, 3], ids=["pair-a", "pair-b"])
def test_psnr_random_pairs(student, seed):
    """PSNR of a rendered/ground-truth pair matches the definition"""
    a, b = _pair((18, 23, 3), seed=seed, noise=0.05 * seed)
    got = _scalar(student.call(MOD, "psnr", a.astype(np.float32), b.astype(np.float32)), "psnr(pred, gt)")
    expect_close(got, oracle.psnr(a.astype(np.float32), b.astype(np.float32)), "psnr(pred, gt)", atol=1e-3,
                 hint="the mean is over every pixel and channel of ONE image; the peak value is 1")


@pytest.mark.item("1.1", weight=1, timeout=20, module=MOD)
def test_psnr_identical(student):
    """identical images give an infinite (or at least very large) PSNR"""
    img = _pair((10, 10, 3), seed=4)[0]
    got = _scalar(student.call(MOD, "psnr", img, img.copy()), "psnr(img, img)")
    if not (got == math.inf or (math.isfinite(got) and got >= 80.0)):
        raise CheckFailed("PSNR of two identical images should be inf (or a cap of at least 80 dB)", f"got {got}",
                          "zero error means an infinite signal-to-noise ratio")


# -- 1.2 reading, compositing, per-image mean --------------------------------------------------------------------
@pytest.mark.item("1.2", weight=1, timeout=20, module=MOD)
def test_read_rgba(student):
    """read_rgba gives float RGBA in [0, 1], alpha 1 for an RGB file"""
    for folder in ("renders/rgba", "renders/rgb"):
        got = as_array(student.call(MOD, "read_rgba", _data(student, folder, "r_3.png")), f"read_rgba({folder}/r_3.png)")
        expect_close(got, oracle.rgba(PUBLIC / folder / "r_3.png"), f"read_rgba({folder}/r_3.png)", atol=1e-6,
                     hint="read as RGBA (an RGB file gets alpha 1) and divide by 255")


@pytest.mark.item("1.2", weight=2, timeout=20, module=MOD)
def test_composite_pred(student):
    """the rendered view counts as rgb * a"""
    rgba = np.random.default_rng(5).random((6, 7, 4)).astype(np.float32)
    rgba[0, :, 3] = 0.0
    got = student.call(MOD, "composite_pred", rgba)
    expect_close(got, rgba[..., :3].astype(np.float64) * rgba[..., 3:], "composite_pred(rgba)", atol=1e-6,
                 hint="the TA's script multiplies the rendered colour by its alpha (no background added)")


@pytest.mark.item("1.2", weight=2, timeout=20, module=MOD)
def test_composite_gt_white(student):
    """the ground truth is composited onto white; alpha 0 counts as white whatever its colour"""
    rgba = np.random.default_rng(6).random((6, 7, 4)).astype(np.float32)
    rgba[0, :, 3] = 0.0  # transparent pixels with colours left in them
    rgba[1, :, 3] = 1.0
    got = as_array(student.call(MOD, "composite_gt", rgba), "composite_gt(rgba)")
    expected = rgba[..., :3].astype(np.float64) * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    expect_close(got, expected, "composite_gt(rgba)", atol=1e-6,
                 hint="rgb * a + (1 - a): the background of the Blender ground truth is white")


def _own_metric(student: Student, name: str, renders: str, gt: str) -> float:
    """The mean of the student's own psnr / rgb_ssim over the folder pair, composited by the grader: what
    render_viewpoints returns when its only error is one already marked down in 1.1 or 1.3."""
    values = []
    for p, g in zip(sorted((PUBLIC / renders).glob("*.png")), sorted((PUBLIC / gt).glob("*.png"))):
        a, b = oracle.rgba(p), oracle.rgba(g)
        rgb, ref = a[..., :3] * a[..., 3:], b[..., :3] * b[..., 3:] + (1.0 - b[..., 3:])
        args = (rgb, ref) if name == "psnr" else (rgb, ref, 1)
        values.append(_scalar(student.call(MOD, name, *args), f"{name} of a composited pair"))
    return float(np.mean(values))


@pytest.mark.item("1.2", weight=3, timeout=90, module=MOD)
@pytest.mark.parametrize("renders, gt", [("renders/rgba", "hotdog/val"), ("renders/rgb", "hotdog/val"),
                                         ("eval_set_2/pred", "eval_set_2/gt")], ids=["rgba", "rgb", "set-2"])
def test_render_viewpoints(student, renders, gt):
    """render_viewpoints gives the mean over images of the per-image PSNR and SSIM of the composited pairs"""
    mean_psnr, mean_ssim, _ = oracle.folder_metrics(PUBLIC / renders, PUBLIC / gt)
    got = student.call(MOD, "render_viewpoints", _data(student, renders), _data(student, gt))
    if got is None:
        raise NeedsReview("render_viewpoints returns nothing (the TA script's layout only prints the means); "
                          "a TA compares its printed numbers", f"expected mean PSNR {mean_psnr:.4f}, SSIM {mean_ssim:.5f}")
    got = as_array(got, "render_viewpoints(...)").reshape(-1)
    if got.size != 2:
        raise CheckFailed("render_viewpoints should return two numbers", f"got {got.size}")
    for k, (name, expected, atol) in enumerate((("psnr", mean_psnr, 1e-3), ("rgb_ssim", mean_ssim, 1e-4))):
        if abs(got[k] - expected) <= atol:
            continue
        # marked once: a wrong psnr / rgb_ssim already loses 1.1 / 1.3; here only reading, compositing and the mean
        if abs(got[k] - _own_metric(student, name, renders, gt)) <= atol:
            continue
        what = "the mean PSNR" if k == 0 else "the mean SSIM"
        expect_close(got[k], expected, what, atol=atol,
                     hint="read RGBA / 255, prediction rgb * a, ground truth onto white; the metric per image, then the mean")


# -- 1.3 SSIM ----------------------------------------------------------------------------------------------------
@pytest.mark.item("1.3", weight=1, timeout=20, module=MOD)
def test_ssim_identical(student):
    """SSIM of an image with itself is 1"""
    img = _pair((20, 27, 3), seed=7)[0]
    got = _scalar(student.call(MOD, "rgb_ssim", img, img.copy(), 1.0), "rgb_ssim(img, img, 1)")
    expect_close(got, 1.0, "rgb_ssim(img, img, 1)", atol=1e-6)


@pytest.mark.item("1.3", weight=3, timeout=30, module=MOD)
@pytest.mark.parametrize("seed, shape", [(8, (20, 27, 3)), (9, (31, 16, 3))], ids=["wide", "tall"])
def test_ssim_formula(student, seed, shape):
    """SSIM matches the pinned mip-NeRF formula (Gaussian 11 taps, sigma 1.5, valid borders)"""
    a, b = _pair(shape, seed=seed)
    got = _scalar(student.call(MOD, "rgb_ssim", a, b, 1.0), "rgb_ssim(a, b, 1)")
    expect_close(got, oracle.ssim(a, b, 1.0), "rgb_ssim(a, b, 1)", atol=1e-6,
                 hint="a separable normalised Gaussian window, 'valid' borders, variances from E[x^2] - mu^2")


@pytest.mark.item("1.3", weight=2, timeout=30, module=MOD)
def test_ssim_max_val(student):
    """SSIM uses max_val in c1 and c2 (images in [0, 255])"""
    a, b = _pair((22, 19, 3), seed=10, noise=0.2)
    got = _scalar(student.call(MOD, "rgb_ssim", a * 255, b * 255, 255), "rgb_ssim(a, b, 255)")
    expect_close(got, oracle.ssim(a * 255, b * 255, 255.0), "rgb_ssim(a, b, 255)", atol=1e-6,
                 hint="c1 = (k1 max_val)^2 and c2 = (k2 max_val)^2")


@pytest.mark.item("1.3", weight=2, timeout=30, module=MOD)
def test_ssim_rendered_view(student):
    """SSIM of a composited float32 rendered view and its ground truth"""
    pred, gt = oracle.rgba(PUBLIC / "renders/rgba/r_10.png"), oracle.rgba(PUBLIC / "hotdog/val/r_10.png")
    pred, gt = pred[..., :3] * pred[..., 3:], gt[..., :3] * gt[..., 3:] + (1 - gt[..., 3:])
    got = _scalar(student.call(MOD, "rgb_ssim", pred, gt, 1), "rgb_ssim(pred, gt, 1)")
    expect_close(got, oracle.ssim(pred, gt, 1.0), "rgb_ssim(pred, gt, 1)", atol=1e-5)


@pytest.mark.item("1.3", weight=1, timeout=30, module=MOD)
def test_ssim_symmetric_and_bounded(student):
    """SSIM is symmetric in its two images and below 1 for different images"""
    a, b = _pair((20, 20, 3), seed=11, noise=0.3)
    ab = _scalar(student.call(MOD, "rgb_ssim", a, b, 1.0), "rgb_ssim(a, b, 1)")
    ba = _scalar(student.call(MOD, "rgb_ssim", b, a, 1.0), "rgb_ssim(b, a, 1)")
    expect_close(ab, ba, "rgb_ssim(a, b) against rgb_ssim(b, a)", atol=1e-9)
    if not -1.0 <= ab < 0.999:
        raise CheckFailed("SSIM of two different images should lie in [-1, 1)", f"got {ab}")
