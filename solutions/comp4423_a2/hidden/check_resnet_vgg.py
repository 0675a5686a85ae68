"""Hidden checks for Task 1 (ResNet vs VGG, items 1.1, 1.2 and 1.3). Trusted code.

Every expected value is computed here, in the grader's process, never read from the student's own
objects after the student's own call:
  1.1  the fixture's images and labels are read from the files the grader wrote; the normalisation is
       judged by the per-channel statistics it implies; shuffle=True must change the order.
  1.3  the models the gradient flow is measured on are built by the GRADER in the sandbox (torchvision's
       resnet18 and vgg16 constructors, seeded per layer), and the same models are built here with the
       same seeds: the expected names and mean |grad| come from a forward and backward pass in this
       process on the same batch. A function that skips the backward pass, or reports made-up numbers,
       cannot match them.
  1.2  the loss surface is judged against loss-landscapes' own random plane, computed here on a copy of
       the same small residual CNN with the seed the student's call gets, and against the model's loss
       at its unperturbed weights (the grid point the package puts there).

Memory: VGG16 holds 134 M parameters (537 MB) even with a 10-way head, and the sandbox's 4 GB
address-space limit leaves only about 550 MB once torch and torchvision are imported (torch's CUDA
libraries map about 3 GB). So VGG16 is built with torch's default device set to "meta" (layers get
their shapes, no memory); then its two big Linear layers (classifier[0], 102 M parameters, and
classifier[3], 17 M) are swapped for low-rank pairs with the same input and output sizes
(25088 -> 16 -> 4096, 4096 -> 16 -> 4096), the first layer of the second pair is frozen
(requires_grad False: it must then be left out of the names, which tests that filter too), and the
model gets real CPU tensors, initialised by each layer's reset_parameters() under a seed of its own.
The student's build_models (1.1) is checked on the same slimmed form. The loss-surface checks use a
small residual CNN built from torch's and torchvision's classes (a ResNet18 plane needs about 300 MB
more than the sandbox has to spare, a VGG16 plane several GB).
"""
from __future__ import annotations

import copy
import pickle
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import loss_landscapes
from loss_landscapes.metrics import Loss
from loss_landscapes.model_interface.model_parameters import ModelParameters
from loss_landscapes.model_interface.model_wrapper import ModelWrapper

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array, expect_shape
from grader.protocol import Handle
from grader.sandbox import StudentError
from grader.spec import FIXTURES

MOD = "resnet_vgg"
SEED = 1
CIFAR = FIXTURES / "data" / "comp4423_a2" / "public" / "cifar-10-batches-py"
FETCH_LIMIT = 4_000_000  # VGG16's Linear layers larger than this become low-rank pairs of this rank:
RANK = 16
RESNET_SEED, VGG_SEED, MINI_SEED = 101, 202, 303  # seeds of the grader-built models (one per layer from these)
_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # sandbox -> (worker pid, vgg, resnet): build_models'
_GRADER_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # sandbox -> (worker pid, vgg, resnet): ours
_LOCAL: dict = {}  # the grader's own copies of the models it builds in the sandbox (pristine, never trained)
_LOCK = threading.RLock()  # torch's global RNG and _LOCAL are shared by the grader's threads (one per job)
INIT_TYPES = ("Conv2d", "Linear", "BatchNorm2d")  # layers whose reset_parameters() initialises them


# -- helpers --------------------------------------------------------------------------------------
def _fixture(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one fixture batch file, read in the grader."""
    with open(Path(CIFAR) / name, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(entry["labels"], dtype=np.int64)


def _require(student: Student, *names: str) -> None:
    """The starter's entry points this check calls; a submission without them (the original course
    had no such functions: its Task 1 is a script) goes to a TA with the names it does define."""
    found = student.names(MOD)
    missing = [n for n in names if n not in found]
    if missing:
        shown = ", ".join(sorted(found)[:40]) + (" ..." if len(found) > 40 else "")
        raise NeedsReview(f"resnet_vgg defines no {', '.join(missing)} (the starter's entry point for this item); "
                          "the work may be done in a script of the original course's form",
                          f"names the module defines: {shown or '(none)'}")


def _torch_path(student: Student, name: str) -> str:
    """A path to torch.<name> through the student's module (it may import torch under another name)."""
    for prefix in ("torch.", "torchvision.models.vgg.torch.", "nn.modules.module.torch."):
        try:
            student.get(MOD, prefix + name, ret="handle")
            return prefix + name
        except StudentError:
            continue
    raise CheckFailed("resnet_vgg.py should import torch and torchvision")


def _tv_path(student: Student, name: str) -> str:
    """A path to torchvision.models.<name> through the student's module."""
    for prefix in ("torchvision.models.", "models.", "tv.models."):
        try:
            if student.get(MOD, prefix + name, ret="handle").type_name == "function":
                return prefix + name
        except StudentError:
            continue
    raise CheckFailed("resnet_vgg.py should import torchvision")


