"""Hidden checks for Task 5 (volume rendering, items 5.1 and 5.2). Trusted code.

The reference convention is the starter's: delta_i = t_{i+1} - t_i and the last delta is 0. Checks
compare alpha and weights on entries 0..N-2 and the colour only where the last sample has no
density, so that a student who swapped in NeRF's 1e10 last delta loses only the dedicated check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from grader.checks import CheckFailed, Student, as_array, expect_close, expect_shape
from grader.oracles import volume

MOD = "volume_rendering"


def reference(rgb: np.ndarray, sigma: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """The shared oracle written from the formulas (grader/oracles/volume.py, not the reference solution's
    code) with this assignment's convention: the last delta is 0."""
    out = volume.render(sigma, t, rgb, last_delta=0.0)
    return out.feature, out.weights, out.alpha, out.transmittance


def _render(student: Student, rgb: np.ndarray, sigma: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    out = student.call(MOD, "volume_rendering", rgb, sigma, t)
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise CheckFailed("volume_rendering should return (pixel_color, weights, alpha, transmittance)",
                          f"got {type(out).__name__}{'' if not isinstance(out, (tuple, list)) else f' of length {len(out)}'}")
    names = ("pixel_color", "weights", "alpha", "transmittance")
    return tuple(as_array(v, n) for v, n in zip(out, names))


def _hint(alpha: np.ndarray, trans: np.ndarray, weights: np.ndarray, sigma: np.ndarray, t: np.ndarray) -> str:
    _, w_ref, a_ref, t_ref = reference(np.zeros(sigma.shape + (3,)), sigma, t)
    s = np.s_[..., :-1]
    if alpha.shape == a_ref.shape:
        delta = np.diff(np.broadcast_to(t, sigma.shape), axis=-1)
        if np.allclose(alpha[s], sigma[s] * delta, atol=1e-9) and not np.allclose(a_ref[s], sigma[s] * delta):
            return "opacity is the exact absorption over a sample's interval, not its linear approximation"
        if np.allclose(alpha[s], np.exp(-sigma[s] * delta), atol=1e-9):
            return "that is the transparency of the interval; opacity is the light it absorbs"
    if trans.shape == t_ref.shape and not np.allclose(trans[..., 0], 1.0):
        return "T_0 must be 1: the first sample receives all the light; transmittance counts only the samples in front of a sample"
    if trans.shape == t_ref.shape and np.allclose(trans, np.exp(-np.cumsum(sigma, -1)), atol=1e-9):
        return "the optical depth must account for the spacing between samples, not the density alone"
    if weights.shape == w_ref.shape and trans.shape == weights.shape:
        if np.allclose(weights, trans * (1 - alpha), atol=1e-9):
            return "a weight combines the light reaching a sample with its opacity, not its transparency"
        if np.allclose(weights, trans, atol=1e-9) or np.allclose(weights, alpha, atol=1e-9):
            return "a weight needs both the light reaching the sample and the sample's opacity"
    return ""


def _compare(student: Student, rgb: np.ndarray, sigma: np.ndarray, t: np.ndarray, what: str, atol: float = 1e-9,
             colour: bool = True) -> None:
    c, w, a, tr = _render(student, rgb, sigma, t)
    c_ref, w_ref, a_ref, t_ref = reference(rgb, sigma, t)
    hint = _hint(a, tr, w, sigma, t) if a.shape == a_ref.shape else ""
    expect_close(a[..., :-1] if a.shape == a_ref.shape else a, a_ref[..., :-1], f"alpha ({what})", atol, hint=hint)
    expect_close(tr, t_ref, f"transmittance ({what})", atol, hint=hint)
    expect_close(w[..., :-1], w_ref[..., :-1], f"weights ({what})", atol, hint=hint)
    if colour:
        expect_close(c, c_ref, f"pixel colour ({what})", atol, hint="the colour is the weighted sum of the sample colours along the ray")


@pytest.mark.item("5.1", weight=3, module=MOD)
def test_closed_form(student: Student) -> None:
    """closed form on hand-made rays"""
    t = np.array([2.0, 2.3, 2.9, 3.0, 4.5])
    sigma = np.array([0.0, 1.7, 40.0, 0.3, 0.0])
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    _compare(student, rgb, sigma, t, "one ray, non-uniform depths")
    # two objects along a ray: colour must come from the weights, not from alpha
    t2 = np.linspace(0.0, 2.0, 9)
    sigma2 = np.array([0, 0, 3.0, 3.0, 0, 0, 8.0, 8.0, 0])
    rgb2 = np.repeat([[0.2, 0.4, 0.9]], 9, axis=0)
    rgb2[5:] = [0.9, 0.3, 0.1]
    _compare(student, rgb2, sigma2, t2, "two objects along one ray")


@pytest.mark.item("5.1", weight=2, module=MOD)
def test_transmittance_properties(student: Student) -> None:
    """transmittance starts full and decays by each sample's transparency (property test)"""
    failures: list[str] = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(
        sigma=arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 12)), elements=st.floats(0, 50)),
        gaps=st.lists(st.floats(0.01, 1.0), min_size=12, max_size=12),
    )
    def prop(sigma: np.ndarray, gaps: list[float]) -> None:
        n = sigma.shape[-1]
        t = 1.0 + np.cumsum(gaps[:n])
        _, _, _, tr = _render(student, np.ones(sigma.shape + (3,)) * 0.5, sigma, t)
        expect_shape(tr, sigma.shape, "transmittance")
        if not np.allclose(tr[..., 0], 1.0, atol=1e-12):
            failures.append((f"T_0 = {tr[..., 0].ravel()[0]:.6g}, not 1",
                             "T_0 must be 1: transmittance is an exclusive product (only samples before i count)"))
            raise AssertionError
        if np.any(np.diff(tr, axis=-1) > 1e-8):
            failures.append(("T increases along the ray", "T_{i+1} = T_i * (1 - alpha_i) can only shrink"))
            raise AssertionError
        # ... and it does shrink behind density: T_{i+1} = T_i * exp(-sigma_i delta_i), not merely non-increasing
        # (so that a constant or all-zero stub does not pass this property).
        step = np.exp(-sigma[..., :-1] * np.diff(t))
        if not np.allclose(tr[..., 1:], tr[..., :-1] * step, atol=1e-9, rtol=1e-7):
            failures.append(("T_{i+1} is not T_i * exp(-sigma_i * delta_i)",
                             "each sample passes on the light that survives it: T_{i+1} = T_i * (1 - alpha_i)"))
            raise AssertionError

    try:
        prop()
    except CheckFailed:
        raise
    except AssertionError:
        detail, hint = failures[-1] if failures else ("", "")
        raise CheckFailed("transmittance properties fail", detail, hint) from None


