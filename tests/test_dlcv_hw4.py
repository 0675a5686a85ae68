"""Does NTU DLCV HW4 (solutions/dlcv_hw4) grade as a TA would: the reference at full marks, the starter at zero on
every automatic item, each plausible mistake of TASKS.md section 16 losing its item's marks, each correct
alternative keeping them, and a grade.py written the TA script's way sent to review where its names differ?

Every variant is the reference with exact text edits (each must match once, so a drifting reference fails
loudly), zipped under the course's naming rule and graded in ONE batch run (real sandbox, fork server).
"""
from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grader import batch, spec  # noqa: E402
from variants import apply_edits  # noqa: E402

ASSIGNMENT = "dlcv_hw4"
SOLUTION = ROOT / "solutions" / ASSIGNMENT
STARTER = ROOT / "starter" / ASSIGNMENT
EXAMPLES = ROOT / "fixtures" / "examples" / ASSIGNMENT
CODE = ("grade.py", "byol_pytorch.py", "P2_inference.py")
AUTO = ("1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4")


@dataclass(frozen=True)
class Variant:
    id: str
    file: str
    edits: tuple[tuple[str, str], ...]
    items: tuple[str, ...] = field(default=())  # mistakes: the items that must lose marks; alternatives: kept


def v(id: str, file: str, *edits: tuple[str, str], items: tuple[str, ...]) -> Variant:
    return Variant(id, file, tuple(edits), items)


# -- plausible mistakes (TASKS.md section 16) -------------------------------------------------------------------
PSNR = "return float(\"inf\") if mse == 0 else float(-10.0 * np.log10(mse))"
LOOP = """        psnrs.append(psnr(rgb, gt))
        ssims.append(rgb_ssim(rgb, gt, max_val=1))
    mean_psnr, mean_ssim = float(np.mean(psnrs)), float(np.mean(ssims))"""
STACK = """        psnrs.append((rgb, gt))
        ssims.append(rgb_ssim(rgb, gt, max_val=1))
    mean_psnr = psnr(np.stack([p for p, _ in psnrs]), np.stack([g for _, g in psnrs]))
    mean_ssim = float(np.mean(ssims))"""
FILT = "filt = np.exp(-0.5 * ((np.arange(filter_size) - hw + shift) / filter_sigma) ** 2)"
SSIM_BODY_START = "    # BEGIN SOLUTION 1.3\n    hw = filter_size // 2"
NORMALISE = "    x = F.normalize(x, dim=-1, p=2)\n    y = F.normalize(y, dim=-1, p=2)\n"
EMA_LINE = "return old * self.beta + (1 - self.beta) * new"
MA_LINE = "ma_params.data = ema_updater.update_average(ma_params.data, current_params.data)"
TARGET_BLOCK = """        with torch.no_grad():
            target_encoder = self._get_target_encoder() if self.use_momentum else self.online_encoder
            target_proj_one, _ = target_encoder(image_one)
            target_proj_two, _ = target_encoder(image_two)
            target_proj_one.detach_()
            target_proj_two.detach_()

        loss_one = loss_fn(online_pred_one, target_proj_two.detach())
        loss_two = loss_fn(online_pred_two, target_proj_one.detach())"""
WRITE_ROWS = """for row in rows:
            writer.writerow((row["id"], row["filename"], filename2label[row["filename"]]))"""

