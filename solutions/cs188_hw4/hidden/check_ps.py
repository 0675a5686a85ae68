"""Hidden checks for Problem 2, photometric stereo (items 2.1 and 2.2), notebook PSET4_PS. Trusted code.

Oracles are computed here, in the grader's process: least squares on exact synthetic Lambertian scenes
(fixtures/make_cs188_hw4.py: sphere_scene) and on the public PNG fixtures read with the starter's 8-bit
convention. Any correct solver (lstsq, pinv, solve on the normal equations, a per-pixel loop, masked
solves) agrees with them to about 1e-10; the checks allow 1e-6.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from grader.checks import CheckFailed, Student, as_array, check, expect_close, expect_shape
from grader.spec import FIXTURES

MOD = "PSET4_PS"
ATOL = 1e-6


@lru_cache(maxsize=1)
def gen():
    spec = importlib.util.spec_from_file_location("_make_cs188_hw4", FIXTURES / "make_cs188_hw4.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_pms() -> Path:
    return FIXTURES / "data" / "cs188_hw4" / "public" / "pmsData"


def read_gray8(path: Path) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(path))
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    return img.astype(np.uint8)


@lru_cache(maxsize=8)
def load_fixture(obj: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    folder = public_pms() / f"{obj}PNG"
    names = [n.strip() for n in (folder / "filenames.txt").read_text().splitlines() if n.strip()]
    mask = read_gray8(folder / "mask.png") > 0
    I = np.stack([read_gray8(folder / n) * mask for n in names]).astype(np.uint8)
    L = np.loadtxt(folder / "light_directions.txt").reshape(-1, 3)
    return I, L, mask


def normal_gt(obj: str) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(public_pms() / f"{obj}PNG" / "Normal_gt.png")).astype(np.float64)
    n = img[..., :3] / 255.0 * 2.0 - 1.0
    n[np.all(img[..., :3] == 0, axis=-1)] = 0.0
    return np.moveaxis(n, -1, 0)


def oracle(I: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G (3, n), albedo (n,), unit normals (3, n) with 0 where the albedo is 0."""
    m = I.shape[0]
    G = np.linalg.lstsq(L, I.reshape(m, -1).astype(np.float64), rcond=None)[0]
    rho = np.linalg.norm(G, axis=0)
    N = np.divide(G, rho, out=np.zeros_like(G), where=rho > 0)
    return G, rho, N


