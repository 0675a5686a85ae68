"""Quick local checks for DLCV HW4. Run from the assignment folder:

    pytest tests

Each test names the task it checks. Passing them means your code runs and has one basic property per task;
the marking checks test much more (random images, the pinned SSIM formula, the public renders folders, BYOL's
gradients), so passing here does not guarantee full marks.
"""
import csv
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent


def _module(name, task):
    """Import one of your files (grade, byol_pytorch, P2_inference) from the assignment folder."""
    if str(ASSIGNMENT_DIR) not in sys.path:
        sys.path.insert(0, str(ASSIGNMENT_DIR))
    cached = sys.modules.get(name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != ASSIGNMENT_DIR:
        del sys.modules[name]  # a same-named module from another folder: use this folder's file
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - report any import problem against the task
        pytest.fail(f"Task {task}: cannot import {name}.py from {ASSIGNMENT_DIR} ({type(exc).__name__}: {exc})")


def test_1_1_psnr_of_a_constant_offset():
    """Task 1.1: an error of 0.1 everywhere is 20 dB."""
    grade = _module("grade", "1.1")
    gt = np.full((8, 8, 3), 0.5)
    assert grade.psnr(gt + 0.1, gt) == pytest.approx(20.0, abs=1e-6)


def test_1_2_ground_truth_onto_white():
    """Task 1.2: a transparent ground-truth pixel counts as white."""
    grade = _module("grade", "1.2")
    rgba = np.zeros((2, 2, 4), np.float32)
    assert np.allclose(grade.composite_gt(rgba), 1.0)


def test_1_3_ssim_of_an_image_with_itself():
    """Task 1.3: SSIM of an image with itself is 1 (the map is smaller than the image: 'valid' borders)."""
    grade = _module("grade", "1.3")
    img = np.random.default_rng(0).random((16, 20, 3))
    assert grade.rgb_ssim(img, img, 1.0) == pytest.approx(1.0, abs=1e-6)
    assert grade.rgb_ssim(img, img, 1.0, return_map=True).shape == (6, 10, 3)


def test_2_1_and_2_2_loss_and_ema():
    """Tasks 2.1 and 2.2: the loss of two vectors with the same direction is 0; one EMA step."""
    torch = pytest.importorskip("torch")
    byol = _module("byol_pytorch", "2.1")
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(byol.loss_fn(x, 3 * x).mean()) == pytest.approx(0.0, abs=1e-6)
    got = byol.EMA(0.5).update_average(torch.tensor([2.0]), torch.tensor([4.0]))
    assert float(got) == pytest.approx(3.0)


def test_2_4_csv_keeps_the_input_order(tmp_path):
    """Task 2.4: the output has the header id,filename,label and the input's rows in the input's order."""
    p2 = _module("P2_inference", "2.4")
    src = tmp_path / "in.csv"
    src.write_text("id,filename,label\n0,b.jpg,\n1,a.jpg,\n")
    out = tmp_path / "out.csv"
    p2.write_predictions(src, {"a.jpg": "Mug", "b.jpg": "Bike"}, out)
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["id", "filename", "label"], ["0", "b.jpg", "Bike"], ["1", "a.jpg", "Mug"]]
