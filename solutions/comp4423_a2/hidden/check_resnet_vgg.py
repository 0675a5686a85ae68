"""Hidden checks for Task 1 (ResNet vs VGG, items 1.1, 1.2 and 1.3). Trusted code.

Every expected value is computed here, in the grader's process: the fixture's images and labels are
read from the files the grader wrote; the expected gradient names are read from the student's own
model parameter by parameter (named_parameters() walked through a generator handle), and the
expected means are computed here from the gradient tensors fetched after the student's call. Only
inputs (random images, synthetic curves and surfaces for the plots) go into the sandbox.

Memory: VGG16 holds 134 M parameters (537 MB) even with a 10-way head, and the sandbox's 4 GB
address-space limit leaves only about 550 MB once torch and torchvision are imported (torch's CUDA
libraries map about 3 GB): a VGG16 built as is fits with a few MB to spare, its gradients do not.
So the student's build_models(10) runs once per sandbox with torch's default device set to "meta"
(layers get their shapes, no memory); the heads and architecture are checked on that; then VGG16's
two big Linear layers (classifier[0], 102 M parameters, and classifier[3], 17 M) are swapped for
low-rank pairs with the same input and output sizes (25088 -> 16 -> 4096, 4096 -> 16 -> 4096), and
the first layer of the second pair is frozen (requires_grad False: it must then be left out of the
names, which tests that filter too), and both models get real CPU
tensors, initialised by each layer's reset_parameters(). The 13 conv layers and the student's head
are untouched. Every gradient is then small enough to fetch (in slices), so every mean of both
networks is compared with the oracle. The cached models are released before the loss-surface checks, which use a
small residual CNN built in the sandbox from torch's and torchvision's classes (a ResNet18 plane
needs about 300 MB more than the sandbox has to spare, a VGG16 plane several GB).
"""
from __future__ import annotations

import pickle
import weakref
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from grader.checks import CheckFailed, Student, Tensor, as_array, check, expect_shape
from grader.protocol import Handle
from grader.sandbox import StudentError
from grader.spec import FIXTURES

MOD = "resnet_vgg"
SEED = 1
CIFAR = FIXTURES / "data" / "comp4423_a2" / "public" / "cifar-10-batches-py"
FETCH_LIMIT = 4_000_000  # VGG16's Linear layers larger than this become low-rank pairs of this rank:
RANK = 16
CHUNK = 1 << 19  # values per request when fetching a gradient (keeps the worker's transient memory small)
_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # sandbox -> (worker pid, vgg, resnet)


