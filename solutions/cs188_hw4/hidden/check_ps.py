"""Hidden checks for Problem 2, photometric stereo (items 2.1 and 2.2), notebook PSET4_PS. Trusted code.

Oracles are computed here, in the grader's process, from inputs the grader controls: least squares on
exact synthetic Lambertian scenes (fixtures/make_cs188_hw4.py: sphere_scene) and on the public PNG
fixtures read here with the starter's 8-bit convention; never from the notebook's own I and L (a notebook
that overwrites them must not define its own right answer). Any correct solver (lstsq, pinv, solve on
the normal equations, a per-pixel loop, masked solves) agrees with them to about 1e-10; the checks
allow 1e-6. Scenes scaled to [0, 1] and a dim patch in the BEAR fixture (albedo below 1 in 8-bit units)
tell a background threshold `rho > 0` from `rho > 1`.

Real notebooks reuse I, L and mask for the next object in later parts, so the variables of 2.1 and 2.2
are read as they stood at the end of their part (student.get(..., part=...)), falling back to their
final value when the notebook has no such heading. The original course defines compute_Nhat but not our
starter's compute_albedo_normals or reconstruct_and_error: those checks use them when they exist and
otherwise check the same property through compute_Nhat and the notebook's rho_hat.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from grader.checks import CheckFailed, Student, as_array, expect_close, expect_shape
from grader.sandbox import StudentError
from grader.spec import FIXTURES

MOD = "PSET4_PS"
ATOL = 1e-6
OBJECTS = ("bear", "cat", "ball")  # the public fixture objects a notebook may have loaded
PART_21 = r"^\s*(?:\d+\s*)?2\.1\b|loading data"
PART_22 = r"^\s*(?:\d+\s*)?2\.2\b|implementation"


def get_in_part(student: Student, name: str, part: str):
    """`name` at the end of the notebook part whose heading matches `part`, else its final value."""
    try:
        return student.get(MOD, name, part=part)
    except StudentError as exc:
        if exc.error not in ("LookupError", "MissingName"):  # no such heading, or the name comes later
            raise
    return student.get(MOD, name)


def _defines(student: Student, name: str) -> bool:
    """Does the notebook define `name` (a starter stub left in place raises: scored 0)?"""
    if name in student.names(MOD):
        return True
    try:
        student.get(MOD, name, ret="handle")
    except StudentError as exc:
        if exc.error == "MissingName":
            return False
        raise
    return True


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
    got = as_array(student.call(MOD, "compute_Nhat", I, L, timeout=60), f"compute_Nhat ({what})", allow_nonfinite=True)
    h, w = I.shape[1:]
    expect_shape(got, (3, h, w), f"compute_Nhat ({what})", _hint_normals(got, I, L))
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"compute_Nhat ({what}) returned NaN or inf", f"{int((~np.isfinite(got)).sum())} values",
                          "pixels outside the mask have albedo 0: set their normals to 0 instead of dividing by 0")
    expect_close(got[:, ~mask], np.zeros((3, int((~mask).sum()))), f"normals outside the mask ({what})", atol)
    expect_close(got[:, mask], expected[:, mask], f"normals inside the mask ({what})", atol, hint=_hint_normals(got, I, L))


# -- 2.1 loading data ----------------------------------------------------------------------------
def _fixture_of(I: np.ndarray) -> str:
    """The public fixture object whose 8-bit images `I` are (as read here), or a CheckFailed."""
    for obj in OBJECTS:
        ref = load_fixture(obj)[0]
        if I.shape == ref.shape and np.allclose(I, ref, atol=0.5):
            return obj
    raise CheckFailed("I does not hold the images of a fixture object as load_object_data reads them",
                      f"shape {I.shape}")


@pytest.mark.item("2.1", weight=1, module=MOD)
def test_bear_loaded(student: Student) -> None:
    """the BEAR object is loaded into I, L, mask"""
    I_ref, L_ref, mask_ref = load_fixture("bear")
    I = as_array(get_in_part(student, "I", PART_21), "I")
    L = as_array(get_in_part(student, "L", PART_21), "L")
    mask = as_array(get_in_part(student, "mask", PART_21), "mask")
    expect_shape(I, I_ref.shape, "I (the BEAR images)", "load obj_name='bear' into I, L, mask with load_object_data")
    expect_close(I, I_ref, "I (the BEAR images)", 0.5)
    expect_close(L, L_ref, "L (the BEAR lights)", 1e-9)
    expect_close(mask, mask_ref, "mask (the BEAR mask)", 0.0)


@pytest.mark.item("2.1", weight=1.5, module=MOD)
def test_light_stats(student: Student) -> None:
    """L_mean and L_std describe the lengths of the loaded light vectors"""
    mean = as_array(get_in_part(student, "L_mean", PART_21), "L_mean")
    std = as_array(get_in_part(student, "L_std", PART_21), "L_std")
    if mean.size != 1 or std.size != 1:
        raise CheckFailed("L_mean and L_std should be single numbers", f"shapes {mean.shape} and {std.shape}")
    for obj in OBJECTS:  # the statistics of the lights of an object the notebook loaded (BEAR, or CAT)
        norms = np.linalg.norm(load_fixture(obj)[1], axis=1)
        if abs(float(mean.reshape(-1)[0]) - norms.mean()) <= 1e-8 and abs(float(std.reshape(-1)[0]) - norms.std()) <= 1e-8:
            return
    raise CheckFailed("L_mean and L_std are not the mean and standard deviation of the light vectors' lengths",
                      f"got {float(mean.reshape(-1)[0]):.6g} and {float(std.reshape(-1)[0]):.3g}",
                      "one length per light (per row of L), then the mean and the std of those m values")


@pytest.mark.item("2.1", weight=1.5, module=MOD)
def test_shapes(student: Student) -> None:
    """dim_L, I_m and dim_Im"""
    I_m = as_array(get_in_part(student, "I_m", PART_21), "I_m", ndim=2)
    for obj in OBJECTS:
        I, L, _ = load_fixture(obj)
        if I_m.shape[0] == I.shape[0] and I_m.size == I.size:
            break
    else:
        raise CheckFailed("I_m is not the m x n matrix of a loaded object's measurements", f"shape {I_m.shape}",
                          "one row per image and one column per pixel")
    m = I.shape[0]
    expect_shape(I_m, (m, I.shape[1] * I.shape[2]), "I_m", "one row per image and one column per pixel")
    expect_close(I_m, I.reshape(m, -1), "I_m", 1e-9, hint="row k of I_m is image k, flattened")
    dim_L = get_in_part(student, "dim_L", PART_21)
    if tuple(np.asarray(dim_L).tolist()) != tuple(L.shape):
        raise CheckFailed("dim_L is not the shape of L", f"got {dim_L!r}")
    dim_Im = get_in_part(student, "dim_Im", PART_21)
    if tuple(np.asarray(dim_Im).tolist()) != tuple(I_m.shape):
        raise CheckFailed("dim_Im is not the shape of I_m", f"got {dim_Im!r}")


# -- 2.2 implementation ----------------------------------------------------------------------------
@pytest.mark.item("2.2", weight=3, module=MOD)
def test_exact_96(student: Student) -> None:
    """exact Lambertian scene, 96 lights, 64x80"""
    sc = gen().sphere_scene(64, 80, 96, "exact", seed=21, centre=(3.0, -2.0))
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "exact scene, 96 lights")


@pytest.mark.item("2.2", weight=1.5, module=MOD)
def test_exact_20(student: Student) -> None:
    """20 lights instead of 96"""
    sc = gen().sphere_scene(64, 80, 20, "exact", seed=22, centre=(-4.0, 3.0))
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "20 lights")


@pytest.mark.item("2.2", weight=1.5, module=MOD)
def test_tall(student: Student) -> None:
    """a tall image (72x40): orientation of N_hat"""
    sc = gen().sphere_scene(72, 40, 96, "exact", seed=23, centre=(2.0, 6.0), radius=36.0)
    _check_normals(student, sc["I"], sc["L"], sc["normals"], sc["mask"], "tall 72x40 image")


@pytest.mark.item("2.2", weight=1, module=MOD)
def test_invariance(student: Student) -> None:
    """invariance: light order and intensity scale"""
    sc = gen().sphere_scene(64, 80, 96, "exact", seed=24)
    perm = np.random.default_rng(5).permutation(96)
    _check_normals(student, 3.7 * sc["I"][perm], sc["L"][perm], sc["normals"], sc["mask"],
                   "lights permuted, intensities scaled by 3.7")


@pytest.mark.item("2.2", weight=1, module=MOD)
def test_dark_images(student: Student) -> None:
    """dark images (intensities in [0, 1], albedo below 1)"""
    sc = gen().sphere_scene(64, 80, 96, "exact", seed=25, centre=(-2.0, 1.0))
    I = sc["I"] / (4.0 * sc["I"].max())  # every albedo below 0.3: a background test must use rho > 0
    _check_normals(student, I, sc["L"], sc["normals"], sc["mask"], "images scaled to [0, 0.25]")


@pytest.mark.item("2.2", weight=1, module=MOD)
def test_albedo_returned(student: Student) -> None:
    """the albedo returned with the normals"""
    if not _defines(student, "compute_albedo_normals"):
        return  # the original notebook has no such function: its albedo is rho_hat (checked below)
    sc = gen().sphere_scene(48, 56, 96, "exact", seed=26, centre=(1.0, -2.0))
    I = sc["I"] / (2.0 * sc["I"].max())
    out = student.call(MOD, "compute_albedo_normals", I, sc["L"], timeout=60)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("compute_albedo_normals should return (albedo, normals)", f"got {type(out).__name__}")
    rho = as_array(out[0], "the albedo of compute_albedo_normals")
    expected = sc["albedo"] / (2.0 * sc["I"].max())
    if rho.size != expected.size:
        raise CheckFailed("the albedo should hold one value per pixel", f"got shape {rho.shape}")
    expect_close(rho.reshape(expected.shape), expected, "the albedo of compute_albedo_normals", 1e-9)


def _oracle_object(G_hat: np.ndarray) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The fixture object (as read here) whose least-squares G the student's G_hat is, with its oracle."""
    for obj in OBJECTS:
        I, L, _ = load_fixture(obj)
        G, rho, N = oracle(I, L)
        if G_hat.shape == G.T.shape and np.allclose(G_hat, G.T, atol=1e-6 * max(1.0, float(np.abs(G).max()))):
            return obj, G, rho, N
    return "", None, None, None


