"""The course's environment inside the sandbox (grader/compat.py) and answers from a PDF report.

compat patches the process it is installed in, so every test here runs it in a fresh interpreter
(never in pytest's own process): a snippet of student code after `compat.install()`, as the worker
runs it, printing what it saw and the adaptations compat recorded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader import answers, spec
from grader.spec import ROOT

GRADER = ROOT / "grader"
COMP = ROOT / "fixtures" / "data" / "comp4423_a2" / "public"
CS188 = ROOT / "fixtures" / "data" / "cs188_hw4" / "public"


def run(code: str, cwd: Path, data: Path | None = CS188, install: bool = True, env: dict | None = None) -> dict:
    """Run student code after compat.install() in a fresh interpreter; {'out': what it printed as
    `result`, 'adapted': compat's records}."""
    prelude = f"import sys, json\nsys.path.insert(0, {str(GRADER)!r})\nimport compat\n"
    if install:
        prelude += "compat.install()\n"
    epilogue = "\nprint('@@' + json.dumps({'out': result, 'adapted': compat.adaptations()}, default=str))\n"
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TORCH_HOME": str(cwd / "torch"), "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(cwd / "mpl"), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    if data is not None:
        base["GRADER_DATA_DIR"] = str(data)
    proc = subprocess.run([sys.executable, "-I", "-c", prelude + textwrap.dedent(code) + epilogue], cwd=cwd,
                          env=base | (env or {}), capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][2:])


def test_colab_lines_are_harmless_and_recorded(tmp_path):
    """Do drive.mount, files.upload/download and cv2_imshow run without Colab, each said in the feedback?"""
    got = run("""
        from google.colab import drive
        drive.mount('/content/drive', force_remount=True)
        from google.colab import files
        uploaded = files.upload()
        files.download('result.png')
        from google.colab.patches import cv2_imshow
        import google.colab.output
        google.colab.output.clear()
        get_ipython().system('pip install loss-landscapes')
        result = [uploaded, sorted(k for k in vars(drive) if not k.startswith('_'))]
    """, tmp_path)
    assert got["out"][0] == {} and "mount" in got["out"][1]
    text = "\n".join(got["adapted"])
    for expected in ("drive.mount('/content/drive') ignored", "files.upload() ignored", "files.download(...) ignored",
                     "shell command ignored: !pip install loss-landscapes"):
        assert expected in text


def test_a_real_google_colab_wins_over_the_stub(tmp_path):
    """Is the stub used only when no real google.colab can be imported?"""
    real = tmp_path / "site" / "google" / "colab"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    got = run("""
        sys.path.insert(0, 'site')
        import google.colab
        result = getattr(google.colab, 'REAL', False)
    """, tmp_path)
    assert got["out"] is True and got["adapted"] == []


def test_data_paths_resolve_to_the_fixture_wherever_the_student_pointed_them(tmp_path):
    """Do a Colab Drive folder, a Windows path and a bare file name reach the fixture through open,
    os.path, listdir, glob, cv2, PIL and matplotlib, while unknown paths still fail?"""
    got = run(r"""
        import os, glob, cv2, numpy as np
        from PIL import Image
        import matplotlib.pyplot as plt
        base = '/content/drive/MyDrive/CS188/pmsData/bearPNG'
        with open(os.path.join(base, 'filenames.txt')) as fh:
            first = fh.readline().strip()
        mask = cv2.imread(os.path.join(base, 'mask.png'), 0)
        win = 'C:\\Users\\me\\hw4\\pmsData\\catPNG\\mask.png'
        missing = []
        for bad in ('/content/drive/MyDrive/CS188/pmsData/pot1PNG/mask.png', '/content/other.txt'):
            try:
                open(bad)
            except FileNotFoundError:
                missing.append(bad)
        result = {
            'exists': [os.path.exists(base), os.path.isdir(base), os.path.isfile(base + '/mask.png')],
            'n_listdir': len(os.listdir(base)), 'n_glob': len(glob.glob(base + '/*.png')),
            'first': first, 'cv2': list(mask.shape), 'pil': list(Image.open(win).size[::-1]),
            'plt': list(plt.imread(base + '/mask.png').shape[:2]),
            'bare_folder': os.path.isdir('bearPNG'), 'missing': missing,
            'fixture_files': len(os.listdir(%r)),
        }
    """ % str(CS188 / "pmsData" / "bearPNG"), tmp_path)
    out = got["out"]
    assert out["exists"] == [True, True, True]
    assert out["n_listdir"] == out["fixture_files"] and out["n_glob"] >= 3
    assert out["first"] and out["cv2"] == out["pil"] == out["plt"]
    assert out["bare_folder"] is True
    assert len(out["missing"]) == 2, "a path whose tail names no fixture entry must still be missing"
    assert "path /content/drive/MyDrive/CS188/pmsData read from the fixture pmsData" in got["adapted"]


