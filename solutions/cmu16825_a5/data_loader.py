"""Given: the datasets of the two tasks, read from <main_dir>/<task>/data_{train,test}.npy and
label_{train,test}.npy.

cls: data (M, P, 3) float32 point clouds, labels (M,) in {0: chair, 1: vase, 2: lamp}.
seg: data (M, P, 3) float32 chairs, labels (M, P), one of 6 part labels per point.
(The course's download has P = 10000 points per object; the grader's procedural data has fewer.)
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class CustomDataSet(Dataset):
    """Point clouds and labels of one task and split, as tensors."""

    def __init__(self, args, train=True):
        split = "train" if train else "test"
        folder = os.path.join(args.main_dir, args.task)
        self.data = torch.from_numpy(np.load(os.path.join(folder, "data_{}.npy".format(split))))
        self.label = torch.from_numpy(np.load(os.path.join(folder, "label_{}.npy".format(split)))).to(torch.long)

    def __len__(self):
        return self.data.size(0)

    def __getitem__(self, idx):
        return self.data[idx], self.label[idx]


def get_data_loader(args, train=True):
    """A DataLoader over CustomDataSet(args, train), shuffled for training."""
    dataset = CustomDataSet(args=args, train=train)
    return DataLoader(dataset=dataset, batch_size=args.batch_size, shuffle=train, num_workers=args.num_workers)
