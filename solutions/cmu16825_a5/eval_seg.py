"""Given: per-point test accuracy of a segmentation checkpoint, with the Q3 probes.

    python eval_seg.py --load_checkpoint best_model --i 0
    python eval_seg.py --num_points 1000 --rot_angle 30

Pictures of object --i (ground truth and prediction, coloured by part) go to --output_dir.
"""
import argparse
import os

import numpy as np
import torch

from models import seg_model
from utils import create_dir, rotate_points, viz_seg


def create_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_seg_class", type=int, default=6)
    parser.add_argument("--num_points", type=int, default=10000, help="points per object (at most what the data has)")
    parser.add_argument("--rot_angle", type=float, default=0.0, help="degrees to rotate every test object by")
    parser.add_argument("--rot_axis", type=str, default="x")
    parser.add_argument("--load_checkpoint", type=str, default="best_model")
    parser.add_argument("--i", type=int, default=0, help="index of the object to visualise")
    parser.add_argument("--test_data", type=str, default="./data/seg/data_test.npy")
    parser.add_argument("--test_label", type=str, default="./data/seg/label_test.npy")
    parser.add_argument("--output_dir", type=str, default="./output")
    parser.add_argument("--exp_name", type=str, default="exp")
    return parser


if __name__ == "__main__":
    args = create_parser().parse_args()
    args.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    create_dir(args.output_dir)

    model = seg_model(num_seg_classes=args.num_seg_class).to(args.device)
    path = "./checkpoints/seg/{}.pt".format(args.load_checkpoint)
    model.load_state_dict(torch.load(path, map_location=args.device))
    model.eval()
    print("successfully loaded checkpoint from {}".format(path))

    data = np.load(args.test_data)
    ind = np.random.choice(data.shape[1], min(args.num_points, data.shape[1]), replace=False)
    test_data = torch.from_numpy(data[:, ind, :])
    test_label = torch.from_numpy(np.load(args.test_label)[:, ind]).to(torch.long)
    if args.rot_angle:
        test_data = rotate_points(test_data, args.rot_angle, args.rot_axis)

    with torch.no_grad():
        pred_label = torch.cat([model(chunk.to(args.device)).argmax(dim=-1).cpu() for chunk in test_data.split(32)])
    test_accuracy = pred_label.eq(test_label).float().mean().item()
    print("test accuracy: {:.4f}".format(test_accuracy))

    i = args.i
    object_accuracy = pred_label[i].eq(test_label[i]).float().mean().item()
    viz_seg(test_data[i], test_label[i], os.path.join(args.output_dir, "gt_{}_{}.png".format(args.exp_name, i)), "ground truth")
    viz_seg(test_data[i], pred_label[i], os.path.join(args.output_dir, "pred_{}_{}.png".format(args.exp_name, i)),
            "prediction, accuracy {:.3f}".format(object_accuracy))