def test_a_students_own_file_is_never_replaced_by_the_fixture(tmp_path):
    """Does an existing file (the student's own tiny_nerf_data.npz) stay the student's?"""
    import numpy as np

    np.savez(tmp_path / "tiny_nerf_data.npz", focal=np.array(7.0))
    got = run("""
        import numpy as np
        mine = float(np.load('tiny_nerf_data.npz')['focal'])
        fixture = float(np.load('/content/tiny_nerf_data.npz')['focal'])
        result = [mine, fixture]
    """, tmp_path, data=COMP)
    fixture = float(np.load(COMP / "tiny_nerf_data.npz")["focal"])
    assert got["out"] == [7.0, fixture]
    assert got["adapted"] == ["path /content/tiny_nerf_data.npz read from the fixture tiny_nerf_data.npz"]


def test_writes_under_content_go_to_a_scratch_folder(tmp_path):
    """Do makedirs, savefig, np.save and os.chdir under /content work (and read back) without touching /content?"""
    got = run("""
        import os, numpy as np
        import matplotlib.pyplot as plt
        os.makedirs('/content/drive/MyDrive/A2/out', exist_ok=True)
        np.save('/content/drive/MyDrive/A2/out/x.npy', np.arange(4))
        plt.plot([0, 1]); plt.savefig('/content/drive/MyDrive/A2/out/fig.png')
        os.chdir('/content/drive/MyDrive/A2')
        try:
            open('/nonexistent-dir/x.txt', 'w')
            outside = 'written'
        except OSError:
            outside = 'refused'
        result = [np.load('/content/drive/MyDrive/A2/out/x.npy').tolist(),
                  os.path.exists('/content/drive/MyDrive/A2/out/fig.png'), os.getcwd(), outside]
    """, tmp_path)
    assert got["out"][:2] == [[0, 1, 2, 3], True]
    assert got["out"][2] == str(tmp_path) and got["out"][3] == "refused"
    assert (tmp_path / ".colab" / "content" / "drive" / "MyDrive" / "A2" / "out" / "fig.png").is_file()
    assert not Path("/content/drive/MyDrive/A2").exists()
    assert any(a.startswith("os.chdir('/content/drive/MyDrive/A2') ignored") for a in got["adapted"])


