"""COMP4423 Assignment 2, Task 4: ray sampling for NeRF.

Conventions (tiny-NeRF): the camera looks down -z, x points right and y up; a pixel (i, j)
(column i, row j) has direction ((i - W/2)/focal, -(j - H/2)/focal, -1) in camera space, with no
half-pixel offset. Directions are NOT normalised.
"""
import matplotlib.pyplot as plt
import numpy as np


def generate_rays(H, W, focal, camera_pose):
    """Rays through every pixel of an H x W image.

    Inputs:
        H, W: image height and width in pixels (int).
        focal: focal length in pixels (float).
        camera_pose: (4, 4) camera-to-world matrix.
    Returns:
        rays_o: (H, W, 3) float, the camera centre repeated for every pixel.
        rays_d: (H, W, 3) float, world-space directions, not normalised.
    """
    i, j = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64), indexing="xy")
    dirs = np.stack([(i - W * 0.5) / focal, -(j - H * 0.5) / focal, -np.ones_like(i)], axis=-1)  # (H, W, 3)
    rays_d = dirs @ np.asarray(camera_pose, dtype=np.float64)[:3, :3].T  # (H, W, 3)
    rays_o = np.broadcast_to(np.asarray(camera_pose, dtype=np.float64)[:3, 3], rays_d.shape).copy()
    return rays_o, rays_d


def uniform_sampling(rays_o, rays_d, near, far, num_samples):
    """Evenly spaced samples along each ray.

    Inputs:
        rays_o, rays_d: (..., 3) ray origins and directions.
        near, far: depth range (float), near < far.
        num_samples: number of samples per ray (int).
    Returns:
        pts: (..., num_samples, 3) sample positions o + t d.
        t_vals: (num_samples,) depths, linspace(near, far, num_samples).
    """
    t_vals = np.linspace(near, far, num_samples)  # (N,)
    pts = rays_o[..., None, :] + rays_d[..., None, :] * t_vals[:, None]  # (..., N, 3)
    return pts, t_vals


def stratified_sampling(near, far, num_samples):
    """One random depth in each of num_samples equal bins of [near, far].

    Inputs:
        near, far: depth range (float), near < far.
        num_samples: number of bins and of samples (int, >= 1).
    Returns:
        t_samples: (num_samples,) float64, sorted; sample i lies uniformly at random inside bin i,
        [near + i*w, near + (i+1)*w] with bin width w = (far - near) / num_samples, independently
        of the other bins. Use np.random.
    """
    # Step 1: bin edges (given)
    t_vals = np.linspace(near, far, num_samples + 1)  # (N+1,)
    # Step 2: compute the midpoint of every bin  <- [Students: fill in the missing line]
    # Step 3: uniform random jitter inside each bin, scaled by the bin width  <- [Students: fill in the missing line]
    # Step 4: final stratified samples  <- [Students: fill in the missing line]
    # TODO Task 4.1: replace this raise with your code.
    raise NotImplementedError("Task 4.1: fill in the missing lines here")
    return t_samples


def visualize_sampling(near, far, num_samples):
    """Scatter uniform samples at y=0 and stratified samples at y=1 along one ray."""
    _, uniform_samples = uniform_sampling(near, far, num_samples)
    stratified_samples = stratified_sampling(near, far, num_samples)

    fig, ax = plt.subplots(figsize=(10, 2.5))
    ax.scatter(uniform_samples, np.zeros_like(uniform_samples), color="blue", marker="|", s=200, label="Uniform Sampling")
    ax.scatter(stratified_samples, np.ones_like(stratified_samples), color="green", marker="|", s=200, label="Stratified Sampling")
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["uniform", "stratified"])
    ax.set_xlabel("Sampling Depth Along Ray")
    ax.set_title("Comparison of Uniform vs. Stratified Sampling")
    ax.legend(loc="upper right")
    return fig


if __name__ == "__main__":
    visualize_sampling(2.0, 6.0, 16)
    plt.show()
