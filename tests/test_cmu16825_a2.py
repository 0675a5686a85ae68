"""Do CMU 16-825 A2's hidden checks give the reference full marks, the starter zero, take marks from the
plausible mistakes of /work/shared/TASKS.md section 12, and keep them for the correct alternatives?

Every variant is the reference with exact text edits (each must occur once, so a drifting reference
fails loudly); all of them, and the example zips, are graded in ONE `python -m grader grade` run.
A variant carries one mistake; its item must lose marks and every other automatic item keeps full marks.
"""
from __future__ import annotations

import csv
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from variants import apply_edits  # noqa: E402

from grader import spec  # noqa: E402

ASSIGNMENT = "cmu16825_a2"
SOLUTION = ROOT / "solutions" / ASSIGNMENT
STARTER = ROOT / "starter" / ASSIGNMENT
EXAMPLES = ROOT / "fixtures" / "examples" / ASSIGNMENT
MODULES = ("losses", "model")
RUBRIC = spec.load(ASSIGNMENT)
AUTO = [it.id for it in RUBRIC.items if it.graded_automatically]
MARKS = {it.id: it.marks for it in RUBRIC.items}

BCE = "return torch.nn.functional.binary_cross_entropy_with_logits(voxel_src, voxel_tgt.to(voxel_src.dtype))"
CHAMFER = """    src_to_tgt = knn_points(point_cloud_src, point_cloud_tgt, K=1).dists[..., 0]  # (B, N)
    tgt_to_src = knn_points(point_cloud_tgt, point_cloud_src, K=1).dists[..., 0]  # (B, N)
    loss_chamfer = (src_to_tgt.mean(dim=1) + tgt_to_src.mean(dim=1)).mean()"""
LAPLACIAN = 'loss_laplacian = mesh_laplacian_smoothing(mesh_src, method="uniform")'
# A hand-written uniform Laplacian (a correct alternative; its mistakes below are edits of it).
HAND_LAPLACIAN = """verts, edges = mesh_src.verts_packed(), mesh_src.edges_packed()
    i, j = torch.cat([edges[:, 0], edges[:, 1]]), torch.cat([edges[:, 1], edges[:, 0]])
    degree = torch.zeros(len(verts)).index_add_(0, i, torch.ones(len(i)))
    neighbour_sum = torch.zeros_like(verts).index_add(0, i, verts[j])
    loss_laplacian = (verts - neighbour_sum / degree[:, None]).norm(dim=1).mean()"""
VOX_OUT = "voxels_pred = torch.sigmoid(self.decoder(encoded_feat)).squeeze(1)  # b x 32 x 32 x 32"
POINT_OUT = "pointclouds_pred = self.decoder(encoded_feat).reshape(B, self.n_point, 3)  # b x n_points x 3"
MESH_OUT = "deform_vertices_pred = self.decoder(encoded_feat).reshape(B, self.n_verts, 3)  # b x V x 3"

