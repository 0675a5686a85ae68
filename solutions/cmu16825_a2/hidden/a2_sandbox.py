"""What the A2 checks share: objects built inside the sandbox (lite3d Meshes, the course's args, torch
tensors that need gradients) and the grader's own oracles and shapes (chamfer, BCE on logits, spheres,
grids), computed here from the formulas, never from the student's objects."""
from __future__ import annotations

import numpy as np

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array
from grader.lite3d import ico_sphere
from grader.protocol import Handle


def f32(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float32))


def need(condition: bool, what: str, detail: str = "", hint: str = "") -> None:
    if not condition:
        raise CheckFailed(what, detail, hint)


def torch_in(student: Student, via: str) -> str:
    """`via`, after making sure the student's module imports torch as `torch` (the grader reaches the
    sandbox's torch through it to make tensors that need gradients and optimisers)."""
    if "torch" not in student.names(via):
        raise NeedsReview(f"{via}.py does not import torch under the name `torch`, which the grader uses to build "
                          "meshes, configs and optimisers in the sandbox", "a TA runs the code")
    return via


def leaf(student: Student, values: np.ndarray, via: str = "losses") -> Handle:
    """A float32 tensor in the sandbox that requires gradients (like fit_data.py's parameters)."""
    return student.call(torch_in(student, via), "torch.Tensor.requires_grad_", f32(values), ret="handle")


def sandbox_module(student: Student, name: str, via: str) -> Handle:
    """A handle to a library module inside the sandbox (lite3d, torch, argparse), reached through the
    sandbox's importlib in the student's module `via` (every course file imports torch)."""
    importlib = student.call(torch_in(student, via), "torch.sys.modules.get", "importlib", ret="handle")
    return student.call(importlib, "import_module", name, ret="handle")


def meshes(student: Student, verts: list[np.ndarray], faces: list[np.ndarray], via: str = "losses") -> Handle:
    """A lite3d Meshes (what `pytorch3d.structures.Meshes` is in the sandbox) of float32 vertices."""
    lite3d = sandbox_module(student, "lite3d", via)
    return student.call(lite3d, "Meshes", [f32(v) for v in verts],
                        [Tensor(np.asarray(f, dtype=np.int64)) for f in faces], ret="handle")


def scalar(value, what: str) -> float:
    arr = as_array(value, what)
    need(arr.size == 1, f"{what} should be a single number", f"got an array of shape {arr.shape}",
         "reduce to a scalar (mean or sum) before returning")
    return float(arr.reshape(-1)[0])


# -- oracles --------------------------------------------------------------------------------------------
def chamfer(src: np.ndarray, tgt: np.ndarray) -> float:
    """Squared chamfer distance, means over points, summed over both directions, mean over the batch."""
    d = ((src[:, :, None, :].astype(np.float64) - tgt[:, None, :, :]) ** 2).sum(-1)  # (B, N, M)
    return float((d.min(2).mean(1) + d.min(1).mean(1)).mean())


def chamfer_grad(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """d chamfer / d src of the oracle above."""
    src, tgt = src.astype(np.float64), tgt.astype(np.float64)
    b, n, _ = src.shape
    m = tgt.shape[1]
    d = ((src[:, :, None, :] - tgt[:, None, :, :]) ** 2).sum(-1)
    grad = np.zeros_like(src)
    for i in range(b):
        nn = d[i].argmin(1)
        grad[i] += 2 * (src[i] - tgt[i][nn]) / n
        back = d[i].argmin(0)  # for each target point, its nearest source point
        np.add.at(grad[i], back, 2 * (src[i][back] - tgt[i]) / m)
    return grad / b


def bce_logits(scores: np.ndarray, target: np.ndarray) -> float:
    s, t = scores.astype(np.float64), target.astype(np.float64)
    return float(np.mean(np.maximum(s, 0) - s * t + np.log1p(np.exp(-np.abs(s)))))


def bce_logits_grad(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-scores.astype(np.float64))) - target) / scores.size


# -- shapes ---------------------------------------------------------------------------------------------
def grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.linspace(-1, 1, size)
    return np.meshgrid(t, t, t, indexing="ij")


def sphere_voxels(size: int = 32, radius: float = 0.6) -> np.ndarray:
    x, y, z = grid(size)
    return (x ** 2 + y ** 2 + z ** 2 <= radius ** 2).astype(np.float32)


def box_voxels(size: int, half) -> np.ndarray:
    """Occupancy of an axis-aligned box of half sides `half` in the cube [-1, 1]^3."""
    x, y, z = grid(size)
    return ((np.abs(x) <= half[0]) & (np.abs(y) <= half[1]) & (np.abs(z) <= half[2])).astype(np.float32)


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    p, t = pred.astype(bool), target > 0.5
    return float((p & t).sum() / max(1, (p | t).sum()))


def sphere_points(n: int, radius: float, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return (radius * v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def box_points(n: int, half: np.ndarray, seed: int) -> np.ndarray:
    """Points on the surface of an axis-aligned box (half sides `half`)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 1, (n, 3))
    axis = rng.integers(0, 3, n)
    p[np.arange(n), axis] = np.sign(p[np.arange(n), axis])
    return (p * np.asarray(half)).astype(np.float32)


def icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    m = ico_sphere(level)
    return m.verts_list()[0].double().numpy(), m.faces_list()[0].numpy()


def flat_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A regular n x n grid of unit spacing in the plane z = 0, two triangles per square."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    verts = np.stack([i, j, np.zeros_like(i)], -1).reshape(-1, 3).astype(np.float64)
    a = (i[:-1, :-1] * n + j[:-1, :-1]).reshape(-1)
    faces = np.concatenate([np.stack([a, a + n, a + n + 1], 1), np.stack([a, a + n + 1, a + 1], 1)])
    return verts, faces


def interior(n: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return ((i > 0) & (i < n - 1) & (j > 0) & (j < n - 1)).reshape(-1)


def neighbours(n_verts: int, faces: np.ndarray) -> list[set[int]]:
    nb: list[set[int]] = [set() for _ in range(n_verts)]
    for f in faces:
        for k in range(3):
            nb[f[k]].update((int(f[(k + 1) % 3]), int(f[(k + 2) % 3])))
    return nb


def jacobi_smooth(verts: np.ndarray, faces: np.ndarray, steps: int, lam: float = 0.5) -> np.ndarray:
    nb = [sorted(s) for s in neighbours(len(verts), faces)]
    v = verts.copy()
    for _ in range(steps):
        mean = np.stack([v[s].mean(0) for s in nb])
        v = v + lam * (mean - v)
    return v


def rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


# -- the course's args ----------------------------------------------------------------------------------
def args(student: Student, kind: str, batch_size: int, n_points: int = 300) -> Handle:
    """train_model.py's args as the model sees them, with load_feat (inputs are (B, 512) features)."""
    argparse = sandbox_module(student, "argparse", "model")
    return student.call(argparse, "Namespace", ret="handle", type=kind, batch_size=batch_size, n_points=n_points,
                        device="cpu", load_feat=True, arch="resnet18", lr=4e-4, max_iter=10000, log_freq=1000,
                        num_workers=0, w_chamfer=1.0, w_smooth=0.1, save_freq=2000, load_checkpoint=False, vis_freq=1000)


def features(b: int, seed: int) -> np.ndarray:
    """(b, 512) stand-ins for ResNet-18 features (non-negative, like average-pooled ReLU outputs)."""
    return np.abs(np.random.default_rng(seed).normal(size=(b, 512))).astype(np.float32)
