"""Hidden checks for Task 2 (the deformable convolution's offset conv, item 2.1). Trusted code.

Expected outputs are computed here with torch's own F.conv2d as the oracle, from the weights the
student's module reports; the student's module only ever receives inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.checks import CheckFailed, Student, Tensor, as_array, expect_close, expect_shape
from grader.protocol import Handle

MOD = "dcnn"
SEED = 2


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    """The deformable conv's weights for a check: written into the layer, never read back as truth."""
    return np.random.default_rng(list(shape)).normal(size=shape).astype(np.float32)


def _layer(student: Student, cin: int, cout: int, k: int, p: int, s: int) -> Handle:
    layer = student.call(MOD, "DeformableConv2d", cin, cout, kernel_size=k, padding=p, stride=s, seed=SEED, ret="handle")
    offset = student.get(layer, "offset", ret="handle")
    if offset.type_name != "Conv2d":
        raise CheckFailed("self.offset should be an nn.Conv2d", f"got a {offset.type_name}")
    # Known non-zero weights, so that the oracles below never rest on weights the layer reports (a
    # layer reporting zero weights would otherwise make every expected output zero).
    student.call(layer, "deform_conv.weight.data.copy_", Tensor(_weights((cout, cin, k, k))))
    return layer


def _offset_conv_is_a_conv(student: Student, layer: Handle, cin: int, cout: int, k: int, p: int) -> None:
    """The offset conv computes a convolution (checked with weights written into it, not reported by it)."""
    rng = np.random.default_rng(11)
    w = rng.normal(size=(cout, cin, k, k)).astype(np.float32)
    b = rng.normal(size=cout).astype(np.float32)
    student.call(layer, "offset.weight.data.copy_", Tensor(w))
    has_bias = student.get(layer, "offset.bias", ret="handle").type_name != "NoneType"
    if has_bias:
        student.call(layer, "offset.bias.data.copy_", Tensor(b))
    x = rng.normal(size=(1, cin, 7, 7)).astype(np.float32)
    got = as_array(student.call(layer, "offset", Tensor(x)), "the offset conv's output")
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if has_bias else None, padding=p).numpy()
    expect_close(got, expected, f"the offset conv's output (kernel_size={k})", atol=1e-4,
                 hint="the offset conv convolves the layer's input with the deformable conv's own kernel size, padding and stride")


def _forward(student: Student, layer: Handle, x: np.ndarray) -> np.ndarray:
    return as_array(student.call(layer, "", Tensor(x.astype(np.float32)), seed=SEED), "the layer's output")


def _out_size(n: int, k: int, p: int, s: int) -> int:
    return (n + 2 * p - k) // s + 1