# -- the plausible mistakes: (student id, module, edits, item that must lose marks) ---------------------
MISTAKES = [
    ("m11plainbce", "losses", [(BCE, "return torch.nn.functional.binary_cross_entropy(voxel_src, voxel_tgt)")], "1.1"),
    ("m11swapped", "losses", [(BCE, "return torch.nn.functional.binary_cross_entropy_with_logits(voxel_tgt.to(voxel_src.dtype), voxel_src)")], "1.1"),
    ("m11mse", "losses", [(BCE, "return ((torch.sigmoid(voxel_src) - voxel_tgt) ** 2).mean()")], "1.1"),
    ("m11clampbce", "losses", [(BCE, "return torch.nn.functional.binary_cross_entropy(voxel_src.clamp(0, 1), voxel_tgt)")], "1.1"),
    ("m12onedir", "losses", [("(src_to_tgt.mean(dim=1) + tgt_to_src.mean(dim=1)).mean()", "src_to_tgt.mean()")], "1.2"),
    ("m12unsquared", "losses", [("(src_to_tgt.mean(dim=1) + tgt_to_src.mean(dim=1)).mean()",
                                 "(src_to_tgt.sqrt().mean(dim=1) + tgt_to_src.sqrt().mean(dim=1)).mean()")], "1.2"),
    ("m12flatbatch", "losses", [(CHAMFER, """    src, tgt = point_cloud_src.reshape(1, -1, 3), point_cloud_tgt.reshape(1, -1, 3)
    loss_chamfer = knn_points(src, tgt).dists.mean() + knn_points(tgt, src).dists.mean()""")], "1.2"),
    ("m12detached", "losses", [("knn_points(point_cloud_src, point_cloud_tgt, K=1)", "knn_points(point_cloud_src.detach(), point_cloud_tgt, K=1)"),
                               ("knn_points(point_cloud_tgt, point_cloud_src, K=1)", "knn_points(point_cloud_tgt, point_cloud_src.detach(), K=1)")], "1.2"),
    ("m13vertnorm", "losses", [(LAPLACIAN, "loss_laplacian = mesh_src.verts_packed().norm(dim=1).mean()")], "1.3"),
    ("m13nodegree", "losses", [(LAPLACIAN, HAND_LAPLACIAN.replace("neighbour_sum / degree[:, None]", "neighbour_sum"))], "1.3"),
    ("m21nosigmoid", "model", [(VOX_OUT, "voxels_pred = self.decoder(encoded_feat).squeeze(1)")], "2.1.1"),
    ("m21constant", "model", [(VOX_OUT, "voxels_pred = torch.sigmoid(self.decoder(torch.ones_like(encoded_feat))).squeeze(1)")], "2.1.1"),
    ("m22fixedn", "model", [("nn.Linear(1024, self.n_point * 3), nn.Tanh()", "nn.Linear(1024, 5000 * 3), nn.Tanh()"),
                            (POINT_OUT, "pointclouds_pred = self.decoder(encoded_feat).reshape(B, 5000, 3)")], "2.2.1"),
    ("m22mixbatch", "model", [(POINT_OUT, "pointclouds_pred = self.decoder(encoded_feat).reshape(3, B, self.n_point).permute(1, 2, 0)")], "2.2.1"),
    ("m23meanfeat", "model", [(MESH_OUT, "deform_vertices_pred = self.decoder(encoded_feat.mean(0, keepdim=True)).reshape(1, self.n_verts, 3).expand(B, -1, -1)")], "2.3.1"),
    ("m23nooffsets", "model", [(MESH_OUT, "deform_vertices_pred = 0 * self.decoder(encoded_feat).reshape(B, self.n_verts, 3)")], "2.3.1"),
]

# -- correct alternatives: (student id, {module: edits}); every automatic item keeps full marks -------
ALTERNATIVES = [
    ("a11sigmoidbce", {"losses": [(BCE, "return torch.nn.functional.binary_cross_entropy(torch.sigmoid(voxel_src), voxel_tgt)")]}),
    ("a11module", {"losses": [(BCE, "voxel_src.unsqueeze(1)  # a no-op, as in the seed report\n"
                                    "    return torch.nn.BCEWithLogitsLoss()(voxel_src, voxel_tgt.float())")]}),
    ("a12cdist", {"losses": [(CHAMFER, """    d = torch.cdist(point_cloud_src, point_cloud_tgt) ** 2  # (B, N, M)
    loss_chamfer = d.min(dim=2).values.mean() + d.min(dim=1).values.mean()""")]}),
    ("a12seedsum", {"losses": [(CHAMFER, """    p1 = knn_points(point_cloud_src, point_cloud_tgt)
    p2 = knn_points(point_cloud_tgt, point_cloud_src)
    loss_chamfer = torch.mean(torch.sum(p1.dists + p2.dists))""")]}),
    ("a12gather", {"losses": [(CHAMFER, """    from lite3d import knn_gather
    nn = knn_gather(point_cloud_tgt, knn_points(point_cloud_src, point_cloud_tgt, K=1).idx)[:, :, 0]
    back = knn_gather(point_cloud_src, knn_points(point_cloud_tgt, point_cloud_src, K=1).idx)[:, :, 0]
    loss_chamfer = ((point_cloud_src - nn) ** 2).sum(-1).mean() + ((point_cloud_tgt - back) ** 2).sum(-1).mean()""")]}),
    ("a13cot", {"losses": [(LAPLACIAN, 'loss_laplacian = mesh_laplacian_smoothing(mesh_src, method="cot")')]}),
    ("a13cotcurv", {"losses": [(LAPLACIAN, 'loss_laplacian = mesh_laplacian_smoothing(mesh_src, method="cotcurv")')]}),
    ("a13hand", {"losses": [(LAPLACIAN, HAND_LAPLACIAN)]}),
    ("a2channel", {"model": [(VOX_OUT, "voxels_pred = torch.sigmoid(self.decoder(encoded_feat))  # b x 1 x 32 x 32 x 32")]}),
    ("a2notanh", {"model": [("nn.Linear(1024, self.n_point * 3), nn.Tanh()", "nn.Linear(1024, self.n_point * 3)"),
                            ("nn.Linear(1024, self.n_verts * 3), nn.Tanh()", "nn.Linear(1024, self.n_verts * 3)")]}),
]


