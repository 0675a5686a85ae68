"""Hidden checks for Q2.1 (SDS.sds_loss). Trusted code.

No diffusion model can be loaded here: SDS() builds on the given offline stand-in (sds_offline.py), whose
"UNet" predicts noise with a fixed smooth function and records what it was given. The checks first make
sure the object really uses that stand-in (its schedule and its prediction on a probe match the grader's
copy, splat_oracle); otherwise the item goes to a TA. Then, from the UNet's recorded input x_t and t, the
noise is recovered (x_t = sqrt(abar) x0 + sqrt(1 - abar) eps) and the gradient the loss leaves on the
latents is compared with grad_scale * (1 - abar_t) * (eps_hat - eps), eps_hat with or without
classifier-free guidance eps_u + s (eps_c - eps_u), all computed here.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Tensor, as_array, expect_close, helper_module

orc = helper_module(__file__, "splat_oracle")

MOD = "SDS"
SHAPE = (1, 4, 12, 12)
EMB = (1, 7, 24)


def _sds(student):
    """The student's SDS object, after making sure it runs on the given offline stand-in."""
    sds = student.call(MOD, "SDS", device="cpu", ret="handle")
    alphas = as_array(student.get(sds, "alphas"), "SDS.alphas")
    if alphas.shape != (1000,) or not np.allclose(alphas, orc.alphas_cumprod(), atol=1e-6):
        raise NeedsReview("SDS does not use the given offline noise schedule (sds_offline.py): the gradient "
                          "cannot be checked automatically", f"alphas has shape {alphas.shape}")
    rng = np.random.default_rng(99)
    x, ctx = rng.normal(size=SHAPE), rng.normal(size=EMB)
    out = student.call(sds, "unet", Tensor(x.astype(np.float32)), Tensor(np.array([321])),
                       encoder_hidden_states=Tensor(ctx.astype(np.float32)), return_dict=False)
    probe = as_array(out[0] if isinstance(out, (tuple, list)) else out, "the UNet's output on a probe")
    if probe.shape != SHAPE or not np.allclose(probe, orc.predicted_noise(x, 321.0, ctx), atol=1e-4):
        raise NeedsReview("SDS does not use the given offline UNet (sds_offline.py): the gradient cannot be "
                          "checked automatically", "the noise prediction on a probe differs from the stand-in's")
    student.call(sds, "unet.calls.clear", ret="none")
    return sds


def _run(student, seed: int, grad_scale: float, guidance_scale: float | None):
    """Call sds_loss on fresh leaf latents, backpropagate; return (x0, grad, the UNet's calls, embeddings)."""
    sds = _sds(student)
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=SHAPE).astype(np.float32)
    cond = rng.normal(size=EMB).astype(np.float32)
    uncond = (0.3 * rng.normal(size=EMB) - 0.5).astype(np.float32)
    latents = student.call(MOD, "torch.tensor", x0, requires_grad=True, ret="handle")
    kwargs = {"grad_scale": grad_scale}
    if guidance_scale is not None:
        kwargs.update(text_embeddings_uncond=Tensor(uncond), guidance_scale=guidance_scale)
    loss = student.call(sds, "sds_loss", latents, Tensor(cond), seed=seed, ret="handle", **kwargs)
    shape = student.get(loss, "shape")
    if tuple(shape) not in ((), (1,)):
        raise CheckFailed("sds_loss should return a scalar loss", f"got a tensor of shape {tuple(shape)}",
                          "sum (or mean) the loss to one number, and keep the gradient you want in its derivative")
    student.call(loss, "backward", ret="none")
    grad = student.get(latents, "grad")
    if grad is None:
        raise CheckFailed("the loss leaves no gradient on the latents", "latents.grad is None after backward()",
                          "build the loss from the latents themselves, with the SDS gradient as a constant")
    calls = student.get(sds, "unet.calls")
    if not isinstance(calls, list) or not calls:
        raise CheckFailed("sds_loss never called the UNet", "", "predict the noise of the noisy latents with self.unet")
    return x0, as_array(grad, "latents.grad"), calls, cond, uncond


