"""lite3d, the plain-torch stand-in for pytorch3d: are its conventions pytorch3d's (row-vector R, +X left
and +Y up, screen pixels from the top-left corner), does `import pytorch3d` reach it in the sandbox's
environment, and do the rubric's `libraries` and `given` keys put it and the course's files where a
student's code finds them?"""
from __future__ import annotations

import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from grader import intake, spec, strip
from grader.lite3d import (FoVPerspectiveCameras, PerspectiveCameras, Transform3d, euler_angles_to_matrix,
                           look_at_view_transform, matrix_to_quaternion, ndc_grid, quaternion_to_matrix)
from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_new_assignment import _build  # noqa: E402  (README's walkthrough assignment)


@pytest.mark.parametrize("dist,elev,azim", [(3.0, 0.0, 0.0), (2.5, 30.0, 45.0), (4.0, -20.0, 200.0)])
def test_look_at_puts_the_target_at_the_centre_with_up_up_and_right_right(dist, elev, azim):
    """Does a look-at camera sit at the spherical position, see its target at NDC (0, 0), see world +Y above
    the centre and its own right-hand side at negative NDC x (pytorch3d's +X left)?"""
    R, T = look_at_view_transform(dist, elev, azim)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(1, 3, 3), atol=1e-6)
    assert torch.linalg.det(R).item() == pytest.approx(1.0, abs=1e-6)
    cam = PerspectiveCameras(focal_length=1.5, R=R, T=T)
    e, a = math.radians(elev), math.radians(azim)
    eye = torch.tensor([dist * math.cos(e) * math.sin(a), dist * math.sin(e), dist * math.cos(e) * math.cos(a)])
    assert torch.allclose(cam.get_camera_center()[0], eye, atol=1e-5)
    ndc = cam.transform_points(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0]]))
    assert torch.allclose(ndc[0, :2], torch.zeros(2), atol=1e-6) and ndc[1, 1] > 0
    forward = -eye / eye.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0]))
    assert cam.transform_points((0.3 * right / right.norm())[None])[0, 0] < 0  # +x_ndc is the image's left


def test_row_vector_rotation_and_view_depth():
    """Is X_view = X_world @ R + T, so the column-vector world-to-view rotation is R^T, and is a point in
    front of the camera at positive view z?"""
    R, T = look_at_view_transform(3.0, 10.0, 40.0)
    cam = PerspectiveCameras(R=R, T=T)
    p = torch.tensor([[0.2, -0.1, 0.4]])
    view = cam.get_world_to_view_transform().transform_points(p)
    assert torch.allclose(view, p @ R[0] + T[0], atol=1e-6)
    assert torch.allclose(view[0], R[0].T @ p[0] + T[0], atol=1e-6)
    assert view[0, 2] > 0


@pytest.mark.parametrize("in_ndc", [True, False], ids=["ndc", "screen"])
def test_unproject_inverts_projection(in_ndc):
    """Does unproject_points(x, y, depth) give back the world point that projects to (x, y) at that depth,
    for cameras in NDC and in screen space (pixels)?"""
    R, T = look_at_view_transform(4.0, 20.0, -30.0)
    if in_ndc:
        cam = PerspectiveCameras(focal_length=((1.2, 1.4),), principal_point=((0.1, -0.05),), R=R, T=T)
    else:
        cam = PerspectiveCameras(focal_length=((90.0, 80.0),), principal_point=((30.0, 22.0),), R=R, T=T,
                                 in_ndc=False, image_size=((48, 64),))
    pts = torch.tensor([[0.1, 0.2, -0.3], [-0.4, 0.0, 0.25], [0.0, 0.0, 0.0]])
    proj = cam.transform_points(pts)
    depth = cam.get_world_to_view_transform().transform_points(pts)[:, 2:]
    back = cam.unproject_points(torch.cat([proj[:, :2], depth], -1), world_coordinates=True)
    assert torch.allclose(back, pts, atol=1e-4)
    ndc = cam.transform_points_ndc(pts)
    back_ndc = cam.unproject_points(torch.cat([ndc[:, :2], depth], -1), world_coordinates=True, from_ndc=True)
    assert torch.allclose(back_ndc, pts, atol=1e-4)


