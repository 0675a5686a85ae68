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
        # BEGIN SOLUTION 1.1
        self.point_mlp = nn.Sequential(
            nn.Conv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Conv1d(128, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )
        # END SOLUTION

    def forward(self, points):
        '''
        points: tensor of size (B, N, 3)
                , where B is batch size and N is the number of points per object (N=10000 by default)
        output: tensor of size (B, num_classes): one score per class (logits, log-probabilities or
                probabilities; the class is the argmax)
        '''
        # BEGIN SOLUTION 1.1
        x = self.point_mlp(points.transpose(1, 2))  # (B, 3, N) -> (B, 512, N)
        x = x.max(dim=2).values  # (B, 512): max over the points, whatever their order or number
        return self.head(x)  # (B, num_classes) logits
        # END SOLUTION


# ------ TO DO ------
class seg_model(nn.Module):
    def __init__(self, num_seg_classes=6):
        super(seg_model, self).__init__()
        # Per-point features, a global feature pooled over the points, and a per-point head on the two
        # concatenated.
        # BEGIN SOLUTION 2.1
        self.local_mlp = nn.Sequential(
            nn.Conv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
        )
        self.global_mlp = nn.Sequential(
            nn.Conv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Conv1d(128, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Conv1d(64 + 512, 128, 1), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Conv1d(128, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, num_seg_classes, 1),
        )
        # END SOLUTION

    def forward(self, points):
        '''
        points: tensor of size (B, N, 3)
                , where B is batch size and N is the number of points per object (N=10000 by default)
        output: tensor of size (B, N, num_seg_classes): one score per point and class
        '''
        # BEGIN SOLUTION 2.1
        local = self.local_mlp(points.transpose(1, 2))  # (B, 64, N)
        glob = self.global_mlp(local).max(dim=2, keepdim=True).values  # (B, 512, 1)
        x = torch.cat([local, glob.expand(-1, -1, local.shape[2])], dim=1)  # (B, 576, N)
        return self.head(x).transpose(1, 2)  # (B, N, num_seg_classes) logits
        # END SOLUTION
