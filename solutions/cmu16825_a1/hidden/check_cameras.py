"""Hidden checks of the cameras: 1.2 (the dolly zoom's camera per field of view) and 4 (the relative
transforms of the four target images). Trusted code: the projections are computed here from the
camera's numbers, never by the student's objects."""
from __future__ import annotations

import math

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, as_array

DOLLY = "dolly_zoom"
TRANSFORMS = "camera_transforms"
FOVS = np.linspace(5.0, 120.0, 13)  # degrees, the handout's sweep


def _source_lines(student: Student, module: str, function: str, words: tuple[str, ...]) -> str:
    """The lines of a student's function that mention `words` (evidence for a TA); '' when unreadable."""
    try:
        if "torch" not in student.names(module) or function not in student.names(module):
            return ""
        inspect = student.call(module, "torch.sys.modules.get", "inspect", ret="handle")
        source = student.call(inspect, "getsource", student.get(module, function, ret="handle"))
    except Exception:  # noqa: BLE001 - evidence only: the review goes ahead without it
        return ""
    if not isinstance(source, str):
        return ""
    return "\n".join(ln.strip() for ln in source.splitlines() if any(w in ln for w in words))[:800]


def _dolly_cameras(student: Student) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R (n, 3, 3), T (n, 3), fov (n,)) of the student's camera at each field of view of the sweep."""
    if "dolly_zoom_camera" not in student.names(DOLLY):
        lines = _source_lines(student, DOLLY, "dolly_zoom", ("distance", "T =", "T="))
        raise NeedsReview("dolly_zoom.py has no dolly_zoom_camera(): the distance is computed inside dolly_zoom's "
                          "render loop (the course's layout); a TA reads it",
                          f"dolly_zoom's lines about the distance:\n{lines}" if lines else
                          f"names the file defines: {', '.join(sorted(student.names(DOLLY)))[:500]}")
    Rs, Ts, fovs = [], [], []
    for fov in FOVS:
        cam = student.call(DOLLY, "dolly_zoom_camera", float(fov), ret="handle")
        Rs.append(as_array(student.get(cam, "R"), "the camera's R").reshape(-1, 3, 3)[0])
        Ts.append(as_array(student.get(cam, "T"), "the camera's T").reshape(-1, 3)[0])
        fovs.append(as_array(student.get(cam, "fov"), "the camera's fov").reshape(-1)[0])
    return np.array(Rs), np.array(Ts), np.array(fovs)


@pytest.mark.item("1.2.1", weight=1, timeout=30, module=DOLLY)
def test_dolly_camera_looks_at_the_cow(student: Student) -> None:
    """each frame's camera keeps R = I and the field of view it was given, and sits on the +z axis in front of the cow"""
    R, T, fov = _dolly_cameras(student)
    if not np.allclose(R, np.eye(3), atol=1e-6):
        raise CheckFailed("the dolly zoom's camera is rotated", "R should stay the identity in every frame",
                          "only the translation changes along the sweep")
    if not np.allclose(fov, FOVS, rtol=1e-5):
        raise CheckFailed("the camera's field of view is not the frame's", f"asked for {FOVS[:3]} ..., got {fov[:3]} ...",
                          "pass the field of view in degrees to the camera, as the loop gives it")
    if not np.allclose(T[:, :2], 0.0, atol=1e-6) or not (T[:, 2] > 0).all():
        raise CheckFailed("the camera does not sit on the z axis in front of the cow",
                          f"T should be [[0, 0, distance]] with distance > 0; got for instance {T[np.argmin(T[:, 2])]}",
                          "T = [[0, 0, distance]]")


@pytest.mark.item("1.2.1", weight=3, timeout=30, module=DOLLY)
def test_dolly_subject_width_is_constant(student: Student) -> None:
    """the subject's projected width (f_ndc * w / distance) is the same in every frame"""
    _, T, _ = _dolly_cameras(student)
    d = T[:, 2]
    width = 1.0 / (d * np.tan(np.radians(FOVS) / 2))  # f_ndc / d, in units of the subject's width
    rel = np.abs(width / width[0] - 1.0)
    if rel.max() > 1e-6:
        hint = "the image's half-height at distance d is d tan(fov / 2): keep it constant"
        if np.allclose(d * np.tan(FOVS / 2), d[0] * np.tan(FOVS[0] / 2), rtol=1e-4):
            hint = "the field of view is in degrees; tan takes radians"
        elif np.allclose(d * np.tan(np.radians(FOVS)), d[0] * np.tan(np.radians(FOVS[0])), rtol=1e-4):
            hint = "the image spans the whole field of view, which is twice the angle from the optical axis to its edge"
        worst = int(np.argmax(rel))
        raise CheckFailed("the subject changes size along the dolly zoom",
                          f"its projected width at fov {FOVS[worst]:.1f} degrees differs from the first frame's by "
                          f"{100 * rel[worst]:.3g}% (tolerance 1e-4 %)", hint)