def test_screen_pixels_and_ndc_grid_agree():
    """Is a pixel centre of ndc_grid (H, W) at screen (j + 0.5, i + 0.5), the shorter side spanning [-1, 1]
    and the top-left pixel at +x, +y?"""
    h, w = 4, 6
    grid = ndc_grid((h, w))
    assert grid[0, 0, 0] > 0 and grid[0, 0, 1] > 0 and grid[-1, -1, 0] < 0
    assert grid[..., 1].abs().max().item() == pytest.approx(1 - 1 / h)
    cam = PerspectiveCameras(focal_length=1.0)
    pts = torch.cat([grid.reshape(-1, 2) * 2.0, torch.full((h * w, 1), 2.0)], -1)  # depth 2 in front of R = I
    screen = cam.transform_points_screen(pts, image_size=(h, w))
    jj, ii = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy")
    assert torch.allclose(screen[:, 0], jj.reshape(-1).float() + 0.5, atol=1e-5)
    assert torch.allclose(screen[:, 1], ii.reshape(-1).float() + 0.5, atol=1e-5)


def test_fov_camera_maps_the_half_angle_to_the_border():
    """Does a 90-degree FoV camera put a point at 45 degrees off-axis on the NDC border, and unproject it back?"""
    cam = FoVPerspectiveCameras(fov=90.0)
    p = torch.tensor([[2.0, 0.0, 2.0], [0.0, -1.0, 1.0]])
    ndc = cam.transform_points(p)
    assert torch.allclose(ndc[:, :2], torch.tensor([[1.0, 0.0], [0.0, -1.0]]), atol=1e-6)
    assert torch.allclose(cam.unproject_points(torch.cat([ndc[:, :2], p[:, 2:]], -1)), p, atol=1e-5)


def test_rotations():
    """Do quaternions (w, x, y, z) and Euler angles give the column-vector rotations, and round-trip?"""
    qz = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    assert torch.allclose(quaternion_to_matrix(qz) @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(euler_angles_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]), "XYZ"), quaternion_to_matrix(qz), atol=1e-6)
    q = torch.nn.functional.normalize(torch.randn(64, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert torch.allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-5)
    t = Transform3d(torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(1)) + 3 * torch.eye(4))
    p = torch.randn(2, 5, 3)
    assert torch.allclose(t.compose(t.inverse()).transform_points(p), p, atol=1e-4)


def test_import_pytorch3d_in_the_sandbox_environment_reaches_lite3d():
    """In the sandbox's environment (the grader's folder first on sys.path, compat installed) does a course
    file's `from pytorch3d.renderer import ...` get lite3d's cameras, and a renderer lite3d lacks import
    but fail loudly when used?"""
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]\n"
        "import compat; compat.install()\n"
        "from pytorch3d.renderer import PerspectiveCameras, look_at_view_transform, MeshRenderer\n"
        "from pytorch3d.transforms import quaternion_to_matrix\n"
        "from pytorch3d.structures import Meshes\n"
        "import lite3d\n"
        "assert PerspectiveCameras is lite3d.PerspectiveCameras and Meshes is lite3d.Meshes\n"
        "import pytorch3d\n"
        "assert pytorch3d.structures.Meshes is Meshes and pytorch3d.renderer.look_at_view_transform\n"
        "R, T = look_at_view_transform(2.0, 0.0, 0.0)\n"
        "try:\n    MeshRenderer(rasterizer=None)\nexcept NotImplementedError as e:\n    print('LOUD', e)\n"
        "print(compat.adaptations())\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(ROOT / "grader")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOUD pytorch3d.renderer.MeshRenderer is not available" in proc.stdout
    assert "answered by the grader's lite3d" in proc.stdout


def _rubric_with(folder: Path, extra: str) -> None:
    rubric = folder / "rubric.toml"
    rubric.write_text(rubric.read_text().replace("[naming]", extra + "\n[naming]", 1))