def test_torch_the_course_way_on_a_cpu_without_network(tmp_path):
    """CIFAR10(download=True) on the fixture, pretrained weights as random ones, .cuda()/.to('cuda')/
    torch.device('cuda') on the CPU, and the old iterator .next(): does the Colab code run, saying so?"""
    got = run("""
        import torch, torchvision, torchvision.transforms as transforms
        import torchvision.models as models
        device = torch.device('cuda:0')
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
        trainset = torchvision.datasets.CIFAR10(root='./data', train=True, download=True, transform=transform)
        testset = torchvision.datasets.CIFAR10(root='/content/data', train=False, download=True, transform=transform)
        loader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True)
        images, labels = iter(loader).next()
        net = models.resnet18(pretrained=True).cuda()
        vgg = models.vgg11(weights=models.VGG11_Weights.DEFAULT).to(device)
        r2 = models.resnet18(weights="IMAGENET1K_V1")
        sd = torch.hub.load_state_dict_from_url('https://download.pytorch.org/models/resnet18-f37072fd.pth')
        r2.load_state_dict(sd)
        out = net(images.cuda())
        z = torch.zeros(3, device=device) + torch.ones(3).to('cuda')
        try:
            torchvision.datasets.CIFAR100(root='./data', download=True)
            c100 = 'loaded'
        except RuntimeError as exc:
            c100 = str(exc)
        result = {'n_train': len(trainset), 'n_test': len(testset), 'batch': list(images.shape), 'out': list(out.shape),
                  'devices': [str(out.device), str(z.device), str(device), str(next(vgg.parameters()).device)],
                  'isinstance': isinstance(torch.device('cpu'), torch.device), 'cuda': torch.cuda.is_available(),
                  'c100': c100, 'differ': bool((net.fc.weight != r2.fc.weight).any())}
    """, tmp_path, data=COMP)
    out = got["out"]
    import pickle

    with open(COMP / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        n_test = len(pickle.load(fh, encoding="latin1")["labels"])
    assert out["n_test"] == n_test and out["n_train"] > n_test
    assert out["batch"] == [4, 3, 32, 32] and out["out"] == [4, 1000]
    assert out["devices"] == ["cpu"] * 4 and out["isinstance"] is True and out["cuda"] is False
    assert "no network" in out["c100"]
    assert out["differ"], "two 'pretrained' models got the same weights: they should be independent random ones"
    text = "\n".join(got["adapted"])
    for expected in ("CIFAR-10 read from the grader's fixture data", "path data/cifar-10-batches-py read from the fixture",
                     "pretrained weights ResNet18_Weights.IMAGENET1K_V1 replaced by random ones",
                     "pretrained weights VGG11_Weights.IMAGENET1K_V1 replaced by random ones",
                     "replaced by random ones (no download in the grader): https://download.pytorch.org/models/resnet18",
                     ".cuda() ran on the CPU", "torch.device('cuda') ran on the CPU", '.to("cuda") ran on the CPU',
                     "the iterator's old .next() ran as next(iterator)"):
        assert expected in text, expected


def test_random_stand_ins_for_pretrained_weights_look_trained(tmp_path):
    """Do the stand-in weights have no all-zero parameter, so code written for trained weights (loss-landscapes'
    filter normalisation divides by each bias's norm) runs as it would with the real ones?"""
    got = run("""
        import torch, torchvision
        fresh = torchvision.models.resnet18()
        stand_in = torchvision.models.resnet18(pretrained=True)
        zero = lambda m: sorted(n for n, p in m.named_parameters() if not p.any())
        result = [len(zero(fresh)), zero(stand_in)]
    """, tmp_path)
    assert got["out"][0] > 0 and got["out"][1] == []


def test_cached_pretrained_weights_are_loaded(tmp_path):
    """Are weights already in torch's cache loaded for real (only a download is replaced)?"""
    got = run("""
        import os, torch, torchvision
        torch.manual_seed(0)
        saved = torchvision.models.resnet18()
        folder = os.path.join(torch.hub.get_dir(), 'checkpoints')
        os.makedirs(folder)
        torch.save(saved.state_dict(), os.path.join(folder, 'resnet18-f37072fd.pth'))
        torch.manual_seed(1)
        net = torchvision.models.resnet18(weights='IMAGENET1K_V1')
        result = bool(torch.equal(net.fc.weight, saved.fc.weight))
    """, tmp_path)
    assert got["out"] is True and not any("random" in a for a in got["adapted"])


def test_with_a_gpu_torch_is_left_alone(tmp_path):
    """When the machine has a GPU, are torch.device, .cuda() and .to() untouched (no CPU fallback)?"""
    got = run("""
        compat.has_gpu = lambda: True
        compat.install()
        import torch
        try:
            torch.zeros(1).cuda()
            moved = 'cpu fallback'
        except (RuntimeError, AssertionError):
            moved = 'raised'
        result = [torch.device is torch._C.device, moved]
    """, tmp_path, install=False)
    assert got["out"] == [True, "raised"] and got["adapted"] == []


def test_install_is_cheap_and_lazy(tmp_path):
    """Does install() import no heavy library, and patch torch/cv2 only when the student imports them?"""
    got = run("""
        import time
        t = time.perf_counter()
        compat.install()
        took = time.perf_counter() - t
        before = [m for m in ('torch', 'torchvision', 'cv2', 'numpy', 'PIL') if m in sys.modules]
        import cv2
        img = cv2.imread('/content/drive/MyDrive/pmsData/ballPNG/mask.png', 0)
        result = [took, before, img is not None]
    """, tmp_path, install=False)
    took, before, read = got["out"]
    assert took < 0.05 and before == [] and read is True


def test_install_patches_what_is_already_imported(tmp_path):
    """In a forked worker numpy and torch are imported before install(): are they patched at once
    (np.loadtxt keeps its own reference to open)?"""
    got = run("""
        import numpy as np, torch
        compat.install()
        L = np.loadtxt('/content/drive/MyDrive/CS188/PSET4/pmsData/bearPNG/light_directions.txt')
        result = [str(torch.ones(1).cuda().device), list(L.shape)]
    """, tmp_path, install=False)
    assert got["out"][0] == "cpu" and got["out"][1][1] == 3 and any(".cuda()" in a for a in got["adapted"])


# -- the worker's ops, in the real sandbox ----------------------------------------------------------
def _pdf(path: Path, lines: list[str]) -> None:
    """A PDF with these lines of text (matplotlib's PDF backend; pypdf reads its text back)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.27, 11.69))
    for n, line in enumerate(lines):
        fig.text(0.08, 0.95 - 0.025 * n, line, fontsize=10)
    fig.savefig(path)
    plt.close(fig)


def test_worker_reads_pdf_text_and_reports_adaptations(tmp_path):
    """Does the sandboxed worker return a PDF's text, refuse files outside the box, and list what compat
    adapted while a Colab-style module loaded?"""
    from grader.sandbox import Sandbox, StudentError, detect_mode

    box = tmp_path / "box"
    box.mkdir()
    _pdf(box / "report.pdf", ["Task 3", "7. Yes/No. (4 marks)", "No."])
    (box / "colab.py").write_text("from google.colab import drive\ndrive.mount('/content/drive')\n"
                                  "import numpy as np\nN = len(np.load('/content/drive/MyDrive/tiny_nerf_data.npz')['poses'])\n")
    box.chmod(0o777)
    for p in box.iterdir():
        p.chmod(0o644)
    with Sandbox(box, {"colab": "colab.py"}, detect_mode(), data_dir=COMP) as sb:
        got = sb.request({"op": "report_text", "path": "report.pdf"}, 60)
        assert got["pages"] == 1 and "7. Yes/No. (4 marks)\nNo." in got["text"]
        with pytest.raises(StudentError):
            sb.request({"op": "report_text", "path": "/etc/passwd"}, 30)
        assert sb.request({"op": "adaptations"}, 10) == []
        assert sb.request({"op": "get", "target": {"module": "colab", "path": "N"}}, 60) > 0
        adapted = sb.request({"op": "adaptations"}, 10)
    assert adapted[0].startswith("drive.mount('/content/drive') ignored")
    assert "path /content/drive/MyDrive/tiny_nerf_data.npz read from the fixture tiny_nerf_data.npz" in adapted


def test_a_broken_pdf_costs_only_its_own_text(tmp_path):
    """Does a corrupt PDF become a note for the TA while the other report is still read, with the real pypdf
    (not a pypdf.py in the submission)?"""
    from grader.sandbox import Sandbox, detect_mode

    box = tmp_path / "box"
    box.mkdir()
    (box / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    _pdf(box / "report.pdf", ["Q3.1: No"])
    (box / "pypdf.py").write_text("raise SystemExit('student code ran while the report was read')\n")
    box.chmod(0o777)
    for p in box.iterdir():
        p.chmod(0o644)
    texts, problems = answers.read_reports(Sandbox(box, {}, detect_mode()), ["broken.pdf", "report.pdf"])
    assert list(texts) == ["report.pdf"] and "Q3.1: No" in texts["report.pdf"]
    assert len(problems) == 1 and problems[0].startswith("broken.pdf: ")


def test_notebook_lines_not_run_are_listed(tmp_path):
    """Are a notebook's shell lines and magics, which the grader does not run, listed with the adaptations?"""
    import json as _json

    from grader.sandbox import Sandbox, detect_mode

    box = tmp_path / "box"
    box.mkdir()
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1, "source": src}
             for src in ("!pip install loss-landscapes\n%matplotlib inline\nx = 1",)]
    (box / "nb.ipynb").write_text(_json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    box.chmod(0o777)
    (box / "nb.ipynb").chmod(0o644)
    with Sandbox(box, {"nb": "nb.ipynb"}, detect_mode()) as sb:
        assert sb.request({"op": "get", "target": {"module": "nb", "path": "x"}}, 60) == 1
        adapted = sb.request({"op": "adaptations"}, 10)
    assert adapted == ["notebook line not run: !pip install loss-landscapes", "notebook line not run: %matplotlib inline"]


# -- answers from a report's text (plain text handling, in the grader) --------------------------------
ITEMS = spec.load("comp4423_a2").items

REPORT = """Assignment 2 report, CHAN Dawen
Contents
Part 1: CNN Architecture Analysis\t1
Task 2: Deformable CNN\t5
\t5.\tThe class definition for deformable convolution. (12 marks)\t5
\t6.\tExplanation: why the offset convolution has that
\tnumber of output channels. (18 marks)\t5
Task 3: Help Sheldon explain this question. (10 marks)\t6
\t7.\tYes/No. (4 marks)\t6
\t8.\tExplain why. (6 marks)\t6
Part 1: CNN Architecture Analysis
Task 2: Deformable CNN
5. The class definition for deformable convolution. (12 marks)
self.offset = nn.Conv2d(in_channels, 2 * k * k, k, padding=padding, stride=stride)
6. Explanation: why the offset convolution has that number of output channels. (18 marks)
Every one of the k x k taps moves by a (dy, dx) pair, so 2 k^2 channels: 18 for k = 3.
Part 2: 3D reconstruction with tiny NeRF
Task 3: Help Sheldon explain this question. (10 marks)
7. Yes/No. (4 marks)
No.
8. Explain why. (6 marks)
The MLP's weights store a single scene; another scene needs training again.
"""


def test_report_in_the_handouts_breakdown_style():
    """Are answers found under 'Task N' and '7. Yes/No. (4 marks)' lines, past a table of contents?"""
    got = answers.from_report(REPORT, ITEMS)
    assert got["3.1"] == "No." and answers.yes_no(got["3.1"]) == "no"
    assert got["3.2"].startswith("The MLP's weights store a single scene")
    assert got["2.2"].startswith("Every one of the k x k taps") and "Part 2" not in got["2.2"]
    assert "nn.Conv2d" in got["2.1"]


@pytest.mark.parametrize("text, item, expected", [
    ("3.1 Yes/No\nYes, it can render any scene.\n3.2 Explain why\nbecause", "3.1", "Yes, it can render any scene."),
    ("Q3.1: No\nQ3.2: one scene only", "3.1", "No"),
    ("Question 3.1 (Yes/No): No, it cannot.\n", "3.1", "No, it cannot."),
    ("Task 3.2 Explain why\nThe weights encode one scene.\nTask 4\nmore", "3.2", "The weights encode one scene."),
    ("3.1. No\n", "3.1", "No"),
])
def test_report_sections_headed_by_item_ids(text, item, expected):
    """Are '3.1', 'Q3.1:', 'Question 3.1', 'Task 3.2' headings read like answers.md sections?"""
    assert answers.from_report(text, ITEMS)[item] == expected


def test_report_sub_parts_under_a_numbered_heading():
    """Do '(ii)' and 'Q2' lines under a '1.2 ...' heading answer items 1.2.2 and 4.2.2 (CS188's report layout),
    while a line that merely starts with a number stays part of the answer?"""
    items = spec.load("cs188_hw4").items
    text = ("1.2 Lambertian surface (3.0 points)\n(i) I = rho (l . N)\n(ii) Three unknowns: rho and two of N.\n"
            "0.5 of them are fixed by the unit norm.\n(iii) 3\n4.2 Classifier Architecture\nQ2 Padding keeps the size.\n")
    got = answers.from_report(text, items)
    assert got["1.2.1"] == "I = rho (l . N)" and got["1.2.3"] == "3" and got["4.2.2"] == "Padding keeps the size."
    assert got["1.2.2"] == "Three unknowns: rho and two of N.\n0.5 of them are fixed by the unit norm."


def test_report_answers_fill_only_unanswered_items():
    """Do answers.md answers win, and do written items without a section get the report's text?"""
    merged = answers.merge_reports({"3.1": "Answer: Yes"}, {"r.pdf": "3.1 No\n3.2 Explain why\none scene\n"}, ITEMS)
    assert merged["3.1"] == "Answer: Yes" and merged["3.2"] == "one scene"
    assert merged["2.2"].startswith("(no section for 2.2 was recognised in the report") and "one scene" in merged["2.2"]
    assert "2.1" not in merged  # an automatic code item gets no text
    assert "one scene" in merged[answers.REPORT]  # evidence for a check that finds no section of its own
    assert answers.merge_reports({"3.1": "x"}, {}, ITEMS) == {"3.1": "x"}


def test_a_report_exported_from_markdown_keeps_its_answers():
    """Are "## 1.2" / "(ii)" sections of a report exported from Markdown read like plain "1.2" headings?"""
    from grader import answers, spec

    items = spec.load("cs188_hw4").items
    plain = answers.from_report("1.1\nAnswer: 5\n\n1.2 Lambertian\n(ii) 3 unknowns\n", items)
    marked = answers.from_report("## 1.1\nAnswer: 5\n\n## 1.2 Lambertian\n(ii) 3 unknowns\n", items)
    assert marked == plain and marked.get("1.2.2") == "3 unknowns"
