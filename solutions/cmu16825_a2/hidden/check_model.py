"""Hidden checks for the Q2 decoders (model.py SingleViewto3D, items 2.1.1 vox, 2.2.1 point, 2.3.1 mesh).

The model is built with the course's args and args.load_feat, so its input is the (B, 512) feature and
the ResNet encoder is not involved. Checked: output shapes for B in {1, 3}, voxel probabilities in
[0, 1], outputs that depend on the feature and not on the rest of the batch (eval mode), and a short
fit driven here of two features to two procedural shapes (a sphere and a box) with the grader's own
loss computed in the sandbox by torch (BCE, or chamfer by torch.cdist): only the model is the student's.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, as_array, expect_shape, helper_module
from grader.lite3d import ico_sphere

box = helper_module(__file__, "a2_sandbox")
MOD = "model"
ICO = ico_sphere(4)
ICO_VERTS = ICO.verts_list()[0].numpy()
ICO_FACES = ICO.faces_list()[0].numpy()
N_POINTS = 300


def _build(student, kind: str, b: int, n_points: int = N_POINTS, seed: int = 0):
    args = box.args(student, kind, b, n_points)
    model = student.call(MOD, "SingleViewto3D", args, seed=seed, ret="handle")
    return model, args


def _forward(student, model, args, feats: np.ndarray, ret: str = "auto"):
    return student.call(model, "", box.f32(feats), args, ret=ret)


def _vox(value, b: int, what: str) -> np.ndarray:
    arr = as_array(value, what)
    if arr.ndim == 5 and arr.shape[1] == 1:
        arr = arr[:, 0]
    expect_shape(arr, (b, 32, 32, 32), what, "one 32 x 32 x 32 grid per image: (B, 32, 32, 32)")
    return arr


def _mesh_verts(student, mesh, b: int, what: str) -> np.ndarray:
    try:
        verts = as_array(student.call(mesh, "verts_padded"), f"{what}: its vertices")
        faces = as_array(student.call(mesh, "faces_padded"), f"{what}: its faces")
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - not a Meshes
        raise CheckFailed(f"{what} is not a Meshes object", f"{type(exc).__name__}: {str(exc)[:200]}",
                          "return self.mesh_pred.offset_verts(deform_vertices_pred.reshape([-1, 3]))") from None
    expect_shape(verts, (b, len(ICO_VERTS), 3), f"{what}: its vertices",
                 "one deformed ico_sphere(4) per image: offsets for each of its 2562 vertices")
    box.need(faces.shape == (b, len(ICO_FACES), 3) and (faces == ICO_FACES[None]).all(),
             f"{what} does not keep the faces of ico_sphere(4)", f"faces of shape {faces.shape}",
             "deform the sphere's vertices with offsets; keep its faces")
    return verts


def _output(student, kind: str, model, args, feats: np.ndarray, what: str) -> np.ndarray:
    b = feats.shape[0]
    if kind == "vox":
        return _vox(_forward(student, model, args, feats), b, what)
    if kind == "point":
        arr = as_array(_forward(student, model, args, feats), what)
        expect_shape(arr, (b, N_POINTS, 3), what, "args.n_points points per image: (B, n_points, 3)")
        return arr
    mesh = _forward(student, model, args, feats, ret="handle")
    return _mesh_verts(student, mesh, b, what)


# -- shapes -------------------------------------------------------------------------------------------------
def _shape_check(student, kind: str, b: int) -> None:
    model, args = _build(student, kind, b)
    student.call(model, "eval", ret="none")
    _output(student, kind, model, args, box.features(b, 10 + b), f"the {kind} decoder's output for B={b}")


@pytest.mark.item("2.1.1", weight=1, timeout=60, module=MOD)
@pytest.mark.parametrize("b", [1, 3], ids=["B=1", "B=3"])
def test_vox_shape(student, b):
    """the vox decoder maps (B, 512) features to (B, 32, 32, 32)"""
    _shape_check(student, "vox", b)


@pytest.mark.item("2.2.1", weight=1, timeout=60, module=MOD)
@pytest.mark.parametrize("b", [1, 3], ids=["B=1", "B=3"])
def test_point_shape(student, b):
    """the point decoder maps (B, 512) features to (B, n_points, 3)"""
    _shape_check(student, "point", b)


@pytest.mark.item("2.3.1", weight=1, timeout=60, module=MOD)
@pytest.mark.parametrize("b", [1, 3], ids=["B=1", "B=3"])
def test_mesh_shape(student, b):
    """the mesh decoder returns B deformed copies of ico_sphere(4) as a Meshes"""
    _shape_check(student, "mesh", b)


@pytest.mark.item("2.1.1", weight=1, timeout=60, module=MOD)
def test_vox_probabilities(student):
    """the vox decoder's outputs are occupancy probabilities in [0, 1]"""
    model, args = _build(student, "vox", 3)
    student.call(model, "eval", ret="none")
    out = _vox(_forward(student, model, args, box.features(3, 20) * 5), 3, "the vox decoder's output")
    box.need(out.min() >= 0 and out.max() <= 1, "the vox decoder's outputs leave [0, 1]",
             f"they range over [{out.min():.3g}, {out.max():.3g}]",
             "end with a sigmoid: eval_model.py runs marching cubes at 0.5 on probabilities")