MISTAKES = [
    v("psnr-255-peak", "grade.py", (PSNR, "return float(\"inf\") if mse == 0 else float(20 * np.log10(255.0) - 10.0 * np.log10(mse))"),
      items=("1.1",)),
    v("psnr-mean-abs", "grade.py", ("mse = np.mean((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2)",
                                    "mse = np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(gt, np.float64)))"), items=("1.1",)),
    v("read-255-scale", "grade.py", ("return (rgba / 255.0).astype(np.float32)", "return rgba.astype(np.float32)"), items=("1.2",)),
    v("gt-onto-black", "grade.py", ("return rgba[..., :3] * alpha + (1.0 - alpha)", "return rgba[..., :3] * alpha"), items=("1.2",)),
    v("gt-alpha-ignored", "grade.py", ("return rgba[..., :3] * alpha + (1.0 - alpha)", "return rgba[..., :3]"), items=("1.2",)),
    v("pred-onto-white", "grade.py", ("return rgba[..., :3] * rgba[..., 3:]", "return rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])"),
      items=("1.2",)),
    v("psnr-of-the-stack", "grade.py", (LOOP, STACK), items=("1.2",)),
    v("ssim-uniform-window", "grade.py", (FILT, "filt = np.ones(filter_size)"), items=("1.3",)),
    v("ssim-skimage-default", "grade.py", (SSIM_BODY_START, "    from skimage.metrics import structural_similarity\n"
      "    return float(structural_similarity(img0, img1, data_range=max_val, channel_axis=-1))\n" + SSIM_BODY_START),
      items=("1.3",)),
    v("ssim-max-val-ignored", "grade.py", ("c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2", "c1, c2 = k1 ** 2, k2 ** 2"), items=("1.3",)),
    v("byol-plain-mse", "byol_pytorch.py", (NORMALISE, ""), items=("2.1",)),
    v("ema-weights-swapped", "byol_pytorch.py", (EMA_LINE, "return new * self.beta + (1 - self.beta) * old"), items=("2.2",)),
    v("ema-online-follows-target", "byol_pytorch.py",
      (MA_LINE, "current_params.data = ema_updater.update_average(current_params.data, ma_params.data)"), items=("2.2",)),
    v("target-gets-gradient", "byol_pytorch.py",
      ("            set_requires_grad(target_encoder, False)\n", ""),
      (TARGET_BLOCK, TARGET_BLOCK.replace("        with torch.no_grad():\n", "        if True:\n")
       .replace("            target_proj_one.detach_()\n            target_proj_two.detach_()\n", "")
       .replace(".detach())", ")")), items=("2.3",)),
    v("loss-not-symmetrised", "byol_pytorch.py", ("loss = loss_one + loss_two", "loss = loss_one"), items=("2.3",)),
    v("loss-same-view-pairs", "byol_pytorch.py", ("loss_fn(online_pred_one, target_proj_two.detach())",
                                                  "loss_fn(online_pred_one, target_proj_one.detach())"),
      ("loss_fn(online_pred_two, target_proj_one.detach())", "loss_fn(online_pred_two, target_proj_two.detach())"), items=("2.3",)),
    v("csv-glob-order", "P2_inference.py", (WRITE_ROWS, """for i, (name, label) in enumerate(filename2label.items()):
            writer.writerow((i, name, label))"""), items=("2.4",)),
    v("csv-no-header", "P2_inference.py", ("        writer.writerow((\"id\", \"filename\", \"label\"))\n", ""), items=("2.4",)),
    v("labels-unsorted", "P2_inference.py", ("enumerate(sorted({row[\"label\"] for row in rows}))",
                                             "enumerate(dict.fromkeys(row[\"label\"] for row in rows))"), items=("2.4",)),
]

