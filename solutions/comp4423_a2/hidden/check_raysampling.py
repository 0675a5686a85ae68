"""Hidden checks for Task 4 (stratified ray sampling, items 4.1 and 4.2). Trusted code."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from grader.checks import CheckFailed, Student, as_array, expect_shape

MOD = "Raysampling"
SEED = 4423  # np.random is seeded before each batch of calls so a rerun draws the same samples
# False-fail bounds for a correct sampler that ignores the seed (e.g. default_rng()): KS p < 1e-4,
# |corr| > 0.06 at K=5000 (4.2 sigma), mean/variance bands at > 7 sigma: under 3e-4 in all.
K = 5000


def _draws(student: Student, near: float, far: float, n: int, k: int) -> np.ndarray:
    out = student.call(MOD, "stratified_sampling", near, far, n, repeat=k, stack=True, seed=SEED, timeout=60)
    arr = as_array(out, "stratified_sampling's samples")
    expect_shape(arr, (k, n), f"{k} calls of stratified_sampling({near}, {far}, {n}) stacked",
                 hint="return exactly num_samples depths, one per bin")
    return arr


def _offsets(t: np.ndarray, near: float, far: float) -> np.ndarray:
    n = t.shape[-1]
    w = (far - near) / n
    return (t - (near + w * np.arange(n))) / w  # position inside each bin, in [0, 1]


@pytest.mark.item("4.1", weight=2, module=MOD)
def test_shape_and_dtype(student: Student) -> None:
    """returns num_samples finite floats"""
    for n in (1, 7, 64):
        got = as_array(student.call(MOD, "stratified_sampling", 2.0, 6.0, n), f"stratified_sampling(2, 6, {n})")
        expect_shape(got, (n,), f"stratified_sampling(2, 6, {n})",
                     hint="one sample per bin: num_samples values, not num_samples + 1")
        if not np.all(np.isfinite(got)):
            raise CheckFailed(f"stratified_sampling(2, 6, {n}) returned NaN or inf")


@pytest.mark.item("4.1", weight=3, module=MOD)
def test_bin_membership(student: Student) -> None:
    """every sample lies inside its own bin"""
    for near, far, n in ((2.0, 6.0, 64), (-1.5, 0.5, 7), (0.0, 10.0, 5)):
        t = _draws(student, near, far, n, 300)
        u = _offsets(t, near, far)
        bad = (u < -1e-9) | (u > 1 + 1e-9)
        if bad.any():
            w = (far - near) / n
            hint = "every sample must stay inside its own bin, whatever the width of the bins"
            if u.min() >= -0.5 - 1e-9 and u.max() <= 0.5 + 1e-9:
                hint = "samples spill into the previous bin: look at where the random offset is measured from"
            raise CheckFailed(
                "samples leave their bins" + (" when the bin width is not 1" if abs(w - 1) > 1e-9 else ""),
                f"{int(bad.sum())} of {bad.size} samples outside their bin, the worst by {float(np.max(np.abs(u[bad] - 0.5)) - 0.5):.3g} bin widths",
                hint,
            )


@pytest.mark.item("4.1", weight=3, module=MOD)
def test_within_bin_uniformity(student: Student) -> None:
    """uniform inside each bin, covering the whole bin"""
    near, far, n = 2.0, 6.0, 8
    u = _offsets(_draws(student, near, far, n, K), near, far).ravel()
    mean, var = float(u.mean()), float(u.var())
    p = float(stats.kstest(np.clip(u, 0, 1), "uniform").pvalue)
    problems = []
    if abs(mean - 0.5) > 0.01:
        problems.append(f"mean position in the bin {mean:.3f} (uniform: 0.5)")
    if abs(var - 1 / 12) > 0.005:
        problems.append(f"variance {var:.4f} (uniform: {1 / 12:.4f})")
    if u.min() > 0.01 or u.max() < 0.99:
        problems.append(f"samples only cover [{u.min():.3f}, {u.max():.3f}] of the bin")
    if p < 1e-4:
        problems.append(f"Kolmogorov-Smirnov test against U(0,1) rejects (p = {p:.2g})")
    if problems:
        raise CheckFailed(f"within-bin positions over {K} calls are not uniform", "; ".join(problems),
                          "a sample should be equally likely anywhere inside its bin, edge to edge")


@pytest.mark.item("4.1", weight=4, module=MOD)
def test_independence(student: Student) -> None:
    """bins are jittered independently and afresh on every call"""
    near, far, n = 0.0, 4.0, 4
    t = _draws(student, near, far, n, K)
    if np.allclose(t[0], t[1:]):
        raise CheckFailed("every call returns the same samples", "no randomness between calls",
                          "the samples must be random, and drawn again on every call")
    u = _offsets(t, near, far)
    if np.std(u[:, 0]) < 1e-12 or np.std(u[:, 1]) < 1e-12:
        raise CheckFailed("some bins are never jittered", "positions in bin 0 or 1 are constant across calls")
    r = float(np.corrcoef(u[:, 0], u[:, 1])[0, 1])
    if abs(r) > 0.06:
        raise CheckFailed("the jitter of neighbouring bins is correlated", f"correlation of bins 0 and 1 over {K} calls: {r:.3f}",
                          "each bin needs its own random offset, independent of the other bins")


def _point_sets(figures: list[dict]) -> list[np.ndarray]:
    sets = []
    for fig in figures:
        for ax in fig["axes"]:
            sets += [np.asarray(s["offsets"], dtype=float) for s in ax["scatters"]]
            sets += [np.stack([np.asarray(ln["x"], float), np.asarray(ln["y"], float)], axis=-1) for ln in ax["lines"] if len(ln["x"]) > 1]
    return sets


def _sampling_figure(student: Student, near: float, far: float, n: int) -> list[np.ndarray]:
    student.figures()  # close anything left open
    student.call(MOD, "visualize_sampling", near, far, n, seed=SEED)
    figures = student.figures()
    if not figures:
        raise CheckFailed("visualize_sampling drew no figure", hint="draw with matplotlib; do not call plt.close() before returning")
    return [s for s in _point_sets(figures) if np.all(np.isfinite(s))]  # NaN points are not drawn


@pytest.mark.item("4.2", weight=2, module=MOD)
def test_visualisation_runs(student: Student) -> None:
    """visualize_sampling runs headless and draws two rows of samples"""
    sets = _sampling_figure(student, 0.0, 10.0, 20)
    rows = [s for s in sets if len(s) == 20]
    if len(rows) < 2:
        raise CheckFailed("the figure should show two series of 20 samples (uniform and stratified)",
                          f"found series of lengths {[len(s) for s in sets]}")


@pytest.mark.item("4.2", weight=3, module=MOD)
def test_visualisation_uniform(student: Student) -> None:
    """the uniform row shows the evenly spaced depths from near to far"""
    for near, far, n in ((0.0, 10.0, 20), (2.0, 6.0, 9)):
        sets = _sampling_figure(student, near, far, n)
        expected = np.linspace(near, far, n)
        if not any(len(s) == n and np.allclose(s[:, 1], 0) and np.allclose(np.sort(s[:, 0]), expected) for s in sets):
            raise CheckFailed(f"no series at y = 0 with the {n} uniform depths from {near} to {far}",
                              f"series found: {[(len(s), sorted(set(np.round(s[:, 1], 3)))[:3]) for s in sets]}",
                              "uniform_sampling samples along a ray: it needs a ray's origin and direction, not only the depth range")


@pytest.mark.item("4.2", weight=3, module=MOD)
def test_visualisation_stratified(student: Student) -> None:
    """the stratified row shows one sample per bin at y = 1"""
    near, far, n = 0.0, 10.0, 20
    sets = _sampling_figure(student, near, far, n)
    for s in sets:
        if len(s) == n and np.allclose(s[:, 1], 1):
            u = _offsets(np.sort(s[:, 0]), near, far)
            if np.all((u >= -1e-9) & (u <= 1 + 1e-9)) and not np.allclose(u, 0.5):
                return
    raise CheckFailed(f"no series at y = 1 with {n} stratified samples, one inside each bin of [{near}, {far}]",
                      f"series found: {[(len(s), sorted(set(np.round(s[:, 1], 3)))[:3]) for s in sets]}")
