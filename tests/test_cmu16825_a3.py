"""Do CMU 16-825 A3's hidden checks give the reference full marks, the starter zero, take marks from the
plausible mistakes of /work/shared/TASKS.md sections 10 and 11, and keep them for the correct
alternatives listed there?

Every variant is the reference with exact text edits (each must occur once, so a drifting reference
fails loudly); all of them are graded in ONE `python -m grader grade` run over a folder of zips.
A variant carries one mistake; its item must lose marks and the items it cannot affect keep full marks.
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

ASSIGNMENT = "cmu16825_a3"
SOLUTION = ROOT / "solutions" / ASSIGNMENT
STARTER = ROOT / "starter" / ASSIGNMENT
EXAMPLES = ROOT / "fixtures" / "examples" / ASSIGNMENT
MODULES = ("ray_utils", "sampler", "renderer", "implicit", "losses", "volume_rendering_main")
RUBRIC = spec.load(ASSIGNMENT)
AUTO = [it.id for it in RUBRIC.items if it.graded_automatically]
MARKS = {it.id: it.marks for it in RUBRIC.items}
# What a mistake in one item can also break: the chain rays -> samples -> weights -> the box training.
DOWNSTREAM = {"1.3": {"2.1", "2.2"}, "1.4": {"1.5", "2.2"}, "1.5": {"2.2"}, "2.1": {"2.2"}, "6": {"7"}}

# -- the plausible mistakes: (student id, module, edits, item that must lose marks) ---------------------
MISTAKES = [
    ("m13unmapped", "ray_utils", [("    x = 2.0 * x / (W - 1) - 1.0\n    y = 2.0 * y / (H - 1) - 1.0\n", "")], "1.3"),
    ("m13doubleflip", "ray_utils", [("x = 2.0 * x / (W - 1) - 1.0", "x = 1.0 - 2.0 * x / (W - 1)"),
                                    ("y = 2.0 * y / (H - 1) - 1.0", "y = 1.0 - 2.0 * y / (H - 1)")], "1.3"),
    ("m13unnormdirs", "ray_utils", [("rays_d = F.normalize(world_points - rays_o, dim=-1)", "rays_d = world_points - rays_o")], "1.3"),
    ("m14nobroadcast", "sampler", [(".view(1, -1, 1)", ""), ("z_vals * ray_bundle.directions[:, None, :]",
                                                             "z_vals[None, :, None] * ray_bundle.directions[:, None, :]")], "1.4"),
    ("m15inclusive", "renderer", [("torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1] + eps], dim=1), dim=1)",
                                   "1.0 - alpha + eps, dim=1)")], "1.5"),
    ("m15wrongdim", "renderer", [("feature = torch.sum(weights * rays_feature, dim=1)",
                                  "feature = torch.sum(weights * rays_feature, dim=0)")], "1.5"),
    ("m21firstn", "ray_utils", [("xy_grid[torch.randperm(xy_grid.shape[0])[:n_pixels]]", "xy_grid[:n_pixels]")], "2.1"),
    ("m22depthloss", "volume_rendering_main", [('mse_loss(out["feature"], rgb_gt)', 'mse_loss(out["depth"].expand_as(rgb_gt), rgb_gt)')], "2.2"),
    ("m3norelu", "implicit", [("density = torch.relu(self.density_head(features))", "density = self.density_head(features)")], "3"),
    ("m3nosigmoid", "implicit", [("torch.nn.Linear(cfg.n_hidden_neurons_dir, 3), torch.nn.Sigmoid())",
                                  "torch.nn.Linear(cfg.n_hidden_neurons_dir, 3))")], "3"),
    ("m5nomask", "renderer", [("mask = (distance.abs() < 1e-5) & (t < self.far) & (t >= self.near)",
                               "mask = torch.ones_like(distance, dtype=torch.bool)")], "5"),
    ("m5unnormdirs", "renderer", [("        directions = torch.nn.functional.normalize(directions, dim=-1)\n", "")], "5"),
    ("m5nofar", "renderer", [("mask = (distance.abs() < 1e-5) & (t < self.far) & (t >= self.near)",
                              "mask = distance.abs() < 1e-5")], "5"),
    ("m6squarednorm", "losses", [("((torch.linalg.norm(gradients, dim=-1) - 1.0) ** 2).mean()",
                                  "(((gradients ** 2).sum(dim=-1) - 1.0) ** 2).mean()")], "6"),
    ("m6nosquare", "losses", [("((torch.linalg.norm(gradients, dim=-1) - 1.0) ** 2).mean()",
                               "(torch.linalg.norm(gradients, dim=-1) - 1.0).abs().mean()")], "6"),
    ("m6sum", "losses", [("((torch.linalg.norm(gradients, dim=-1) - 1.0) ** 2).mean()",
                          "((torch.linalg.norm(gradients, dim=-1) - 1.0) ** 2).sum()")], "6"),
    ("m6batchnorm", "losses", [("torch.linalg.norm(gradients, dim=-1)", "torch.linalg.norm(gradients, dim=0)")], "6"),
    ("m6reluhead", "implicit", [("        _, features = self._features(points)\n        return self.distance_head(features)",
                                 "        _, features = self._features(points)\n        return torch.relu(self.distance_head(features))")], "6"),
    ("m7signflip", "renderer", [("torch.where(signed_distance > 0, half, 1.0 - half)", "torch.where(signed_distance > 0, 1.0 - half, half)")], "7"),
    ("m7betaplace", "renderer", [("torch.exp(-signed_distance.abs() / beta)", "torch.exp(-signed_distance.abs() * beta)")], "7"),
    ("m7alphaonce", "renderer", [("return alpha * torch.where(signed_distance > 0, half, 1.0 - half)",
                                  "return torch.where(signed_distance > 0, alpha * half, 1.0 - half)")], "7"),
    ("m83sigmoid", "renderer", [("return s * sig * (1.0 - sig)", "return sig")], "8.3"),
]

# -- correct alternatives: (student id, {module: edits}); every automatic item keeps full marks -------
ALTERNATIVES = [
    ("apixelcentres", {"ray_utils": [("x = 2.0 * x / (W - 1) - 1.0", "x = (2.0 * x + 1.0) / W - 1.0"),
                                     ("y = 2.0 * y / (H - 1) - 1.0", "y = (2.0 * y + 1.0) / H - 1.0")]}),
    ("ahalfopen", {"ray_utils": [("x = 2.0 * x / (W - 1) - 1.0", "x = 2.0 * x / W - 1.0"),
                                 ("y = 2.0 * y / (H - 1) - 1.0", "y = 2.0 * y / H - 1.0")]}),
    ("ajitter", {"sampler": [("""        z_vals = torch.linspace(self.min_depth, self.max_depth, self.n_pts_per_ray,
                                device=ray_bundle.origins.device).view(1, -1, 1)""",
                              """        edges = torch.linspace(self.min_depth, self.max_depth, self.n_pts_per_ray + 1)
        z_vals = (edges[:-1] + (edges[1:] - edges[:-1]) * torch.rand(self.n_pts_per_ray)).view(1, -1, 1)""")]}),
    ("achoice", {"ray_utils": [("xy_grid[torch.randperm(xy_grid.shape[0])[:n_pixels]]",
                                "xy_grid[np.random.choice(xy_grid.shape[0], n_pixels)]")],
                 "volume_rendering_main": [('mse_loss(out["feature"], rgb_gt)', 'mse_loss(out["feature"], rgb_gt, reduction="sum")')]}),
    ("aepsexp", {"renderer": [("alpha = 1.0 - torch.exp(-rays_density * deltas)", "alpha = 1.0 - torch.exp(-(rays_density * deltas + eps))"),
                              ("""    half = 0.5 * torch.exp(-signed_distance.abs() / beta)
    return alpha * torch.where(signed_distance > 0, half, 1.0 - half)""",
                               """    return torch.where(signed_distance > 0, 0.5 * torch.exp(-signed_distance / beta),
                       1 - 0.5 * torch.exp(signed_distance / beta)) * alpha""")],
                 "implicit": [("density = torch.relu(self.density_head(features))",
                               "density = torch.nn.functional.softplus(self.density_head(features))")]}),
    ("aearlyexit", {"renderer": [("""        for _ in range(self.max_iters):
            distance = implicit_fn.get_distance(points).view(-1, 1)
            t = t + distance""", """        for _ in range(self.max_iters):
            distance = implicit_fn.get_distance(points).view(-1, 1)
            if bool((distance.abs() < 1e-3).all()):
                break
            t = t + distance"""), ("mask = (distance.abs() < 1e-5)", "mask = (distance.abs() < 1e-3)"),
        ('return {k: torch.cat([chunk[k] for chunk in chunk_outputs], dim=0) for k in chunk_outputs[0]}\n\n\nclass SphereTracing',
         'out = {k: torch.cat([chunk[k] for chunk in chunk_outputs], dim=0) for k in chunk_outputs[0]}\n'
         '        out["depth"] = out["depth"] / out["depth"].max()  # normalised for display\n        return out\n\n\nclass SphereTracing')]}),
]


def _reference() -> dict[str, str]:
    return {f"{m}.py": (SOLUTION / f"{m}.py").read_text() for m in MODULES}


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict[str, str]]:
    folder = tmp_path_factory.mktemp("a3_variants")
    ref = _reference()
    _zip(folder / "A3_reference_Ref.zip", ref)
    _zip(folder / "A3_starter_Starter.zip", {f"{m}.py": (STARTER / f"{m}.py").read_text() for m in MODULES})
    for sid, module, edits, _ in MISTAKES:
        _zip(folder / f"A3_{sid}_Mistake.zip", {**ref, f"{module}.py": apply_edits(ref[f"{module}.py"], edits, sid)})
    for sid, changes in ALTERNATIVES:
        files = dict(ref)
        for module, edits in changes.items():
            files[f"{module}.py"] = apply_edits(files[f"{module}.py"], edits, sid)
        _zip(folder / f"A3_{sid}_Alternative.zip", files)
    for example in sorted(EXAMPLES.glob("*.zip")):  # the demo's course-style and buggy students
        (folder / example.name).write_bytes(example.read_bytes())
    out = tmp_path_factory.mktemp("a3_out")
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--assignment", ASSIGNMENT, "--out", str(out),
                           "--jobs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "gradebook.csv", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    rows["__feedback__"] = {p.stem: p.read_text() for p in (out / "feedback").glob("*.md")}  # type: ignore[assignment]
    return rows


def _marks(row: dict[str, str], items) -> dict[str, float | str]:
    """An item's marks as a number, or the gradebook's word for it (pending, ...)."""
    out: dict[str, float | str] = {}
    for i in items:
        try:
            out[i] = float(row[i])
        except ValueError:
            out[i] = row[i]
    return out


def _why(graded, sid: str) -> str:
    fb = graded["__feedback__"]
    return next((text for name, text in fb.items() if name.startswith(sid)), "(no feedback)")[-4000:]


def test_reference_full_and_starter_zero(graded):
    """Does the reference earn every automatic mark and the starter none?"""
    ref, starter = graded["reference"], graded["starter"]
    assert _marks(ref, AUTO) == {i: MARKS[i] for i in AUTO}, _why(graded, "reference")
    assert _marks(starter, AUTO) == {i: 0.0 for i in AUTO}, _why(graded, "starter")


@pytest.mark.parametrize("sid,module,edits,item", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_loses_its_item(graded, sid, module, edits, item):
    """Does the mistake lose marks on its item while the items it cannot reach keep theirs?"""
    row = graded[sid]
    got = _marks(row, [item])[item]
    assert isinstance(got, float) and got < MARKS[item], f"{sid}: {item} got {got}\n" + _why(graded, sid)
    spared = [i for i in AUTO if i != item and i not in DOWNSTREAM.get(item, set())]
    assert _marks(row, spared) == {i: MARKS[i] for i in spared}, _why(graded, sid)


@pytest.mark.parametrize("sid,changes", ALTERNATIVES, ids=[a[0] for a in ALTERNATIVES])
def test_alternative_keeps_full_marks(graded, sid, changes):
    """Does a correct alternative of the course's answer keep every automatic mark?"""
    row = graded[sid]
    assert _marks(row, AUTO) == {i: MARKS[i] for i in AUTO}, _why(graded, sid)


def test_examples(graded):
    """Is the course-style submission (pytorch3d imports, .cuda(), hydra-style configs, np.random.choice,
    the torch.where VolSDF) graded in full, and does the demo's buggy student lose 1.5, 3 and 6 only?"""
    course = graded["ccourse"]
    assert _marks(course, AUTO) == {i: MARKS[i] for i in AUTO}, _why(graded, "ccourse")
    buggy = graded["bbuggy"]
    lost = {i for i, v in _marks(buggy, AUTO).items() if v != MARKS[i]}
    assert lost - {"2.2"} == {"1.5", "3", "6"}, _why(graded, "bbuggy")
    assert graded["adalove"]["final"] == graded["adalove"]["total"] and float(graded["adalove"]["total"]) == sum(MARKS[i] for i in AUTO)