# -- correct alternatives ------------------------------------------------------------------------------------------
ALTERNATIVES = [
    v("psnr-skimage", "grade.py", ("    # BEGIN SOLUTION 1.1\n", "    # BEGIN SOLUTION 1.1\n"
      "    from skimage.metrics import peak_signal_noise_ratio\n"
      "    return float(peak_signal_noise_ratio(np.asarray(gt, np.float64), np.asarray(pred, np.float64), data_range=1))\n"),
      items=("1.1", "1.2")),
    v("read-imageio", "grade.py", ("    with Image.open(path) as im:\n        rgba = np.asarray(im.convert(\"RGBA\"))  # (H, W, 4) uint8\n",
                                   "    import imageio\n    rgba = imageio.v2.imread(path, pilmode=\"RGBA\")\n"), items=("1.2",)),
    v("ssim-skimage-gaussian", "grade.py", (SSIM_BODY_START, "    from skimage.metrics import structural_similarity\n"
      "    return float(structural_similarity(img0, img1, data_range=max_val, channel_axis=-1, gaussian_weights=True,\n"
      "                                       sigma=filter_sigma, use_sample_covariance=False, K1=k1, K2=k2))\n"
      + SSIM_BODY_START), items=("1.3", "1.2")),
    v("ssim-torch-conv", "grade.py", (SSIM_BODY_START, """    import torch
    import torch.nn.functional as F
    t = lambda z: torch.as_tensor(np.asarray(z, np.float64)).permute(2, 0, 1)[:, None]  # (3, 1, H, W)
    half = filter_size // 2
    g = torch.exp(-0.5 * ((torch.arange(filter_size, dtype=torch.float64) - half + (2 * half - filter_size + 1) / 2)
                          / filter_sigma) ** 2)
    g = g / g.sum()
    blur = lambda z: F.conv2d(F.conv2d(z, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    x, y = t(img0), t(img1)
    mx, my = blur(x), blur(y)
    sxx = (blur(x * x) - mx ** 2).clamp_min(0)
    syy = (blur(y * y) - my ** 2).clamp_min(0)
    sxy = blur(x * y) - mx * my
    sxy = torch.sign(sxy) * torch.minimum(torch.sqrt(sxx * syy), sxy.abs())
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    m = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(m.mean())
""" + SSIM_BODY_START), items=("1.3",)),
    v("loss-cosine-similarity", "byol_pytorch.py", (NORMALISE + "    return 2 - 2 * (x * y).sum(dim=-1)\n",
                                                    "    return 2 - 2 * F.cosine_similarity(x, y, dim=-1)\n"), items=("2.1", "2.3")),
    v("loss-fn-batch-mean", "byol_pytorch.py", ("    return 2 - 2 * (x * y).sum(dim=-1)\n",
                                                "    return (2 - 2 * (x * y).sum(dim=-1)).mean()\n"), items=("2.1", "2.3")),
    v("ema-lerp-in-place", "byol_pytorch.py", (EMA_LINE, "return torch.lerp(new, old, self.beta)"),
      (MA_LINE, "ma_params.mul_(ema_updater.beta).add_(current_params, alpha=1 - ema_updater.beta)"), items=("2.2",)),
    v("loss-mean-of-the-two", "byol_pytorch.py", ("loss = loss_one + loss_two", "loss = (loss_one + loss_two) / 2"), items=("2.3",)),
    v("detach-only", "byol_pytorch.py", (TARGET_BLOCK, TARGET_BLOCK.replace("        with torch.no_grad():\n", "        if True:\n")),
      items=("2.3",)),
    v("csv-dictwriter", "P2_inference.py", ("""        writer = csv.writer(out_f)
        writer.writerow(("id", "filename", "label"))
        for row in rows:
            writer.writerow((row["id"], row["filename"], filename2label[row["filename"]]))""",
                                            """        writer = csv.DictWriter(out_f, fieldnames=["id", "filename", "label"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"id": row["id"], "filename": row["filename"], "label": filename2label[row["filename"]]})"""),
      items=("2.4",)),
]
VARIANTS = MISTAKES + ALTERNATIVES


def _files(variant: Variant | None) -> dict[str, str]:
    files = {name: (SOLUTION / name).read_text() for name in CODE}
    if variant is not None:
        files[variant.file] = apply_edits(files[variant.file], variant.edits, variant.id)
    return files


