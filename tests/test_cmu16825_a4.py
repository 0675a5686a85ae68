"""Do CMU 16-825 A4's hidden checks give the reference full marks, the starter zero, take marks from each
plausible mistake and keep them for each correct alternative?

Every variant is the reference with exact text edits (each must match once, so a drifting reference fails
loudly). All of them, with the reference, the starter and the example zips, are graded in two batch runs
in the real sandbox (the training fit only where it matters); the tests then read the records. The mistakes and alternatives are those
of /work/shared/TASKS.md section 13 (Q1.1 splatting, Q1.2 training set-up, Q2.1 SDS).
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
from grader.checks import load_checks  # noqa: E402
from variants import apply_edits  # noqa: E402

ASSIGNMENT = "cmu16825_a4"
SOLUTION = ROOT / "solutions" / ASSIGNMENT
STARTER = ROOT / "starter" / ASSIGNMENT
CODE = ("model.py", "train.py", "SDS.py")
AUTO = ("1.1", "1.2", "2.1")


@dataclass(frozen=True)
class Variant:
    id: str  # the zip's student id
    edits: dict[str, tuple[tuple[str, str], ...]]  # file -> (old, new) edits of the reference
    item: str  # the item the variant is about
    marks: float | None = None  # exact marks expected on `item`; None: full marks for an alternative
    mistake: bool = True  # a mistake must score below full marks on `item`
    failing: tuple[str, ...] = ()  # substrings of check names that must not pass


def mistake(vid, file, edits, item, *failing, marks=None):
    return Variant(vid, {file: tuple(edits)}, item, marks, True, failing)


def alternative(vid, file, edits, item):
    return Variant(vid, {file: tuple(edits)}, item, None, False)


M, S, T = "model.py", "SDS.py", "train.py"
W_REF = "W = camera.R[0].transpose(0, 1).to(J)[None].expand(N, 3, 3)"
POWER = 'power = -0.5 * torch.einsum("npi,nij,npj->np", d, cov_2D_inverse, d)'
CUMPROD = "transmittance = torch.cumprod(one_minus_alphas, dim=0)[:-1]"
KEEP = "keep = torch.nonzero(z_vals >= 0.0).flatten()"
SORT = "idxs = keep[torch.argsort(z_vals[keep])]"
MEANS = "means_2D = camera.transform_points_screen(means_3D)[:, :2]"
COND = "noise_pred = self.unet(latents_noisy, t, encoder_hidden_states=text_embeddings).sample"
CFG = "noise_pred = noise_pred_uncond + guidance_scale * (noise_pred - noise_pred_uncond)"
TARGET = "target = (latents - grad).detach()"
LOSS = 'loss = 0.5 * F.mse_loss(latents, target, reduction="sum")'

VARIANTS = [
    # -- Q1.1 mistakes
    mistake("mwr", M, [(W_REF, "W = camera.R[0].to(J)[None].expand(N, 3, 3)")], "1.1", "cov_2D"),
    mistake("mnosq", M, [("cov_3D = M @ M.transpose(1, 2)", "cov_3D = M @ R.transpose(1, 2)")], "1.1",
            "R S S^T R^T", "quarter turn"),
    mistake("misonosq", M, [("cov_3D = eye * (scales[:, :1] ** 2)[:, :, None]", "cov_3D = eye * scales[:, :1][:, :, None]")],
            "1.1", "s^2 I"),
    mistake("mpreact", M, [("M = R * scales[:, None, :]", "M = R * torch.exp(scales)[:, None, :]")], "1.1", "R S S^T R^T"),
    mistake("mndc", M, [(MEANS, "means_2D = camera.transform_points_ndc(means_3D)[:, :2]")], "1.1",
            "principal point", "pinhole projection", "one Gaussian splats", "render"),
    mistake("mhalf", M, [(POWER, POWER.replace("-0.5 *", "-1.0 *"))], "1.1", "-1/2", "definition for several"),
    mistake("msign", M, [(POWER, POWER.replace("-0.5 *", "0.5 *"))], "1.1", "-1/2", "opacity * exp(power)"),
    mistake("mincl", M, [(CUMPROD, "transmittance = torch.cumprod(one_minus_alphas, dim=0)[1:]")], "1.1",
            "exclusive", "start_transmittance", "one Gaussian splats", "hides"),
    mistake("mdesc", M, [(SORT, "idxs = keep[torch.argsort(z_vals[keep], descending=True)]")], "1.1", "nearest first"),
    mistake("mnofilter", M, [(KEEP, "keep = torch.arange(len(z_vals))")], "1.1", "nearest first"),
    # -- Q1.2 mistakes
    mistake("mlrs", T, [('"lr": 0.02, "name": "opacities"', '"lr": 0.05, "name": "opacities"'),
                        ('"lr": 0.01, "name": "scales"', '"lr": 0.05, "name": "scales"'),
                        ('"lr": 0.002, "name": "means"', '"lr": 0.05, "name": "means"')],
            "1.2", "learning rates", marks=13),
    mistake("mloss", T, [("loss = torch.abs(pred_img - gt_img).mean()", "loss = (pred_img - gt_img).mean()")], "1.2",
            "fits", marks=12),
    mistake("mquats", T, [('    if not gaussians.is_isotropic:\n        names.append("pre_act_quats")\n', "")],
            "1.2", "anisotropic"),
    mistake("misoquats", T, [('    if not gaussians.is_isotropic:\n        names.append("pre_act_quats")\n',
                              '    names.append("pre_act_quats")\n')], "1.2", "isotropic"),
    # -- Q2.1 mistakes
    mistake("mpair", S, [(CFG, "noise_pred = noise_pred + guidance_scale * (noise_pred_uncond - noise_pred)")],
            "2.1", "guidance", marks=10),
    mistake("mgradunet", S, [("        with torch.no_grad():\n            # BEGIN SOLUTION 2.1\n",
                              "        if True:\n            # BEGIN SOLUTION 2.1\n"),
                             (TARGET, "target = latents - grad")], "2.1", "without guidance", "gradient tracking"),
    mistake("mnograd", S, [("        with torch.no_grad():\n            # BEGIN SOLUTION 2.1\n",
                            "        if True:\n            # BEGIN SOLUTION 2.1\n")], "2.1", "gradient tracking",
            marks=17),
    mistake("mmean", S, [(LOSS, 'loss = 0.5 * F.mse_loss(latents, target, reduction="mean")')], "2.1",
            "without guidance", "grad_scale"),
    mistake("mnoscale", S, [("grad = grad_scale * w[:, None, None, None]", "grad = w[:, None, None, None]")], "2.1",
            "grad_scale"),
    # -- correct alternatives
    alternative("aisogeneral", M, [("        if self.is_isotropic:\n            eye", "        if False:\n            eye")], "1.1"),
    alternative("ainv", M, [("cov_2D_inverse = Gaussians.invert_cov_2D(cov_2D)", "cov_2D_inverse = torch.linalg.inv(cov_2D)")],
                "1.1"),
    alternative("abmm", M, [(POWER, "power = -0.5 * ((d @ cov_2D_inverse) * d).sum(-1)")], "1.1"),
    alternative("ameans", M, [(MEANS, "means_2D = camera.transform_points(means_3D)[:, :2]")], "1.1"),
    alternative("awmatrix", M, [(W_REF, "W = camera.get_world_to_view_transform().get_matrix()[:, :3, :3]"
                                        ".transpose(1, 2).to(J).expand(N, 3, 3)")], "1.1"),
    alternative("adepth", M, [("z_vals = camera.get_world_to_view_transform().transform_points(self.gaussians.means)[:, 2]",
                               "z_vals = (self.gaussians.means @ camera.R[0] + camera.T[0])[:, 2]")], "1.1"),
    alternative("alogcum", M, [(CUMPROD, "transmittance = torch.exp(torch.cumsum(torch.log(one_minus_alphas), 0))[:-1]")],
                "1.1"),
    alternative("asortfirst", M, [(KEEP, "order = torch.argsort(z_vals)"), (SORT, "idxs = order[z_vals[order] >= 0]")],
                "1.1"),
    alternative("astrict", M, [(KEEP, "keep = torch.nonzero(z_vals > 0.0).flatten()")], "1.1"),
    alternative("aparam", T, [("setattr(gaussians, name, getattr(gaussians, name).detach().clone().requires_grad_(True))",
                               "setattr(gaussians, name, torch.nn.Parameter(getattr(gaussians, name)))")], "1.2"),
    alternative("amse", T, [("loss = torch.abs(pred_img - gt_img).mean()", "loss = torch.nn.functional.mse_loss(pred_img, gt_img)")],
                "1.2"),
    alternative("adot", S, [(TARGET, "grad = grad.detach()"), (LOSS, "loss = (grad * latents).sum()")], "2.1"),
    alternative("atuple", S, [(COND, COND.replace(").sample", ", return_dict=False)[0]"))], "2.1"),
    alternative("abatched", S, [
        (COND + "\n", "latent_model_input = latents_noisy\n            noise_pred = None\n"),
        ("                noise_pred_uncond = self.unet(latents_noisy, t, encoder_hidden_states=text_embeddings_uncond).sample\n",
         "                both = self.unet(torch.cat([latents_noisy] * 2), t,\n"
         "                                 encoder_hidden_states=torch.cat([text_embeddings_uncond, text_embeddings])).sample\n"
         "                noise_pred_uncond, noise_pred = both.chunk(2)\n"),
        ("        # Compute SDS loss\n", "            if noise_pred is None:\n"
         "                noise_pred = self.unet(latent_model_input, t, encoder_hidden_states=text_embeddings).sample\n\n"
         "        # Compute SDS loss\n"),
    ], "2.1"),
]


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Grade everything in two batches; records by student id. The training fit (a few seconds each) runs
    only where it matters: the reference, the examples and the train.py variants; the model.py and SDS.py
    variants and the starter are graded with every other check."""
    reference = {name: (SOLUTION / name).read_text() for name in CODE}
    quick, full = tmp_path_factory.mktemp("a4_quick"), tmp_path_factory.mktemp("a4_full")
    _zip(full / "A4_ref_Reference.zip", reference)
    _zip(quick / "A4_starter_Starter.zip", {name: (STARTER / name).read_text() for name in CODE})
    for v in VARIANTS:
        files = dict(reference)
        for name, edits in v.edits.items():
            files[name] = apply_edits(files[name], edits, v.id)
        _zip((full if "train.py" in v.edits else quick) / f"A4_{v.id}_Variant.zip", files)
    for example in sorted((ROOT / "fixtures" / "examples" / ASSIGNMENT).glob("*.zip")):
        (full / example.name).write_bytes(example.read_bytes())
    a = spec.load(ASSIGNMENT)
    every = load_checks(SOLUTION / "hidden")
    rows = []
    for folder, checks in ((quick, [c for c in every if "fits a toy scene" not in c.name]), (full, every)):
        opts = batch.Options(out=tmp_path_factory.mktemp("a4_out"), jobs=1, timeout_scale=3.0, progress=False)
        real = batch.load_checks
        batch.load_checks = lambda _dir, checks=checks: checks
        try:
            rows += batch.grade_folder(a, folder, opts, log=lambda m: None)
        finally:
            batch.load_checks = real
    return {r["student_id"]: r for r in rows}


