"""Hidden checks for the automatic parts of Problems 1, 3 and 5 (notebook PSET4_Analytical). Trusted code.

Numbers, shapes and choices are compared with the handout's answers; formulas are evaluated numerically
on random inputs (gradients against finite differences computed here), so any algebraically equivalent
form scores.
"""
from __future__ import annotations

import numpy as np

from grader.checks import CheckFailed, Student, as_array, check, expect_close

MOD = "PSET4_Analytical"


def _number(student: Student, name: str, expected: float, hint: str = "") -> None:
    got = student.get(MOD, name)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"{name} should be a number", f"got {got!r}", hint)
    if abs(got - expected) > 1e-9:
        raise CheckFailed(f"{name} is wrong", f"got {got!r}", hint)


def _lights(rng: np.random.Generator, m: int) -> np.ndarray:
    L = rng.normal(size=(m, 3)) + np.array([0, 0, 2.0])
    return L / np.linalg.norm(L, axis=1, keepdims=True)


# -- Problem 1 -------------------------------------------------------------------------------------
@check("1.1.1", "degrees of freedom of the plenoptic function", module=MOD)
def plenoptic(student: Student) -> None:
    _number(student, "plenoptic_dof", 7)


@check("1.2.1", "I = rho (l . N) on random inputs", module=MOD)
def lambertian(student: Student) -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        rho, l, n = float(rng.uniform(0.1, 2)), rng.normal(size=3), rng.normal(size=3)
        n /= np.linalg.norm(n)
        got = as_array(student.call(MOD, "lambertian_intensity", rho, l, n), "lambertian_intensity")
        expect_close(got.reshape(-1)[:1] if got.size == 1 else got, np.array([rho * l @ n]), "lambertian_intensity", 1e-9)


@check("1.2.2", "number of unknowns per pixel", module=MOD)
def unknowns(student: Student) -> None:
    _number(student, "unknowns_per_pixel", 3, "the unit normal has 2 degrees of freedom, plus the albedo")


@check("1.2.3", "minimum number of measurements", module=MOD)
def measurements(student: Student) -> None:
    _number(student, "min_measurements", 3)


