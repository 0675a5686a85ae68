"""Hidden checks for Q3's first experiment, the rotation helper (item 3.1.1, utils.py). Trusted code.

rotation_matrix(angle_deg, axis) must be a proper rotation (orthonormal, det +1) that keeps its axis and
turns by the angle given in degrees; rotate_points must turn every point of (B, N, 3) or (N, 3) by it and
leave the points as they are at 0 degrees (so the 0-degree accuracy is Q1's). Either sense of turning is
accepted (the experiment's accuracy does not depend on it). A submission without these helpers (another
experiment, or the helper under another name) goes to a TA: the runner reports the missing name as review.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks import CheckFailed, Student, Tensor, as_array, expect_shape

MOD = "utils"
AXES = ("x", "y", "z")
CASES = [(30.0, "x"), (-45.0, "y"), (60.0, "z"), (90.0, "x"), (135.0, "z"), (10.0, "y")]


def oracle(angle_deg: float, axis: str) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    i = AXES.index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    r = np.eye(3)
    r[j, j], r[j, k], r[k, j], r[k, k] = c, -s, s, c
    return r


def matrix(student: Student, angle: float, axis: str) -> np.ndarray:
    got = as_array(student.call(MOD, "rotation_matrix", angle, axis), f"rotation_matrix({angle:g}, {axis!r})")
    expect_shape(got, (3, 3), f"rotation_matrix({angle:g}, {axis!r})")
    return got


@pytest.mark.item("3.1.1", weight=1, timeout=30, module=MOD)
def test_rotation_is_proper(student: Student) -> None:
    """rotation_matrix is orthonormal with determinant +1"""
    for angle, axis in CASES:
        r = matrix(student, angle, axis)
        err = float(np.abs(r.T @ r - np.eye(3)).max())
        if err > 1e-5:
            raise CheckFailed(f"rotation_matrix({angle:g}, {axis!r}) is not orthonormal",
                              f"max |R^T R - I| = {err:.3g}", "each row and column a unit vector, at right angles")
        det = float(np.linalg.det(r))
        if abs(det - 1) > 1e-5:
            raise CheckFailed(f"rotation_matrix({angle:g}, {axis!r}) is not a proper rotation", f"det R = {det:.4f}",
                              "a determinant of -1 is a reflection: check the signs of the sine terms")


@pytest.mark.item("3.1.1", weight=1, timeout=30, module=MOD)
def test_rotation_angle_and_axis(student: Student) -> None:
    """rotation_matrix keeps its axis fixed and turns by the angle given in degrees"""
    for angle, axis in CASES:
        r = matrix(student, angle, axis)
        e = np.eye(3)[AXES.index(axis)]
        if np.abs(r @ e - e).max() > 1e-5:
            raise CheckFailed(f"rotation_matrix({angle:g}, {axis!r}) moves its own axis",
                              f"R e_{axis} = {np.round(r @ e, 4).tolist()}", "the rotation is about the named axis")
        turned = float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
        if abs(turned - abs(angle)) > 1e-3:
            raise CheckFailed(f"rotation_matrix({angle:g}, {axis!r}) turns by the wrong angle",
                              f"it turns by {turned:.3f} degrees", "the angle is given in degrees")


@pytest.mark.item("3.1.1", weight=1, timeout=30, module=MOD)
def test_rotate_points(student: Student) -> None:
    """rotate_points turns every point of a batch about the axis, and 0 degrees leaves the points unchanged"""
    rng = np.random.default_rng(31)
    x = rng.normal(size=(3, 50, 3)).astype(np.float32)
    same = as_array(student.call(MOD, "rotate_points", Tensor(x), 0.0, "y"), "rotate_points(points, 0)")
    expect_shape(same, x.shape, "rotate_points(points, 0)", "keep the input's shape (B, N, 3)")
    if np.abs(same - x).max() > 1e-6:
        raise CheckFailed("rotate_points by 0 degrees changes the points", f"max change {np.abs(same - x).max():.3g}")
    for angle, axis in CASES[:3]:
        for pts in (x, x[0]):
            got = as_array(student.call(MOD, "rotate_points", Tensor(pts), angle, axis),
                           f"rotate_points(points of shape {pts.shape}, {angle:g}, {axis!r})")
            expect_shape(got, pts.shape, f"rotate_points(points of shape {pts.shape}, {angle:g}, {axis!r})",
                         "keep the input's shape")
            err = min(np.abs(got - pts @ oracle(sign * angle, axis).T).max() for sign in (1, -1))
            if err > 1e-4:
                raise CheckFailed(f"rotate_points(points of shape {pts.shape}, {angle:g}, {axis!r}) does not rotate "
                                  "each point about the axis by the angle", f"max error {err:.3g}",
                                  "each point is a row (x, y, z): multiply the rows by the rotation on the last axis")