@pytest.mark.item("1.2.1", weight=2, timeout=30, module=DOLLY)
def test_dolly_distance_decreases_with_fov(student: Student) -> None:
    """the camera moves towards the subject as the field of view widens"""
    _, T, _ = _dolly_cameras(student)
    d = T[:, 2]
    if not (np.diff(d) < 0).all():
        k = int(np.argmax(np.diff(d) >= 0))
        raise CheckFailed("the distance does not decrease as the field of view widens",
                          f"from {FOVS[k]:.1f} to {FOVS[k + 1]:.1f} degrees it goes from {d[k]:.4g} to {d[k + 1]:.4g}",
                          "a wider view must come closer to keep the subject's size")


# -- 4: relative camera transforms ------------------------------------------------------------------
def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {"z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])}[axis]


T0 = np.array([0.0, 0.0, 3.0])
# The extrinsics (R, T) of each target image (R = R_rel @ I, T = R_rel @ T0 + T_rel), written as the final pose.
TARGETS = {
    "rolled in the image plane": (_rot("z", -90), _rot("z", -90) @ T0),
    "moved away": (np.eye(3), np.array([0.0, 0.0, 5.0])),
    "shifted sideways and up": (np.eye(3), np.array([0.5, -0.5, 3.0])),
    "seen from the side": (_rot("y", 90), np.array([0.0, 0.0, 3.0])),
}


def _answers(student: Student) -> list[tuple[np.ndarray, np.ndarray]]:
    if "relative_transforms" not in student.names(TRANSFORMS):
        written = student.answers.get("4.2") or student.answers.get("report") or ""
        raise NeedsReview("camera_transforms.py has no relative_transforms(): the answers are in the report only; "
                          "a TA reads them", f"the written answer (start): {written[:600]}" if written else "no written answer found")
    got = student.call(TRANSFORMS, "relative_transforms")
    if not isinstance(got, (list, tuple)) or len(got) != 4:
        raise CheckFailed("relative_transforms() should return four (R_relative, T_relative) pairs",
                          f"got {type(got).__name__}{f' of length {len(got)}' if isinstance(got, (list, tuple)) else ''}")
    pairs = []
    for n, pair in enumerate(got):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise CheckFailed(f"answer {n + 1} should be a pair (R_relative, T_relative)")
        R = as_array(pair[0], f"R_relative of answer {n + 1}").reshape(3, 3)
        T = as_array(pair[1], f"T_relative of answer {n + 1}").reshape(3)
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or abs(np.linalg.det(R) - 1) > 1e-5:
            raise CheckFailed(f"R_relative of answer {n + 1} is not a rotation", "R R^T = I and det R = 1 do not hold")
        pairs.append((R, T))
    return pairs


@pytest.mark.item("4.1", weight=1.5, timeout=30, module=TRANSFORMS)
@pytest.mark.parametrize("view", list(TARGETS), ids=[f"view{n}" for n in range(1, 5)])
def test_relative_transform_gives_target_view(student: Student, view: str) -> None:
    """one of the four answers gives the camera of this target image (R = R_rel R_0, T = R_rel T_0 + T_rel)"""
    R_star, T_star = TARGETS[view]
    pairs = _answers(student)
    for R, T in pairs:
        if np.allclose(R, R_star, atol=1e-5) and np.allclose(R @ T0 + T, T_star, atol=1e-5):
            return
    hint = "each answer must reproduce one target image exactly; the same rotation can need a different translation"
    for R, T in pairs:
        if np.allclose(R, R_star, atol=1e-5) and np.allclose(R @ (T0 + T), T_star, atol=1e-5):
            hint = "T_relative is added after R_relative rotates T_0: T = R_relative @ T_0 + T_relative"
    raise CheckFailed(f"no answer gives the target image {view}", "", hint)