def _why(record) -> str:
    return "\n".join(f"  {o['item']} {o['status']:8} {o['name']}: {o['message'][:150]}" for o in record["outcomes"])


def test_reference_full_marks(records):
    """Does the reference earn every automatic mark (35 + 15 + 20)?"""
    rec = records["ref"]
    assert {i: rec["items"][i] for i in AUTO} == {"1.1": 35, "1.2": 15, "2.1": 20}, _why(rec)


def test_starter_zero(records):
    """Does the starter earn nothing on the automatic items, each failing with the stub's message?"""
    rec = records["starter"]
    assert all(rec["items"][i] == 0 for i in AUTO), _why(rec)
    assert all(o["status"] != "passed" for o in rec["outcomes"] if o["item"] in AUTO), _why(rec)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.mistake], ids=lambda v: v.id)
def test_mistake_loses_marks(records, variant):
    """Does each catalogued mistake lose marks on its item, through the checks that describe it?"""
    rec = records[variant.id]
    full = {"1.1": 35, "1.2": 15, "2.1": 20}[variant.item]
    got = rec["items"][variant.item]
    assert got < full, _why(rec)
    if variant.marks is not None:
        assert got == pytest.approx(variant.marks), _why(rec)
    failed = [o["name"] for o in rec["outcomes"] if o["item"] == variant.item and o["status"] != "passed"]
    for part in variant.failing:
        assert any(part in name for name in failed), f"no failing check mentions {part!r}\n{_why(rec)}"
    others = [i for i in AUTO if i != variant.item]
    assert all(rec["items"][i] == {"1.1": 35, "1.2": 15, "2.1": 20}[i] for i in others), _why(rec)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v.mistake], ids=lambda v: v.id)
def test_alternative_keeps_marks(records, variant):
    """Does each correct alternative keep full marks on every automatic item?"""
    rec = records[variant.id]
    assert {i: rec["items"][i] for i in AUTO} == {"1.1": 35, "1.2": 15, "2.1": 20}, _why(rec)


def test_examples(records):
    """Do the example zips grade as a TA would: the reference in full, the starter at zero, the buggy student
    below full on every automatic item, and the course-style files (pytorch3d and diffusers imports) full on
    the splatting, with the SDS item sent to review (diffusers cannot be imported here)?"""
    assert {i: records["ref1"]["items"][i] for i in AUTO} == {"1.1": 35, "1.2": 15, "2.1": 20}, _why(records["ref1"])
    assert all(records["start1"]["items"][i] == 0 for i in AUTO), _why(records["start1"])
    bug = records["bug1"]
    assert bug["items"]["1.1"] < 35 and bug["items"]["1.2"] < 15 and bug["items"]["2.1"] < 20, _why(bug)
    course = records["course1"]
    assert course["items"]["1.1"] == 35, _why(course)
    assert course["items"]["2.1"] is None and "2.1" in course["needs_review"], _why(course)
    assert "diffusers" in str(course["needs_review"]["2.1"])