def _zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Reference, starter, the course-style example and every variant, graded in one batch."""
    folder = tmp_path_factory.mktemp("class")
    ids = {"reference": "r00000000", "starter": "r00000001", "course": "r11000004"}
    _zip(folder / "hw4_r00000000_Reference.zip", _files(None))
    _zip(folder / "hw4_r00000001_Starter.zip", {name: (STARTER / name).read_text() for name in CODE})
    (folder / "hw4_r11000004_Course_Style.zip").write_bytes((EXAMPLES / "hw4_r11000004_Course_Style.zip").read_bytes())
    for n, variant in enumerate(VARIANTS):
        sid = f"r{20000000 + n}"
        ids[variant.id] = sid
        _zip(folder / f"hw4_{sid}_Variant.zip", _files(variant))
    opts = batch.Options(out=tmp_path_factory.mktemp("out"), jobs=2, timeout_scale=3.0, progress=False)
    records = {r["student_id"]: r for r in batch.grade_folder(spec.load(ASSIGNMENT), folder, opts, log=lambda m: None)}
    return {name: records[sid] for name, sid in ids.items()}


def why(record: dict) -> str:
    lines = [f"items: {record['items']}", f"status: {record['status']} {record.get('reason', '')}"]
    lines += [f"  {o['item']:4} {o['status']:7} {o['name']}: {o['message'][:160]} {o['detail'][:160]}"
              for o in record["outcomes"]]
    return "\n".join(lines)


def marks(item: str) -> float:
    return spec.load(ASSIGNMENT).item(item).marks


def test_reference_scores_full_marks(graded):
    """Does the reference earn every automatic item's full marks?"""
    record = graded["reference"]
    assert {i: record["items"][i] for i in AUTO} == {i: marks(i) for i in AUTO}, why(record)


def test_starter_scores_zero_without_crashing(graded):
    """Does the bare starter score zero on every automatic item, each failing with the stub's message?"""
    record = graded["starter"]
    assert all(record["items"][i] == 0 for i in AUTO), why(record)
    assert record["status"] == "ok", why(record)
    assert all("NotImplementedError" in o["message"] or "Task" in o["message"] for o in record["outcomes"]
               if o["item"] in AUTO), why(record)


@pytest.mark.parametrize("variant", MISTAKES, ids=lambda m: m.id)
def test_plausible_mistake_loses_marks(graded, variant: Variant):
    """Does each mistake of the catalogue lose marks on its item?"""
    record = graded[variant.id]
    for item in variant.items:
        assert record["items"][item] < marks(item), f"{variant.id}: item {item} should lose marks\n{why(record)}"


@pytest.mark.parametrize("variant", [m for m in MISTAKES if m.items in (("1.1",), ("1.3",))], ids=lambda m: m.id)
def test_a_metric_mistake_is_marked_once(graded, variant: Variant):
    """Does a wrong psnr or rgb_ssim lose its own item only, not 1.2 again (render_viewpoints that calls it)?"""
    record = graded[variant.id]
    assert record["items"]["1.2"] == marks("1.2"), f"{variant.id}\n{why(record)}"


def test_a_loss_mistake_is_marked_once(graded):
    """Does a loss_fn without normalisation lose 2.1 only, not 2.3 again (BYOL.forward that calls it)?"""
    record = graded["byol-plain-mse"]
    assert record["items"]["2.3"] == marks("2.3"), why(record)


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda a: a.id)
def test_correct_alternative_keeps_full_marks(graded, variant: Variant):
    """Does each correct alternative keep the full marks of the items it touches (and every other item)?"""
    record = graded[variant.id]
    assert {i: record["items"][i] for i in AUTO} == {i: marks(i) for i in AUTO}, f"{variant.id}\n{why(record)}"


def test_course_style_files_go_to_review_where_names_differ(graded):
    """A grade.py written the TA script's way (PSNR inline, no return value) and a P2_inference.py that writes its
    CSV inside main(args): is rgb_ssim marked, and are PSNR, compositing and the CSV left to a TA, never zero?"""
    record = graded["course"]
    assert record["items"]["1.3"] == marks("1.3"), why(record)
    for item in ("1.1", "1.2", "2.4"):
        assert record["items"][item] is None, f"item {item} must wait for a TA, not score\n{why(record)}"
        assert all(o["status"] == "review" for o in record["outcomes"] if o["item"] == item), why(record)
    assert {i: record["items"][i] for i in ("2.1", "2.2", "2.3")} == {i: marks(i) for i in ("2.1", "2.2", "2.3")}, why(record)
