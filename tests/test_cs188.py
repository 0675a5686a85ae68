"""UCLA CS188 HW4: the notebook engine, and whether the hidden checks tell mistakes from correct answers.

Engine tests run in this process (grader/notebook.py, intake, strip). Grading tests fabricate notebooks
from the reference by text substitution inside code cells (each `old` must occur exactly once in one
cell, so a drifting reference fails loudly), write them into a fresh box and grade them in the real
sandbox. Training variants run only the checks aimed at the loop (the exact three-step update and the
plot); the reference runs every check, including the end-to-end run.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader import batch, intake, notebook, spec, strip  # noqa: E402
from grader.checks import load_checks  # noqa: E402
from grader.runner import Outcome, run_checks  # noqa: E402
from grader.sandbox import detect_mode  # noqa: E402
from grader.scoring import score_items  # noqa: E402

A = "cs188_hw4"
SOLUTION = ROOT / "solutions" / A
STARTER = ROOT / "starter" / A
EXAMPLES = ROOT / "fixtures" / "examples" / A
PS, CL, AN = "PSET4_PS", "PSET4_Classification", "PSET4_Analytical"
MODULES = (PS, CL, AN)
WORKERS = int(os.environ.get("CS188_TEST_WORKERS", "2"))  # sandboxes at a time (2 cores; one thread each)


def _gen():
    spec_ = importlib.util.spec_from_file_location("_make_cs188_hw4_test", ROOT / "fixtures" / "make_cs188_hw4.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


GEN = _gen()
REFERENCE = {m: (SOLUTION / f"{m}.ipynb").read_text() for m in MODULES}


def write_nb(path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = {"cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src,
                     **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                    for i, (kind, src) in enumerate(cells)],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


# -- the engine, in this process --------------------------------------------------------------------
def test_magics_and_shell_lines_run_without_a_kernel(tmp_path):
    """Do line/cell magics and shell lines become no-ops (timing magics run their statement) without crashing?"""
    path = write_nb(tmp_path / "n.ipynb", [
        ("code", "%matplotlib inline\n%load_ext autoreload\n%autoreload 2\n!pip install torch\nfiles = !ls\nimport numpy as np"),
        ("code", "%%time\nx = np.arange(3).sum()"),
        ("code", "%time y = x + 1\nfor i in range(2):\n    !echo hi\nz = len(files)"),
        ("code", "%%bash\necho this is not python"),
        ("code", "%%capture\nw = 5\nprint('hidden')"),
        ("markdown", "# not code: x = 1/0"),
        ("code", "display(x)\nget_ipython().run_line_magic('config', 'InlineBackend.figure_format = \"retina\"')"),
    ])
    mod = notebook.load("nb_magic", str(path))
    assert mod._notebook_errors == []
    assert (mod.x, mod.y, mod.z, mod.w) == (3, 4, 0, 5)


def test_fallback_transformer_without_ipython():
    """Without IPython, does the line-based fallback still neutralise magics and shell lines?"""
    ns: dict = {}
    ns["get_ipython"] = lambda shell=notebook.FakeIPython(ns): shell
    code = "%matplotlib inline\n!pip install x\nfiles = !ls\nfor i in range(2):\n    %time y = i\nz = 7 % 4\nw = (1 != 2)\n"
    exec(compile(notebook._simple_transform(code), "<cell>", "exec"), ns)
    assert (ns["files"], ns["y"], ns["z"], ns["w"]) == ([], 1, 3, True)
    exec(compile(notebook._simple_transform("%%time\nq = 5\n"), "<cell>", "exec"), ns)
    assert ns["q"] == 5


def test_a_failing_cell_is_recorded_and_later_cells_still_run(tmp_path):
    """Does a raising cell leave a record, the next cells run, and a missing name explain which cell failed?"""
    path = write_nb(tmp_path / "n.ipynb", [
        ("code", "a = 1"),
        ("code", "b = undefined_name + 1"),
        ("code", "import sys\nsys.exit(3)"),
        ("code", "c = a + 1\ndef f(v):\n    return v * 2"),
    ])
    mod = notebook.load("nb_fail", str(path))
    assert mod.c == 2 and mod.f(4) == 8
    assert [e["cell"] for e in mod._notebook_errors] == [2, 3]
    assert mod._notebook_errors[0]["error"] == "NameError"
    with pytest.raises(AttributeError, match=r"defines no 'b': cell 2 raised NameError"):
        mod.b


@pytest.mark.parametrize("text, reason", [
    ('{"cells": [', "not valid JSON"),
    ("[1, 2]", "no list of cells"),
    ('{"cells": "x", "nbformat": 4}', "no list of cells"),
    ('{"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
])
def test_broken_notebook_files_give_a_clear_error(tmp_path, text, reason):
    """Does a file that is not a notebook raise NotebookError with a reason a student can act on?"""
    path = tmp_path / "PSET4_PS.ipynb"
    path.write_text(text)
    with pytest.raises(notebook.NotebookError, match=reason):
        notebook.load("nb_broken", str(path))


def test_cells_marked_grader_skip_are_not_run(tmp_path):
    """Is a cell whose first line is `# grader: skip` skipped by the grader, and run by import_notebook?"""
    path = write_nb(tmp_path / "n.ipynb", [("code", "a = 1"), ("code", "# grader: skip (slow)\na = 2\nraise SystemExit")])
    assert notebook.load("nb_skip", str(path)).a == 1
    assert notebook.import_notebook(str(path), "nb_noskip").a == 2


def test_data_root_points_at_the_fixtures(tmp_path, monkeypatch):
    """Does the engine export DATA_ROOT and link the data folder's entries into the working directory?"""
    data = tmp_path / "data"
    (data / "pmsData").mkdir(parents=True)
    work = tmp_path / "box"
    work.mkdir()
    monkeypatch.setenv("GRADER_DATA_DIR", str(data))
    monkeypatch.delenv("DATA_ROOT", raising=False)
    monkeypatch.chdir(work)
    path = write_nb(work / "n.ipynb", [("code", "import os\nroot = os.environ['DATA_ROOT']\nrel = os.path.isdir('./pmsData')")])
    mod = notebook.load("nb_data", str(path))
    assert mod.root == str(data) and mod.rel is True


