"""Adversarial cases aimed at the hidden checks' blind spots (issue 12, "unearned marks", COMP4423).

Each case is a submission that looks right to a check that believes the student's own data: arrays
of the right shape holding NaN, figures drawn from NaN. Student ids 74000000a..74999999a. Attacks on
Task 1 and Task 6 (torch models, training) are too slow for this one-batch corpus: they live in
tests/test_task1.py and tests/test_task6.py.
"""
from __future__ import annotations

from .cases import Case, Context, with_files, zero

# Task 4: every sample NaN, of the right shape (num_samples,). NaN compares False with everything, so
# a check written as `if bad: fail` passes it unless the values are rejected when read.
NAN_SAMPLES = '''import numpy as np


def generate_rays(H, W, focal, camera_pose):
    i, j = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64), indexing="xy")
    dirs = np.stack([(i - W * 0.5) / focal, -(j - H * 0.5) / focal, -np.ones_like(i)], axis=-1)
    rays_d = dirs @ np.asarray(camera_pose, dtype=np.float64)[:3, :3].T
    return np.broadcast_to(np.asarray(camera_pose, dtype=np.float64)[:3, 3], rays_d.shape).copy(), rays_d


def uniform_sampling(rays_o, rays_d, near, far, num_samples):
    t_vals = np.linspace(near, far, num_samples)
    return rays_o[..., None, :] + rays_d[..., None, :] * t_vals[:, None], t_vals


def stratified_sampling(near, far, num_samples):
    return np.full(num_samples, np.nan)


def visualize_sampling(near, far, num_samples):
    import matplotlib.pyplot as plt

    rays_o, rays_d = generate_rays(1, 1, 1.0, np.eye(4))
    _, uniform = uniform_sampling(rays_o[0, 0], rays_d[0, 0], near, far, num_samples)
    strat = stratified_sampling(near, far, num_samples)
    fig, ax = plt.subplots()
    ax.scatter(uniform, np.zeros_like(uniform), marker="|")
    ax.scatter(strat, np.ones_like(strat), marker="|")
    return fig
'''

# The same, but only one bin in eight is NaN and the others are a correct stratified draw.
SOME_NAN = '''import numpy as np


def stratified_sampling(near, far, num_samples):
    edges = np.linspace(near, far, num_samples + 1)
    t = np.random.uniform(edges[:-1], edges[1:])
    t[::8] = np.nan
    return t
'''


def cases(ctx: Context) -> list[Case]:
    return [
        # 4.2 keeps the marks of its uniform row (drawn right); nothing else is earned
        Case("74000000a", "stratified samples all NaN, right shape", with_files(Raysampling_py=NAN_SAMPLES),
             marks=zero("Raysampling.py", **{"4_2": 3.0}), reason="NaN"),
        Case("74000001a", "one stratified sample in eight is NaN",
             with_files(Raysampling_py=SOME_NAN + "\n\n" + _given_tail()),
             marks=zero("Raysampling.py", **{"4_2": 3.0}), reason="NaN"),
    ] + more_cases(ctx)


def _given_tail() -> str:
    """The reference's ray generation, uniform sampling and visualisation, without its stratified_sampling."""
    text = NAN_SAMPLES.replace('''def stratified_sampling(near, far, num_samples):
    return np.full(num_samples, np.nan)


''', "")
    return text.replace("import numpy as np\n\n\n", "", 1)


# Task 5: NaN everywhere, of the right shapes: the figure's three panels of num_samples points were
# counted as the right layout although nothing is drawn.
NAN_RENDERING = '''import numpy as np


def volume_rendering(rgb, sigma, t_vals):
    nan = np.full(np.shape(sigma), np.nan)
    return np.full(np.shape(sigma)[:-1] + (3,), np.nan), nan, nan, nan


def visualize_volume_rendering(num_samples=50):
    import matplotlib.pyplot as plt

    t = np.linspace(0.0, 1.0, num_samples)
    _, w, a, tr = volume_rendering(np.ones((num_samples, 3)), np.linspace(0.0, 5.0, num_samples), t)
    fig, axes = plt.subplots(1, 3)
    for ax, y, name in zip(axes, (a, tr, w), ("opacity", "transmittance", "weights")):
        ax.plot(t, y)
        ax.set_title(name)
    return fig
'''


def more_cases(ctx: Context) -> list[Case]:
    return [Case("74000002a", "volume rendering all NaN, right shapes", with_files(vr_py=NAN_RENDERING),
                 marks=zero("volume_rendering.py"), reason="NaN")]