@pytest.mark.item("2.2.1", weight=0.5, timeout=60, module=MOD)
def test_point_count_from_args(student):
    """the point decoder gives args.n_points points"""
    model, args = _build(student, "point", 2, n_points=123)
    arr = as_array(_forward(student, model, args, box.features(2, 21)), "the point decoder's output")
    expect_shape(arr, (2, 123, 3), "the point decoder's output with n_points=123", "use args.n_points, not a fixed number")


def _follows_feature(student, kind: str) -> None:
    model, args = _build(student, kind, 3)
    student.call(model, "eval", ret="none")
    feats = box.features(3, 30)
    together = _output(student, kind, model, args, feats, f"the {kind} decoder's output")
    spread = float(np.abs(together[0] - together[1]).max())
    box.need(spread > 1e-6, f"the {kind} decoder gives the same output for different features",
             f"largest difference {spread:.3g} between two images' outputs",
             "decode encoded_feat; a learned constant ignores the image")
    if kind == "mesh":
        return  # mesh_pred holds args.batch_size meshes: the course's model decodes whole batches only
    for i in range(3):
        alone = _output(student, kind, model, args, feats[i:i + 1], f"the {kind} decoder's output for one image")
        diff = float(np.abs(alone[0] - together[i]).max())
        box.need(diff <= 1e-4 * max(1.0, float(np.abs(together).max())),
                 f"the {kind} decoder's output for an image depends on the other images of its batch",
                 f"image {i}: largest difference {diff:.3g} between alone and in a batch of 3",
                 "decode each feature on its own; never mix along the batch axis (reshape with B first)")


@pytest.mark.item("2.1.1", weight=1, timeout=60, module=MOD)
def test_vox_follows_feature(student):
    """in eval mode, each voxel grid follows its own feature, whatever else is in the batch"""
    _follows_feature(student, "vox")


@pytest.mark.item("2.2.1", weight=1, timeout=60, module=MOD)
def test_point_follows_feature(student):
    """in eval mode, each point cloud follows its own feature, whatever else is in the batch"""
    _follows_feature(student, "point")


@pytest.mark.item("2.3.1", weight=1, timeout=60, module=MOD)
def test_mesh_follows_feature(student):
    """in eval mode, different features give different meshes"""
    _follows_feature(student, "mesh")


# -- a short fit --------------------------------------------------------------------------------------------
def _cdist_chamfer(student, pred, tgt):
    """The grader's chamfer loss on a (B, N, 3) prediction handle, computed in the sandbox with torch."""
    tmod = box.torch_in(student, MOD)
    d = student.call(student.call(tmod, "torch.cdist", pred, tgt, ret="handle"), "square", ret="handle")
    a = student.call(student.call(d, "amin", 2, ret="handle"), "mean", ret="handle")
    b = student.call(student.call(d, "amin", 1, ret="handle"), "mean", ret="handle")
    return student.call(a, "add", b, ret="handle")