@pytest.mark.item("5.1", weight=2, module=MOD)
def test_special_cases(student: Student) -> None:
    """empty space and an opaque sample"""
    t = np.linspace(2.0, 6.0, 16)
    rgb = np.random.default_rng(0).uniform(size=(16, 3))
    c, w, a, tr = _render(student, rgb, np.zeros(16), t)
    expect_close(a, np.zeros(16), "alpha for zero density", 1e-12, hint="empty space (zero density) absorbs nothing")
    expect_close(tr, np.ones(16), "transmittance for zero density", 1e-8)
    expect_close(w, np.zeros(16), "weights for zero density", 1e-12)
    expect_close(c, np.zeros(3), "colour for zero density", 1e-12)
    sigma = np.zeros(16)
    sigma[6] = 1e6
    c, w, a, tr = _render(student, rgb, sigma, t)
    onehot = np.zeros(16)
    onehot[6] = 1.0
    expect_close(w, onehot, "weights with one opaque sample", 1e-9, hint="an opaque sample with nothing in front of it takes all the weight")
    expect_close(c, rgb[6], "colour with one opaque sample", 1e-9, hint="the colour is the weighted sum of the sample colours")


@pytest.mark.item("5.1", weight=1, module=MOD)
def test_constant_density(student: Student) -> None:
    """constant density: exponential transmittance and the total weight"""
    t = np.linspace(0.5, 3.5, 31)
    sigma = np.full(31, 0.8)
    _, w, _, tr = _render(student, np.ones((31, 3)), sigma, t)
    expect_close(tr, np.exp(-0.8 * (t - t[0])), "transmittance for constant density", 1e-9,
                 hint="transmittance decays with the optical depth accumulated in front of each sample")
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0, 3, size=(5, 20))
    sigma[:, -1] = 0.0
    t = np.sort(rng.uniform(2, 6, size=(5, 20)), axis=-1)
    _, w, _, _ = _render(student, np.ones((5, 20, 3)), sigma, t)
    delta = np.diff(t, axis=-1)
    expect_close(w.sum(-1), 1 - np.exp(-(sigma[:, :-1] * delta).sum(-1)), "sum of weights (1 - exp(-sum sigma delta))", 1e-9)


