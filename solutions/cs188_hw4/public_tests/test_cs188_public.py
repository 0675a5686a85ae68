"""Quick local checks for CS188 HW4. Run from the assignment folder:  pytest tests

Each test names the part it checks. Passing them means your notebooks run and give the right shapes and one
basic property per part; the marking checks test much more (exact scenes, other image sizes and light
counts, the parameters after training steps, accuracies of known networks), so passing here does not
guarantee full marks.
"""
import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent
REPO = ASSIGNMENT_DIR.parent.parent


def find_data():
    """DATA_ROOT, else ./data next to the notebooks, else the course repository's fixture data."""
    for candidate in (os.environ.get("DATA_ROOT"), ASSIGNMENT_DIR / "data", REPO / "fixtures" / "data" / "cs188_hw4" / "public"):
        if candidate and (Path(candidate) / "pmsData").is_dir():
            return Path(candidate)
    return None


DATA = find_data()
needs_data = pytest.mark.skipif(DATA is None, reason="no data: set DATA_ROOT to the folder holding pmsData/")
_cache = {}


def notebook(name):
    """Run your notebook once (all code cells, in order; a failing cell does not stop the others)."""
    if name not in _cache:
        try:
            from grader.notebook import load
        except ImportError:
            pytest.skip("the grader package is needed to run notebooks here (python -m grader check works too)")
        if DATA is not None:
            os.environ["DATA_ROOT"] = str(DATA)
        with contextlib.redirect_stdout(io.StringIO()):
            _cache[name] = load(name, str(ASSIGNMENT_DIR / f"{name}.ipynb"))
    return _cache[name]


def attr(module, name, part):
    try:
        return getattr(module, name)
    except AttributeError as exc:
        pytest.fail(f"Part {part}: {exc}")


def sphere(m=12, h=24, w=30):
    rng = np.random.default_rng(0)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    x, y = (jj - w / 2) / 20, -(ii - h / 2) / 20
    mask = x**2 + y**2 < 0.25
    n = np.where(mask, np.stack([x, y, np.sqrt(np.clip(1 - x**2 - y**2, 0, None))]), 0.0)
    L = rng.normal(size=(m, 3)) * 0.3 + [0, 0, 1]
    L /= np.linalg.norm(L, axis=1, keepdims=True)
    return np.einsum("mc,chw->mhw", L, 0.8 * n), L, n, mask


@needs_data
def test_part_2_1_light_statistics_and_shapes():
    """2.1: L_mean is about 1, and dim_L / dim_Im are the shapes of L and I_m."""
    ps = notebook("PSET4_PS")
    L = attr(ps, "L", "2.1")
    assert abs(attr(ps, "L_mean", "2.1") - 1) < 1e-3, "Part 2.1: the light directions are unit vectors"
    assert tuple(attr(ps, "dim_L", "2.1")) == L.shape
    assert tuple(attr(ps, "dim_Im", "2.1")) == (L.shape[0], ps.I.shape[1] * ps.I.shape[2])


@needs_data
def test_part_2_2_compute_Nhat_recovers_a_sphere():
    """2.2: compute_Nhat recovers the normals of an exact Lambertian sphere, with 0 outside the mask."""
    ps = notebook("PSET4_PS")
    I, L, n, mask = sphere()
    got = np.asarray(attr(ps, "compute_Nhat", "2.2")(I, L))
    assert got.shape == (3, 24, 30), f"Part 2.2: compute_Nhat should return (3, H, W), got {got.shape}"
    assert np.all(np.isfinite(got)), "Part 2.2: NaN or inf (pixels with albedo 0 should get normal 0)"
    assert np.allclose(got, n, atol=1e-6), "Part 2.2: the normals differ from the exact ones"


@needs_data
def test_part_4_1_and_4_4_classifier():
    """4.1-4.4: the sample counts, NetK3's output size and test() on the trained network."""
    cl = notebook("PSET4_Classification")
    import torch

    assert attr(cl, "num_train", "4.1") == len(cl.train_data)
    assert attr(cl, "NetK3", "4.2")()(torch.zeros(2, 3, 32, 32)).shape == (2, 10), "Part 4.2: NetK3 should give 10 outputs"
    batches = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])) for _ in range(3)]
    net = cl.Net()
    before = [p.detach().clone() for p in net.parameters()]
    with contextlib.redirect_stdout(io.StringIO()):
        curve = attr(cl, "train", "4.3")(batches, num_epochs=1, net=net, model_save_path=os.devnull)
        acc = attr(cl, "test", "4.4")(batches, net=net)
    assert isinstance(curve, list), "Part 4.3: train should return the running-loss list"
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters())), "Part 4.3: training did not change the weights"
    assert 0 <= acc <= 100, f"Part 4.4: the accuracy should be a percentage, got {acc}"


def test_problems_1_3_5_answers():
    """1, 3, 5: the answers have the declared types, and the formulas run on numpy inputs."""
    an = notebook("PSET4_Analytical")
    assert isinstance(attr(an, "plenoptic_dof", "1.1"), int)
    x = np.arange(3.0)
    assert np.shape(attr(an, "grad_xTx", "3.1")(x)) == (3,)
    loss = attr(an, "bce_loss", "3.2")(np.array([1.0, 0.0]), np.array([0.9, 0.2]))
    assert np.all(np.asarray(loss) > 0)
    assert len(attr(an, "padding_stride", "5.2")) == 2
