"""CMU 16-825 A1 (rendering basics): do the hidden checks tell the handout's mistakes from correct answers?

Every variant is the reference with a few lines replaced (each `old` must occur in the reference, so a
drifting reference fails loudly), zipped as a student would hand it in; all of them are graded in ONE
batch run with the real engine and sandbox, and each test reads its variant's marks.
"""
from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import batch, spec  # noqa: E402

A = "cmu16825_a1"
SOLUTION = ROOT / "solutions" / A
STARTER = ROOT / "starter" / A
FILES = ["starter/dolly_zoom.py", "starter/camera_transforms.py", "starter/meshes.py", "starter/render_generic.py",
         "starter/sample_points.py", "starter/utils.py", "answers.md"]
ASSIGNMENT = spec.load(A)
AUTO = {i.id: i.marks for i in ASSIGNMENT.items if i.kind == "auto"}


@dataclass(frozen=True)
class Variant:
    id: str  # the zip's student id: lowercase letters and digits
    what: str
    item: str
    edits: tuple[tuple[str, str, str], ...]  # (file, reference text, replacement)


DOLLY, TRANSFORMS, MESHES, GENERIC, SAMPLE = (f"starter/{m}.py" for m in (
    "dolly_zoom", "camera_transforms", "meshes", "render_generic", "sample_points"))
DIST = "distance = width / (2 * math.tan(math.radians(float(fov)) / 2))"
QUADS = "    faces = torch.tensor([tri for a, b, c, d in quads for tri in ([a, b, c], [a, c, d])], dtype=torch.int64)"
BARY = "u, v, w = 1 - s, s * (1 - r2), s * r2  # uniform over the triangle"
FACE = "face = torch.multinomial(areas, num_samples, replacement=True)  # (num_samples,)"
RETEX = "alpha = ((z - z.min()) / (z.max() - z.min()))[:, None]  # (V, 1)"

MISTAKES = [
    Variant("mdeg", "degrees passed to tan", "1.2.1", ((DOLLY, DIST, "distance = width / (2 * math.tan(float(fov) / 2))"),)),
    Variant("mfulltan", "tan(fov) instead of tan(fov / 2)", "1.2.1",
            ((DOLLY, DIST, "distance = width / (2 * math.tan(math.radians(float(fov))))"),)),
    Variant("mproptan", "distance proportional to tan(fov / 2)", "1.2.1",
            ((DOLLY, DIST, "distance = width * (2 * math.tan(math.radians(float(fov)) / 2))"),)),
    Variant("mtrelfirst", "T_relative applied before R_relative", "4.1",
            ((TRANSFORMS, "(rot_y(90), [-3.0, 0.0, 3.0])", "(rot_y(90), [-3.0, 0.0, -3.0])"),)),
    Variant("mrotsign", "the roll turned the other way", "4.1", ((TRANSFORMS, "(rot_z(-90), [0.0, 0.0, 0.0])", "(rot_z(90), [0.0, 0.0, 0.0])"),)),
    Variant("mquads", "cube with 6 quads instead of 12 triangles", "2.2.1",
            ((MESHES, QUADS, "    faces = torch.tensor(quads, dtype=torch.int64)"),)),
    Variant("mwinding", "cube with inconsistent winding", "2.2.1",
            ((MESHES, "for tri in ([a, b, c], [a, c, d])]", "for tri in ([a, b, c], [a, d, c])]"),)),
    Variant("minward", "tetrahedron wound inwards", "2.1.1",
            ((MESHES, "[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]", "[[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]]"),)),
    Variant("mcolswap", "color1 at the back", "3.1", ((MESHES, "return alpha * color2 + (1 - alpha) * color1",
                                                       "return alpha * color1 + (1 - alpha) * color2"),)),
    Variant("mcolx", "alpha from x instead of z", "3.1", ((MESHES, "z = vertices[:, 2]", "z = vertices[:, 0]"),)),
    Variant("mcolzmax", "alpha = z / z_max", "3.1", ((MESHES, RETEX, "alpha = (z / z.max())[:, None]"),)),
    Variant("monecam", "both views unprojected with the first camera", "5.1.1",
            ((GENERIC, 'data[f"depth{i}"], data[f"cameras{i}"])', 'data[f"depth{i}"], data["cameras1"])'),)),
    Variant("munion", "the union is the first cloud only", "5.1.1",
            ((GENERIC, "return clouds + [union]", "return clouds + [clouds[0]]"),)),
    Variant("mtorusr", "tube radius and centre radius swapped in z", "5.2.1",
            ((GENERIC, "z = r * torch.sin(theta)", "z = R * torch.sin(theta)"),)),
    Variant("mtorusang", "theta and phi swapped", "5.2.1",
            ((GENERIC, "    return torch.stack([x, y, z], dim=-1)\n    # END SOLUTION\n\n\ndef torus_point_cloud",
              "    x, y, z = ((R + r * torch.cos(phi)) * torch.cos(theta), (R + r * torch.cos(phi)) * torch.sin(theta),"
              " r * torch.sin(phi))\n    return torch.stack([x, y, z], dim=-1)\n    # END SOLUTION\n\n\ndef torus_point_cloud"),)),
    Variant("mimplsqrt", "implicit torus without the square root", "5.3.1",
            ((GENERIC, "return (R - torch.sqrt(X ** 2 + Y ** 2)) ** 2 + Z ** 2 - r ** 2", "return (R - (X ** 2 + Y ** 2)) ** 2 + Z ** 2 - r ** 2"),)),
    Variant("mvoxidx", "mesh left in voxel index units", "5.3.1",
            ((GENERIC, "    vertices = vertices / (voxel_size - 1) * (max_value - min_value) + min_value\n", ""),)),
    Variant("mnaive", "naive barycentrics (r1, r2, 1 - r1 - r2)", "7.1", ((SAMPLE, BARY, "u, v, w = r1, r2, 1 - r1 - r2"),)),
    Variant("mnosqrt", "barycentrics without the square root", "7.1", ((SAMPLE, BARY, "u, v, w = 1 - r1, r1 * (1 - r2), r1 * r2"),)),
    Variant("mnormalised", "three uniforms normalised to sum 1", "7.1",
            ((SAMPLE, BARY, "r3 = torch.rand(num_samples, 1, dtype=vertices.dtype)\n    u, v, w = r1 / (r1 + r2 + r3), r2 / (r1 + r2 + r3), r3 / (r1 + r2 + r3)"),)),
    Variant("muniform", "faces chosen uniformly, not by area", "7.1",
            ((SAMPLE, FACE, "face = torch.randint(len(faces), (num_samples,))"),)),
]

