"""Hidden checks for the automatic parts of Problems 1, 3 and 5. Trusted code.

The original course has no analytical notebook: its answers go in the PDF report. Our starter adds
PSET4_Analytical.ipynb (still the recommended form): numbers, shapes and choices are variables there,
formulas are functions evaluated numerically on random inputs (gradients against finite differences
computed here), so any algebraically equivalent form scores. A submission without that notebook, or
without the name a check reads, is judged from its written answer instead (answers.md, a notebook
"Answer" cell or the report's text): a count stated unambiguously is read and compared; a formula, or
a text the grader cannot read with confidence, goes to a TA (NeedsReview, the text as evidence). No
submission is scored 0 for leaving this notebook out.

1.2(i): both I = rho (l . N) and the clamped I = rho max(0, l . N) (attached shadows: a surface facing
away from the light is dark, not negative) are accepted; they agree wherever l . N > 0 and the random
inputs below include lights on both sides of the surface.
"""
from __future__ import annotations


import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, as_array, expect_close, helper_module

MOD = "PSET4_Analytical"


text = helper_module(__file__, "answer_text")


def _defines(student: Student, name: str) -> bool:
    """Does the analytical notebook exist and define `name`? (else the written answer is used)"""
    return text.defined(student, MOD, name)


def _formula(student: Student, item: str, name: str) -> None:
    """No function `name` to evaluate: the item is a formula written in the report, for a TA."""
    if text.defined(student, MOD, name):
        return
    written = text.find(student, item)
    raise NeedsReview(f"{item} is a formula; the submission gives it as text (no function {name} to evaluate)",
                      text.evidence(written))


def _number(student: Student, item: str, name: str, expected: float, nouns: str, what: str) -> None:
    if _defines(student, name):
        text.expect_number(student.get(MOD, name), expected, name)
        return
    got = text.stated_count(student, item, nouns, what)
    if got != expected:
        raise CheckFailed(f"the written answer to {item} ({what}) is not right", f"the text states {got}")


def _lights(rng: np.random.Generator, m: int) -> np.ndarray:
    L = rng.normal(size=(m, 3)) + np.array([0, 0, 2.0])
    return L / np.linalg.norm(L, axis=1, keepdims=True)


# -- Problem 1 -------------------------------------------------------------------------------------
@pytest.mark.item("1.1.1", module=MOD)
def test_plenoptic(student: Student) -> None:
    """degrees of freedom of the plenoptic function"""
    _number(student, "1.1.1", "plenoptic_dof", 7, r"DoF|DoFs|degrees?|dimensions?|dimensional", "degrees of freedom")


@pytest.mark.item("1.2.1", module=MOD)
def test_lambertian(student: Student) -> None:
    """the Lambertian intensity, evaluated on random inputs"""
    _formula(student, "1.2.1", "lambertian_intensity")
    rng = np.random.default_rng(1)
    linear, clamped, got_all = [], [], []
    for k in range(6):
        rho, l, n = float(rng.uniform(0.1, 2)), rng.normal(size=3), rng.normal(size=3)
        n /= np.linalg.norm(n)
        if (l @ n > 0) != (k % 2 == 0):  # alternate lights in front of and behind the surface
            l = -l
        got = as_array(student.call(MOD, "lambertian_intensity", rho, l, n), "lambertian_intensity")
        if got.size != 1:
            raise CheckFailed("lambertian_intensity should return one intensity", f"got shape {got.shape}")
        got_all.append(float(got.reshape(-1)[0]))
        linear.append(rho * float(l @ n))
        clamped.append(rho * max(0.0, float(l @ n)))
    got_all = np.array(got_all)
    if not (np.allclose(got_all, linear, atol=1e-9) or np.allclose(got_all, clamped, atol=1e-9)):
        expect_close(got_all, np.array(linear), "lambertian_intensity on random inputs", 1e-9)


@pytest.mark.item("1.2.2", module=MOD)
def test_unknowns(student: Student) -> None:
    """number of unknowns per pixel"""
    _number(student, "1.2.2", "unknowns_per_pixel", 3, r"unknowns?|unknown variables|variables|parameters", "unknowns per pixel")


@pytest.mark.item("1.2.3", module=MOD)
def test_measurements(student: Student) -> None:
    """minimum number of measurements"""
    _number(student, "1.2.3", "min_measurements", 3,
            r"measurements?|images?|lights?|light sources?|equations?|observations?|lighting vectors?|lighting directions?",
            "minimum number of measurements")


