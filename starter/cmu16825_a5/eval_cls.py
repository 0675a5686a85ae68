"""Given: test accuracy of a classification checkpoint, with the Q3 probes.

    python eval_cls.py --load_checkpoint best_model
    python eval_cls.py --num_points 1000              # Q3: fewer points per object
    python eval_cls.py --rot_angle 30 --rot_axis x    # Q3: rotated inputs (utils.rotate_points)

Pictures of the first --num_vis test objects (true and predicted class) go to --output_dir.
"""
import argparse
import os

import numpy as np
import torch

from models import cls_model
from utils import create_dir, rotate_points, viz_cls

CLASSES = ("chair", "vase", "lamp")


def create_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_cls_class", type=int, default=3)
    parser.add_argument("--num_points", type=int, default=10000, help="points per object (at most what the data has)")
    parser.add_argument("--rot_angle", type=float, default=0.0, help="degrees to rotate every test object by")
    parser.add_argument("--rot_axis", type=str, default="x")
    parser.add_argument("--load_checkpoint", type=str, default="best_model")
    parser.add_argument("--test_data", type=str, default="./data/cls/data_test.npy")
    parser.add_argument("--test_label", type=str, default="./data/cls/label_test.npy")
    parser.add_argument("--output_dir", type=str, default="./output")
    parser.add_argument("--num_vis", type=int, default=3)
    parser.add_argument("--exp_name", type=str, default="exp")
    return parser


if __name__ == "__main__":
    args = create_parser().parse_args()
    args.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    create_dir(args.output_dir)

    model = cls_model(num_classes=args.num_cls_class).to(args.device)
    path = "./checkpoints/cls/{}.pt".format(args.load_checkpoint)
    model.load_state_dict(torch.load(path, map_location=args.device))
    model.eval()
    print("successfully loaded checkpoint from {}".format(path))

    data = np.load(args.test_data)
    ind = np.random.choice(data.shape[1], min(args.num_points, data.shape[1]), replace=False)
    test_data = torch.from_numpy(data[:, ind, :])
    test_label = torch.from_numpy(np.load(args.test_label)).to(torch.long)
    if args.rot_angle:
        test_data = rotate_points(test_data, args.rot_angle, args.rot_axis)

    with torch.no_grad():
        pred_label = torch.cat([model(chunk.to(args.device)).argmax(dim=-1).cpu() for chunk in test_data.split(32)])
    test_accuracy = pred_label.eq(test_label).float().mean().item()
    print("test accuracy: {:.4f}".format(test_accuracy))

    for i in range(min(args.num_vis, len(test_data))):
        title = "true {} / predicted {}".format(CLASSES[test_label[i]], CLASSES[pred_label[i]])
        viz_cls(test_data[i], title, os.path.join(args.output_dir, "cls_{}_{}.png".format(args.exp_name, i)))