@pytest.mark.item("2.1", weight=3, module=MOD)
def test_offset_channels(student: Student) -> None:
    """the offset conv's channel counts fit the deformable conv"""
    for k in (1, 3, 5):
        layer = _layer(student, 4, 6, k, k // 2, 1)
        cin, cout = student.get(layer, "offset.in_channels"), student.get(layer, "offset.out_channels")
        if cin != 4:
            raise CheckFailed("the offset conv should read the layer's input channels", f"got {cin} for a layer with 4")
        if cout == 3 * k * k:  # DCNv2: offsets and mask from one conv; fine if it is split properly
            _forward(student, layer, np.zeros((1, 4, 9, 9)))
            continue
        if cout != 2 * k * k:
            hint = "count the numbers needed to move every sampling location of the kernel"
            raise CheckFailed(f"the offset conv has the wrong number of output channels for kernel_size={k}",
                              f"got {cout}", hint)
        _offset_conv_is_a_conv(student, layer, 4, cout, k, k // 2)


@pytest.mark.item("2.1", weight=3, module=MOD)
def test_forward_shapes(student: Student) -> None:
    """output has the shape of a plain conv with the same settings"""
    x = np.random.default_rng(0).normal(size=(2, 3, 17, 23))
    for k, p, s in ((3, 1, 1), (3, 1, 2), (5, 2, 2), (1, 0, 1)):
        layer = _layer(student, 3, 5, k, p, s)
        out = _forward(student, layer, x)
        expect_shape(out, (2, 5, _out_size(17, k, p, s), _out_size(23, k, p, s)),
                     f"output for kernel_size={k}, padding={p}, stride={s}",
                     hint="the offset conv must use the same kernel_size, padding and stride as the deformable conv")
        if not np.all(np.isfinite(out)) or np.ptp(out) == 0:  # random input and weights: a real layer varies
            raise CheckFailed(f"the output for kernel_size={k} is constant or not finite", "a random input gave a constant output")


def _zero_offsets(student: Student, layer: Handle) -> bool:
    """Zero the offset conv and any other conv (a DCNv2 mask conv); True when the layer has a mask."""
    children = student.get(layer, "_modules")
    convs = [name for name, h in children.items() if name != "deform_conv" and isinstance(h, Handle) and h.type_name == "Conv2d"]
    for name in convs:
        student.call(layer, f"{name}.weight.data.zero_")
        if student.get(layer, f"{name}.bias", ret="handle").type_name != "NoneType":
            student.call(layer, f"{name}.bias.data.zero_")
    k = int(student.get(layer, "deform_conv.kernel_size.0"))
    return len(convs) > 1 or student.get(layer, "offset.out_channels") == 3 * k * k


def _conv_oracle(student: Student, layer: Handle, x: np.ndarray, p: int, s: int) -> np.ndarray:
    reported = as_array(student.get(layer, "deform_conv.weight"), "deform_conv.weight")
    weight = _weights(reported.shape)
    if not np.array_equal(reported, weight):
        raise CheckFailed("deform_conv.weight does not hold the weights the check wrote into it",
                          hint="keep self.deform_conv a torchvision.ops.DeformConv2d, as given")
    weight = weight.astype(np.float64)
    bias = student.get(layer, "deform_conv.bias")
    b = None if bias is None else torch.from_numpy(as_array(bias, "deform_conv.bias"))
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(weight), b, stride=s, padding=p).numpy()


@pytest.mark.item("2.1", weight=3, module=MOD)
def test_zero_offset_equivalence(student: Student) -> None:
    """zero offsets reproduce a plain convolution"""
    x = np.random.default_rng(1).normal(size=(2, 3, 11, 13))
    for k, p, s in ((3, 1, 1), (3, 1, 2)):
        layer = _layer(student, 3, 4, k, p, s)
        masked = _zero_offsets(student, layer)
        out = _forward(student, layer, x)
        expected = _conv_oracle(student, layer, x.astype(np.float32).astype(np.float64), p, s)
        if masked and out.shape == expected.shape and np.allclose(out, 0.5 * expected, atol=1e-4):
            continue  # modulated (DCNv2) layer: a zero mask logit gives a mask of 0.5
        expect_close(out, expected, f"output with zero offsets (kernel_size={k}, stride={s})", atol=1e-4,
                     hint="pass the offset conv's output as the deformable conv's offset argument")


@pytest.mark.item("2.1", weight=2, module=MOD)
def test_offsets_are_used(student: Student) -> None:
    """the offsets are used: a one-pixel shift moves the sampling grid"""
    x = np.random.default_rng(3).normal(size=(1, 2, 12, 12))
    layer = _layer(student, 2, 3, 3, 1, 1)
    masked = _zero_offsets(student, layer)
    if student.get(layer, "offset.bias", ret="handle").type_name == "NoneType":
        raise CheckFailed("the offset conv has no bias, so this check cannot steer the offsets",
                          hint="keep nn.Conv2d's default bias=True for the offset conv")
    channels = int(student.get(layer, "offset.out_channels"))
    bias = np.zeros(channels, dtype=np.float32)
    bias[0:18:2] = 1.0  # torchvision's layout: (dy, dx) per tap; dy = +1 row for all nine taps
    student.call(layer, "offset.bias.data.copy_", Tensor(bias))
    out = _forward(student, layer, x)
    xf = x.astype(np.float32).astype(np.float64)
    for axis in (2, 3):  # the layout is torchvision's, so accept a shift along either axis
        shifted = np.zeros_like(xf)
        if axis == 2:
            shifted[:, :, :-1] = xf[:, :, 1:]
        else:
            shifted[:, :, :, :-1] = xf[:, :, :, 1:]
        expected = _conv_oracle(student, layer, shifted, 1, 1)
        for scale in (1.0, 0.5) if masked else (1.0,):  # a zeroed mask logit gives a mask of 0.5
            if out.shape == expected.shape and np.allclose(out[:, :, 1:-2, 1:-2], scale * expected[:, :, 1:-2, 1:-2], atol=1e-4):
                return
    unshifted = _conv_oracle(student, layer, xf, 1, 1)
    if out.shape == unshifted.shape and any(np.allclose(out, f * unshifted, atol=1e-4) for f in (1.0, 0.5)):
        raise CheckFailed("the output ignores the offsets", "shifting every tap by one pixel changed nothing",
                          "compute offsets = self.offset(x) in forward and pass them to self.deform_conv(x, offsets)")
    raise CheckFailed("a one-pixel offset does not shift the sampling grid by one pixel")


@pytest.mark.item("2.1", weight=1, module=MOD)
def test_offset_gradient(student: Student) -> None:
    """gradients reach the offset conv's weights"""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 9, 9)).astype(np.float32)
    layer = _layer(student, 3, 4, 3, 1, 1)
    # Small random offset weights, so that the offsets are not integers: bilinear sampling has kinks at
    # integer positions (e.g. a zero-initialised offset conv), where no finite difference is meaningful.
    w_start = rng.normal(scale=0.05, size=as_array(student.call(layer, "offset.weight.size"), "size").astype(int))
    student.call(layer, "offset.weight.data.copy_", Tensor(w_start.astype(np.float32)))
    out = student.call(layer, "", Tensor(x), seed=SEED, ret="handle")
    shape = tuple(as_array(student.call(out, "size"), "output size").astype(int))
    r = Tensor(rng.normal(size=shape).astype(np.float32))
    loss = student.call(student.call(out, "mul", r, ret="handle"), "sum", ret="handle")
    student.call(loss, "backward")
    grad = student.get(layer, "offset.weight.grad")
    if grad is None or not np.any(as_array(grad, "offset.weight.grad") != 0):
        raise CheckFailed("no gradient reaches the offset conv's weights",
                          hint="compute the offsets in forward from x; do not detach them or compute them once in __init__")
    # The reported gradient must predict how the loss really changes (a directional finite difference
    # through the layer's own forward), so a gradient that is only reported earns nothing.
    g = as_array(grad, "offset.weight.grad")
    w0 = as_array(student.get(layer, "offset.weight"), "offset.weight")
    d = rng.normal(size=w0.shape)
    d /= np.linalg.norm(d)
    eps = 1e-3

    def loss_at(w: np.ndarray) -> float:
        student.call(layer, "offset.weight.data.copy_", Tensor(w.astype(np.float32)))
        return float((_forward(student, layer, x) * r.array).sum())

    if g.shape != w0.shape:
        raise CheckFailed("offset.weight.grad has the wrong shape", f"expected {w0.shape}, got {g.shape}")
    numeric = (loss_at(w0 + eps * d) - loss_at(w0 - eps * d)) / (2 * eps)
    analytic = float((g * d).sum())
    if not abs(numeric - analytic) <= 0.1 * max(abs(numeric), abs(analytic)) + 1e-2:
        raise CheckFailed("offset.weight.grad does not match how the output changes with the offset conv's weights",
                          f"directional derivative {numeric:.4g} by finite differences, {analytic:.4g} from .grad")