def _models(student: Student) -> tuple[Handle, Handle]:
    """(vgg, resnet) from the student's build_models(10) (item 1.1), built once per sandbox process."""
    sandbox = student.sandbox
    pid = sandbox.proc.pid if sandbox.proc is not None else None
    cached = _MODELS.get(sandbox)
    if cached is not None and cached[0] == pid:
        return cached[1], cached[2]
    _release_grader_models(student)
    default_device = _torch_path(student, "set_default_device")
    student.call(MOD, default_device, "meta", ret="none")  # parameters get shapes but no memory yet
    try:
        out = student.call(MOD, "build_models", 10, seed=SEED, timeout=90)
    except StudentError as exc:
        if "meta" not in exc.message.lower():
            raise
        # build_models reads a tensor's value, which a meta tensor has not: build for real (tight on memory)
        student.call(MOD, default_device, None, ret="none")
        out = student.call(MOD, "build_models", 10, seed=SEED, timeout=90)
    finally:
        if sandbox.alive:
            student.call(MOD, default_device, None, ret="none")
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not all(isinstance(h, Handle) for h in out):
        raise CheckFailed("build_models should return the two models (vgg16, resnet18)",
                          f"got {type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    vgg, resnet = out
    if vgg.type_name != "VGG" or resnet.type_name != "ResNet":
        raise CheckFailed("build_models should return (vgg16, resnet18) in that order",
                          f"got ({vgg.type_name}, {resnet.type_name})")
    _slim_vgg(student, vgg)
    for model, seed in ((vgg, VGG_SEED), (resnet, RESNET_SEED)):
        if _any_meta(student, model):
            student.call(model, "to_empty", device="cpu", ret="none")
            _initialise(student, model, seed)
    _MODELS[sandbox] = (pid, vgg, resnet)
    return vgg, resnet


def _grader_models(student: Student) -> tuple[Handle, Handle]:
    """(vgg, resnet) built by the grader in the sandbox from torchvision's constructors (item 1.3), the
    same models as _local_models() builds here; the student's build_models plays no part."""
    sandbox = student.sandbox
    pid = sandbox.proc.pid if sandbox.proc is not None else None
    cached = _GRADER_MODELS.get(sandbox)
    if cached is not None and cached[0] == pid:
        return cached[1], cached[2]
    _release_student_models(student)
    default_device = _torch_path(student, "set_default_device")
    vgg16, resnet18 = _tv_path(student, "vgg16"), _tv_path(student, "resnet18")
    student.call(MOD, default_device, "meta", ret="none")
    try:
        vgg = student.call(MOD, vgg16, num_classes=10, dropout=0.0, ret="handle")
        resnet = student.call(MOD, resnet18, num_classes=10, ret="handle")
    finally:
        if sandbox.alive:
            student.call(MOD, default_device, None, ret="none")
    _slim_vgg(student, vgg)
    for model, seed in ((vgg, VGG_SEED), (resnet, RESNET_SEED)):
        student.call(model, "to_empty", device="cpu", ret="none")
        _initialise(student, model, seed)
    _GRADER_MODELS[sandbox] = (pid, vgg, resnet)
    return vgg, resnet


def _local_models() -> tuple[nn.Module, nn.Module]:
    """The grader's own (vgg, resnet): what _grader_models builds in the sandbox, built the same way here."""
    with _LOCK:
        if "models" not in _LOCAL:
            _LOCAL["models"] = _build_local_models()
        return _LOCAL["models"]


def _build_local_models() -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng(devices=[]):  # the seeds below must not leak into the grader's RNG
        with torch.device("meta"):
            vgg = torchvision.models.vgg16(num_classes=10, dropout=0.0)
            resnet = torchvision.models.resnet18(num_classes=10)
        for index in (0, 3):
            layer = vgg.classifier[index]
            if isinstance(layer, nn.Linear) and layer.in_features * layer.out_features > FETCH_LIMIT:
                vgg.classifier[index] = nn.Sequential(nn.Linear(layer.in_features, RANK, bias=False),
                                                      nn.Linear(RANK, layer.out_features))
        vgg.classifier[3][0].weight.requires_grad_(False)
        for model, seed in ((vgg, VGG_SEED), (resnet, RESNET_SEED)):
            model.to_empty(device="cpu")
            layers = [m for m in model.modules() if type(m).__name__ in INIT_TYPES]
            for k, module in enumerate(layers):
                torch.manual_seed(seed + k)
                module.reset_parameters()
    return vgg, resnet


def _release_student_models(student: Student) -> None:
    cached = _MODELS.pop(student.sandbox, None)
    if cached is not None and student.sandbox.proc is not None and cached[0] == student.sandbox.proc.pid:
        for model in cached[1:]:
            _release(student, model)


def _release_grader_models(student: Student) -> None:
    cached = _GRADER_MODELS.pop(student.sandbox, None)
    if cached is not None and student.sandbox.proc is not None and cached[0] == student.sandbox.proc.pid:
        for model in cached[1:]:
            _release(student, model)


def _release_models(student: Student) -> None:
    """Free every cached model's tensors in the worker: later checks (and other tasks' checks) need the memory."""
    _release_student_models(student)
    _release_grader_models(student)


def _walk(student: Student, model: Handle, method: str, limit: int = 2000):
    """The items of model.<method>() (a generator), one handle at a time; bounded."""
    gen = student.call(model, method, ret="handle")
    for _ in range(limit):
        try:
            yield student.call(gen, "send", None, ret="handle")  # next(generator)
        except StudentError as exc:
            if exc.error == "StopIteration":
                return
            raise
    raise CheckFailed(f"the model's {method}() yields more than {limit} items")


def _initialise(student: Student, model: Handle, seed: int) -> None:
    """Each Conv2d / Linear / BatchNorm2d layer's reset_parameters(), the k-th under seed + k (as _local_models)."""
    k = 0
    for module in _walk(student, model, "modules"):
        if module.type_name in INIT_TYPES:
            student.call(module, "reset_parameters", ret="none", seed=seed + k)
            k += 1


def _any_meta(student: Student, model: Handle) -> bool:
    gen = student.call(model, "parameters", ret="handle")
    try:
        return bool(student.get(student.call(gen, "send", None, ret="handle"), "is_meta"))
    except StudentError:  # no parameters at all
        return False


def _release(student: Student, model: Handle) -> None:
    """Free every parameter and gradient of a model inside the sandbox (the model is unusable after)."""
    try:
        student.call(model, "zero_grad", ret="none")  # set_to_none: drops the gradients
        for pair in _walk(student, model, "named_parameters"):
            student.call(pair, "1.requires_grad_", False, ret="none")
            student.call(pair, "1.set_", ret="none")  # an empty tensor: the storage is released
    except (StudentError, CheckFailed):
        pass


def _slim_vgg(student: Student, vgg: Handle) -> None:
    """Swap VGG16's two big Linear layers for low-rank pairs (in -> 16 -> out); freeze one of the new layers."""
    for index in (0, 3):
        layer = f"classifier.{index}"
        # plain values only: a handle to the old layer would keep it alive in the worker
        if student.get(vgg, f"{layer}.__class__.__name__") != "Linear":
            continue
        n_in, n_out = int(student.get(vgg, f"{layer}.in_features")), int(student.get(vgg, f"{layer}.out_features"))
        if n_in * n_out <= FETCH_LIMIT:
            continue
        down = student.call(vgg, f"{layer}.__class__", n_in, RANK, bias=False, ret="handle")
        up = student.call(vgg, f"{layer}.__class__", RANK, n_out, ret="handle")
        pair = student.call(vgg, "classifier.__class__", down, up, ret="handle")  # nn.Sequential(down, up)
        student.call(vgg, "classifier.add_module", str(index), pair, ret="none")
    if student.get(vgg, "classifier.3.__class__.__name__") == "Sequential":
        student.call(vgg, "classifier.3.0.weight.requires_grad_", False, ret="none")


def _criterion(student: Student) -> Handle:
    """An nn.CrossEntropyLoss() made inside the sandbox from the torch the student's module imported."""
    for path in ("torch.nn.CrossEntropyLoss", "nn.CrossEntropyLoss", "torchvision.models.vgg.nn.CrossEntropyLoss"):
        try:
            return student.call(MOD, path, ret="handle")
        except StudentError:
            continue
    raise CheckFailed("cannot make a loss: resnet_vgg.py should import torch and torchvision")


def _batch(seed: int, n: int = 2, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    y = rng.permutation(10)[:n].astype(np.int64)
    return x, y


def _parameters(student: Student, model: Handle) -> list[dict]:
    """The model's named_parameters(), in order: name, a handle to the pair, requires_grad."""
    table = []
    for pair in _walk(student, model, "named_parameters", limit=1000):
        name = student.get(pair, "0")
        if not isinstance(name, str):
            raise CheckFailed("named_parameters() of the model gave a non-string name")
        table.append({"name": name, "pair": pair, "requires_grad": bool(student.get(pair, "1.requires_grad"))})
    return table


def _grad_means(student: Student, model: Handle, x: np.ndarray, y: np.ndarray, what: str) -> tuple[list[str], np.ndarray]:
    out = student.call(MOD, "layer_grad_means", model, Tensor(x), Tensor(y), _criterion(student), seed=SEED, timeout=60)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"layer_grad_means on {what} should return (names, means)", f"got {type(out).__name__}")
    names, means = out
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckFailed(f"layer_grad_means on {what}: names should be a list of strings")
    try:
        values = np.asarray([as_array(v, f"{what} means").reshape(()) for v in means], dtype=np.float64) \
            if isinstance(means, (list, tuple)) else as_array(means, f"{what} means", ndim=1)
    except ValueError:
        raise CheckFailed(f"layer_grad_means on {what}: means should hold one number per name") from None
    if values.shape != (len(names),):
        raise CheckFailed(f"layer_grad_means on {what}: one mean per name", f"{len(names)} names, {values.size} means")
    return list(names), values


def _oracle(model: nn.Module, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Computed here on the grader's copy: for the model in train and in eval mode, the handout's names
    (weights that require grad and get a gradient), the same without BatchNorm's 1-D weights, and each
    weight's mean |grad|. Both modes and both name lists are correct answers."""
    answers = []
    with _LOCK:
        local = copy.deepcopy(model)
    for mode in ("train", "eval"):
        work = copy.deepcopy(local).train(mode == "train")
        work.zero_grad(set_to_none=True)
        F.cross_entropy(work(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        rows = [(n, p) for n, p in work.named_parameters() if p.requires_grad and "weight" in n and p.grad is not None]
        means = {n: float(p.grad.abs().mean()) for n, p in rows}
        answers.append({"mode": mode, "names": [n for n, _ in rows], "no_bn": [n for n, p in rows if p.dim() > 1],
                        "means": means, "signed": {n: float(p.grad.mean()) for n, p in rows},
                        "head_grad": work.fc.weight.grad.numpy().astype(np.float64) if hasattr(work, "fc") else None})
    return answers


def _check_against_oracle(student: Student, model: Handle, local: nn.Module, what: str, x: np.ndarray,
                          y: np.ndarray, means: bool = True) -> np.ndarray:
    """The student's (names, means) on the grader-built model against the grader's own backward pass
    (the names only, when `means` is False)."""
    names, values = _grad_means(student, model, x, y, what)
    answers = _oracle(local, x, y)
    full = answers[0]["names"]
    if names not in [a["names"] for a in answers] + [a["no_bn"] for a in answers]:
        extra = [n for n in names if n not in full]
        missing = [n for n in full if n not in names]
        hint = "keep the weights that require grad and received a gradient in this call, in named_parameters() order"
        if not names:
            hint = "the names come from the gradients of one forward and backward pass on the batch given"
        elif any(n.endswith("bias") for n in extra):
            hint = "biases are not weights: keep only names containing 'weight'"
        detail = f"{len(names)} names, expected {len(full)}"
        if extra:
            detail += f"; not expected: {extra[:3]}"
        if missing:
            detail += f"; missing: {missing[:3]}"
        if not extra and not missing:
            detail += "; same names in another order (keep named_parameters() order)"
        raise CheckFailed(f"layer_grad_means on {what} lists the wrong parameters", detail, hint)
    if not means:
        return values
    if np.any(values < 0):
        raise CheckFailed(f"layer_grad_means on {what}: a mean |grad| is negative",
                          hint="the handout's tip averages the gradient's magnitudes")
    worst = None
    for answer in answers:
        expected = np.array([answer["means"][n] for n in names])
        bad = ~np.isclose(values, expected, rtol=1e-3, atol=1e-12)
        if not bad.any():
            return values
        if worst is None or bad.sum() < worst[0]:
            worst = (int(bad.sum()), answer, expected, bad)
    _, answer, expected, bad = worst
    k = int(np.argmax(bad))
    hint = "the mean of the gradient's magnitudes of each weight, after one backward pass on this batch"
    signed = np.array([abs(answer["signed"][n]) for n in names])
    if np.allclose(np.abs(values), signed, rtol=1e-2, atol=1e-12):
        hint = "that is the mean of the signed gradient: the handout's tip averages magnitudes"
    raise CheckFailed(f"layer_grad_means on {what}: the mean |grad| of {names[k]} is wrong",
                      f"{int(bad.sum())} of {len(names)} means differ from a backward pass on the same batch"
                      + (f"; off by a factor {values[k] / expected[k]:.3g}" if expected[k] > 0 else ""), hint)


def _lines(figures: list[dict]) -> list[dict]:
    return [{**line, "title": ax["title"]} for fig in figures for ax in fig["axes"] for line in ax["lines"]]


# -- 1.1: data into the models --------------------------------------------------------------------
def _first_batch(student: Student, loader: Handle) -> tuple[np.ndarray, np.ndarray]:
    if loader.type_name != "DataLoader":
        raise CheckFailed("cifar10_loader should return a torch.utils.data.DataLoader", f"got a {loader.type_name}")
    iterator = student.call(loader, "_get_iterator", ret="handle")  # iter(loader)
    out = student.call(iterator, "_next_data", seed=SEED)  # next(iterator)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("each batch should be (images, labels)")
    return as_array(out[0], "the images of a batch"), as_array(out[1], "the labels of a batch")


def _loader(student: Student, **kwargs) -> Handle:
    if not student.data_dir:
        raise CheckFailed("the grader's CIFAR-10 fixture is missing (a setup problem, not yours)")
    kwargs.setdefault("shuffle", False)
    return student.call(MOD, "cifar10_loader", root=student.data_dir, download=False, check_md5=False,
                        ret="handle", seed=SEED, **kwargs)


@pytest.mark.item("1.1", weight=3, timeout=60, module=MOD)
def test_loader_reads_cifar(student: Student) -> None:
    """cifar10_loader reads CIFAR-10's files: batch size, labels, train/test split"""
    _require(student, "cifar10_loader")
    images, labels = _first_batch(student, _loader(student, train=False, image_size=32, batch_size=5))
    _, test_labels = _fixture("test_batch")
    expect_shape(images, (5, 3, 32, 32), "the images of a batch of 5 at image_size=32",
                 hint="images should be (batch, channels, height, width) tensors")
    expect_shape(labels, (5,), "the labels of a batch of 5")
    if labels.min() < 0 or labels.max() > 9 or not np.all(labels == np.round(labels)):
        raise CheckFailed("labels should be class indices")
    if not np.array_equal(labels, test_labels[:5]):
        raise CheckFailed("train=False should read the test split in order",
                          hint="pass the train and shuffle arguments on to the dataset and the DataLoader")
    train = student.get(_loader(student, train=True, image_size=32, batch_size=4), "dataset.targets")
    expected = np.concatenate([_fixture(f"data_batch_{i}")[1] for i in range(1, 6)])
    if np.asarray(train).shape != expected.shape or not np.array_equal(np.asarray(train), expected):
        raise CheckFailed("train=True should read the five training batches", hint="pass train on to the dataset")


# Per-channel statistics a correct Normalize may use (CIFAR-10's, ImageNet's, 0.5): the mean it
# subtracts and the std it divides by, as implied by the images. Normalize(std, mean) (arguments
# swapped) implies a mean near 0.25, outside the band.
MEAN_BAND, STD_BAND = (0.35, 0.65), (0.1, 0.55)


@pytest.mark.item("1.1", weight=3, timeout=60, module=MOD)
def test_loader_resizes_and_normalises(student: Student) -> None:
    """images are resized to image_size and normalised per channel"""
    _require(student, "cifar10_loader")
    test_images, _ = _fixture("test_batch")
    for size in (64, 48):
        images, _ = _first_batch(student, _loader(student, train=False, image_size=size, batch_size=3))
        expect_shape(images, (3, 3, size, size), f"a batch of 3 at image_size={size}",
                     hint="every image must be resized to image_size x image_size")
        raw = torch.from_numpy(test_images[:3].transpose(0, 3, 1, 2).astype(np.float64) / 255.0)
        oracle = F.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False).numpy()
        for c in range(3):
            a, b = oracle[:, c].ravel(), images[:, c].ravel()
            if np.std(b) == 0 or np.corrcoef(a, b)[0, 1] < 0.98:
                raise CheckFailed(f"the images at image_size={size} do not show the dataset's pictures (channel {c})",
                                  hint="resize, convert to a tensor, then normalise, on the dataset's own images")
    # At the dataset's own size the pixels are exact: each channel is (pixel/255 - mean) / std.
    images, _ = _first_batch(student, _loader(student, train=False, image_size=32, batch_size=8))
    raw = test_images[:8].transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    for c in range(3):
        a, b = raw[:, c].ravel(), images[:, c].ravel()
        slope, intercept = np.polyfit(a, b, 1)
        if np.max(np.abs(slope * a + intercept - b)) > 0.05 * max(1.0, abs(slope)):
            raise CheckFailed(f"channel {c} is not a per-channel affine function of the pixels",
                              hint="a Normalize subtracts one mean and divides by one std per channel")
        if abs(slope - 1) < 0.05 and abs(intercept) < 0.05:
            raise CheckFailed("the images are not normalised", "values are the plain tensor conversion, in [0, 1]",
                              "normalise each channel so the inputs match what the networks expect")
        if slope <= 0:
            raise CheckFailed("the images are scaled oddly", f"channel {c} decreases with the pixel value")
        mean, std = -intercept / slope, 1.0 / slope
        if not (MEAN_BAND[0] <= mean <= MEAN_BAND[1] and STD_BAND[0] <= std <= STD_BAND[1]):
            raise CheckFailed("the per-channel normalisation does not use the mean and std of natural images",
                              f"channel {c}: the images imply a mean of {mean:.3f} and a std of {std:.3f}",
                              "check the order of Normalize's arguments")


@pytest.mark.item("1.1", weight=1, timeout=60, module=MOD)
def test_loader_shuffles(student: Student) -> None:
    """the loader's shuffle argument is honoured"""
    _require(student, "cifar10_loader")
    _, test_labels = _fixture("test_batch")
    n = len(test_labels)
    _, labels = _first_batch(student, _loader(student, train=False, image_size=32, batch_size=n, shuffle=True))
    expect_shape(labels, (n,), f"the labels of one batch of all {n} test images")
    if sorted(labels.tolist()) != sorted(test_labels.tolist()):
        raise CheckFailed("a shuffled batch of the whole test split does not hold the test split's labels")
    if np.array_equal(labels, test_labels):  # a random permutation keeps every label in place with p < 1e-12
        raise CheckFailed("shuffle=True gives the images in the files' order",
                          hint="pass the shuffle argument on to the DataLoader")


@pytest.mark.item("1.1", weight=4, timeout=90, module=MOD)
def test_outputs_and_heads(student: Student) -> None:
    """both networks output one score per class with their heads replaced"""
    _require(student, "build_models")
    vgg, resnet = _models(student)
    for model, head, n_in, what in ((vgg, "classifier.6", 4096, "VGG16's last classifier layer"), (resnet, "fc", 512, "ResNet18's fc")):
        layer = student.get(model, head, ret="handle")
        if layer.type_name != "Linear":
            raise CheckFailed(f"{what} should be an nn.Linear", f"got a {layer.type_name}")
        fin, fout = student.get(layer, "in_features"), student.get(layer, "out_features")
        if fout != 10:
            raise CheckFailed(f"{what} should give one output per CIFAR-10 class", f"got {fout} outputs",
                              "the ImageNet head must be replaced by a new layer sized for this dataset")
        if fin != n_in:
            raise CheckFailed(f"{what} should read the features the layer before it gives", f"got {fin} inputs")
    if len(student.get(vgg, "features._modules")) != 31:
        raise CheckFailed("the VGG model is not torchvision's VGG16", hint="use torchvision.models' own VGG16")
    if [len(student.get(resnet, f"layer{i}._modules")) for i in range(1, 5)] != [2, 2, 2, 2]:
        raise CheckFailed("the ResNet model is not torchvision's ResNet18", hint="use torchvision.models' own ResNet18")
    x, _ = _batch(11, n=3, size=32)
    for model, name in ((vgg, "VGG16"), (resnet, "ResNet18")):
        out = as_array(student.call(model, "", Tensor(x), seed=SEED, timeout=60), f"{name}'s output")
        expect_shape(out, (3, 10), f"{name}'s output for a batch of 3 images of 32x32",
                     hint="one score per class for every image")


# -- 1.3: gradient flow ---------------------------------------------------------------------------
# The models are the grader's own (_grader_models), so the names and means cannot come from a model
# that misreports its parameters; build_models is checked by 1.1 only.
@pytest.mark.item("1.3", weight=4, timeout=90, module=MOD)
def test_grad_means_resnet(student: Student) -> None:
    """ResNet18: one mean |grad| per weight tensor with a gradient, in order"""
    _require(student, "layer_grad_means")
    _, resnet = _grader_models(student)
    x, y = _batch(21)
    _check_against_oracle(student, resnet, _local_models()[1], "ResNet18", x, y)


@pytest.mark.item("1.3", weight=3, timeout=90, module=MOD)
def test_grad_means_vgg(student: Student) -> None:
    """VGG16: one mean |grad| per weight tensor with a gradient, in order"""
    _require(student, "layer_grad_means")
    vgg, resnet = _grader_models(student)
    student.call(resnet, "zero_grad", ret="none")  # frees ResNet18's gradients (memory)
    x, y = _batch(22)
    _check_against_oracle(student, vgg, _local_models()[0], "VGG16", x, y)


@pytest.mark.item("1.3", weight=2, timeout=90, module=MOD)
def test_grad_means_not_accumulated(student: Student) -> None:
    """gradients are cleared first: a second call gives the same means"""
    _require(student, "layer_grad_means")
    _, resnet = _grader_models(student)
    x, y = _batch(23)
    _, first = _grad_means(student, resnet, x, y, "ResNet18")
    _, second = _grad_means(student, resnet, x, y, "ResNet18")
    # The gradient the calls leave in the model (fc.weight, read from the grader's model) against one
    # backward pass computed here: two calls that accumulate leave twice as much.
    grad = student.get(resnet, "fc.weight.grad")
    if grad is not None:
        got = as_array(grad, "fc.weight.grad after two calls")
        for answer in _oracle(_local_models()[1], x, y):
            want = answer["head_grad"]
            if got.shape == want.shape and np.allclose(got, want, rtol=1e-3, atol=1e-9):
                return
        scale = float(np.sum(got * want) / max(float(np.sum(want * want)), 1e-30)) if got.shape == want.shape else float("nan")
        raise CheckFailed("after two calls the model holds more than one backward pass's gradient",
                          f"fc.weight.grad is about {scale:.3g} times one pass's gradient",
                          "gradients accumulate in .grad until they are cleared")
    # the gradients were cleared after use: the two calls' means must agree, and come from a backward pass
    if first.size == 0 or not np.any(first > 0):
        raise CheckFailed("layer_grad_means returned no gradient means", hint="one forward and backward pass per call")
    if first.shape != second.shape or not np.allclose(second, first, rtol=1e-4, atol=1e-12):
        ratio = float(np.median(second / np.where(first == 0, 1, first))) if first.shape == second.shape else float("nan")
        raise CheckFailed("calling layer_grad_means twice on the same batch changes the means",
                          f"the second call's means are about {ratio:.3g} times the first's",
                          "gradients accumulate in .grad until they are cleared")


@pytest.mark.item("1.3", weight=1, timeout=90, module=MOD)
def test_grad_means_skip_none(student: Student) -> None:
    """a weight without a gradient (an unused layer) is skipped, not a crash"""
    _require(student, "layer_grad_means")
    _, resnet = _grader_models(student)
    # an extra nn.Linear that forward never uses: its weight requires grad but its grad stays None
    if student.get(resnet, "_modules").get("unused_head") is None:
        extra = student.call(resnet, "fc.__class__", 4, 3, ret="handle")
        student.call(resnet, "add_module", "unused_head", extra)
    x, y = _batch(24)
    try:
        names, _ = _grad_means(student, resnet, x, y, "ResNet18 with an unused layer")
    except StudentError as exc:
        raise CheckFailed("layer_grad_means crashes on a weight whose grad is None", f"{exc.error}: {exc.message[:200]}",
                          "frozen or unused layers have no gradient") from None
    if "unused_head.weight" in names:
        raise CheckFailed("layer_grad_means lists a weight that has no gradient", hint="frozen or unused layers have no gradient")
    if not any(set(a["no_bn"]) <= set(names) for a in _oracle(_local_models()[1], x, y)):
        raise CheckFailed("layer_grad_means leaves out weights that do get a gradient",
                          f"{len(names)} names returned", "one forward and backward pass, then every weight with a gradient")


@pytest.mark.item("1.3", weight=2, timeout=60, module=MOD)
def test_gradient_flow_plot(student: Student) -> None:
    """plot_gradient_flow draws one curve per model, one point per weight tensor"""
    _require(student, "plot_gradient_flow")
    rng = np.random.default_rng(31)
    curves = {
        "VGG16": ([f"features.{i}.weight" for i in range(13)] + ["classifier.0.weight", "classifier.3.weight", "classifier.6.weight"],
                  [float(v) for v in np.sort(10.0 ** rng.uniform(-6, -3, 16))]),
        "ResNet18": ([f"layer.{i}.weight" for i in range(41)], [float(v) for v in 10.0 ** rng.uniform(-3, -1, 41)]),
    }
    student.figures()  # close anything left open
    student.call(MOD, "plot_gradient_flow", {k: (n, m) for k, (n, m) in curves.items()}, seed=SEED, ret="none")
    lines = _lines(student.figures())
    if not lines:
        raise CheckFailed("plot_gradient_flow drew no line", hint="draw each model's means with ax.plot; do not close the figure")
    for name, (_, means) in curves.items():
        same = [ln for ln in lines if len(ln["y"]) == len(means) and np.allclose(ln["y"], means, rtol=1e-6, atol=0)]
        if not same:
            raise CheckFailed(f"no curve shows {name}'s {len(means)} means in layer order",
                              f"curves of lengths {[len(ln['y']) for ln in lines]}",
                              "plot y = the means (one point per weight tensor) for every model")
        if not any(name.lower() in (ln["label"] + " " + ln["title"]).lower() for ln in same):
            raise CheckFailed(f"{name}'s curve is not labelled with the model's name",
                              hint="ax.plot(..., label=name) and ax.legend(), or one subplot per model titled with its name")


# -- 1.2: loss landscape --------------------------------------------------------------------------
DISTANCE = 2.0  # loss-landscapes' distance argument the checks pass (the plane spans about +-||w|| / (2 * distance))


def _mini_layers(make) -> list:
    """conv(3->16, no bias) - BatchNorm - ReLU - two torchvision BasicBlocks - pool - Linear(16, 10), each
    layer made by make(kind, args, kwargs, seed) under a seed of its own (the same in the sandbox and here)."""
    spec = [("Conv2d", (3, 16, 3), {"padding": 1, "bias": False}), ("BatchNorm2d", (16,), {}), ("ReLU", (), {}),
            ("BasicBlock", (16, 16), {}), ("BasicBlock", (16, 16), {}), ("AdaptiveAvgPool2d", (1,), {}),
            ("Flatten", (), {}), ("Linear", (16, 10), {})]
    return [make(kind, args, kwargs, MINI_SEED + k) for k, (kind, args, kwargs) in enumerate(spec)]


def _mini_resnet(student: Student) -> Handle:
    """A small residual CNN made in the sandbox from torch's and torchvision's own classes.

    Zero BatchNorm biases, as in ResNet18 (so the filter-normalisation trap is there), at a size that
    fits the sandbox's memory (a ResNet18 plane needs about 300 MB). _local_mini() is the same model.
    """
    torch_nn = _torch_path(student, "nn")

    def make(kind, args, kwargs, seed):
        path = "torchvision.models.resnet.BasicBlock" if kind == "BasicBlock" else f"{torch_nn}.{kind}"
        try:
            return student.call(MOD, path, *args, ret="handle", seed=seed, **kwargs)
        except StudentError:
            raise CheckFailed("resnet_vgg.py should import torch and torchvision (as torchvision)") from None

    return student.call(MOD, f"{torch_nn}.Sequential", *_mini_layers(make), ret="handle")


def _local_mini() -> nn.Module:
    """The grader's copy of the model _mini_resnet builds in the sandbox (the same seeds, layer by layer)."""
    def make(kind, args, kwargs, seed):
        torch.manual_seed(seed)
        cls = torchvision.models.resnet.BasicBlock if kind == "BasicBlock" else getattr(nn, kind)
        return cls(*args, **kwargs)

    with _LOCK, torch.random.fork_rng(devices=[]):
        if "mini" not in _LOCAL:
            _LOCAL["mini"] = nn.Sequential(*_mini_layers(make))
        return _LOCAL["mini"]


def _centre(steps: int) -> tuple[int, int]:
    """The grid point loss-landscapes 3.0.6's random_plane evaluates at the unperturbed weights (even steps):
    columns alternate direction, so it is (s/2, s/2 - 1) when s/2 is even and (s/2, s/2) when it is odd."""
    half = steps // 2
    return half, half - 1 if half % 2 == 0 else half


class _WeightsOnly(ModelWrapper):
    """A loss-landscapes wrapper whose plane is spanned by the multi-dimensional weights only (as the
    starter's WeightTensorsOnly; written here, not imported from the student's side)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__([model])

    def get_module_parameters(self) -> ModelParameters:
        return ModelParameters([p for p in self.modules[0].parameters() if p.dim() > 1])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.modules[0](inputs)


def _planes(x: np.ndarray, y: np.ndarray, steps: int) -> list[dict]:
    """Computed here: the model's loss at its weights and loss-landscapes' filter-normalised random plane
    through them (the seed the student's call gets), with the model in eval and in train mode."""
    key = ("planes", x.tobytes(), y.tobytes(), steps)
    with _LOCK, torch.random.fork_rng(devices=[]):
        if key not in _LOCAL:
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            answers = []
            for mode in ("eval", "train"):
                work = copy.deepcopy(_local_mini()).train(mode == "train")
                with torch.no_grad():
                    loss = float(F.cross_entropy(copy.deepcopy(work)(xt), yt))
                torch.manual_seed(SEED)
                plane = loss_landscapes.random_plane(_WeightsOnly(work), Loss(nn.CrossEntropyLoss(), xt, yt),
                                                     distance=DISTANCE, steps=steps, normalization="filter",
                                                     deepcopy_model=False)
                answers.append({"mode": mode, "loss": loss, "plane": np.asarray(plane, dtype=np.float64)})
            _LOCAL[key] = answers
        return _LOCAL[key]


def _surface(student: Student, model: Handle, steps: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """The student's surface for the grader's batch `seed`, and the grader's own answers for it."""
    _require(student, "loss_surface")
    x, y = _batch(seed)
    out = student.call(MOD, "loss_surface", model, Tensor(x), Tensor(y), _criterion(student), distance=DISTANCE,
                       steps=steps, seed=SEED, timeout=120)
    z = as_array(out, "loss_surface's result", allow_nonfinite=True)
    expect_shape(z, (steps, steps), f"loss_surface(..., steps={steps})")
    if not np.all(np.isfinite(z)):
        raise CheckFailed(f"the surface (steps={steps}) has NaN or inf", f"{int((~np.isfinite(z)).sum())} of {z.size} values",
                          "filter normalisation cannot rescale an all-zero filter (zero biases): the starter's wrapper "
                          "shows the package only the weight tensors, as Li et al. 2018 do")
    return z, _planes(x, y, steps)


def _through_the_model(z: np.ndarray, answers: list[dict]) -> None:
    """The grid point at the unperturbed weights holds the model's own loss (computed here)."""
    i, j = _centre(z.shape[0])
    if not any(np.isclose(z[i, j], a["loss"], rtol=1e-4, atol=1e-5) for a in answers):
        raise CheckFailed("the surface does not pass through the model's own loss",
                          f"the grid point at the unperturbed weights holds {z[i, j]:.5g}, not the model's loss on the batch",
                          "evaluate the loss of the model (through the wrapper the package moves) on the batch given")


@pytest.mark.item("1.2", weight=3, timeout=150, module=MOD)
def test_surface_shape_and_values(student: Student) -> None:
    """loss_surface: a finite, non-constant (steps, steps) surface through the model's loss"""
    _require(student, "loss_surface")
    _release_models(student)  # the gradient-flow checks (1.3) come before this one
    for steps in (6, 4):
        z, answers = _surface(student, _mini_resnet(student), steps, 41 + steps)  # a fresh model each time
        if np.ptp(z) <= 1e-7 * max(1.0, float(np.abs(z).mean())):
            raise CheckFailed(f"the surface (steps={steps}) is flat: every grid point has the same loss",
                              hint="the metric must evaluate the model through the wrapper it is given; a closure "
                                   "over your own model never sees the perturbed copy")
        _through_the_model(z, answers)


@pytest.mark.item("1.2", weight=3, timeout=150, module=MOD)
def test_surface_is_the_plane(student: Student) -> None:
    """the surface is the filter-normalised random plane at the requested distance"""
    _require(student, "loss_surface")
    _release_models(student)
    model = _mini_resnet(student)
    z, answers = _surface(student, model, 4, 47)
    errors = []
    for a in answers:
        ref = a["plane"]
        errors.append(float(np.max(np.abs(z - ref))) / max(float(np.ptp(ref)), 1e-12))
        if errors[-1] <= 1e-3:
            return
    raise CheckFailed("the surface is not loss-landscapes' filter-normalised random plane at the distance asked for",
                      f"it differs from the plane the package gives for the same model, batch and seed by "
                      f"{min(errors):.1%} of the plane's range",
                      "pass distance, steps and the normalisation the handout asks for to random_plane, on the "
                      "starter's wrapper, and draw no other random numbers before it")


def _snapshot(student: Student, model: Handle) -> dict[str, tuple[np.ndarray, bool]]:
    return {row["name"]: (as_array(student.get(row["pair"], "1"), row["name"]), row["requires_grad"])
            for row in _parameters(student, model)}


@pytest.mark.item("1.2", weight=3, timeout=150, module=MOD)
def test_surface_leaves_model(student: Student) -> None:
    """loss_surface leaves the model's parameters unchanged"""
    _require(student, "loss_surface")
    _release_models(student)
    model = _mini_resnet(student)
    before = _snapshot(student, model)
    z, answers = _surface(student, model, 4, 51)
    _through_the_model(z, answers)  # only a real surface earns this
    after = _snapshot(student, model)
    moved = [p for p in before if p not in after or not np.array_equal(before[p][0], after[p][0])]
    frozen = [p for p in before if p in after and before[p][1] != after[p][1]]
    if moved or frozen:
        detail = (f"changed: {moved[:4]}" if moved else "") + ("; " if moved and frozen else "") + \
                 (f"requires_grad switched off for {frozen[:4]}" if frozen else "")
        raise CheckFailed("loss_surface changes the model it is given", detail,
                          "loss-landscapes moves the parameters it gets in place: give it a copy of the model")


def _ranges(student: Student, ax: Handle) -> list[tuple[float, float, bool]]:
    """(low, high, exact) of the data each artist of an axes draws; exact False for a 3-D axes' z limits."""
    found = []
    for child in student.call(ax, "get_children"):
        if not isinstance(child, Handle):
            continue
        try:
            if "Contour" in child.type_name:
                found.append((float(student.get(child, "zmin")), float(student.get(child, "zmax")), True))
            elif child.type_name in ("AxesImage", "QuadMesh", "PolyQuadMesh", "NonUniformImage", "PcolorImage"):
                arr = as_array(student.call(child, "get_array"), "image data")
                found.append((float(np.nanmin(arr)), float(np.nanmax(arr)), True))
        except (StudentError, CheckFailed, ValueError):
            continue
    if ax.type_name == "Axes3D":
        lo, hi = student.call(ax, "get_zlim")
        found.append((float(lo), float(hi), False))
    return found


def _shows(ranges: list[tuple[float, float, bool]], z: np.ndarray) -> bool:
    for t in (z, np.log(z), np.log10(z)):
        lo, hi = float(t.min()), float(t.max())
        span = hi - lo
        for a, b, exact in ranges:
            if exact and abs(a - lo) <= 1e-6 * span and abs(b - hi) <= 1e-6 * span:
                return True
            if not exact and a <= lo + 1e-6 * span and b >= hi - 1e-6 * span and (b - a) <= 3 * span:
                return True
    return False


@pytest.mark.item("1.2", weight=3, timeout=60, module=MOD)
def test_loss_landscape_plot(student: Student) -> None:
    """plot_loss_landscape draws each model's surface in a subplot titled with its name"""
    _require(student, "plot_loss_landscape")
    rng = np.random.default_rng(61)
    g = np.linspace(-1, 1, 7)
    surfaces = {
        "VGG16": 2.3 + 40.0 * (g[:, None] ** 2 + 0.5 * g[None, :] ** 2) + rng.uniform(0, 3, (7, 7)),
        "ResNet18": 2.3 + 4.0 * (0.7 * g[:, None] ** 2 + g[None, :] ** 2) + rng.uniform(0, 0.3, (7, 7)),
    }
    student.figures()  # close anything left open
    fig = student.call(MOD, "plot_loss_landscape", {k: v for k, v in surfaces.items()}, seed=SEED, ret="handle")
    if fig.type_name != "Figure":
        student.figures()
        raise CheckFailed("plot_loss_landscape should return the matplotlib Figure it drew", f"got a {fig.type_name}")
    axes = [a for a in student.call(fig, "get_axes") if isinstance(a, Handle)]
    titled = {name: [a for a in axes if name.lower() in str(student.call(a, "get_title")).lower()] for name in surfaces}
    shown = {name: any(_shows(_ranges(student, a), z) for a in titled[name]) for name, z in surfaces.items()}
    student.figures()  # close it
    for name in surfaces:
        if not titled[name]:
            raise CheckFailed(f"no subplot is titled with {name}", hint="one subplot per model: ax.set_title(name)")
        if not shown[name]:
            raise CheckFailed(f"the {name} subplot does not show its surface",
                              "no contour, image or 3-D surface in it spans the surface's values",
                              "draw the (steps, steps) array itself, e.g. ax.contourf(surface)")