def error_map(N_gt: np.ndarray, N_hat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a = N_gt / np.max(np.abs(N_gt))
    b = N_hat / np.max(np.abs(N_hat))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = 1.0 - (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return np.nan_to_num(err, nan=0.0, posinf=0.0, neginf=0.0) * mask


def _hint_normals(got: np.ndarray, I: np.ndarray, L: np.ndarray) -> str:
    m = I.shape[0]
    h, w = I.shape[1:]
    G, rho, N = oracle(I, L)
    if got.shape == (3, h, w):
        if np.allclose(got.reshape(3, -1), G, atol=1e-6):
            return "these are G = rho * n; divide by the albedo (the norm of each pixel's G) to get unit normals"
        if np.allclose(got, N.T.reshape(h, w, 3).transpose(2, 0, 1), atol=1e-6):
            return ""
        scrambled = np.divide(G.T, rho[:, None], out=np.zeros_like(G.T), where=rho[:, None] > 0).reshape(3, h, w)
        if np.allclose(got, scrambled, atol=1e-6):
            return "an (n, 3) array reshaped straight to (3, H, W) scrambles the channels: transpose to (3, n) first"
        norms = np.linalg.norm(got.reshape(3, -1), axis=0)
        inside = rho > 0
        if inside.any() and not np.allclose(norms[inside], 1.0, atol=1e-3):
            return "the normals inside the mask should have unit length: the albedo is the norm of each pixel's G (one value per pixel)"
    if got.shape == (3, w, h):
        return "height and width are swapped: N_hat is (3, H, W)"
    return ""


def _check_normals(student: Student, I: np.ndarray, L: np.ndarray, expected: np.ndarray, mask: np.ndarray, what: str,
                   atol: float = ATOL) -> None:
    got = as_array(student.call(MOD, "compute_Nhat", I, L, timeout=60), f"compute_Nhat ({what})")
    h, w = I.shape[1:]
    expect_shape(got, (3, h, w), f"compute_Nhat ({what})", _hint_normals(got, I, L))
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"compute_Nhat ({what}) returned NaN or inf", f"{int((~np.isfinite(got)).sum())} values",
                          "pixels outside the mask have albedo 0: set their normals to 0 instead of dividing by 0")
    expect_close(got[:, ~mask], np.zeros((3, int((~mask).sum()))), f"normals outside the mask ({what})", atol)
    expect_close(got[:, mask], expected[:, mask], f"normals inside the mask ({what})", atol, hint=_hint_normals(got, I, L))


# -- 2.1 loading data ----------------------------------------------------------------------------
@check("2.1", "the BEAR object is loaded into I, L, mask", weight=1, module=MOD)
def bear_loaded(student: Student) -> None:
    I_ref, L_ref, mask_ref = load_fixture("bear")
    I = as_array(student.get(MOD, "I"), "I")
    L = as_array(student.get(MOD, "L"), "L")
    mask = as_array(student.get(MOD, "mask"), "mask")
    expect_shape(I, I_ref.shape, "I (the BEAR images)", "load obj_name='bear' into I, L, mask with load_object_data")
    expect_close(I, I_ref, "I (the BEAR images)", 0.5)
    expect_close(L, L_ref, "L (the BEAR lights)", 1e-9)
    expect_close(mask, mask_ref, "mask (the BEAR mask)", 0.0)


@check("2.1", "L_mean and L_std are the mean and std of the light vectors' lengths", weight=1.5, module=MOD)
def light_stats(student: Student) -> None:
    L = as_array(student.get(MOD, "L"), "L", ndim=2)
    norms = np.linalg.norm(L, axis=1)
    hint = "take the norm of each row of L (axis=1), then the mean and the std of those m values"
    mean = as_array(student.get(MOD, "L_mean"), "L_mean")
    std = as_array(student.get(MOD, "L_std"), "L_std")
    expect_close(mean.reshape(-1)[:1] if mean.size == 1 else mean, np.array([norms.mean()]), "L_mean", 1e-8, hint=hint)
    expect_close(std.reshape(-1)[:1] if std.size == 1 else std, np.array([norms.std()]), "L_std", 1e-8, hint=hint)


@check("2.1", "dim_L, I_m and dim_Im", weight=1.5, module=MOD)
def shapes(student: Student) -> None:
    I = as_array(student.get(MOD, "I"), "I", ndim=3)
    L = as_array(student.get(MOD, "L"), "L", ndim=2)
    dim_L = student.get(MOD, "dim_L")
    if tuple(np.asarray(dim_L).tolist()) != tuple(L.shape):
        raise CheckFailed("dim_L is not the shape of L", f"expected {tuple(L.shape)}, got {dim_L!r}")
    m = I.shape[0]
    I_m = as_array(student.get(MOD, "I_m"), "I_m")
    expect_shape(I_m, (m, I.shape[1] * I.shape[2]), "I_m",
                 "one row per image and one column per pixel: I.reshape(m, H * W), with m = I.shape[0] (not a fixed 96)")
    expect_close(I_m, I.reshape(m, -1), "I_m", 1e-9, hint="row k of I_m is image k flattened: I.reshape(m, -1)")
    dim_Im = student.get(MOD, "dim_Im")
    if tuple(np.asarray(dim_Im).tolist()) != tuple(I_m.shape):
        raise CheckFailed("dim_Im is not the shape of I_m", f"expected {tuple(I_m.shape)}, got {dim_Im!r}")


# -- 2.2 implementation ----------------------------------------------------------------------------
@check("2.2", "exact Lambertian scene, 96 lights, 64x80", weight=3, module=MOD)
def exact_96(student: Student) -> None:
    sc = gen().sphere_scene(64, 80, 96, "exact", seed=21, centre=(3.0, -2.0))
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "exact scene, 96 lights")


@check("2.2", "20 lights instead of 96", weight=1.5, module=MOD)
def exact_20(student: Student) -> None:
    sc = gen().sphere_scene(64, 80, 20, "exact", seed=22, centre=(-4.0, 3.0))
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "20 lights")


