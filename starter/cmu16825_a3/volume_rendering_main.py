"""Part A's training and rendering: the box of Q2 (and, with your NeRF, Q3).

    python volume_rendering_main.py --config-name=train_box   # Q2: fit the box, print its centre and sides
    python volume_rendering_main.py --config-name=box         # Q1.5: render the given box

The course's hydra yaml configs are the dicts in CONFIGS (turned into attribute objects by `to_config`).
The box images are data/box_views.npz: images (V, H, W, 3) in [0, 1] and each view's camera
(R (V, 3, 3), T (V, 3), focal (V,)), pytorch3d conventions.
"""
import argparse
import os

import numpy as np
import torch

from lite3d import PerspectiveCameras, look_at_view_transform
from implicit import implicit_dict
from ray_utils import get_pixels_from_image, get_random_pixels_from_image, get_rays_from_pixels, sample_images_at_xy
from renderer import renderer_dict
from sampler import sampler_dict

BOX = {"type": "box", "center": {"val": [0.0, 0.0, 0.0], "opt": True},
       "side_lengths": {"val": [1.75, 1.75, 1.75], "opt": True}}
CONFIGS = {
    "box": {
        "data": {"image_size": [64, 64]},
        "implicit_function": {"type": "sdf_volume", "sdf": {**BOX, "center": {"val": [0.0, 0.0, 0.0], "opt": False},
                                                             "side_lengths": {"val": [1.75, 1.75, 1.75], "opt": False}},
                              "feature": {"rainbow": True, "val": [1.0, 1.0, 1.0], "opt": False},
                              "alpha": {"val": 1.0, "opt": False}, "beta": {"val": 0.05, "opt": False}},
        "sampler": {"type": "stratified", "n_pts_per_ray": 64, "min_depth": 0.0, "max_depth": 5.0},
        "renderer": {"type": "volume", "chunk_size": 32768, "white_background": False},
    },
    "train_box": {
        "data": {"image_size": [32, 32], "path": "data/box_views.npz"},
        "implicit_function": {"type": "sdf_volume", "sdf": BOX,
                              "feature": {"rainbow": True, "val": [1.0, 1.0, 1.0], "opt": False},
                              "alpha": {"val": 1.0, "opt": False}, "beta": {"val": 0.05, "opt": False}},
        "sampler": {"type": "stratified", "n_pts_per_ray": 64, "min_depth": 0.0, "max_depth": 5.0},
        "renderer": {"type": "volume", "chunk_size": 32768, "white_background": False},
        "training": {"num_epochs": 40, "batch_size": 512, "lr": 0.02},
    },
}


def to_config(d):
    """A nested dict as objects with attributes (like the course's hydra configs)."""
    return argparse.Namespace(**{k: to_config(v) if isinstance(v, dict) else v for k, v in d.items()})


class Model(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.implicit_fn = implicit_dict[cfg.implicit_function.type](cfg.implicit_function)
        self.sampler = sampler_dict[cfg.sampler.type](cfg.sampler)
        self.renderer = renderer_dict[cfg.renderer.type](cfg.renderer)

    def forward(self, ray_bundle):
        return self.renderer(self.sampler, self.implicit_fn, ray_bundle)


def load_views(path):
    """[(image (1, H, W, 3), camera)] of the box views in `path`."""
    data = np.load(path)
    views = []
    for k in range(len(data["images"])):
        camera = PerspectiveCameras(focal_length=float(data["focal"][k]), R=torch.tensor(data["R"][k:k + 1]),
                                    T=torch.tensor(data["T"][k:k + 1]))
        views.append((torch.tensor(data["images"][k:k + 1]), camera))
    return views


def render_image(model, camera, image_size):
    """(H, W, 3) colours and (H, W, 1) depth of the whole image."""
    with torch.no_grad():
        xy_grid = get_pixels_from_image(image_size, camera)
        out = model(get_rays_from_pixels(xy_grid, image_size, camera))
    W, H = image_size
    return out["feature"].view(H, W, 3), out["depth"].view(H, W, 1)


def train(cfg):
    """Fit the model of `cfg` to the box views (Q2.2); returns the trained model."""
    model = Model(cfg)
    views = load_views(cfg.data.path)
    image_size = cfg.data.image_size
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr)
    for epoch in range(cfg.training.num_epochs):
        for image, camera in views:
            xy_grid = get_random_pixels_from_image(cfg.training.batch_size, image_size, camera)
            ray_bundle = get_rays_from_pixels(xy_grid, image_size, camera)
            rgb_gt = sample_images_at_xy(image, xy_grid)
            out = model(ray_bundle)

            # The loss: mean squared error between rendered and ground-truth colours
            # TODO Task 2.2: replace this raise with your code.
            raise NotImplementedError("Task 2.2: fill in the missing lines here")

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-name", default="train_box", choices=sorted(CONFIGS))
    args = parser.parse_args()
    cfg = to_config(CONFIGS[args.config_name])
    if args.config_name == "train_box":
        model = train(cfg)
        c = model.implicit_fn.sdf.center.detach().view(-1).tolist()
        s = model.implicit_fn.sdf.side_lengths.detach().view(-1).tolist()
        print("Box center: ({:.4f}, {:.4f}, {:.4f})".format(*c))
        print("Box side lengths: ({:.4f}, {:.4f}, {:.4f})".format(*s))
    else:
        R, T = look_at_view_transform(dist=3.0, elev=20.0, azim=30.0)
        image, depth = render_image(Model(cfg), PerspectiveCameras(focal_length=2.0, R=R, T=T), cfg.data.image_size)
        os.makedirs("images", exist_ok=True)
        np.save("images/part_1.npy", image.numpy())
        print("rendered images/part_1.npy:", tuple(image.shape), "depth range", float(depth.min()), float(depth.max()))


if __name__ == "__main__":
    main()