@pytest.mark.item("2.2", weight=1.5, module=MOD)
def test_notebook_variables(student: Student) -> None:
    """G_hat, rho_hat and N_hat of the notebook"""
    G_hat = as_array(get_in_part(student, "G_hat", PART_22), "G_hat", ndim=2)
    obj, G, rho, N = _oracle_object(G_hat)
    if not obj:
        I, L, _ = load_fixture("bear")
        G, _, _ = oracle(I, L)
        hint = "G_hat is n x 3 (one row per pixel)" if G_hat.shape == G.shape else ""
        raise CheckFailed("G_hat is not the least-squares G of the loaded images", f"shape {G_hat.shape}", hint)
    h, w = load_fixture(obj)[0].shape[1:]
    rho_hat = as_array(get_in_part(student, "rho_hat", PART_22), "rho_hat")
    if rho_hat.size != rho.size:
        raise CheckFailed("rho_hat should hold one albedo per pixel", f"got shape {rho_hat.shape}")
    expect_close(rho_hat.reshape(-1), rho, "rho_hat", 1e-6 * max(1.0, float(rho.max())))
    N_hat = as_array(get_in_part(student, "N_hat", PART_22), "N_hat")
    expected = N.reshape(3, h, w)
    expect_shape(N_hat, expected.shape, "N_hat")
    hint = ""
    if np.allclose((G.T / np.where(rho > 0, rho, 1)[:, None]).reshape(3, h, w), N_hat, atol=1e-6):
        hint = "an (n, 3) array reshaped straight to (3, H, W) scrambles the channels: transpose to (3, n) first"
    elif np.any((rho > 0) & (np.abs(N_hat.reshape(3, -1)).sum(0) == 0)):
        hint = "some pixels with a positive albedo have a zero normal"
    expect_close(N_hat, expected, "N_hat", ATOL, hint=hint)