@check("2.2", "a tall image (72x40): orientation of N_hat", weight=1.5, module=MOD)
def tall(student: Student) -> None:
    sc = gen().sphere_scene(72, 40, 96, "exact", seed=23, centre=(2.0, 6.0), radius=36.0)
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "tall 72x40 image")


@check("2.2", "invariance: light order and intensity scale", weight=1, module=MOD)
def invariance(student: Student) -> None:
    sc = gen().sphere_scene(64, 80, 96, "exact", seed=24)
    perm = np.random.default_rng(5).permutation(96)
    _check_normals(student, 3.7 * sc["I"][perm], sc["L"][perm], sc["normals"], sc["mask"],
                   "lights permuted, intensities scaled by 3.7")


@check("2.2", "G_hat, rho_hat and N_hat of the notebook", weight=1.5, module=MOD)
def notebook_variables(student: Student) -> None:
    I = as_array(student.get(MOD, "I"), "I", ndim=3)
    L = as_array(student.get(MOD, "L"), "L", ndim=2)
    h, w = I.shape[1:]
    G, rho, N = oracle(I, L)
    G_hat = as_array(student.get(MOD, "G_hat"), "G_hat")
    expect_shape(G_hat, G.T.shape, "G_hat", "G_hat is n x 3 (one row per pixel): transpose the 3 x n solution")
    expect_close(G_hat, G.T, "G_hat", 1e-6 * max(1.0, float(np.abs(G).max())),
                 hint="G_hat = ((L^T L)^-1 L^T I_m)^T = pinv(L) @ I_m, transposed")
    rho_hat = as_array(student.get(MOD, "rho_hat"), "rho_hat")
    if rho_hat.size != rho.size:
        raise CheckFailed("rho_hat should hold one albedo per pixel", f"expected {rho.size} values, got shape {rho_hat.shape}",
                          "the albedo is the norm of each row of G_hat (axis=1 of the n x 3 matrix)")
    expect_close(rho_hat.reshape(-1), rho, "rho_hat", 1e-6 * max(1.0, float(rho.max())))
    N_hat = as_array(student.get(MOD, "N_hat"), "N_hat")
    expected = N.reshape(3, h, w)
    expect_shape(N_hat, expected.shape, "N_hat")
    if not np.all(np.isfinite(N_hat)):
        raise CheckFailed("N_hat has NaN or inf", hint="set the normals of pixels with albedo 0 to 0")
    hint = ""
    if np.allclose((G.T / np.where(rho > 0, rho, 1)[:, None]).reshape(3, h, w), N_hat, atol=1e-6):
        hint = "an (n, 3) array reshaped straight to (3, H, W) scrambles the channels: transpose to (3, n) first"
    expect_close(N_hat, expected, "N_hat", ATOL, hint=hint)


@check("2.2", "BALL (8-bit, shadows): normals and error map", weight=1.5, module=MOD)
def ball_error_map(student: Student) -> None:
    I, L, mask = load_fixture("ball")
    _, _, N = oracle(I, L)
    h, w = I.shape[1:]
    N = N.reshape(3, h, w)
    data_dir = f"{student.data_dir}/pmsData" if student.data_dir else str(public_pms())
    out = student.call(MOD, "reconstruct_and_error", "ball", data_dir=data_dir, disp=False, timeout=60)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("reconstruct_and_error should return (N_hat, error_map)", f"got {type(out).__name__}")
    got_n = as_array(out[0], "N_hat of BALL")
    expect_shape(got_n, (3, h, w), "N_hat of BALL")
    expect_close(got_n, N, "N_hat of BALL", ATOL, hint=_hint_normals(got_n, I, L))
    expected_err = error_map(normal_gt("ball"), N, mask)
    expect_close(out[1], expected_err, "error map of BALL", 1e-6,
                 hint="error_map = get_error_map(N_gt, N_hat, mask) with N_gt from load_normal_gt")
    inside = mask & (normal_gt("ball")[2] > 0.3)
    angle = np.degrees(np.arccos(np.clip((got_n * normal_gt("ball")).sum(0)[inside]
                                         / np.linalg.norm(normal_gt("ball"), axis=0)[inside], -1, 1)))
    if angle.mean() > 3.0:  # sanity: away from the limb least squares is within a few degrees
        raise CheckFailed("the BALL normals are far from the ground truth", f"mean angular error {angle.mean():.2f} deg")