def _pixel(seed: int, m: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    L = _lights(rng, m)
    G = rng.normal(size=3) + np.array([0, 0, 3.0])
    return L, L @ G + 0.01 * rng.normal(size=m), G


@check("1.3.1", "G from I_m and L (least squares)", module=MOD)
def solve_g(student: Student) -> None:
    L, I, _ = _pixel(2)
    expected = np.linalg.lstsq(L, I, rcond=None)[0]
    got = as_array(student.call(MOD, "solve_G", L, I), "solve_G(L, I_m)")
    expect_close(got.reshape(-1), expected, "solve_G(L, I_m)", 1e-8, hint="G = (L^T L)^-1 L^T I_m")


@check("1.3.2", "albedo from G", module=MOD)
def albedo(student: Student) -> None:
    G = np.array([0.3, -1.2, 2.5])
    got = as_array(student.call(MOD, "albedo_from_G", G), "albedo_from_G(G)")
    expect_close(got.reshape(-1)[:1] if got.size == 1 else got, np.array([np.linalg.norm(G)]), "albedo_from_G(G)", 1e-9)


@check("1.3.3", "normal from G", module=MOD)
def normal(student: Student) -> None:
    G = np.array([0.3, -1.2, 2.5])
    got = as_array(student.call(MOD, "normal_from_G", G), "normal_from_G(G)")
    expect_close(got.reshape(-1), G / np.linalg.norm(G), "normal_from_G(G)", 1e-9)


@check("1.3.4", "G_hat and N_hat for a whole image", module=MOD)
def solve_all(student: Student) -> None:
    rng = np.random.default_rng(4)
    L = _lights(rng, 9)
    G = rng.normal(size=(3, 50)) + np.array([[0], [0], [3.0]])
    I = L @ G
    out = student.call(MOD, "solve_all", L, I)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("solve_all should return (G_hat, N_hat)", f"got {type(out).__name__}")
    expect_close(out[0], G.T, "G_hat (n x 3)", 1e-8)
    expect_close(out[1], (G / np.linalg.norm(G, axis=0)).T, "N_hat (n x 3)", 1e-8,
                 hint="normalise each row of G_hat (one norm per pixel)")


# -- Problem 3 -------------------------------------------------------------------------------------
def _numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        g[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


@check("3.1", "dz/dx of z = x^T x", module=MOD)
def grad_xtx(student: Student) -> None:
    x = np.random.default_rng(5).normal(size=4)
    got = as_array(student.call(MOD, "grad_xTx", x), "grad_xTx(x)")
    expect_close(got.reshape(-1), _numeric_grad(lambda v: v @ v, x), "grad_xTx(x)", 1e-5)


@check("3.1", "dz/dA of z = Tr(A^T A)", module=MOD)
def grad_trace(student: Student) -> None:
    A = np.random.default_rng(6).normal(size=(3, 5))
    got = as_array(student.call(MOD, "grad_trace_AtA", A), "grad_trace_AtA(A)")
    expect_close(got, _numeric_grad(lambda B: np.trace(B.T @ B), A), "grad_trace_AtA(A)", 1e-5)


@check("3.1", "dz/dy of z = x^T A y", module=MOD)
def grad_xay(student: Student) -> None:
    rng = np.random.default_rng(7)
    x, A, y = rng.normal(size=3), rng.normal(size=(3, 5)), rng.normal(size=5)
    got = as_array(student.call(MOD, "grad_xTAy_wrt_y", x, A, y), "grad_xTAy_wrt_y(x, A, y)")
    expect_close(got.reshape(-1), _numeric_grad(lambda v: x @ A @ v, y), "grad_xTAy_wrt_y(x, A, y)", 1e-5,
                 hint="the gradient with respect to y has y's shape (n,)")


@check("3.1", "dz/dy of z = A y", module=MOD)
def jac_ay(student: Student) -> None:
    rng = np.random.default_rng(8)
    A, y = rng.normal(size=(3, 5)), rng.normal(size=5)
    got = as_array(student.call(MOD, "jacobian_Ay_wrt_y", A, y), "jacobian_Ay_wrt_y(A, y)")
    # Both layouts are in use: numerator (dz_i/dy_j, m x n = A) and the handout's denominator (n x m = A^T).
    if got.shape == A.T.shape:
        expect_close(got, A.T, "jacobian_Ay_wrt_y(A, y) (denominator layout)", 1e-9)
    else:
        expect_close(got, A, "jacobian_Ay_wrt_y(A, y)", 1e-9)


def _bernoulli(student: Student, name: str, fn) -> None:
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    y_hat = np.array([0.2, 0.7, 0.95, 0.6, 0.1])
    try:
        got = as_array(student.call(MOD, name, y, y_hat), f"{name}(y, y_hat)")
    except CheckFailed:
        raise
    except Exception:  # noqa: BLE001 - a scalar-only formula: evaluate element by element
        got = np.array([float(as_array(student.call(MOD, name, float(a), float(b)), name)) for a, b in zip(y, y_hat)])
    expect_close(got.reshape(-1), fn(y, y_hat), f"{name}(y, y_hat)", 1e-9)


@check("3.2.1", "p(y|x) = y_hat^y (1 - y_hat)^(1 - y)", module=MOD)
def bernoulli_p(student: Student) -> None:
    _bernoulli(student, "p_y_given_x", lambda y, p: p**y * (1 - p) ** (1 - y))


@check("3.2.2", "log p(y|x)", module=MOD)
def bernoulli_log(student: Student) -> None:
    _bernoulli(student, "log_p_y_given_x", lambda y, p: y * np.log(p) + (1 - y) * np.log(1 - p))


@check("3.2.3", "the loss is -log p(y|x) (binary cross-entropy)", module=MOD)
def bce(student: Student) -> None:
    _bernoulli(student, "bce_loss", lambda y, p: -(y * np.log(p) + (1 - y) * np.log(1 - p)))


# -- Problem 5 -------------------------------------------------------------------------------------
@check("5.2.1", "output size with no padding and stride 1", module=MOD)
def conv_shape(student: Student) -> None:
    got = student.get(MOD, "conv_output_shape")
    shape = tuple(int(v) for v in got) if isinstance(got, (list, tuple)) and all(isinstance(v, (int, float)) for v in got) else got
    if shape not in ((64, 62, 62), (62, 62)):
        raise CheckFailed("conv_output_shape is wrong", f"got {got!r}", "H_out = (H + 2p - k) / s + 1; C_out channels")


@check("5.2.2", "padding and stride giving 64 x 32 x 32", module=MOD)
def padding_stride(student: Student) -> None:
    got = student.get(MOD, "padding_stride")
    if not (isinstance(got, (list, tuple)) and len(got) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in got)):
        raise CheckFailed("padding_stride should be a pair of integers (padding, stride)", f"got {got!r}")
    p, s = got
    if p < 0 or s < 1 or (64 + 2 * p - 3) // s + 1 != 32:
        raise CheckFailed("this padding and stride do not give 32 x 32", f"(padding, stride) = {got!r}",
                          "H_out = floor((64 + 2p - 3) / s) + 1 must be 32")