# -- helpers --------------------------------------------------------------------------------------
def _fixture(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one fixture batch file, read in the grader."""
    with open(Path(CIFAR) / name, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(entry["labels"], dtype=np.int64)


def _torch_path(student: Student, name: str) -> str:
    """A path to torch.<name> through the student's module (it may import torch under another name)."""
    for prefix in ("torch.", "torchvision.models.vgg.torch.", "nn.modules.module.torch."):
        try:
            student.get(MOD, prefix + name, ret="handle")
            return prefix + name
        except StudentError:
            continue
    raise CheckFailed("resnet_vgg.py should import torch and torchvision")


def _models(student: Student) -> tuple[Handle, Handle]:
    """(vgg, resnet) from the student's build_models(10), built once per sandbox process (see the docstring)."""
    sandbox = student.sandbox
    pid = sandbox.proc.pid if sandbox.proc is not None else None
    cached = _MODELS.get(sandbox)
    if cached is not None and cached[0] == pid:
        return cached[1], cached[2]
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
    for model in (vgg, resnet):
        _materialise(student, model)
    _MODELS[sandbox] = (pid, vgg, resnet)
    return vgg, resnet


def _release_models(student: Student) -> None:
    """Free the cached models' tensors in the worker: later checks (and other tasks' checks) need the memory."""
    cached = _MODELS.pop(student.sandbox, None)
    if cached is not None and student.sandbox.proc is not None and cached[0] == student.sandbox.proc.pid:
        for model in cached[1:]:
            _release(student, model)


def _materialise(student: Student, model: Handle) -> None:
    """Give a model built on the meta device real CPU tensors, initialised by each layer's reset_parameters()."""
    if not _any_meta(student, model):
        return
    student.call(model, "to_empty", device="cpu", ret="none", seed=SEED)
    gen = student.call(model, "modules", ret="handle")
    while True:
        try:
            module = student.call(gen, "send", None, ret="handle")  # next(generator)
        except StudentError as exc:
            if exc.error == "StopIteration":
                return
            raise
        if module.type_name in ("Conv2d", "Linear", "BatchNorm2d"):
            student.call(module, "reset_parameters", ret="none")


def _any_meta(student: Student, model: Handle) -> bool:
    gen = student.call(model, "parameters", ret="handle")
    try:
        return bool(student.get(student.call(gen, "send", None, ret="handle"), "is_meta"))
    except StudentError:  # no parameters at all
        return False


def _release(student: Student, model: Handle) -> None:
    """Free every parameter and gradient of a model inside the sandbox (the model is unusable after)."""
    student.call(model, "zero_grad", ret="none")  # set_to_none: drops the gradients
    gen = student.call(model, "named_parameters", ret="handle")
    while True:
        try:
            pair = student.call(gen, "send", None, ret="handle")
        except StudentError as exc:
            if exc.error == "StopIteration":
                return
            raise
        student.call(pair, "1.requires_grad_", False, ret="none")
        student.call(pair, "1.set_", ret="none")  # an empty tensor: the storage is released


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
    """The model's named_parameters(), in order: name, requires_grad, whether it has a grad, size, module type."""
    gen = student.call(model, "named_parameters", ret="handle")
    table = []
    while True:
        try:
            pair = student.call(gen, "send", None, ret="handle")  # next(generator)
        except StudentError as exc:
            if exc.error == "StopIteration":
                break
            raise
        name = student.get(pair, "0")
        if not isinstance(name, str):
            raise CheckFailed("named_parameters() of the model gave a non-string name")
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        table.append({
            "name": name, "pair": pair,
            "requires_grad": bool(student.get(pair, "1.requires_grad")),
            "has_grad": student.get(pair, "1.grad.__class__.__name__") != "NoneType",  # no handle: it would pin the grad
            "numel": int(student.call(pair, "1.numel")),
            "module": student.get(model, owner, ret="handle").type_name if owner else "",
        })
        if len(table) > 1000:
            raise CheckFailed("the model has more than 1000 parameter tensors")
    return table


def _expected_names(table: list[dict]) -> tuple[list[str], list[str]]:
    """(handout rule, the same without BatchNorm weights): both are accepted when self-consistent."""
    names = [p["name"] for p in table if p["requires_grad"] and "weight" in p["name"] and p["has_grad"]]
    no_bn = [n for n in names if "BatchNorm" not in next(p["module"] for p in table if p["name"] == n)]
    return names, no_bn


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


def _fetch_grad(student: Student, row: dict) -> np.ndarray:
    """A parameter's gradient, fetched in slices along its first axis (flattened)."""
    shape = [int(v) for v in student.call(row["pair"], "1.grad.size")]
    if not shape:
        return as_array(student.get(row["pair"], "1.grad"), f"{row['name']}.grad").ravel()
    rows_per = max(1, CHUNK // max(1, row["numel"] // shape[0]))
    parts = [as_array(student.call(row["pair"], "1.grad.narrow", 0, start, min(rows_per, shape[0] - start)),
                      f"{row['name']}.grad").ravel() for start in range(0, shape[0], rows_per)]
    return np.concatenate(parts)


def _check_against_oracle(student: Student, model: Handle, what: str, x: np.ndarray, y: np.ndarray) -> None:
    names, values = _grad_means(student, model, x, y, what)
    table = _parameters(student, model)
    full, no_bn = _expected_names(table)
    if names not in (full, no_bn):
        extra = [n for n in names if n not in full]
        missing = [n for n in full if n not in names]
        hint = "keep the parameters that require grad, have 'weight' in their name and a grad that is not None"
        if any(n.endswith("bias") for n in extra):
            hint = "biases are not weights: keep only names containing 'weight'"
        detail = f"{len(names)} names, expected {len(full)}"
        if extra:
            detail += f"; not expected: {extra[:3]}"
        if missing:
            detail += f"; missing: {missing[:3]}"
        if not extra and not missing:
            detail += "; same names in another order (keep named_parameters() order)"
        raise CheckFailed(f"layer_grad_means on {what} lists the wrong parameters", detail, hint)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise CheckFailed(f"layer_grad_means on {what}: every mean should be finite and non-negative",
                          hint="take the mean of the absolute gradient, param.grad.abs().mean()")
    rows = {p["name"]: p for p in table}
    for name, got in zip(names, values):
        row = rows[name]
        grad = _fetch_grad(student, row)
        expected = float(np.mean(np.abs(grad)))
        if not np.isclose(got, expected, rtol=1e-4, atol=1e-12):
            signed = float(abs(np.mean(grad)))
            hint = "the mean of |grad|: param.grad.abs().mean()"
            if np.isclose(abs(got), signed, rtol=1e-3, atol=1e-12):
                hint = "that is the mean of the signed gradient: take the absolute value first, param.grad.abs().mean()"
            raise CheckFailed(f"layer_grad_means on {what}: the mean |grad| of {name} is wrong",
                              f"off by a factor {got / expected:.3g}" if expected > 0 else "expected 0", hint)


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
    return student.call(MOD, "cifar10_loader", root=student.data_dir, download=False, check_md5=False,
                        shuffle=False, ret="handle", seed=SEED, **kwargs)


@check("1.1", "cifar10_loader reads CIFAR-10's files: batch size, labels, train/test split", weight=3, module=MOD, timeout=60)
def loader_reads_cifar(student: Student) -> None:
    images, labels = _first_batch(student, _loader(student, train=False, image_size=32, batch_size=5))
    _, test_labels = _fixture("test_batch")
    expect_shape(images, (5, 3, 32, 32), "the images of a batch of 5 at image_size=32",
                 hint="images should be (batch, 3, H, W) tensors: use transforms.ToTensor()")
    expect_shape(labels, (5,), "the labels of a batch of 5")
    if labels.min() < 0 or labels.max() > 9 or not np.all(labels == np.round(labels)):
        raise CheckFailed("labels should be class indices 0..9")
    if not np.array_equal(labels, test_labels[:5]):
        raise CheckFailed("train=False should read the test split (test_batch) in order",
                          hint="pass train=train to CIFAR10 and shuffle=shuffle to the DataLoader")
    train = student.get(_loader(student, train=True, image_size=32, batch_size=4), "dataset.targets")
    expected = np.concatenate([_fixture(f"data_batch_{i}")[1] for i in range(1, 6)])
    if np.asarray(train).shape != expected.shape or not np.array_equal(np.asarray(train), expected):
        raise CheckFailed("train=True should read the five training batches", hint="pass train=train to CIFAR10")


@check("1.1", "images are resized to image_size and normalised per channel", weight=3, module=MOD, timeout=60)
def loader_resizes_and_normalises(student: Student) -> None:
    test_images, _ = _fixture("test_batch")
    for size in (64, 48):
        images, _ = _first_batch(student, _loader(student, train=False, image_size=size, batch_size=3))
        expect_shape(images, (3, 3, size, size), f"a batch of 3 at image_size={size}",
                     hint="resize every image to (image_size, image_size): transforms.Resize((s, s))")
        raw = torch.from_numpy(test_images[:3].transpose(0, 3, 1, 2).astype(np.float64) / 255.0)
        oracle = F.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False).numpy()
        for c in range(3):
            a = oracle[:, c].ravel()
            b = images[:, c].ravel()
            if np.std(b) == 0 or np.corrcoef(a, b)[0, 1] < 0.98:
                raise CheckFailed(f"the images at image_size={size} do not show the dataset's pictures (channel {c})",
                                  hint="Resize, then ToTensor, then Normalize, on the dataset's own images")
            slope, intercept = np.polyfit(a, b, 1)
            if size == 64 and abs(slope - 1) < 0.05 and abs(intercept) < 0.05:
                raise CheckFailed("the images are not normalised", "values are plain ToTensor output in [0, 1]",
                                  "add transforms.Normalize(mean, std) so the inputs match what the networks expect")
            if size == 64 and (slope <= 0 or slope > 50):
                raise CheckFailed("the images are scaled oddly", f"channel {c} is {slope:.3g} * pixel/255 + {intercept:.3g}",
                                  "ToTensor scales to [0, 1]; Normalize then subtracts a mean and divides by a std")


@check("1.1", "both networks output (B, 10) with their heads replaced", weight=4, module=MOD, timeout=90)
def outputs_and_heads(student: Student) -> None:
    vgg, resnet = _models(student)
    for model, head, n_in, what in ((vgg, "classifier.6", 4096, "VGG16's classifier[6]"), (resnet, "fc", 512, "ResNet18's fc")):
        layer = student.get(model, head, ret="handle")
        if layer.type_name != "Linear":
            raise CheckFailed(f"{what} should be an nn.Linear", f"got a {layer.type_name}")
        fin, fout = student.get(layer, "in_features"), student.get(layer, "out_features")
        if fout != 10:
            raise CheckFailed(f"{what} should have 10 outputs (CIFAR-10's classes)", f"got {fout}",
                              "replace the ImageNet head with nn.Linear(in_features, num_classes)")
        if fin != n_in:
            raise CheckFailed(f"{what} should read {n_in} features", f"got {fin}")
    if len(student.get(vgg, "features._modules")) != 31:
        raise CheckFailed("the VGG model is not VGG16 (13 conv layers, no batch norm)", hint="torchvision.models.vgg16")
    if [len(student.get(resnet, f"layer{i}._modules")) for i in range(1, 5)] != [2, 2, 2, 2]:
        raise CheckFailed("the ResNet model is not ResNet18 (two blocks per stage)", hint="torchvision.models.resnet18")
    x, _ = _batch(11, n=3, size=32)
    for model, name in ((vgg, "VGG16"), (resnet, "ResNet18")):
        out = as_array(student.call(model, "", Tensor(x), seed=SEED, timeout=60), f"{name}'s output")
        expect_shape(out, (3, 10), f"{name}'s output for a batch of 3 images of 32x32",
                     hint="replace the 1000-way ImageNet head with a 10-way nn.Linear")
        if not np.all(np.isfinite(out)):
            raise CheckFailed(f"{name}'s output has NaN or inf")


# -- 1.3: gradient flow ---------------------------------------------------------------------------
@check("1.3", "ResNet18: one mean |grad| per weight tensor with a gradient, in order", weight=4, module=MOD, timeout=90)
def grad_means_resnet(student: Student) -> None:
    _, resnet = _models(student)
    x, y = _batch(21)
    _check_against_oracle(student, resnet, "ResNet18", x, y)


@check("1.3", "VGG16: one mean |grad| per weight tensor with a gradient, in order", weight=3, module=MOD, timeout=90)
def grad_means_vgg(student: Student) -> None:
    vgg, resnet = _models(student)
    student.call(resnet, "zero_grad", ret="none")  # frees ResNet18's gradients (memory)
    x, y = _batch(22)
    _check_against_oracle(student, vgg, "VGG16", x, y)


@check("1.3", "gradients are cleared first: a second call gives the same means", weight=2, module=MOD, timeout=90)
def grad_means_not_accumulated(student: Student) -> None:
    _, resnet = _models(student)
    x, y = _batch(23)
    _, first = _grad_means(student, resnet, x, y, "ResNet18")
    _, second = _grad_means(student, resnet, x, y, "ResNet18")
    if first.shape != second.shape or not np.allclose(second, first, rtol=1e-4, atol=1e-12):
        ratio = float(np.median(second / np.where(first == 0, 1, first))) if first.shape == second.shape else float("nan")
        raise CheckFailed("calling layer_grad_means twice on the same batch changes the means",
                          f"the second call's means are about {ratio:.3g} times the first's",
                          "gradients accumulate in .grad: call model.zero_grad() before loss.backward()")


@check("1.3", "a weight without a gradient (an unused layer) is skipped, not a crash", weight=1, module=MOD, timeout=90)
def grad_means_skip_none(student: Student) -> None:
    _, resnet = _models(student)
    # an extra nn.Linear that forward never uses: its weight requires grad but its grad stays None
    if student.get(resnet, "_modules").get("unused_head") is None:
        extra = student.call(resnet, "fc.__class__", 4, 3, ret="handle")
        student.call(resnet, "add_module", "unused_head", extra)
    x, y = _batch(24)
    try:
        names, _ = _grad_means(student, resnet, x, y, "ResNet18 with an unused layer")
    except StudentError as exc:
        raise CheckFailed("layer_grad_means crashes on a weight whose grad is None", f"{exc.error}: {exc.message[:200]}",
                          "skip parameters whose .grad is None (frozen or unused layers)") from None
    if "unused_head.weight" in names:
        raise CheckFailed("layer_grad_means lists a weight that has no gradient", hint="skip parameters whose .grad is None")


@check("1.3", "plot_gradient_flow draws one curve per model, one point per weight tensor", weight=2, module=MOD, timeout=60)
def gradient_flow_plot(student: Student) -> None:
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
def _mini_resnet(student: Student) -> Handle:
    """A small residual CNN made in the sandbox from torch's and torchvision's own classes.

    conv(3->16, no bias) - BatchNorm - ReLU - two torchvision BasicBlocks - pool - Linear(16, 10):
    zero BatchNorm biases, as in ResNet18 (so the filter-normalisation trap is there), at a size that
    fits the sandbox's memory next to the cached models (a ResNet18 plane needs about 300 MB).
    """
    nn = _torch_path(student, "nn")
    layers = [student.call(MOD, f"{nn}.Conv2d", 3, 16, 3, padding=1, bias=False, ret="handle", seed=SEED),
              student.call(MOD, f"{nn}.BatchNorm2d", 16, ret="handle"), student.call(MOD, f"{nn}.ReLU", ret="handle")]
    for _ in range(2):
        try:
            layers.append(student.call(MOD, "torchvision.models.resnet.BasicBlock", 16, 16, ret="handle"))
        except StudentError:
            raise CheckFailed("resnet_vgg.py should import torchvision (as torchvision)") from None
    layers += [student.call(MOD, f"{nn}.AdaptiveAvgPool2d", 1, ret="handle"), student.call(MOD, f"{nn}.Flatten", ret="handle"),
               student.call(MOD, f"{nn}.Linear", 16, 10, ret="handle")]
    return student.call(MOD, f"{nn}.Sequential", *layers, ret="handle")


def _surface(student: Student, model: Handle, steps: int, seed: int) -> np.ndarray:
    x, y = _batch(seed)
    out = student.call(MOD, "loss_surface", model, Tensor(x), Tensor(y), _criterion(student), distance=2.0, steps=steps,
                       seed=SEED, timeout=120)
    return as_array(out, "loss_surface's result")


@check("1.2", "loss_surface: a finite, non-constant (steps, steps) surface", weight=4, module=MOD, timeout=150)
def surface_shape_and_values(student: Student) -> None:
    _release_models(student)  # the gradient-flow checks (1.3) come before this one
    model = _mini_resnet(student)
    for steps in (5, 4):
        z = _surface(student, model, steps, 41 + steps)
        expect_shape(z, (steps, steps), f"loss_surface(..., steps={steps})")
        if not np.all(np.isfinite(z)):
            raise CheckFailed(f"the surface (steps={steps}) has NaN or inf", f"{int((~np.isfinite(z)).sum())} of {z.size} values",
                              "filter normalisation divides by zero on zero biases: perturb only the weight tensors "
                              "(WeightTensorsOnly), as Li et al. 2018 do")
        if np.ptp(z) <= 1e-7 * max(1.0, float(np.abs(z).mean())):
            raise CheckFailed(f"the surface (steps={steps}) is flat: every grid point has the same loss",
                              hint="the metric must evaluate the model through the wrapper it is given (metrics.Loss "
                                   "does); a closure over your own model never sees the perturbed copy")


def _snapshot(student: Student, model: Handle) -> dict[str, tuple[np.ndarray, bool]]:
    return {row["name"]: (as_array(student.get(row["pair"], "1"), row["name"]), row["requires_grad"])
            for row in _parameters(student, model)}


@check("1.2", "loss_surface leaves the model's parameters unchanged", weight=3, module=MOD, timeout=150)
def surface_leaves_model(student: Student) -> None:
    _release_models(student)
    model = _mini_resnet(student)
    before = _snapshot(student, model)
    _surface(student, model, 3, 51)
    after = _snapshot(student, model)
    moved = [p for p in before if p not in after or not np.array_equal(before[p][0], after[p][0])]
    frozen = [p for p in before if p in after and before[p][1] != after[p][1]]
    if moved or frozen:
        detail = (f"changed: {moved[:4]}" if moved else "") + ("; " if moved and frozen else "") + \
                 (f"requires_grad switched off for {frozen[:4]}" if frozen else "")
        raise CheckFailed("loss_surface changes the model it is given", detail,
                          "loss-landscapes moves the parameters it gets in place: give it a copy.deepcopy of the model")


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


@check("1.2", "plot_loss_landscape draws each model's surface in a subplot titled with its name", weight=3, module=MOD, timeout=60)
def loss_landscape_plot(student: Student) -> None:
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