def test_libraries_go_into_the_starter_and_given_files_fill_a_zip(tmp_path):
    """Does `libraries = ["lite3d"]` copy lite3d into the starter, and does a course file listed in `given`
    go beside the student's module when the zip lacks it (and not when the zip has its own)?"""
    folder = _build(tmp_path)
    (folder / "data_utils.py").write_text("SCALE = 2\n")
    _rubric_with(folder, 'libraries = ["lite3d"]\ngiven = ["data_utils.py"]\n')
    a = spec.load(str(folder))
    assert a.libraries == ("lite3d",) and a.given == ("data_utils.py",)
    out = tmp_path / "starter"
    strip.starter_for(a, out)
    assert (out / "lite3d" / "cameras.py").read_text() == (ROOT / "grader" / "lite3d" / "cameras.py").read_text()
    for own_copy in (False, True):
        z = tmp_path / f"PSNR_1_Ada{int(own_copy)}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("hw/metrics.py", (folder / "metrics.py").read_text())
            if own_copy:
                zf.writestr("hw/data_utils.py", "SCALE = 3\n")
        box = tmp_path / f"box{int(own_copy)}"
        box.mkdir()
        sub = intake.Submission(z, "1", "Ada", "")
        intake.extract(sub, a, box)
        assert (box / "hw" / "data_utils.py").read_text() == ("SCALE = 3\n" if own_copy else "SCALE = 2\n")
        assert any("given files" in n for n in sub.notes) != own_copy


@pytest.mark.parametrize("extra,key", [('libraries = ["nope"]', "libraries"), ('given = ["missing.py"]', "given")])
def test_a_wrong_library_or_given_file_is_one_clear_line(tmp_path, extra, key):
    """Does a rubric naming a library the grader lacks, or a given file that is not there, stop with one line
    naming the file and the key?"""
    folder = _build(tmp_path)
    _rubric_with(folder, extra)
    with pytest.raises(ValueError, match=rf"rubric.toml: \[assignment\] {key}"):
        spec.load(str(folder))


def test_a_given_file_in_a_folder_goes_where_the_course_layout_puts_it(tmp_path):
    """With `given = ["starter/utils.py"]` and the student's modules in starter/ (at the zip's root or inside
    the assignment's folder), does utils.py go into that same starter/ folder, not starter/starter/?"""
    folder = _build(tmp_path)
    (folder / "starter").mkdir()
    (folder / "starter" / "utils.py").write_text("SCALE = 2\n")
    _rubric_with(folder, 'given = ["starter/utils.py"]\n')
    a = spec.load(str(folder))
    for n, where in enumerate(["starter/metrics.py", "assignment1/starter/metrics.py", "metrics.py"]):
        z = tmp_path / f"PSNR_1_Ada{n}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr(where, (folder / "metrics.py").read_text())
        box = tmp_path / f"layout{n}"
        box.mkdir()
        intake.extract(intake.Submission(z, "1", "Ada", ""), a, box)
        expected = box / Path(where).parent / "utils.py" if "starter" in where else box / "starter" / "utils.py"
        assert expected.read_text() == "SCALE = 2\n", sorted(str(p.relative_to(box)) for p in box.rglob("*"))


def test_mesh_laplacian_and_in_place_offsets():
    """Does laplacian_packed give rows summing to 0 (each vertex minus the mean of its neighbours), zero on
    a vertex that is the mean of its neighbours, and does offset_verts_ move the mesh in place?"""
    from grader.lite3d import Meshes, ico_sphere

    sphere = ico_sphere(1)
    lap = sphere.laplacian_packed()
    assert torch.allclose(torch.sparse.sum(lap, 1).to_dense(), torch.zeros(42), atol=1e-6)
    flat = Meshes([torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])],
                  [torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])])
    assert torch.allclose((flat.laplacian_packed() @ flat.verts_packed())[0], torch.zeros(3), atol=1e-6)
    before = sphere.verts_packed().clone()
    assert sphere.offset_verts_(torch.full((42, 3), 0.5)) is sphere
    assert torch.allclose(sphere.verts_packed(), before + 0.5)