ALTERNATIVES = [
    Variant("ascale", "another scale constant", "1.2.1", ((DOLLY, "width = 2 * 3.0 * math.tan(math.radians(60.0) / 2)", "width = 5.0"),)),
    Variant("atorch", "the distance in torch", "1.2.1", ((DOLLY, DIST, "distance = float(width / (2 * torch.tan(torch.deg2rad(torch.tensor(float(fov))) / 2)))"),)),
    Variant("atetorder", "other tetrahedron vertex and face order", "2.1.1",
            ((MESHES, "[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]", "[[2, 3, 1], [3, 2, 0], [1, 0, 2], [0, 1, 3]]"),)),
    Variant("acubediag", "cube split on the other diagonal, other vertex order", "2.2.1",
            ((MESHES, "for tri in ([a, b, c], [a, c, d])]", "for tri in ([b, c, d], [b, d, a])]"),
             (MESHES, "- 0.5\n    quads", "* 2.0 - 1.0\n    quads"))),
    Variant("abatched", "batched (1, V, 3) tensors, as pytorch3d's structures take them", "2.1.1",
            ((MESHES, "[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=torch.int64)",
              "[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=torch.int64)\n    vertices, faces = vertices[None], faces[None]"),
             (MESHES, "return alpha * color2 + (1 - alpha) * color1", "return (alpha * color2 + (1 - alpha) * color1)[None]"))),
    Variant("alerp", "torch.lerp", "3.1", ((MESHES, "return alpha * color2 + (1 - alpha) * color1", "return torch.lerp(color1, color2, alpha)"),)),
    Variant("atforder", "the four answers in another order, as tensors", "4.1",
            ((TRANSFORMS, "    return [\n        (rot_z(-90)",
              "    return [(torch.tensor(R), torch.tensor(T)) for R, T in reversed([\n        (rot_z(-90)"),
             (TRANSFORMS, "(rot_y(90), [-3.0, 0.0, 3.0]),  # the cow seen from its side, from the same distance\n    ]",
              "(rot_y(90), [-3.0, 0.0, 3.0]),  # the cow seen from its side, from the same distance\n    ])]"))),
    Variant("aunion", "the union in the other order", "5.1.1", ((GENERIC, "torch.cat([clouds[0][0], clouds[1][0]], 0), torch.cat([clouds[0][1], clouds[1][1]], 0)",
                                                               "torch.cat([clouds[1][0], clouds[0][0]], 0), torch.cat([clouds[1][1], clouds[0][1]], 0)"),)),
    Variant("asdf", "signed distance as the implicit function", "5.3.1",
            ((GENERIC, "return (R - torch.sqrt(X ** 2 + Y ** 2)) ** 2 + Z ** 2 - r ** 2", "return torch.sqrt((R - torch.sqrt(X ** 2 + Y ** 2)) ** 2 + Z ** 2) - r"),)),
    Variant("areject", "rejection sampling of barycentrics", "7.1",
            ((SAMPLE, BARY, "uv = torch.rand(4 * num_samples, 2, dtype=vertices.dtype)\n"
                            "    uv = uv[uv.sum(1) <= 1][:num_samples]\n"
                            "    v, w = uv[:, :1], uv[:, 1:]\n    u = 1 - v - w"),)),
    Variant("areflect", "the reflection trick", "7.1",
            ((SAMPLE, BARY, "flip = (r1 + r2) > 1\n"
                            "    r1, r2 = torch.where(flip, 1 - r1, r1), torch.where(flip, 1 - r2, r2)\n"
                            "    u, v, w = 1 - r1 - r2, r1, r2"),)),
    Variant("acumsum", "faces by inverse CDF of the areas", "7.1",
            ((SAMPLE, FACE, "cdf = torch.cumsum(areas, 0) / areas.sum()\n"
                            "    face = torch.searchsorted(cdf, torch.rand(num_samples, dtype=cdf.dtype)).clamp(max=len(faces) - 1)"),)),
]


