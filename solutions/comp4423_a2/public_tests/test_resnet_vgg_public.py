"""Quick local checks for Task 1 (ResNet vs VGG, resnet_vgg.py). Run from the assignment folder:

    pytest tests/test_resnet_vgg_public.py

They build VGG16 once (about 540 MB of memory and a few seconds on a CPU) and use tiny inputs. They
check that your code runs and returns the right kinds of things; the marking checks much more
(exact values, figures' content, that your model is left unchanged), so passing here does not
guarantee full marks.
"""
import importlib
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

ASSIGNMENT_DIR = Path(__file__).resolve().parent.parent


def _rv(task):
    """Import your resnet_vgg.py from the assignment folder."""
    cached = sys.modules.get("resnet_vgg")
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != ASSIGNMENT_DIR:
        del sys.modules["resnet_vgg"]
    try:
        return importlib.import_module("resnet_vgg")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Task {task}: cannot import resnet_vgg.py from {ASSIGNMENT_DIR} ({type(exc).__name__}: {exc})")


def _call(task, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - NotImplementedError (not done yet), TypeError, ...
        pytest.fail(f"Task {task}: {getattr(fn, '__name__', fn)} raised {type(exc).__name__}: {exc}")


@pytest.fixture(scope="module")
def models():
    import torch

    torch.manual_seed(0)
    out = _call("1.1", _rv("1.1").build_models, 10)
    assert isinstance(out, tuple) and len(out) == 2, "Task 1.1: build_models should return (vgg16, resnet18)"
    return out


def _batch(n=2, size=32):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g), torch.tensor([3, 7, 1, 0][:n])


def _fake_cifar(root, per_file=4):
    """Random images in CIFAR-10's on-disk layout (NOT the real data: only for checking the pipeline)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, per_file)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))


# -- Task 1.1 ---------------------------------------------------------------------------------------
def test_task_1_1_loader_batches(tmp_path):
    """Task 1.1: cifar10_loader gives (images, labels) batches of the requested size."""
    _fake_cifar(tmp_path)
    loader = _call("1.1", _rv("1.1").cifar10_loader, str(tmp_path), train=False, image_size=40, batch_size=3,
                   check_md5=False)
    images, labels = next(iter(loader))
    assert tuple(images.shape) == (3, 3, 40, 40), f"Task 1.1: expected images of shape (3, 3, 40, 40), got {tuple(images.shape)}"
    assert tuple(labels.shape) == (3,), f"Task 1.1: expected 3 labels, got shape {tuple(labels.shape)}"


def test_task_1_1_both_models_output_ten_scores(models):
    """Task 1.1: both networks map a batch of 2 images to (2, 10) scores."""
    import torch

    x, _ = _batch()
    for model, name in zip(models, ("VGG16", "ResNet18")):
        with torch.no_grad():
            out = _call("1.1", model, x)
        assert tuple(out.shape) == (2, 10), f"Task 1.1: {name} should output (2, 10), got {tuple(out.shape)}"


# -- Task 1.3 ---------------------------------------------------------------------------------------
def test_task_1_3_layer_grad_means(models):
    """Task 1.3: one finite, non-negative mean per weight tensor, named like the parameters."""
    import torch

    x, y = _batch()
    names, means = _call("1.3", _rv("1.3").layer_grad_means, models[1], x, y, torch.nn.CrossEntropyLoss())
    means = [float(m) for m in means]
    assert len(names) == len(means) > 0, "Task 1.3: one mean per name, and at least one"
    assert all("weight" in n for n in names), "Task 1.3: only weight tensors"
    assert all(math.isfinite(m) and m >= 0 for m in means), "Task 1.3: means should be finite and >= 0"


def test_task_1_3_plot_gradient_flow():
    """Task 1.3: plot_gradient_flow returns a figure with one line per model."""
    flows = {"A": (["a.weight", "b.weight", "c.weight"], [1e-3, 1e-4, 1e-5]), "B": (["x.weight", "y.weight"], [0.1, 0.2])}
    fig = _call("1.3", _rv("1.3").plot_gradient_flow, flows)
    lines = [ln for ax in fig.axes for ln in ax.get_lines()]
    assert len(lines) >= 2, "Task 1.3: draw one line per model with ax.plot"


# -- Task 1.2 ---------------------------------------------------------------------------------------
def test_task_1_2_loss_surface_shape(models):
    """Task 1.2: a (steps, steps) surface of finite losses on ResNet18."""
    import torch

    x, y = _batch()
    z = np.asarray(_call("1.2", _rv("1.2").loss_surface, models[1], x, y, torch.nn.CrossEntropyLoss(), steps=3))
    assert z.shape == (3, 3), f"Task 1.2: expected shape (3, 3), got {z.shape}"
    assert np.all(np.isfinite(z)), "Task 1.2: the surface has NaN or inf (see WeightTensorsOnly's docstring)"


def test_task_1_2_plot_loss_landscape():
    """Task 1.2: plot_loss_landscape returns a figure with one titled subplot per model."""
    g = np.linspace(-1, 1, 5)
    z = 2.0 + g[:, None] ** 2 + g[None, :] ** 2
    fig = _call("1.2", _rv("1.2").plot_loss_landscape, {"A": z, "B": 2 * z})
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "A" in titles and "B" in titles, "Task 1.2: title each subplot with its model's name"