def _fit(student, kind: str, steps: int, lr: float):
    """Train a fresh decoder for `steps` Adam steps on two features and two shapes; the two targets, the
    first output (before training) and the trained outputs (eval mode) come back."""
    tmod = box.torch_in(student, MOD)
    model, args = _build(student, kind, 2, seed=1)
    student.call(model, "train", ret="none")
    feats = box.f32(box.features(2, 40))
    params = student.call(model, "parameters", ret="handle")
    opt = student.call(tmod, "torch.optim.Adam", params, lr=lr, ret="handle")
    first = _output(student, kind, model, args, box.features(2, 40), f"the {kind} decoder's output")
    if kind == "vox":
        target = np.stack([box.sphere_voxels(32, 0.55), box.box_voxels(32, [0.85, 0.3, 0.3])])
        probs = first.min() >= 0 and first.max() <= 1
    elif kind == "point":
        target = np.stack([box.sphere_points(N_POINTS, 0.5, 1), box.box_points(N_POINTS, [0.8, 0.3, 0.3], 2)])
    else:
        target = np.stack([box.sphere_points(300, 0.5, 3), box.box_points(300, [0.8, 0.3, 0.3], 4)])
    tgt = box.f32(target)
    for _ in range(steps):
        out = student.call(model, "", feats, args, ret="handle")
        if kind == "vox":
            out = student.call(out, "reshape", 2, 32, 32, 32, ret="handle")
            if probs:
                out = student.call(out, "clamp", 1e-6, 1 - 1e-6, ret="handle")
                loss = student.call(tmod, "torch.nn.functional.binary_cross_entropy", out, tgt, ret="handle")
            else:  # logits: the range check fails on its own; the fit still counts
                loss = student.call(tmod, "torch.nn.functional.binary_cross_entropy_with_logits", out, tgt, ret="handle")
        elif kind == "point":
            loss = _cdist_chamfer(student, out, tgt)
        else:
            loss = _cdist_chamfer(student, student.call(out, "verts_padded", ret="handle"), tgt)
        student.call(opt, "zero_grad", ret="none")
        student.call(loss, "backward", ret="none")
        student.call(opt, "step", ret="none")
    student.call(model, "eval", ret="none")
    return target, first, _output(student, kind, model, args, box.features(2, 40), f"the trained {kind} decoder's output")


FIT_HINT = ("the decoder's output must be a differentiable function of encoded_feat through layers registered "
            "on the module (self.decoder = nn.Sequential(...)), so that training moves it")


@pytest.mark.item("2.1.1", weight=3, timeout=150, module=MOD)
def test_vox_fits_two_shapes(student):
    """trained briefly on two features, the vox decoder turns one into a sphere and the other into a box"""
    target, _, out = _fit(student, "vox", steps=50, lr=4e-3)
    threshold = 0.5 if out.min() >= 0 and out.max() <= 1 else 0.0
    own = [box.iou(out[i] > threshold, target[i]) for i in range(2)]
    other = [box.iou(out[i] > threshold, target[1 - i]) for i in range(2)]
    box.need(min(own) > 0.5 and all(o > x for o, x in zip(own, other)),
             "the vox decoder does not learn two shapes from two features",
             f"IoU with its own shape {own[0]:.2f} / {own[1]:.2f}, with the other shape {other[0]:.2f} / {other[1]:.2f} "
             "after 50 Adam steps (lr 4e-3)", FIT_HINT)


def _expect_two_shapes(kind: str, target, first, out, steps: int, lr: float) -> None:
    own = [box.chamfer(out[i:i + 1], target[i:i + 1]) for i in range(2)]
    other = [box.chamfer(out[i:i + 1], target[1 - i:2 - i]) for i in range(2)]
    start = [box.chamfer(first[i:i + 1], target[i:i + 1]) for i in range(2)]
    box.need(all(o < 0.3 * s for o, s in zip(own, start)) and all(o < x for o, x in zip(own, other)),
             f"the {kind} decoder does not learn two shapes from two features",
             f"chamfer to its own shape {own[0]:.3g} / {own[1]:.3g} (before training {start[0]:.3g} / {start[1]:.3g}), "
             f"to the other shape {other[0]:.3g} / {other[1]:.3g} after {steps} Adam steps (lr {lr:g})", FIT_HINT)


@pytest.mark.item("2.2.1", weight=3, timeout=150, module=MOD)
def test_point_fits_two_shapes(student):
    """trained briefly on two features, the point decoder turns one into a sphere and the other into a box"""
    target, first, out = _fit(student, "point", steps=50, lr=2e-3)
    _expect_two_shapes("point", target, first, out, 50, 2e-3)


@pytest.mark.item("2.3.1", weight=3, timeout=150, module=MOD)
def test_mesh_fits_two_shapes(student):
    """trained briefly on two features, the mesh decoder deforms the sphere into a small sphere and a box"""
    target, first, out = _fit(student, "mesh", steps=30, lr=1e-3)
    _expect_two_shapes("mesh", target, first, out, 30, 1e-3)