def test_intake_finds_notebooks_by_module_name(tmp_path):
    """Are <module>.ipynb files found in any folder and any case, with .py preferred when both exist?"""
    a = spec.load(A)
    (tmp_path / "hw4" / "sub").mkdir(parents=True)
    (tmp_path / "hw4" / "pset4_ps.IPYNB").write_text("{}")
    (tmp_path / "hw4" / "sub" / "PSET4_Classification.ipynb").write_text("{}")
    (tmp_path / "PSET4_Analytical.ipynb").write_text("{}")
    (tmp_path / "PSET4_Analytical.py").write_text("")
    found = intake.find_modules(tmp_path, a)
    assert found == {PS: "hw4/pset4_ps.IPYNB", CL: "hw4/sub/PSET4_Classification.ipynb", AN: "PSET4_Analytical.py"}


def test_strip_notebook_hides_solutions_and_clears_outputs():
    """Does a solution notebook become a starter: stubs in code cells, no outputs, answers replaced?"""
    src = {"cells": [
        {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1"]}],
         "source": ["x = 1\n", "# BEGIN SOLUTION 2.2\n", "# hint kept\n", "y = secret()\n", "# END SOLUTION\n", "print(y)"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["### Answer 2.3\n", "\n", "the reference's answer"]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    out = json.loads(strip.strip_notebook(json.dumps(src)))
    code = "".join(out["cells"][0]["source"])
    assert "secret" not in code and "# hint kept" in code and 'raise NotImplementedError("Task 2.2' in code and code.endswith("print(y)")
    assert out["cells"][0]["outputs"] == [] and out["cells"][0]["execution_count"] is None
    answer = "".join(out["cells"][1]["source"])
    assert answer.startswith("### Answer 2.3") and "reference" not in answer


def test_starter_notebooks_hold_no_solution_line():
    """Does no code line of a solution block, and no reference answer, leak into the starter notebooks?"""
    for m in MODULES:
        starter = (STARTER / f"{m}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in starter
        sources = ["".join(c["source"]) for c in json.loads(REFERENCE[m])["cells"]]
        given = {_bare(ln) for src in sources for ln in _outside_blocks(src)}  # lines the starter gives anyway
        for src in sources:
            for block in src.split("# BEGIN SOLUTION")[1:]:
                for line in block.split("# END SOLUTION")[0].splitlines()[1:]:
                    if line.strip() and not line.strip().startswith("#") and _bare(line) not in given:
                        assert json.dumps(line)[1:-1] not in starter, f"{m}: solution line leaked: {line.strip()}"


def _bare(line: str) -> str:
    return line.split("  #")[0].strip()


def _outside_blocks(src: str) -> list[str]:
    out, inside = [], False
    for line in src.splitlines():
        if "# BEGIN SOLUTION" in line:
            inside = True
        elif "# END SOLUTION" in line:
            inside = False
        elif not inside:
            out.append(line)
    return out


def test_fixture_normals_are_exact_and_the_cifar_layout_is_cifars():
    """Are the exact-mode images exactly rho n.l, and are the CIFAR files in CIFAR-10's pickle layout?"""
    import numpy as np

    sc = GEN.sphere_scene(64, 80, 20, "exact", seed=1)
    G = np.linalg.lstsq(sc["L"], sc["I"].reshape(20, -1), rcond=None)[0]
    assert np.allclose(G.reshape(3, 64, 80), sc["normals"] * sc["albedo"], atol=1e-12)
    assert (np.einsum("mc,chw->mhw", sc["L"], sc["normals"])[:, sc["mask"]] > 0).all(), "exact mode must have no shadows"
    import pickle

    folder = ROOT / "fixtures" / "data" / A / "public" / "cifar-10-batches-py"
    sizes = []
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")  # how torchvision reads them
        assert d["data"].dtype == np.uint8 and d["data"].shape[1] == 3072 and len(d["labels"]) == len(d["data"])
        sizes.append(len(d["data"]))
    assert sum(sizes[:5]) == GEN.N_TRAIN and sizes[5] == GEN.N_TEST
    with open(folder / "batches.meta", "rb") as fh:
        assert pickle.load(fh, encoding="latin1")["label_names"][0] == "plane"
    # torchvision's own reader on these files (md5 check off) runs in every grading of PSET4_Classification.


def _answer_text():
    spec_ = importlib.util.spec_from_file_location("_cs188_answer_text_test", SOLUTION / "hidden" / "answer_text.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


SEED_1_1 = ("The plenoptic function has 7 DoF. ... The location can be broken into 3 spatial coordinates x, y, z and the "
            "angle into some theta, phi. This requires 7 independent variables, hence having 7 degrees of freedom. "
            "Surface normals can be described with only 2 variables.")
SEED_1_2 = ("(i) Assuming a Lambertian surface ... write an expression for I(u, v).\n(ii) How many unknown variables we need to "
            "solve for at the pixel (u, v)? The 3 components of the normal vector can be denoted as N_x, N_y, N_z.\n"
            "(iii) What is the minimum number of measurements required\n\ni)\n$$I(u, v) = \\rho(u, v) \\cdot l \\cdot N(u, v)$$\n\n"
            "ii) Since the surface normal vector has 3 components and albedo is a real scalar, we initially have these 4 values "
            "as unknowns. However N is a unit vector, meaning we have **3 unknowns**.\n\n- iii) We have 3 unknowns so we need "
            "to take 3 intensity measurements given different lighting vectors.")


def test_written_counts_are_read_from_a_report_section_or_left_to_a_ta():
    """Are the seed-004 report's counts read (question text before the answers), and a text that states
    several counts equally, or none, left to a TA instead of scored?"""
    from types import SimpleNamespace

    from grader.checks import NeedsReview

    text = _answer_text()
    student = SimpleNamespace(answers={"1.1": SEED_1_1, "1.2": SEED_1_2}, sandbox=SimpleNamespace(module_files={}))
    assert text.stated_count(student, "1.1.1", r"DoF|degrees?", "dof") == 7
    assert text.stated_count(student, "1.2.2", r"unknowns?|unknown variables|variables", "unknowns") == 3
    assert text.stated_count(student, "1.2.3", r"measurements?|images?|lights?", "measurements") == 3
    for answers in ({"1.2": "(ii) 3 unknowns, or 4 unknowns if the normal is not unit"}, {"1.2": "(ii) the normal and the albedo"}, {}):
        with pytest.raises(NeedsReview):
            text.stated_count(SimpleNamespace(answers=answers, sandbox=student.sandbox), "1.2.2", r"unknowns?", "unknowns")
    with pytest.raises(Exception) as caught:  # NaN is never equal to an expected number
        text.expect_number(float("nan"), 7, "plenoptic_dof")
    assert type(caught.value).__name__ == "CheckFailed"


# -- grading in the sandbox ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    id: str
    module: str
    edits: tuple[tuple[str, str], ...]
    loses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # item -> checks (name fragments) that must fail
    only: tuple[str, ...] = ()  # run only checks whose name contains one of these (empty: all of the module's)


def fabricate(v: Variant) -> str:
    return GEN._edit_cells(REFERENCE[v.module], list(v.edits))


ITEMS = {PS: ("2.1", "2.2"), CL: ("4.1.2", "4.2.4", "4.3.1", "4.4.1"),
         AN: ("1.1.1", "1.2.1", "1.2.2", "1.2.3", "1.3.1", "1.3.2", "1.3.3", "1.3.4", "3.1", "3.2.1", "3.2.2", "3.2.3", "5.2.1", "5.2.2")}
ALL_ITEMS = tuple(i for m in MODULES for i in ITEMS[m])
LOOP = ("three SGD steps", "plot_loss_curve")

G_LINE = "    G = np.linalg.lstsq(L, I_m, rcond=None)[0]  # (3, n): minimises ||L G - I_m||"
STEP = ("            optimizer.zero_grad()  # clear the gradients of the last step\n            outputs = net(inputs)\n"
        "            loss = criterion(outputs, labels)\n            loss.backward()\n            optimizer.step()\n")


def step(*lines: str) -> tuple[tuple[str, str], ...]:
    return ((STEP, "".join(f"            {ln}\n" for ln in lines)),)


MISTAKES = [
    # -- photometric stereo (TASKS.md section 6) --
    Variant("ps-albedo-norm-wrong-axis", PS, (("rho = np.linalg.norm(G, axis=0)", "rho = np.linalg.norm(G, axis=1)"),),
            {"2.2": ("96 lights", "20 lights", "tall", "BALL")}),
    Variant("ps-notebook-rho-wrong-axis", PS, (("rho_hat = np.linalg.norm(G_hat, axis=1)", "rho_hat = np.linalg.norm(G_hat, axis=0)"),),
            {"2.2": ("G_hat, rho_hat and N_hat",)}),
    Variant("ps-notebook-reshape-without-transpose", PS, (("N_hat = N_hat.T.reshape(3, H, W)", "N_hat = N_hat.reshape(3, H, W)"),),
            {"2.2": ("G_hat, rho_hat and N_hat",)}),
    Variant("ps-reshape-without-transpose", PS, (
        (G_LINE, "    G = np.linalg.lstsq(L, I_m, rcond=None)[0].T  # (n, 3)"),
        ("rho = np.linalg.norm(G, axis=0)", "rho = np.linalg.norm(G, axis=1)"),
        ("N = np.where(rho > 0, G / rho, 0.0)", "N = np.where(rho[:, None] > 0, G / rho[:, None], 0.0)")),
        {"2.2": ("96 lights", "tall", "BALL")}),
    Variant("ps-hard-coded-96", PS, (("I_m = I.reshape(m, h * w).astype(np.float64)", "I_m = I.reshape(96, h * w).astype(np.float64)"),),
            {"2.2": ("20 lights",)}),
    Variant("ps-LT-without-inverse", PS, ((G_LINE, "    G = L.T @ I_m"),), {"2.2": ("96 lights", "20 lights", "tall")}),
    Variant("ps-no-nan-handling", PS, (("N = np.where(rho > 0, G / rho, 0.0)", "N = G / rho"),), {"2.2": ("96 lights", "20 lights")}),
    Variant("ps-height-width-swapped", PS, (("return rho.reshape(h, w), N.reshape(3, h, w)", "return rho.reshape(w, h), N.reshape(3, w, h)"),),
            {"2.2": ("96 lights", "tall")}),
    Variant("ps-L-stats-wrong-axis", PS, (("L_mean = np.mean(np.linalg.norm(L, axis=1))", "L_mean = np.mean(np.linalg.norm(L, axis=0))"),),
            {"2.1": ("L_mean and L_std",)}),
    Variant("ps-I_m-wrong-memory-order", PS, (("I_m = I.reshape(I.shape[0], -1).astype(np.float64)",
                                              "I_m = I.reshape(-1, I.shape[0]).T.astype(np.float64)"),),
            {"2.1": ("dim_L, I_m",)}),
    # -- training loop and accuracy (TASKS.md section 7) --
    Variant("train-missing-zero-grad", CL, step("outputs = net(inputs)", "loss = criterion(outputs, labels)", "loss.backward()",
                                                "optimizer.step()"), {"4.3.1": ("three SGD steps",)}, LOOP),
    Variant("train-zero-grad-between-backward-and-step", CL, step(
        "outputs = net(inputs)", "loss = criterion(outputs, labels)", "loss.backward()", "optimizer.zero_grad()", "optimizer.step()"),
        {"4.3.1": ("three SGD steps",)}, LOOP),
    Variant("train-step-before-backward", CL, step(
        "optimizer.zero_grad()", "outputs = net(inputs)", "loss = criterion(outputs, labels)", "optimizer.step()", "loss.backward()"),
        {"4.3.1": ("three SGD steps",)}, LOOP),
    Variant("train-double-softmax", CL, (("            loss = criterion(outputs, labels)\n",
                                         "            loss = criterion(F.softmax(outputs, dim=1), labels)\n"),),
            {"4.3.1": ("three SGD steps",)}, LOOP),
    Variant("accuracy-over-batches-and-counts-of-batches", CL, (
        ("acc = 100.0 * correct / total", "acc = 100.0 * correct / len(test_loader)"),
        ("num_train = len(train_data)", "num_train = len(train_loader)"),
        ("        self.fc1 = nn.Linear(16 * 6 * 6, 120)", "        self.fc1 = nn.Linear(16 * 5 * 5, 120)"),
        ("k3_works_unchanged = False", "k3_works_unchanged = True")),
        {"4.4.1": ("known",), "4.1.2": ("numbers of training",), "4.2.4": ("whether 3x3", "3x3 convolutions")},
        ("known", "numbers of training", "whether 3x3", "3x3 convolutions")),
    # -- issue 12: answers the checks used to believe --
    Variant("ps-notebook-overwrites-I-and-L-with-zeros", PS, (("H, W = I.shape[1], I.shape[2]\n",
            "I = np.zeros_like(I)\nL = np.zeros_like(L)\nI_m = I.reshape(I.shape[0], -1).astype(np.float64)\n"
            "H, W = I.shape[1], I.shape[2]\n"),), {"2.2": ("G_hat, rho_hat and N_hat",)}),
    Variant("ps-notebook-albedo-threshold-above-1", PS, (("N_hat = np.where(rho_hat[:, None] > 0,", "N_hat = np.where(rho_hat[:, None] > 1,"),),
            {"2.2": ("G_hat, rho_hat and N_hat",)}),
    Variant("ps-albedo-threshold-above-1", PS, (("N = np.where(rho > 0, G / rho, 0.0)", "N = np.where(rho > 1, G / rho, 0.0)"),),
            {"2.2": ("dark images",)}),
    Variant("ps-albedo-not-returned", PS, (("return rho.reshape(h, w), N.reshape(3, h, w)", "return np.ones((h, w)), N.reshape(3, h, w)"),),
            {"2.2": ("albedo returned",)}),
    Variant("analytical-nan-answers", AN, (("plenoptic_dof = 7", "plenoptic_dof = float('nan')"),
                                           ("min_measurements = 3", "min_measurements = np.nan")),
            {"1.1.1": ("plenoptic",), "1.2.3": ("measurements",)}),
    # -- analytical answers --
    Variant("analytical-wrong-answers", AN, (
        ("plenoptic_dof = 7", "plenoptic_dof = 5"), ("padding_stride = (1, 2)", "padding_stride = (0, 2)"),
        ("    return -log_p_y_given_x(y, y_hat)", "    return log_p_y_given_x(y, y_hat)"),
        ("    return A.T @ x", "    return A @ y"), ("unknowns_per_pixel = 3", "unknowns_per_pixel = 4")),
        {"1.1.1": ("plenoptic",), "5.2.2": ("padding",), "3.2.3": ("loss",), "3.1": ("gradient (c)",), "1.2.2": ("unknowns",)}),
]

ALTERNATIVES = [
    Variant("ps-pinv-and-nan-to-num", PS, ((G_LINE, "    G = np.linalg.pinv(L) @ I_m"),
                                           ("N = np.where(rho > 0, G / rho, 0.0)", "N = np.nan_to_num(G / rho)"))),

    Variant("ps-explicit-inverse", PS, ((G_LINE, "    G = np.linalg.inv(L.T @ L) @ L.T @ I_m"),)),
    Variant("ps-per-pixel-loop", PS, ((G_LINE, "    G = np.zeros((3, I_m.shape[1]))\n    for k in range(I_m.shape[1]):\n"
                                               "        G[:, k] = np.linalg.lstsq(L, I_m[:, k], rcond=None)[0]"),)),
    Variant("ps-masked-solve-and-scatter", PS, ((G_LINE, "    G = np.zeros((3, I_m.shape[1]))\n    on = np.any(I_m != 0, axis=0)\n"
                                                         "    G[:, on] = np.linalg.pinv(L) @ I_m[:, on]"),)),
    Variant("ps-torch-linalg", PS, ((G_LINE, "    import torch\n    G = torch.linalg.lstsq(torch.from_numpy(L), torch.from_numpy(I_m)).solution.numpy()"),)),
    Variant("ps-solve-normal-equations-and-seed-style-cells", PS, ((G_LINE, "    G = np.linalg.solve(L.T @ L, L.T @ I_m)"), (
        "G_hat = np.linalg.pinv(L) @ I_m.astype(np.float64)  # (3, n)\nG_hat = G_hat.T                                       # (n, 3)\n"
        "rho_hat = np.linalg.norm(G_hat, axis=1)               # (n,)\nwith np.errstate(divide='ignore', invalid='ignore'):\n"
        "    N_hat = np.where(rho_hat[:, None] > 0, G_hat / rho_hat[:, None], 0.0)\nN_hat = N_hat.T.reshape(3, H, W)",
        "L_inv = np.linalg.pinv(L)\nG_hat_vec = np.dot(L_inv, I_m)\nG_hat = G_hat_vec.T\nrho_hat = np.linalg.norm(G_hat, axis=-1)\n"
        "with np.errstate(all='ignore'):\n    N_hat_vec = G_hat_vec / rho_hat\n    N_hat_vec[np.isnan(N_hat_vec)] = 0\n"
        "    N_hat = N_hat_vec.reshape(3, H, W)"),)),
    Variant("train-net-zero-grad-and-F-cross-entropy", CL, (
        ("optimizer.zero_grad()  # clear", "net.zero_grad()  # clear"),
        ("            loss = criterion(outputs, labels)\n", "            loss = F.cross_entropy(outputs, labels)\n")), only=LOOP),
    Variant("train-zero-grad-at-end", CL, step("outputs = net(inputs)", "loss = criterion(outputs, labels)", "loss.backward()",
                                              "optimizer.step()", "optimizer.zero_grad(set_to_none=True)"), only=LOOP),
    Variant("accuracy-fraction-and-torch-max", CL, (
        ("acc = 100.0 * correct / total", "acc = correct / total"),
        ("            predicted = outputs.argmax(dim=1)\n", "            _, predicted = torch.max(outputs.data, 1)\n")),
        only=("known", "random network")),
    Variant("analytical-other-forms", AN, (
        ("    return np.linalg.inv(L.T @ L) @ L.T @ I_m", "    return np.linalg.lstsq(L, I_m, rcond=None)[0]"),
        ("    return A\n", "    return A.T  # the handout's denominator layout\n"),
        ("conv_output_shape = (64, 62, 62)", "conv_output_shape = [62, 62]"),
        ("    return y_hat ** y * (1 - y_hat) ** (1 - y)", "    return np.where(y == 1, y_hat, 1 - y_hat)"),
        ("    return 2 * x\n", "    return x + x\n"))),
    Variant("analytical-clamped-lambertian", AN, (("    return rho * np.dot(l, N)", "    return rho * max(0.0, float(np.dot(l, N)))"),)),
]


def grade(grader: dict, box: Path, notebooks: dict[str, str], items: set[str], only: tuple[str, ...] = ()) -> tuple[dict, list]:
    for module, text in notebooks.items():
        (box / f"{module}.ipynb").write_text(text)
    box.chmod(0o777)
    checks = [c for c in grader["checks"] if not only or any(f in c.name for f in only)]
    outcomes = run_checks(checks, box, {m: f"{m}.ipynb" for m in notebooks}, grader["mode"], only=items,
                          data_dir=grader["assignment"].public_data_dir, timeout_scale=float(os.environ.get("CS188_TIMEOUT_SCALE", "3")))
    scored = {s.item.id: s.score for s in score_items(grader["assignment"], outcomes) if s.item.id in items}
    return scored, outcomes


@pytest.fixture(scope="module")
def grader() -> dict:
    return {"checks": load_checks(SOLUTION / "hidden"), "assignment": spec.load(A), "mode": detect_mode()}


@pytest.fixture(scope="module")
def graded(grader: dict, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    """Every submission the selected tests need, graded once, WORKERS sandboxes at a time."""
    starter = {m: (STARTER / f"{m}.ipynb").read_text() for m in MODULES}
    jobs = {"reference": lambda: (REFERENCE, set(ALL_ITEMS), ()), "starter": lambda: (starter, set(ALL_ITEMS), ())}
    for v in MISTAKES + ALTERNATIVES:
        jobs[v.id] = lambda v=v: ({v.module: fabricate(v)}, set(ITEMS[v.module]), v.only)
    wanted = set()
    for t in request.session.items:
        if t.module is request.module:
            if hasattr(t, "callspec") and isinstance(t.callspec.params.get("variant"), Variant):
                wanted.add(t.callspec.params["variant"].id)
            wanted.update(n for n in ("reference", "starter") if f"_{n}_" in t.name)
    jobs = {k: v for k, v in jobs.items() if k in wanted}

    def run(name: str):
        notebooks, items, only = jobs[name]()
        return grade(grader, tmp_path_factory.mktemp(name), notebooks, items, only)

    with ThreadPoolExecutor(max_workers=max(1, WORKERS)) as pool:
        futures = {name: pool.submit(run, name) for name in jobs}
        wait(futures.values())
    return futures


def report(scored: dict, outcomes: list[Outcome]) -> str:
    return "\n".join([f"scores: {scored}"] + [f"  {o.item} {o.status:8} {o.name}: {o.message[:200]} {o.hint[:80]}" for o in outcomes])


def no_sandbox_failure(outcomes: list[Outcome], why: str) -> None:
    assert not [o for o in outcomes if o.status in ("timeout", "crashed")], f"the sandbox timed out or crashed\n{why}"


def test_reference_scores_full_marks(grader, graded):
    """Does the reference pass every check of every automatic item (end-to-end training included)?"""
    scored, outcomes = graded["reference"].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert all(o.passed for o in outcomes), why
    assert scored == {i: grader["assignment"].item(i).marks for i in ALL_ITEMS}, why


def test_starter_scores_zero_without_crashing(graded):
    """Does the generated starter score 0 on every automatic item, failing cleanly (no timeout or crash)?"""
    scored, outcomes = graded["starter"].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert scored == {i: 0.0 for i in ALL_ITEMS}, why
    assert any("Task 2.2" in o.message or "NotImplementedError" in o.message for o in outcomes if o.item == "2.2"), why


@pytest.mark.parametrize("variant", MISTAKES, ids=lambda v: v.id)
def test_plausible_mistake_loses_marks(grader, graded, variant: Variant):
    """Does this plausible mistake lose marks on the items it breaks, through the checks aimed at it?"""
    scored, outcomes = graded[variant.id].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    for item, fragments in variant.loses.items():
        assert scored[item] < grader["assignment"].item(item).marks, f"item {item} should lose marks\n{why}"
        for fragment in fragments:
            named = [o for o in outcomes if o.item == item and fragment in o.name]
            assert named, f"no check of {item} named like {fragment!r}\n{why}"
            assert not any(o.passed for o in named), f"check {fragment!r} should fail\n{why}"


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.id)
def test_correct_alternative_keeps_full_marks(grader, graded, variant: Variant):
    """Does this correct alternative pass every check that ran for its module?"""
    scored, outcomes = graded[variant.id].result()
    why = report(scored, outcomes)
    no_sandbox_failure(outcomes, why)
    assert outcomes and all(o.passed for o in outcomes), why


def test_variants_change_the_reference():
    """Does every fabricated variant differ from the reference notebook it was made from?"""
    for v in MISTAKES + ALTERNATIVES:
        assert fabricate(v) != REFERENCE[v.module], v.id


# -- a batch of example zips: broken notebook, seed student ------------------------------------------------
def test_broken_notebook_gets_a_clear_status_and_the_batch_goes_on(tmp_path):
    """Does a notebook that is not JSON fail its own items with a clear message while the other notebooks grade?"""
    folder = tmp_path / "zips"
    folder.mkdir()
    for name in ("HW4_305000005_BROKEN_Notebook.zip", "HW4_305000002_STARTER_Only.zip"):
        (folder / name).write_bytes((EXAMPLES / name).read_bytes())
    a = spec.load(A)
    checks = [c for c in load_checks(SOLUTION / "hidden") if c.module != CL]  # keep it quick: no torch
    opts = batch.Options(out=tmp_path / "out", jobs=1, timeout_scale=3.0)
    records = _grade_folder_with(a, folder, opts, checks)
    rows = {r["student_id"]: r for r in records}
    assert set(rows) == {"305000005", "305000002"}
    broken = rows["305000005"]
    assert broken["items"]["2.1"] == 0 and broken["items"]["2.2"] == 0
    assert broken["items"]["1.3.4"] == 1 and broken["items"]["5.2.2"] == 2, broken["items"]
    ps = [o for o in broken["outcomes"] if o["item"] in ("2.1", "2.2")]
    assert ps and all("not a valid notebook" in o["message"] and "not valid JSON" in o["message"] for o in ps), ps[0]
    assert rows["305000002"]["total"] == 0


def _grade_folder_with(a, folder: Path, opts, checks):
    real = batch.load_checks
    batch.load_checks = lambda _dir: checks
    try:
        return batch.grade_folder(a, folder, opts, log=lambda m: None)
    finally:
        batch.load_checks = real


def test_seed_student_loses_exactly_the_hard_coded_96(tmp_path, grader):
    """Does the seed-004 author's code (pinv, hard-coded 96 in I_m) lose only what the 20-light BEAR breaks?
    (Its own cells crash on the fixture: a name a crashed cell defines is the student's error, scored.)"""
    import zipfile

    box = tmp_path / "box"
    box.mkdir()
    with zipfile.ZipFile(EXAMPLES / "HW4_305065891_Alexander_Swerdlow.zip") as zf:
        text = zf.read("PSET4_PS.ipynb").decode()
    scored, outcomes = grade(grader, box, {PS: text}, {"2.1", "2.2"})
    why = report(scored, outcomes)
    failed = sorted(o.name for o in outcomes if not o.passed)
    assert failed == ["20 lights instead of 96", "G_hat, rho_hat and N_hat of the notebook", "dim_L, I_m and dim_Im"], why
    assert scored == {"2.1": 2.5, "2.2": 7.5}, why
    assert any("reshape" in o.message for o in outcomes if o.name.startswith("20 lights")), why
