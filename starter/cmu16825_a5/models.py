"""PointNet models for Q1 (classification) and Q2 (segmentation).

Both take a batch of point clouds `points` of shape (B, N, 3), float32, where N, the number of points per
object, may be any value (10000 in the course's data, fewer in robustness experiments). No input or
feature transform (T-Net) is needed. Keep the class names and constructor arguments: train.py, eval_cls.py
and eval_seg.py build the models as `cls_model()` and `seg_model()`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


# ------ TO DO ------
class cls_model(nn.Module):
    def __init__(self, num_classes=3):
        super(cls_model, self).__init__()
        # Shared per-point MLP (the same weights for every point), then a symmetric function over the points
        # and a classifier on the global feature.
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")

    def forward(self, points):
        '''
        points: tensor of size (B, N, 3)
                , where B is batch size and N is the number of points per object (N=10000 by default)
        output: tensor of size (B, num_classes): one score per class (logits, log-probabilities or
                probabilities; the class is the argmax)
        '''
        # TODO Task 1.1: replace this raise with your code.
        raise NotImplementedError("Task 1.1: fill in the missing lines here")


# ------ TO DO ------
class seg_model(nn.Module):
    def __init__(self, num_seg_classes=6):
        super(seg_model, self).__init__()
        # Per-point features, a global feature pooled over the points, and a per-point head on the two
        # concatenated.
        # TODO Task 2.1: replace this raise with your code.
        raise NotImplementedError("Task 2.1: fill in the missing lines here")

    def forward(self, points):
        '''
        points: tensor of size (B, N, 3)
                , where B is batch size and N is the number of points per object (N=10000 by default)
        output: tensor of size (B, N, num_seg_classes): one score per point and class
        '''
        # TODO Task 2.1: replace this raise with your code.
        raise NotImplementedError("Task 2.1: fill in the missing lines here")
