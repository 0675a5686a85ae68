"""Q2.4's metric (given; do not edit): precision, recall and F1 of a predicted point set against the
ground truth's, at distance thresholds. The course's eval_model.py evaluates trained checkpoints on
the R2N2 test split with this function (thresholds 0.01 to 0.05, F1@0.05 reported)."""
import torch
from lite3d import knn_points

THRESHOLDS = [0.01, 0.02, 0.03, 0.04, 0.05]


def compute_sampling_metrics(pred_points, gt_points, thresholds=THRESHOLDS, eps=1e-8):
    """pred_points (B, P, 3), gt_points (B, G, 3) -> {"Precision@t", "Recall@t", "F1@t": (B,) in percent}:
    precision = share of predicted points within t of the ground truth, recall = share of ground-truth
    points within t of the prediction (Euclidean distances), F1 their harmonic mean."""
    pred_to_gt = knn_points(pred_points, gt_points, K=1).dists[..., 0].sqrt()  # (B, P)
    gt_to_pred = knn_points(gt_points, pred_points, K=1).dists[..., 0].sqrt()  # (B, G)
    metrics = {}
    for t in thresholds:
        precision = 100.0 * (pred_to_gt < t).float().mean(dim=1)
        recall = 100.0 * (gt_to_pred < t).float().mean(dim=1)
        metrics["Precision@%f" % t] = precision.cpu()
        metrics["Recall@%f" % t] = recall.cpu()
        metrics["F1@%f" % t] = ((2.0 * precision * recall) / (precision + recall + eps)).cpu()
    return metrics