def _reference() -> dict[str, str]:
    return {f"{m}.py": (SOLUTION / f"{m}.py").read_text() for m in MODULES}


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict[str, str]]:
    folder = tmp_path_factory.mktemp("a2_variants")
    ref = _reference()
    _zip(folder / "A2_reference_Ref.zip", ref)
    _zip(folder / "A2_starter_Starter.zip", {f"{m}.py": (STARTER / f"{m}.py").read_text() for m in MODULES})
    for sid, module, edits, _ in MISTAKES:
        _zip(folder / f"A2_{sid}_Mistake.zip", {**ref, f"{module}.py": apply_edits(ref[f"{module}.py"], edits, sid)})
    for sid, changes in ALTERNATIVES:
        files = dict(ref)
        for module, edits in changes.items():
            files[f"{module}.py"] = apply_edits(files[f"{module}.py"], edits, sid)
        _zip(folder / f"A2_{sid}_Alternative.zip", files)
    for example in sorted(EXAMPLES.glob("*.zip")):  # the demo's buggy and course-style students
        (folder / example.name).write_bytes(example.read_bytes())
    out = tmp_path_factory.mktemp("a2_out")
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--assignment", ASSIGNMENT, "--out", str(out),
                           "--jobs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "gradebook.csv", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    rows["__feedback__"] = {p.stem: p.read_text() for p in (out / "feedback").glob("*.md")}  # type: ignore[assignment]
    return rows


def _why(graded, sid: str) -> str:
    fb = graded["__feedback__"]
    return next((text for name, text in fb.items() if name.startswith(sid)), "(no feedback)")[-4000:]


def test_reference_full_and_starter_zero(graded):
    """Does the reference earn every automatic mark and the starter none?"""
    ref, starter = graded["reference"], graded["starter"]
    assert {i: float(ref[i]) for i in AUTO} == {i: MARKS[i] for i in AUTO}, _why(graded, "reference")
    assert {i: float(starter[i]) for i in AUTO} == {i: 0.0 for i in AUTO}, _why(graded, "starter")


@pytest.mark.parametrize("sid,module,edits,item", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_loses_its_item(graded, sid, module, edits, item):
    """Does the mistake lose marks on its item while every other automatic item keeps its marks?"""
    row = graded[sid]
    assert float(row[item]) < MARKS[item], f"{sid} kept {item}\n" + _why(graded, sid)
    spared = [i for i in AUTO if i != item]
    assert {i: float(row[i]) for i in spared} == {i: MARKS[i] for i in spared}, _why(graded, sid)


@pytest.mark.parametrize("sid,changes", ALTERNATIVES, ids=[a[0] for a in ALTERNATIVES])
def test_alternative_keeps_full_marks(graded, sid, changes):
    """Does a correct alternative of the course's answer keep every automatic mark?"""
    row = graded[sid]
    assert {i: float(row[i]) for i in AUTO} == {i: MARKS[i] for i in AUTO}, _why(graded, sid)


def test_examples(graded):
    """Is the course-style submission (pytorch3d imports, .cuda(), BCEWithLogitsLoss, a (B, 1, 32^3) Pix2Vox-like
    decoder) graded in full, and does the seed report's student lose 1.1 (plain BCE on raw parameters) and
    2.1.1 (no sigmoid) only, keeping 1.2 for its summed chamfer?"""
    course = graded["dcourse"]
    assert {i: float(course[i]) for i in AUTO} == {i: MARKS[i] for i in AUTO}, _why(graded, "dcourse")
    buggy = graded["cbug"]
    assert {i for i in AUTO if float(buggy[i]) < MARKS[i]} == {"1.1", "2.1.1"}, _why(graded, "cbug")
    assert float(buggy["1.1"]) == 0 and float(buggy["1.2"]) == MARKS["1.2"]
    assert {i: float(graded["aref"][i]) for i in AUTO} == {i: MARKS[i] for i in AUTO}
    assert all(graded["aref"][it.id] == "pending" for it in RUBRIC.items if not it.graded_automatically)