@pytest.mark.item("5.1", weight=2, module=MOD)
def test_batches(student: Student) -> None:
    """batches of rays match ray-by-ray results"""
    rng = np.random.default_rng(2)
    for r, n, shared_t in ((3, 7, True), (6, 6, False), (2, 5, False)):
        rgb = rng.uniform(size=(r, n, 3))
        sigma = rng.uniform(0, 4, size=(r, n)) * np.arange(1, r + 1)[:, None]
        sigma[:, -1] = 0.0
        t = np.linspace(2, 6, n) if shared_t else np.sort(rng.uniform(2, 6, size=(r, n)), axis=-1)
        c, w, a, tr = _render(student, rgb, sigma, t)
        expect_shape(c, (r, 3), f"pixel colour for {r} rays of {n} samples",
                     hint="reduce over the samples of each ray only, never across rays")
        expect_shape(tr, (r, n), f"transmittance for {r} rays of {n} samples")
        _compare(student, rgb, sigma, t, f"{r} rays of {n} samples")


@pytest.mark.item("5.1", weight=1, module=MOD)
def test_last_delta(student: Student) -> None:
    """keeps the given convention for the last sample's spacing"""
    t = np.linspace(2.0, 6.0, 8)
    sigma = np.full(8, 2.0)
    c, w, a, tr = _render(student, np.ones((8, 3)), sigma, t)
    expect_close(a[:-1], 1 - np.exp(-sigma[:-1] * np.diff(t)), "alpha of samples 0..N-2", 1e-9,
                 hint="opacity follows from the density and the spacing to the next sample")
    expect_close(a[-1:], np.zeros(1), "alpha of the last sample", 1e-12,
                 hint="keep the given spacing line: this assignment's convention for the last sample differs from NeRF's")


def _vr_figure(student: Student, n: int) -> list[dict]:
    student.figures()
    student.call(MOD, "visualize_volume_rendering", num_samples=n)
    figures = student.figures()
    if not figures:
        raise CheckFailed("visualize_volume_rendering drew no figure")
    return figures


@pytest.mark.item("5.2", weight=3, module=MOD)
def test_vr_figure_layout(student: Student) -> None:
    """one panel per quantity, one curve of num_samples points each"""
    for n in (50, 20):
        axes = [ax for fig in _vr_figure(student, n) for ax in fig["axes"] if ax["lines"]]
        lengths = [[len(ln["y"]) for ln in ax["lines"]] for ax in axes]
        if any(not np.all(np.isfinite(np.asarray(ln["y"], float))) for ax in axes for ln in ax["lines"]):
            raise CheckFailed("a curve of the figure holds NaN or inf", "a curve with NaN values draws nothing there",
                              "the plots come from your volume_rendering: fix Task 5.1 first")
        if len(axes) != 3 or any(ls != [n] for ls in lengths):
            raise CheckFailed(f"expected 3 panels with one curve of {n} points each (num_samples={n})",
                              f"got {len(axes)} panel(s) with curve lengths {lengths}")


@pytest.mark.item("5.2", weight=5, module=MOD)
def test_vr_figure_values(student: Student) -> None:
    """the curves show opacity, transmittance and weights"""
    n = 50
    t = np.linspace(0.0, 1.0, n)
    sigma = np.linspace(0.0, 5.0, n)
    _, w, a, tr = reference(np.ones((n, 3)), sigma, t)
    curves = [np.asarray(ln["y"], float) for fig in _vr_figure(student, n) for ax in fig["axes"] for ln in ax["lines"]]
    for name, expected in (("opacity", a), ("transmittance", tr), ("weights", w)):
        # the last point depends on the last-delta convention, which 5.1 checks on its own
        if not any(c.shape == expected.shape and np.allclose(c[:-1], expected[:-1], atol=1e-6) for c in curves):
            raise CheckFailed(f"no curve shows the {name} of the demo ray",
                              f"{len(curves)} curve(s) found; none matches the expected {name} to 1e-6",
                              "the plots come from your volume_rendering: fix Task 5.1 first")


FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "data" / "comp4423_a2" / "volume_rendering.npz"


@pytest.mark.item("5.1", weight=1, module=MOD)
def test_stored_rays(student: Student) -> None:
    """matches the stored reference rays"""
    with np.load(FIXTURE) as data:
        fx = {k: data[k] for k in data.files}
    c, w, a, tr = _render(student, fx["rgb"], fx["sigma"], fx["t_vals"])
    hint = _hint(a, tr, w, fx["sigma"], fx["t_vals"]) if a.shape == fx["alpha"].shape else ""
    expect_close(tr, fx["transmittance"], "transmittance on the stored rays", 1e-9, hint=hint)
    expect_close(a[..., :-1] if a.ndim == 2 else a, fx["alpha"][..., :-1], "alpha on the stored rays", 1e-9, hint=hint)
    expect_close(w[..., :-1] if w.ndim == 2 else w, fx["weights"][..., :-1], "weights on the stored rays", 1e-9, hint=hint)
