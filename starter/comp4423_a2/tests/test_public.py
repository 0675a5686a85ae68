"""Quick local checks for COMP4423 Assignment 2. Run from the assignment folder:

    pytest tests            (or: pytest -q tests)

Each test names the task it checks. Passing them means your code runs and has the right shapes and
one basic property per task; the marking checks test much more (random inputs, statistics of the
samples, exact values, the figures' content), so passing here does not guarantee full marks.
"""
import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent


def _module(name, task):
    """Import one of your files (Raysampling, volume_rendering, dcnn) from the assignment folder."""
    cached = sys.modules.get(name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != ASSIGNMENT_DIR:
        del sys.modules[name]  # a same-named module from another folder: use this folder's file
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - report any import problem against the task
        pytest.fail(f"Task {task}: cannot import {name}.py from {ASSIGNMENT_DIR} ({type(exc).__name__}: {exc})")


def _call(task, fn, *args, **kwargs):
    """Call your function; if it raises, fail with a message that names the task."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - NotImplementedError (not done yet), TypeError, ...
        name = getattr(fn, "__name__", type(fn).__name__)
        pytest.fail(f"Task {task}: {name} raised {type(exc).__name__}: {exc}")


def _figure(result):
    """The figure a visualisation made: the one it returned, else the current pyplot figure."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        return result
    return plt.gcf() if plt.get_fignums() else None


# -- Task 4.1: stratified sampling ---------------------------------------------------------------
def test_task_4_1_stratified_sampling_shape():
    """Task 4.1: stratified_sampling(near, far, N) returns N finite depths."""
    rs = _module("Raysampling", "4.1")
    t = np.asarray(_call("4.1", rs.stratified_sampling, 2.0, 6.0, 16))
    assert t.shape == (16,), f"Task 4.1: stratified_sampling(2, 6, 16) should return shape (16,), got {t.shape}"
    assert np.all(np.isfinite(t)), "Task 4.1: stratified_sampling returned NaN or inf"


@pytest.mark.parametrize("near, far, n", [(2.0, 6.0, 16), (0.0, 1.0, 5), (-1.0, 3.0, 1)])
def test_task_4_1_each_sample_inside_its_bin(near, far, n):
    """Task 4.1: every sample lies inside [near, far], and sample i inside bin i."""
    rs = _module("Raysampling", "4.1")
    np.random.seed(0)
    width = (far - near) / n
    lo = near + width * np.arange(n)
    for _ in range(5):
        t = np.asarray(_call("4.1", rs.stratified_sampling, near, far, n), dtype=float).reshape(-1)
        assert t.shape == (n,), f"Task 4.1: expected {n} samples, got shape {t.shape}"
        eps = 1e-9 * max(1.0, abs(far), abs(near))
        assert np.all((t >= near - eps) & (t <= far + eps)), f"Task 4.1: samples outside [{near}, {far}]: {t}"
        outside = np.flatnonzero((t < lo - eps) | (t > lo + width + eps))
        assert outside.size == 0, (
            f"Task 4.1: sample {outside[0]} = {t[outside[0]]:.4f} is not inside its bin "
            f"[{lo[outside[0]]:.4f}, {lo[outside[0]] + width:.4f}]")


# -- Task 4.2: sampling visualisation -------------------------------------------------------------
def test_task_4_2_visualize_sampling_draws_a_figure():
    """Task 4.2: visualize_sampling runs without a screen and draws a figure."""
    rs = _module("Raysampling", "4.2")
    fig = _figure(_call("4.2", rs.visualize_sampling, 2.0, 6.0, 16))
    assert fig is not None, "Task 4.2: visualize_sampling should draw a figure (return it, or leave it open)"
    assert any(ax.collections or ax.lines for ax in fig.axes), "Task 4.2: the figure has nothing drawn on it"


# -- Task 5.1: volume rendering --------------------------------------------------------------------
def _render(rgb, sigma, t):
    vr = _module("volume_rendering", "5.1")
    out = _call("5.1", vr.volume_rendering, rgb, sigma, t)
    assert isinstance(out, (tuple, list)) and len(out) == 4, (
        "Task 5.1: volume_rendering should return (pixel_color, weights, alpha, transmittance)")
    return tuple(np.asarray(v, dtype=float) for v in out)


def test_task_5_1_volume_rendering_shapes():
    """Task 5.1: a batch of 4 rays with 8 samples gives (4, 3) colours and (4, 8) weights, alpha, T."""
    rng = np.random.default_rng(0)
    rgb, sigma, t = rng.random((4, 8, 3)), rng.random((4, 8)), np.linspace(1.0, 3.0, 8)
    pixel, weights, alpha, trans = _render(rgb, sigma, t)
    assert pixel.shape == (4, 3), f"Task 5.1: pixel_color shape should be (4, 3), got {pixel.shape}"
    for name, v in (("weights", weights), ("alpha", alpha), ("transmittance", trans)):
        assert v.shape == (4, 8), f"Task 5.1: {name} shape should be (4, 8), got {v.shape}"


def test_task_5_1_first_transmittance_is_one():
    """Task 5.1: nothing lies in front of the first sample, so T_0 = 1."""
    rng = np.random.default_rng(1)
    rgb, sigma, t = rng.random((3, 6, 3)), 5.0 * rng.random((3, 6)), np.linspace(0.0, 2.0, 6)
    _, _, _, trans = _render(rgb, sigma, t)
    assert np.allclose(trans[..., 0], 1.0), f"Task 5.1: the first transmittance should be 1, got {trans[..., 0]}"


def test_task_5_1_hand_computed_ray():
    """Task 5.1: three samples one unit apart with sigma = ln 2, ln 2, 0 (worked out by hand)."""
    t = np.array([0.0, 1.0, 2.0])
    sigma = np.array([math.log(2.0), math.log(2.0), 0.0])
    rgb = np.eye(3)  # red, green, blue
    pixel, weights, alpha, trans = _render(rgb, sigma, t)
    # alpha_i = 1 - exp(-sigma_i * delta_i) = 1 - 1/2; T = 1, 1/2, 1/4; w = T * alpha
    assert np.allclose(alpha[:2], [0.5, 0.5], atol=1e-6), f"Task 5.1: alpha should start 0.5, 0.5, got {alpha}"
    assert np.allclose(trans, [1.0, 0.5, 0.25], atol=1e-6), f"Task 5.1: transmittance should be [1, 0.5, 0.25], got {trans}"
    assert np.allclose(weights, [0.5, 0.25, 0.0], atol=1e-6), f"Task 5.1: weights should be [0.5, 0.25, 0], got {weights}"
    assert np.allclose(pixel, [0.5, 0.25, 0.0], atol=1e-6), f"Task 5.1: pixel colour should be [0.5, 0.25, 0], got {pixel}"


# -- Task 5.2: volume rendering visualisation ------------------------------------------------------
def test_task_5_2_visualize_volume_rendering_draws_a_figure():
    """Task 5.2: visualize_volume_rendering runs without a screen and draws a figure."""
    vr = _module("volume_rendering", "5.2")
    fig = _figure(_call("5.2", vr.visualize_volume_rendering))
    assert fig is not None, "Task 5.2: visualize_volume_rendering should draw a figure (return it, or leave it open)"
    assert any(ax.lines or ax.collections for ax in fig.axes), "Task 5.2: the figure has nothing drawn on it"


# -- Task 2.1: deformable convolution --------------------------------------------------------------
def test_task_2_1_offset_conv_channels():
    """Task 2.1: for a 3x3 kernel the offset convolution predicts 18 channels."""
    torch = pytest.importorskip("torch")
    dcnn = _module("dcnn", "2.1")
    layer = _call("2.1", dcnn.DeformableConv2d, 3, 8, kernel_size=3, padding=1, stride=1)
    offset = getattr(layer, "offset", None)
    assert isinstance(offset, torch.nn.Conv2d), "Task 2.1: self.offset should be an nn.Conv2d"
    assert offset.out_channels == 18, f"Task 2.1: self.offset has {offset.out_channels} output channels; expected 18 for k=3"


@pytest.mark.parametrize("stride", [1, 2])
def test_task_2_1_forward_shape_matches_plain_conv(stride):
    """Task 2.1: the output has the same shape as nn.Conv2d with the same kernel, padding and stride."""
    torch = pytest.importorskip("torch")
    dcnn = _module("dcnn", "2.1")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 10)
    layer = _call("2.1", dcnn.DeformableConv2d, 3, 5, kernel_size=3, padding=1, stride=stride)
    with torch.no_grad():
        y = _call("2.1", layer, x)
        expected = torch.nn.Conv2d(3, 5, kernel_size=3, padding=1, stride=stride)(x).shape
    assert isinstance(y, torch.Tensor), f"Task 2.1: forward should return a tensor, got {type(y).__name__}"
    assert tuple(y.shape) == tuple(expected), f"Task 2.1: output shape {tuple(y.shape)}, expected {tuple(expected)}"