@pytest.mark.item("2.2", weight=1.5, module=MOD)
def test_ball_error_map(student: Student) -> None:
    """BALL (8-bit, shadows): normals and error map"""
    I, L, mask = load_fixture("ball")
    _, _, N = oracle(I, L)
    h, w = I.shape[1:]
    N = N.reshape(3, h, w)
    if _defines(student, "reconstruct_and_error"):
        data_dir = f"{student.data_dir}/pmsData" if student.data_dir else str(public_pms())
        out = student.call(MOD, "reconstruct_and_error", "ball", data_dir=data_dir, disp=False, timeout=60)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed("reconstruct_and_error should return (N_hat, error_map)", f"got {type(out).__name__}")
        got_n = as_array(out[0], "N_hat of BALL")
        expected_err = error_map(normal_gt("ball"), N, mask)
        expect_shape(got_n, (3, h, w), "N_hat of BALL")
        expect_close(got_n, N, "N_hat of BALL", ATOL, hint=_hint_normals(got_n, I, L))
        expect_close(out[1], expected_err, "error map of BALL", 1e-6,
                     hint="error_map = get_error_map(N_gt, N_hat, mask) with N_gt from load_normal_gt")
    else:  # the original notebook: its error maps are figures; the normals come from compute_Nhat
        got_n = as_array(student.call(MOD, "compute_Nhat", I, L, timeout=60), "compute_Nhat (BALL)")
        expect_shape(got_n, (3, h, w), "compute_Nhat (BALL)")
        expect_close(got_n, N, "compute_Nhat (BALL)", ATOL, hint=_hint_normals(got_n, I, L))
    inside = mask & (normal_gt("ball")[2] > 0.3)
    angle = np.degrees(np.arccos(np.clip((got_n * normal_gt("ball")).sum(0)[inside]
                                         / np.linalg.norm(normal_gt("ball"), axis=0)[inside], -1, 1)))
    if angle.mean() > 3.0:  # sanity: away from the limb least squares is within a few degrees
        raise CheckFailed("the BALL normals are far from the ground truth", f"mean angular error {angle.mean():.2f} deg")