def _files(root: Path) -> dict[str, str]:
    return {name: (root / name).read_text() for name in FILES if (root / name).exists()}


def _fabricate(v: Variant) -> dict[str, str]:
    files = _files(SOLUTION)
    for name, old, new in v.edits:
        assert files[name].count(old) == 1, f"{v.id}: the reference no longer holds {old!r} once in {name}"
        files[name] = files[name].replace(old, new)
    return files


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every variant graded once, in one batch: student id -> its record."""
    folder = tmp_path_factory.mktemp("a1_zips")
    _zip(folder / "A1_reference_Ref.zip", _files(SOLUTION))
    _zip(folder / "A1_starter_Starter.zip", _files(STARTER))
    for v in MISTAKES + ALTERNATIVES:
        _zip(folder / f"A1_{v.id}_Variant.zip", _fabricate(v))
    reference = _files(SOLUTION)
    _zip(folder / "A1_nogiven_Layout.zip", {n: t for n, t in reference.items() if n != "starter/utils.py"})
    _zip(folder / "A1_nested_Layout.zip", {f"assignment1/{n}": t for n, t in reference.items()})
    course = zipfile.ZipFile(ROOT / "fixtures" / "examples" / A / "A1_course4_COURSE_Style.zip")
    _zip(folder / "A1_course_Course.zip", {n: course.read(n).decode() for n in course.namelist()})
    opts = batch.Options(out=tmp_path_factory.mktemp("a1_out"), jobs=1, timeout_scale=3.0)
    records = batch.grade_folder(ASSIGNMENT, folder, opts, log=lambda m: None)
    return {r["student_id"]: r for r in records}


def test_reference_gets_full_marks(marks):
    """Does the reference earn every automatic mark?"""
    got = {i: marks["reference"]["items"][i] for i in AUTO}
    assert got == AUTO


def test_starter_gets_zero(marks):
    """Does the untouched starter earn nothing on any automatic item?"""
    assert {i: marks["starter"]["items"][i] for i in AUTO} == {i: 0 for i in AUTO}


@pytest.mark.parametrize("v", MISTAKES, ids=[v.id for v in MISTAKES])
def test_mistake_loses_marks(marks, v: Variant):
    """Does each plausible mistake of the handout lose marks on its item, and only there?"""
    items = marks[v.id]["items"]
    assert items[v.item] is not None and items[v.item] < AUTO[v.item], f"{v.what}: {items[v.item]}"
    assert all(items[i] == AUTO[i] for i in AUTO if i != v.item), {i: items[i] for i in AUTO if items[i] != AUTO[i]}


@pytest.mark.parametrize("v", ALTERNATIVES, ids=[v.id for v in ALTERNATIVES])
def test_alternative_keeps_marks(marks, v: Variant):
    """Does each correct alternative keep full marks on every automatic item?"""
    items = marks[v.id]["items"]
    assert {i: items[i] for i in AUTO} == AUTO, v.what


def test_course_style_files_go_to_review(marks):
    """Do the course's own files (distance inside dolly_zoom's loop, transforms only in the report) go to a TA, not to zero?"""
    record = marks["course"]
    assert record["items"]["1.2.1"] is None and record["items"]["4.1"] is None, record["items"]
    assert {"1.2.1", "4.1"} <= set(record["needs_review"]), record["needs_review"]
    reasons = {o["item"]: o["message"] for o in record["outcomes"] if o["status"] == "review"}
    assert "render loop" in reasons["1.2.1"] and "report" in reasons["4.1"], reasons
    evidence = {o["item"]: o["detail"] for o in record["outcomes"] if o["status"] == "review"}
    assert "distance = 5 / (2 * torch.tan(torch.deg2rad(fov) / 2))" in evidence["1.2.1"], evidence["1.2.1"]



@pytest.mark.parametrize("layout", ["nogiven", "nested"])
def test_course_layouts_keep_full_marks(marks, layout):
    """Does a zip of starter/*.py without the given utils.py, or of the whole assignment1/ folder, keep full marks?"""
    assert {i: marks[layout]["items"][i] for i in AUTO} == AUTO