def _pixel(seed: int, m: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    L = _lights(rng, m)
    G = rng.normal(size=3) + np.array([0, 0, 3.0])
    return L, L @ G + 0.01 * rng.normal(size=m), G


@pytest.mark.item("1.3.1", module=MOD)
def test_solve_g(student: Student) -> None:
    """G from I_m and L"""
    _formula(student, "1.3.1", "solve_G")
    L, I, _ = _pixel(2)
    expected = np.linalg.lstsq(L, I, rcond=None)[0]
    got = as_array(student.call(MOD, "solve_G", L, I), "solve_G(L, I_m)")
    expect_close(got.reshape(-1), expected, "solve_G(L, I_m)", 1e-8)


@pytest.mark.item("1.3.2", module=MOD)
def test_albedo(student: Student) -> None:
    """albedo from G, on a known G"""
    _formula(student, "1.3.2", "albedo_from_G")
    G = np.array([0.3, -1.2, 2.5])
    got = as_array(student.call(MOD, "albedo_from_G", G), "albedo_from_G(G)")
    expect_close(got.reshape(-1)[:1] if got.size == 1 else got, np.array([np.linalg.norm(G)]), "albedo_from_G(G)", 1e-9)


@pytest.mark.item("1.3.3", module=MOD)
def test_normal(student: Student) -> None:
    """normal from G, on a known G"""
    _formula(student, "1.3.3", "normal_from_G")
    G = np.array([0.3, -1.2, 2.5])
    got = as_array(student.call(MOD, "normal_from_G", G), "normal_from_G(G)")
    expect_close(got.reshape(-1), G / np.linalg.norm(G), "normal_from_G(G)", 1e-9)


@pytest.mark.item("1.3.4", module=MOD)
def test_solve_all(student: Student) -> None:
    """G_hat and N_hat for a whole image"""
    _formula(student, "1.3.4", "solve_all")
    rng = np.random.default_rng(4)
    L = _lights(rng, 9)
    G = rng.normal(size=(3, 50)) + np.array([[0], [0], [3.0]])
    I = L @ G
    out = student.call(MOD, "solve_all", L, I)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("solve_all should return (G_hat, N_hat)", f"got {type(out).__name__}")
    expect_close(out[0], G.T, "G_hat (n x 3)", 1e-8)
    expect_close(out[1], (G / np.linalg.norm(G, axis=0)).T, "N_hat (n x 3)", 1e-8)


# -- Problem 3 -------------------------------------------------------------------------------------
def _numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        g[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


@pytest.mark.item("3.1", module=MOD)
def test_grad_xtx(student: Student) -> None:
    """gradient (a), against finite differences"""
    _formula(student, "3.1", "grad_xTx")
    x = np.random.default_rng(5).normal(size=4)
    got = as_array(student.call(MOD, "grad_xTx", x), "grad_xTx(x)")
    expect_close(got.reshape(-1), _numeric_grad(lambda v: v @ v, x), "grad_xTx(x)", 1e-5)


@pytest.mark.item("3.1", module=MOD)
def test_grad_trace(student: Student) -> None:
    """gradient (b), against finite differences"""
    _formula(student, "3.1", "grad_trace_AtA")
    A = np.random.default_rng(6).normal(size=(3, 5))
    got = as_array(student.call(MOD, "grad_trace_AtA", A), "grad_trace_AtA(A)")
    expect_close(got, _numeric_grad(lambda B: np.trace(B.T @ B), A), "grad_trace_AtA(A)", 1e-5)


@pytest.mark.item("3.1", module=MOD)
def test_grad_xay(student: Student) -> None:
    """gradient (c), against finite differences"""
    _formula(student, "3.1", "grad_xTAy_wrt_y")
    rng = np.random.default_rng(7)
    x, A, y = rng.normal(size=3), rng.normal(size=(3, 5)), rng.normal(size=5)
    got = as_array(student.call(MOD, "grad_xTAy_wrt_y", x, A, y), "grad_xTAy_wrt_y(x, A, y)")
    expect_close(got.reshape(-1), _numeric_grad(lambda v: x @ A @ v, y), "grad_xTAy_wrt_y(x, A, y)", 1e-5)


@pytest.mark.item("3.1", module=MOD)
def test_jac_ay(student: Student) -> None:
    """Jacobian (d), in either layout"""
    _formula(student, "3.1", "jacobian_Ay_wrt_y")
    rng = np.random.default_rng(8)
    A, y = rng.normal(size=(3, 5)), rng.normal(size=5)
    got = as_array(student.call(MOD, "jacobian_Ay_wrt_y", A, y), "jacobian_Ay_wrt_y(A, y)")
    # Both layouts are in use: numerator (dz_i/dy_j, m x n = A) and the handout's denominator (n x m = A^T).
    if got.shape == A.T.shape:
        expect_close(got, A.T, "jacobian_Ay_wrt_y(A, y) (denominator layout)", 1e-9)
    else:
        expect_close(got, A, "jacobian_Ay_wrt_y(A, y)", 1e-9)


def _bernoulli(student: Student, item: str, name: str, fn) -> None:
    _formula(student, item, name)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    y_hat = np.array([0.2, 0.7, 0.95, 0.6, 0.1])
    try:
        got = as_array(student.call(MOD, name, y, y_hat), f"{name}(y, y_hat)")
    except CheckFailed:
        raise
    except Exception:  # noqa: BLE001 - a scalar-only formula: evaluate element by element
        got = np.array([float(as_array(student.call(MOD, name, float(a), float(b)), name)) for a, b in zip(y, y_hat)])
    expect_close(got.reshape(-1), fn(y, y_hat), f"{name}(y, y_hat)", 1e-9)


@pytest.mark.item("3.2.1", module=MOD)
def test_bernoulli_p(student: Student) -> None:
    """p(y|x) for a Bernoulli output, evaluated elementwise"""
    _bernoulli(student, "3.2.1", "p_y_given_x", lambda y, p: p**y * (1 - p) ** (1 - y))


@pytest.mark.item("3.2.2", module=MOD)
def test_bernoulli_log(student: Student) -> None:
    """the log-likelihood, evaluated elementwise"""
    _bernoulli(student, "3.2.2", "log_p_y_given_x", lambda y, p: y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.item("3.2.3", module=MOD)
def test_bce(student: Student) -> None:
    """the loss to minimise, evaluated elementwise"""
    _bernoulli(student, "3.2.3", "bce_loss", lambda y, p: -(y * np.log(p) + (1 - y) * np.log(1 - p)))


# -- Problem 5 -------------------------------------------------------------------------------------
def _pairs(written: str) -> list[tuple[int, int]]:
    """`a x b` size pairs in a text (62 x 62, 62*62, 62 by 62)."""
    import re

    return [(int(a), int(b)) for a, b in re.findall(r"(\d+)\s*(?:x|×|\*|by|,)\s*(\d+)", text.clean(written), re.I)]


@pytest.mark.item("5.2.1", module=MOD)
def test_conv_shape(student: Student) -> None:
    """output size with no padding and stride 1"""
    if not _defines(student, "conv_output_shape"):
        texts = text.candidates(student, "5.2.1")
        for written in texts:  # a reading of the text passes a right size; anything else is for a TA
            if {b for a, b in _pairs(written) if a == b or a == 64} == {62}:
                return
        raise NeedsReview("the output size of 5.2(i) is not stated in a form the grader reads",
                          text.evidence(texts[0] if texts else None))
    got = student.get(MOD, "conv_output_shape")
    ok = isinstance(got, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                                                for v in got)
    shape = tuple(int(v) for v in got) if ok else got
    if shape not in ((64, 62, 62), (62, 62)):
        raise CheckFailed("conv_output_shape is not right", f"got {got!r}")


@pytest.mark.item("5.2.2", module=MOD)
def test_padding_stride(student: Student) -> None:
    """padding and stride that give the asked output size"""
    if not _defines(student, "padding_stride"):
        import re

        texts = text.candidates(student, "5.2.2")
        for written in texts:  # a reading of the text passes a right pair; anything else is for a TA
            plain = text.clean(written)
            pads = {int(a or b) for a, b in re.findall(r"padding\s*(?:=|:|of|is)?\s*(\d+)|\bp\s*=\s*(\d+)", plain, re.I)}
            strides = {int(a or b) for a, b in re.findall(r"stride\s*(?:=|:|of|is)?\s*(\d+)|\bs\s*=\s*(\d+)", plain, re.I)}
            if len(pads) == 1 and len(strides) == 1:
                p, s = pads.pop(), strides.pop()
                if s >= 1 and (64 + 2 * p - 3) // s + 1 == 32:
                    return
        raise NeedsReview("the padding and stride of 5.2(ii) are not stated in a form the grader reads as right",
                          text.evidence(texts[0] if texts else None))
    got = student.get(MOD, "padding_stride")
    if not (isinstance(got, (list, tuple)) and len(got) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in got)):
        raise CheckFailed("padding_stride should be a pair of integers (padding, stride)", f"got {got!r}")
    p, s = got
    if p < 0 or s < 1 or (64 + 2 * p - 3) // s + 1 != 32:
        raise CheckFailed("this padding and stride do not give the asked output size", f"(padding, stride) = {got!r}")
