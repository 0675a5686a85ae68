"""COMP4423 Assignment 2, Task 5: volume rendering along rays.

C = sum_i T_i * alpha_i * c_i with alpha_i = 1 - exp(-sigma_i * delta_i) and
T_i = exp(-sum_{j<i} sigma_j * delta_j) (so T_0 = 1). In this assignment the last delta is 0.
"""
import matplotlib.pyplot as plt
import numpy as np


def volume_rendering(rgb, sigma, t_vals):
    """Composite samples along each ray into a pixel colour.

    Inputs:
        rgb: (..., N, 3) float, colour of each sample.
        sigma: (..., N) float, density of each sample (>= 0).
        t_vals: (..., N) or (N,) float, sorted sample depths.
    Returns:
        pixel_color: (..., 3) sum of weights * rgb over the samples.
        weights: (..., N) T_i * alpha_i.
        alpha: (..., N) opacity 1 - exp(-sigma_i * delta_i).
        transmittance: (..., N) exp(-sum_{j<i} sigma_j * delta_j); the first entry is exactly 1.
    """
    t_vals = np.broadcast_to(t_vals, sigma.shape)
    dists = np.diff(t_vals, axis=-1, append=t_vals[..., -1:])  # (..., N), last delta is 0
    # opacity of each sample  <- [Students: fill in the missing line]
    # optical depth accumulated before each sample (exclusive sum)  <- [Students: fill in the missing line]
    # contribution of each sample  <- [Students: fill in the missing line]
    # TODO Task 5.1: replace this raise with your code.
    raise NotImplementedError("Task 5.1: fill in the missing lines here")
    pixel_color = np.sum(weights[..., None] * rgb, axis=-2)  # (..., 3)
    return pixel_color, weights, alpha, transmittance


def visualize_volume_rendering(num_samples=50):
    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""
    t_vals = np.linspace(0.0, 1.0, num_samples)
    sigma = np.linspace(0.0, 5.0, num_samples)
    rgb = np.stack([np.linspace(0.0, 1.0, num_samples)] * 3, axis=-1)  # black to white
    pixel_color, weights, alpha, transmittance = volume_rendering(rgb, sigma, t_vals)

    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t_vals, alpha, color="tab:red")
    axes[0].set_ylabel("Opacity (alpha)")
    axes[1].plot(t_vals, transmittance, color="tab:blue")
    axes[1].set_ylabel("Transmittance T")
    axes[2].plot(t_vals, weights, color="tab:green")
    axes[2].set_ylabel("Weights")
    axes[2].set_xlabel("Depth t")
    fig.suptitle(f"Visualization of Volume Rendering Components (pixel = {np.round(pixel_color, 3)})")
    return fig


if __name__ == "__main__":
    visualize_volume_rendering()
    plt.show()