def _expected(x0, calls, cond, uncond, grad_scale, guidance_scale):
    """grad_scale * w(t) * (eps_hat - eps) from the first recorded UNet input."""
    sample = as_array(calls[0]["sample"], "the UNet's input")
    t = int(np.asarray(calls[0]["timestep"]).reshape(-1)[0])
    x_t = sample[:1]
    abar = orc.alphas_cumprod()[t]
    eps = (x_t - np.sqrt(abar) * x0) / np.sqrt(1 - abar)
    eps_c = orc.predicted_noise(x_t, float(t), cond.astype(np.float64))
    if guidance_scale is None:
        eps_hat = eps_c
    else:
        eps_u = orc.predicted_noise(x_t, float(t), uncond.astype(np.float64))
        eps_hat = eps_u + guidance_scale * (eps_c - eps_u)
    return grad_scale * (1 - abar) * (eps_hat - eps)


def _compare(got, expected, what, hint):
    expect_close(got, expected, what, atol=2e-4 * max(1.0, float(np.abs(expected).max())), rtol=1e-3, hint=hint)


GRAD_HINT = ("the loss's gradient with respect to the latents must be grad_scale * w(t) * (eps_hat - eps) for "
             "each element (a mean over elements scales it down; the UNet's output must be a constant)")


@pytest.mark.item("2.1", weight=4, timeout=60, module=MOD)
def test_sds_gradient(student):
    """without guidance, the gradient on the latents is w(t) (eps_hat - eps)"""
    x0, grad, calls, cond, uncond = _run(student, 11, 1.0, None)
    _compare(grad, _expected(x0, calls, cond, uncond, 1.0, None), "latents.grad after sds_loss(...).backward()",
             GRAD_HINT)


@pytest.mark.item("2.1", weight=3, timeout=60, module=MOD)
def test_sds_grad_scale(student):
    """grad_scale multiplies the gradient"""
    x0, grad, calls, cond, uncond = _run(student, 12, 2.5, None)
    _compare(grad, _expected(x0, calls, cond, uncond, 2.5, None), "latents.grad with grad_scale=2.5",
             "multiply the SDS gradient by grad_scale")


@pytest.mark.item("2.1", weight=3, timeout=60, module=MOD)
def test_sds_unet_no_grad(student):
    """the UNet runs without gradient tracking"""
    _, _, calls, _, _ = _run(student, 13, 1.0, None)
    if any(bool(c.get("grad_enabled")) for c in calls):
        raise CheckFailed("the UNet was called with gradient tracking on", f"{len(calls)} UNet call(s)",
                          "predict the noise inside torch.no_grad(): SDS never backpropagates through the UNet "
                          "(and it would take far too much memory)")


@pytest.mark.item("2.1", weight=6, timeout=60, module=MOD)
def test_sds_guidance(student):
    """with classifier-free guidance, eps_hat = eps_uncond + s (eps_cond - eps_uncond)"""
    x0, grad, calls, cond, uncond = _run(student, 14, 1.0, 7.5)
    _compare(grad, _expected(x0, calls, cond, uncond, 1.0, 7.5), "latents.grad with guidance_scale=7.5",
             "guidance starts from the unconditional prediction and moves towards the conditional one")


@pytest.mark.item("2.1", weight=4, timeout=60, module=MOD)
def test_sds_guidance_default(student):
    """guidance at the default scale 100 with grad_scale 0.5"""
    x0, grad, calls, cond, uncond = _run(student, 15, 0.5, 100.0)
    _compare(grad, _expected(x0, calls, cond, uncond, 0.5, 100.0), "latents.grad with guidance_scale=100",
             "guidance starts from the unconditional prediction and moves towards the conditional one; "
             "then scale by grad_scale")
