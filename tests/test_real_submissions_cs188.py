"""UCLA CS188 HW4 graded as a TA would grade real submissions (issue 11).

Each submission below is written the way the original handout asks, not against our starter: the
course's own notebooks only (PSET4_PS and PSET4_Classification, no PSET4_Analytical), its cv2 loader,
data paths set to the student's own folder (a local `./pmsData/`, or Colab's drive.mount and
/content/drive/...), `torchvision.datasets.CIFAR10(root='./data', download=True)`, the original
`train()`/`test()` (test prints the accuracy), the model edited in place for the kernel-size question,
notebooks that reuse I/L/mask for the next object, and the analytical answers in answers.md or in the
PDF report. Each states the marks a TA gives its automatic items; the real grade path
(batch.grade_folder: intake, written answers, sandbox, scoring) must give exactly those, or "needs
review" (pending, with a reason) where a TA has to read a formula or the layout cannot be run, and
never a silent 0.

The course's environment (its data paths, Colab's drive.mount and /content/drive paths, CIFAR-10
download=True finding the fixture, .cuda() on a CPU) comes from the sandbox's shims (grader/compat.py).
A probe runs each of those lines in the real sandbox first; items whose marks depend on a line the
sandbox does not handle yet are not compared, and the test is reported as xfail naming that line.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from grader import batch, spec
from grader.sandbox import Sandbox, detect_mode

A = "cs188_hw4"


def _assignment():
    return spec.load(A)


# -- notebooks in the course's style --------------------------------------------------------------------
def nb(*cells: tuple[str, str]) -> str:
    return json.dumps({"cells": [{"cell_type": k, "metadata": {}, "source": s,
                                  **({"outputs": [], "execution_count": 1} if k == "code" else {})} for k, s in cells],
                       "metadata": {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}},
                       "nbformat": 4, "nbformat_minor": 0})


COLAB = ("code", "from google.colab import drive\ndrive.mount('/content/drive')")

PS_IMPORTS = ("code", "import numpy as np\nimport matplotlib.pyplot as plt\nimport cv2\nimport os\n%matplotlib inline")

# The handout's given helpers (cv2 in grayscale mode 0: 8-bit images; light_intensities.txt unused).
PS_GIVEN = ("code", '''def cos_diff(a, b):
    return 1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))

def get_error_map(N_gt, N_hat, mask):
    N_gt = N_gt / np.max(N_gt)
    N_hat = N_hat / np.max(N_hat)
    H, W = mask.shape
    err = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            if mask[i, j]:
                err[i, j] = cos_diff(N_gt[:, i, j], N_hat[:, i, j])
    err[np.isnan(err)] = 0
    return err * mask

def display_gray(img):
    plt.figure()
    plt.imshow(img, cmap='gray')

def convert_Nhat_img(N_hat, mask):
    img = np.moveaxis(N_hat, 0, -1)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8) * mask[..., None]

def load_object_data(data_dir='./pmsData/', obj_name='cat', disp=True):
    obj_dir = os.path.join(data_dir, obj_name + 'PNG')
    with open(os.path.join(obj_dir, 'filenames.txt')) as f:
        filenames = f.read().splitlines()
    mask = cv2.imread(os.path.join(obj_dir, 'mask.png'), 0).astype(bool)
    I = []
    for fname in filenames:
        img = cv2.imread(os.path.join(obj_dir, fname), 0)
        I.append(img * mask)
    I = np.array(I).astype(np.uint8)
    L = np.loadtxt(os.path.join(obj_dir, 'light_directions.txt'))
    if disp:
        fig, ax = plt.subplots(1, 4, figsize=(16, 4))
        for k in range(3):
            ax[k].imshow(I[k * (len(I) // 3)], cmap='gray')
        ax[3].imshow(mask, cmap='gray')
    return I, L, mask''')


def ps_notebook(data_dir: str, colab: bool = False, rho_line: str = "rho_hat = np.linalg.norm(G_hat, axis=-1)",
                std_line: str = "L_std = np.std(np.linalg.norm(L, axis=-1))", solver: str = "pinv",
                redo_per_object: bool = False) -> str:
    compute = {
        "pinv": "    L_inv = np.linalg.pinv(L)\n    G = L_inv @ I_m",
        "loop": "    G = np.zeros((3, I_m.shape[1]))\n    for k in range(I_m.shape[1]):\n"
                "        G[:, k] = np.linalg.lstsq(L, I_m[:, k], rcond=None)[0]",
    }[solver]
    cells = [("markdown", "# CS188 PSET4: Photometric Stereo\nName: ...  UID: ..."), PS_IMPORTS]
    if colab:
        cells.append(COLAB)
    cells += [
        ("markdown", "## Helper functions"), PS_GIVEN,
        ("markdown", "## Problem 2.1: Loading data"),
        ("code", f"data_dir = '{data_dir}'\nobj_name = 'cat'\nI, L, mask = load_object_data(data_dir=data_dir, obj_name=obj_name)"),
        ("markdown", "**(i)** Load the BEAR object"),
        ("code", "obj_name = 'bear'\nI, L, mask = load_object_data(data_dir=data_dir, obj_name=obj_name)\n"
                 "plt.savefig('bear.png', bbox_inches='tight')"),
        ("markdown", "**(ii)** mean and std of the lighting vectors' magnitudes"),
        ("code", f"L_mean = np.mean(np.linalg.norm(L, axis=-1))\n{std_line}\n"
                 "print('L_mean : {}, L_std : {}'.format(L_mean, L_std))"),
        ("markdown", "**(iii)** dimensions"),
        ("code", "dim_L = L.shape\nI_m = I.copy().reshape(I.shape[0], I.shape[1] * I.shape[2])\ndim_Im = I_m.shape\n"
                 "print('Shape of L: ', dim_L)\nprint('Shape of I_m: ', dim_Im)"),
        ("markdown", "## Problem 2.2: Implementation"),
        ("code", "H, W = I.shape[1], I.shape[2]\nL_inv = np.linalg.pinv(L)\nG_hat_vec = np.dot(L_inv, I_m)\nG_hat = G_hat_vec.T"),
        ("code", rho_line),
        ("code", "with np.errstate(all='ignore'):\n    N_hat_vec = G_hat_vec / rho_hat\n    N_hat_vec[np.isnan(N_hat_vec)] = 0\n"
                 "    N_hat = N_hat_vec.reshape(3, H, W)"),
        ("markdown", "**(iv)** compute_Nhat and the error maps"),
        ("code", f"def compute_Nhat(I, L):\n    m = I.shape[0]\n    H, W = I.shape[1], I.shape[2]\n"
                 f"    I_m = I.reshape(m, H * W).astype(np.float64)\n{compute}\n"
                 "    rho = np.linalg.norm(G, axis=0)\n    with np.errstate(all='ignore'):\n        N = G / rho\n"
                 "    N[np.isnan(N)] = 0\n    return N.reshape(3, H, W)"),
    ]
    if redo_per_object:  # the same cells pasted again per object: I, L, mask, G_hat, rho_hat, N_hat reused
        cells.append(("code", "for obj_name in ['cat', 'ball', 'reading', 'pot2', 'cow']:\n"
                              "    I, L, mask = load_object_data(data_dir=data_dir, obj_name=obj_name, disp=False)\n"
                              "    I_m = I.reshape(I.shape[0], -1)\n    G_hat = (np.linalg.pinv(L) @ I_m).T\n"
                              "    rho_hat = np.linalg.norm(G_hat, axis=1)\n"
                              "    N_hat = compute_Nhat(I, L)\n    plt.imshow(convert_Nhat_img(N_hat, mask))"))
    else:
        cells.append(("code", "for obj_name in ['cat', 'ball', 'reading', 'pot2', 'cow']:\n"
                              "    I, L, mask = load_object_data(data_dir=data_dir, obj_name=obj_name, disp=False)\n"
                              "    N_hat_obj = compute_Nhat(I, L)\n"
                              "    gt = cv2.imread(os.path.join(data_dir, obj_name + 'PNG', 'Normal_gt.png'))[..., ::-1]\n"
                              "    N_gt = np.moveaxis(gt / 255.0 * 2 - 1, -1, 0)\n"
                              "    err = get_error_map(N_gt, N_hat_obj, mask)\n"
                              "    fig, ax = plt.subplots(1, 3)\n    ax[0].imshow(convert_Nhat_img(N_hat_obj, mask))\n"
                              "    ax[1].imshow(convert_Nhat_img(N_gt, mask))\n    ax[2].imshow(err, cmap='jet')"))
    cells.append(("markdown", "## Problem 2.3\nSee the report."))
    return nb(*cells)


CL_IMPORTS = ("code", "import torch\nimport torchvision\nimport torchvision.transforms as transforms\nimport torch.nn as nn\n"
                      "import torch.nn.functional as F\nimport torch.optim as optim\nimport numpy as np\nimport matplotlib.pyplot as plt")
CL_DATA = ("code", "transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])\n"
                   "batch_size = 4\n"
                   "train_data = torchvision.datasets.CIFAR10(root='./data', train=True, download=True, transform=transform)\n"
                   "train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True, num_workers=2)\n"
                   "test_data = torchvision.datasets.CIFAR10(root='./data', train=False, download=True, transform=transform)\n"
                   "test_loader = torch.utils.data.DataLoader(test_data, batch_size=batch_size, shuffle=False, num_workers=2)\n"
                   "classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')")
NET = '''class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, {k})
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, {k})
        self.fc1 = nn.Linear(16 * {s} * {s}, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * {s} * {s})
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x'''
LOOP_BODY = '''        inputs, labels = data
        if use_gpu:
            inputs, labels = inputs.cuda(), labels.cuda()
        #=====
        # Fill in the training loop here.
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        #=====
        running_loss += loss.cpu().item()
        if i % 250 == 249:
            print('[%d, %5d] loss: %.3f' % (epoch + 1, i + 1, running_loss / 250))
            running_loss_list.append(running_loss)
            running_loss = 0.0'''
LOOP_BODY_IN_TRAIN = "\n".join("    " + ln for ln in LOOP_BODY.splitlines())
TRAIN = f'''def train(train_loader=train_loader, num_epochs=2, use_gpu=False, lr=0.001, momentum=0.9, model_save_path='./net.pth'):
    """loss averaged over a minibatch of size 250"""
    torch.manual_seed(7)
    np.random.seed(7)
    net = Net()
    if use_gpu:
        net = net.cuda()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    running_loss_list = []
    for epoch in range(num_epochs):
        running_loss = 0.0
        for i, data in enumerate(train_loader, 0):
{LOOP_BODY_IN_TRAIN}
    print('Training Complete')
    torch.save(net.state_dict(), model_save_path)
    return running_loss_list


def plot_loss_curve(running_loss_list):
    plt.plot(running_loss_list)
    plt.xlabel('iterations (x250)')
    plt.ylabel('running loss')'''
TEST = '''def test(test_loader=test_loader, model_path='./net.pth'):
    net = Net()
    net.load_state_dict(torch.load(model_path))
    correct = 0
    total = 0
    with torch.no_grad():
        for data in test_loader:
            images, labels = data
            outputs = net(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    acc = 100 * correct / total
    print('Accuracy of the network on the 10000 test images: %d %%' % acc)'''
TOP_LEVEL_LOOP = '''## for reproducibility
torch.manual_seed(7)
np.random.seed(7)
net = Net()
use_gpu = False
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
num_epochs = 2
running_loss_list = []
for epoch in range(num_epochs):
    running_loss = 0.0
    for i, data in enumerate(train_loader, 0):
''' + LOOP_BODY + '''
print('Training Complete')
PATH = './net.pth'
torch.save(net.state_dict(), PATH)'''


def cl_notebook(colab: bool = False, k3_in_place: bool = False, with_train: bool = True, gpu_cell: bool = False) -> str:
    k, s = (3, 6) if k3_in_place else (5, 5)
    cells = [("markdown", "# CS188 PSET4: Training a Classifier"), CL_IMPORTS]
    if colab:
        cells.append(COLAB)
    cells += [
        ("markdown", "## Q1: Loading data"), CL_DATA,
        ("code", "print(len(train_data))\nprint(len(test_data))"),
        ("markdown", "## Q2: Classifier architecture"),
        ("code", NET.format(k=k, s=s) + "\n\nnet = Net()"),
        ("markdown", "## Q3: Training the network"),
    ]
    if with_train:
        cells += [("code", TRAIN), ("code", "running_loss_list = train(train_loader, num_epochs=2)\nplot_loss_curve(running_loss_list)")]
    else:
        cells += [("code", TOP_LEVEL_LOOP), ("code", "plt.plot(running_loss_list)")]
    if gpu_cell:
        cells.append(("code", "running_loss_list_gpu = train(train_loader, num_epochs=3, use_gpu=True, model_save_path='./net_gpu.pth')\n"
                              "plot_loss_curve(running_loss_list_gpu)"))
    cells += [("markdown", "## Q4: Testing the network"), ("code", TEST), ("code", "test(test_loader)")]
    return nb(*cells)


# -- written answers: answers.md and a PDF report ----------------------------------------------------------
ANSWERS_MD = """# CS188 HW4 written answers

## 1.1 Plenoptic function
The plenoptic function has 7 DoF: 3 for the position x, 2 for the direction omega (a unit vector), 1 for time and 1 for the wavelength.

## 1.2 Lambertian surface
(i) I(u, v) = rho(u, v) * (l . N(u, v))

(ii) N has 3 components but it is a unit vector, so with the albedo there are {unknowns} unknowns: N_x, N_y and rho.

(iii) We need at least 3 measurements (three lights in general position).

## 1.3 Solving photometric stereo
(i) I_m = L G, so G = (L^T L)^{{-1}} L^T I_m
(ii) rho = ||G||
(iii) N = G / ||G||
(iv) G_hat = ((L^T L)^{{-1}} L^T I_m)^T, rho per row, N_hat = G_hat / rho (row-wise)

## 3.1 Calculating gradients
dz/dx = 2x; dz/dA = 2A; dz/dy = A^T x; dz/dy = A

## 3.2 Cross entropy
(i) p(y|x) = y_hat^y (1 - y_hat)^(1 - y)
(ii) log p = y log y_hat + (1 - y) log(1 - y_hat)
(iii) L = -(y log y_hat + (1 - y) log(1 - y_hat))

## 4.1 Loading data
(i) Normalize subtracts the mean 0.5 and divides by the std 0.5 per channel, mapping [0, 1] to [-1, 1]; for grayscale use Normalize((0.5,), (0.5,)).

(ii) print(len(train_data)); print(len(test_data)): there are 50000 training samples and 10000 test samples.

## 4.2 Classifier architecture
1. conv 3->6 5x5, ReLU, maxpool; conv 6->16 5x5, ReLU, maxpool; fc 400->120->84->10.
2. Padding adds zeros around the input.
3. Max pooling keeps the maximum of each 2x2 window.
4. {k3}
5. Max pooling has no parameters; the gradient is routed to the max.

## 5.2 Convolution output size
(i) The output is 64 x 62 x 62.

(ii) padding = 1 and stride = 2 give 64 x 32 x 32.
"""
K3_IN_PLACE = ("No, it would not work unchanged: with 3x3 kernels the feature map before fc1 has a different size, so the "
               "view and fc1 do not match and it raises an error. I changed Net above (fc1 and the view) and it runs.")
K3_WORDS = "It fails with a size mismatch at fc1; fc1 has to take 16 * 6 * 6 inputs."


def answers_md(unknowns: int = 3, k3: str = K3_IN_PLACE) -> str:
    return ANSWERS_MD.format(unknowns=unknowns, k3=k3)


def pdf(text: str) -> bytes:
    """A small PDF (Helvetica, one text line per line) like an Overleaf export's text layer."""
    lines = [ln for ln in text.splitlines()]
    pages = [lines[i:i + 60] for i in range(0, len(lines), 60)] or [[]]
    objects: list[bytes] = []

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1", "replace").decode("latin-1")

    n_pages = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    font = 3 + 2 * n_pages
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, page in enumerate(pages):
        stream = "BT /F1 9 Tf 40 800 Td 12 TL\n" + "".join(f"({esc(ln)}) '\n" for ln in page) + "ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 {font} 0 R >> >> "
                       f"/Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode("latin-1"))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def write_zip(path: Path, files: dict[str, str | bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


# -- the submissions and a TA's marks ---------------------------------------------------------------------
FORMULAS = ("1.2.1", "1.3.1", "1.3.2", "1.3.3", "1.3.4", "3.1", "3.2.1", "3.2.2", "3.2.3")  # written as text: a TA reads
PS_FULL = {"2.1": 4.0, "2.2": 10.0}
NUMBERS_FULL = {"1.1.1": 0.5, "1.2.2": 1.0, "1.2.3": 1.0, "5.2.1": 2.0, "5.2.2": 2.0}
CL_FULL = {"4.1.2": 1.0, "4.2.4": 1.0, "4.3.1": 2.0, "4.4.1": 2.0}
ENV_ITEMS = ("4.3.1", "4.4.1")  # need the notebook's CIFAR-10 loaders (download=True on the fixture)


class Sub:
    def __init__(self, zip_name: str, files: dict, ta: dict[str, float], review: tuple[str, ...],
                 needs: tuple[str, ...] = (), pdf_answers: bool = False) -> None:
        self.zip_name, self.files, self.ta, self.review = zip_name, files, ta, set(review)
        self.needs = needs  # environment lines of the course the sandbox must handle (see `environment`)
        self.pdf_answers = pdf_answers  # its written answers are only in report.pdf

    @property
    def student_id(self) -> str:
        return self.zip_name.split("_")[1]


LOCAL = ("local paths", "cifar")
COLAB_ENV = ("colab paths", "cifar", "cuda")
SUBMISSIONS = [
    # Local Jupyter, everything right; the kernel-size question answered by editing Net in place.
    Sub("HW4_305100001_Jane_Bruin.zip",
        {"PSET4_PS.ipynb": ps_notebook("./pmsData/"), "PSET4_Classification.ipynb": cl_notebook(k3_in_place=True),
         "answers.md": answers_md()},
        {**PS_FULL, **NUMBERS_FULL, **CL_FULL}, FORMULAS, LOCAL),
    # Colab: drive.mount, absolute Drive paths, a GPU cell with .cuda(); every answer only in the PDF report.
    # Net keeps its 5x5 kernels (the 3x3 version was tried and reverted): the report's words go to a TA.
    Sub("HW4_305100002_Colab_Student.zip",
        {"PSET4_PS.ipynb": ps_notebook("/content/drive/MyDrive/CS188/PSET4/pmsData/", colab=True),
         "PSET4_Classification.ipynb": cl_notebook(colab=True, gpu_cell=True),
         "HW4_report.pdf": pdf(answers_md(k3=K3_WORDS).replace("## ", "").replace("# ", ""))},
        {**PS_FULL, **NUMBERS_FULL, "4.1.2": 1.0, "4.3.1": 2.0, "4.4.1": 2.0}, FORMULAS + ("4.2.4",), COLAB_ENV, pdf_answers=True),
    # Reuses I, L, mask, G_hat, rho_hat for every object at the end; a wrong L_std (axis 0: 3 values, not m);
    # a training loop at top level only (no train()); 4 unknowns in 1.2(ii) (wrong).
    Sub("HW4_305100003_Reuses_Names.zip",
        {"PSET4_PS.ipynb": ps_notebook("./pmsData/", std_line="L_std = np.std(np.linalg.norm(L, axis=0))", redo_per_object=True),
         "PSET4_Classification.ipynb": cl_notebook(with_train=False, k3_in_place=True), "answers.md": answers_md(unknowns=4)},
        {"2.1": 2.5, "2.2": 10.0, **NUMBERS_FULL, "1.2.2": 0.0, "4.1.2": 1.0, "4.2.4": 1.0, "4.4.1": 2.0},
        FORMULAS + ("4.3.1",), LOCAL),
    # Our starter's notebooks (the recommended API) without PSET4_Analytical: answers.md instead. No penalty.
    Sub("HW4_305100004_Starter_Api.zip",
        {"PSET4_PS.ipynb": (spec.ROOT / "solutions" / A / "PSET4_PS.ipynb").read_text(),
         "PSET4_Classification.ipynb": (spec.ROOT / "solutions" / A / "PSET4_Classification.ipynb").read_text(),
         "answers.md": answers_md()},
        {**PS_FULL, **NUMBERS_FULL, **CL_FULL}, FORMULAS),
    # A per-pixel least-squares loop; the original train()/test() with an unchanged Net.
    Sub("HW4_305100005_Pixel_Loop.zip",
        {"PSET4_PS.ipynb": ps_notebook("./pmsData/", solver="loop"), "PSET4_Classification.ipynb": cl_notebook(),
         "answers.md": answers_md(k3=K3_WORDS)},
        {**PS_FULL, **NUMBERS_FULL, "4.1.2": 1.0, "4.3.1": 2.0, "4.4.1": 2.0}, FORMULAS + ("4.2.4",), LOCAL),
    # As 3 (names reused per object, a wrong L_std) with the data folder read from DATA_ROOT, which the
    # grader sets: the photometric-stereo checks on a course-style notebook without any path remapping.
    Sub("HW4_305100006_Data_Root.zip",
        {"PSET4_PS.ipynb": ps_notebook("' + os.environ['DATA_ROOT'] + '/pmsData/",
                                       std_line="L_std = np.std(np.linalg.norm(L, axis=0))", redo_per_object=True),
         "PSET4_Classification.ipynb": cl_notebook(k3_in_place=True), "answers.md": answers_md()},
        {"2.1": 2.5, "2.2": 10.0, **NUMBERS_FULL, **CL_FULL}, FORMULAS, ("cifar",)),
]


# -- the course's environment in the sandbox ---------------------------------------------------------------
PROBES = {  # feature: a cell in the course's style that sets `ok` when the sandbox handles that line
    "local paths": "import numpy as np, cv2\nL = np.loadtxt('./pmsData/catPNG/light_directions.txt')\n"
                   "ok = cv2.imread('./pmsData/catPNG/mask.png', 0) is not None and L.shape[1] == 3",
    "colab paths": "from google.colab import drive\ndrive.mount('/content/drive')\nimport numpy as np, cv2\n"
                   "d = '/content/drive/MyDrive/CS188/PSET4/pmsData/bearPNG/'\nL = np.loadtxt(d + 'light_directions.txt')\n"
                   "ok = cv2.imread(d + 'mask.png', 0) is not None and open(d + 'filenames.txt').read() != ''",
    "cifar": "import torchvision\nds = torchvision.datasets.CIFAR10(root='./data', train=False, download=True)\nok = len(ds) > 0",
    "cuda": "import torch\nok = float(torch.ones(2).cuda().sum()) == 2.0",
}


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, bool]:
    """Which of the course's environment lines the sandbox handles today, each tried in its own notebook."""
    box = tmp_path_factory.mktemp("probe")
    modules = {}
    for n, src in enumerate(PROBES.values()):
        (box / f"probe{n}.ipynb").write_text(nb(("code", src)))
        modules[f"probe{n}"] = f"probe{n}.ipynb"
    box.chmod(0o777)
    found = {}
    with Sandbox(box, modules, detect_mode(), data_dir=_assignment().public_data_dir) as sb:
        for (feature, _), module in zip(PROBES.items(), modules):
            try:
                sb.request({"op": "load", "module": module}, 120)
                found[feature] = sb.request({"op": "get", "target": {"module": module, "path": "ok"}, "ret": "auto"}, 30) is True
            except Exception:  # noqa: BLE001 - the line failed in the notebook: not handled (yet)
                found[feature] = False
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("class")
    for sub in SUBMISSIONS:
        write_zip(folder / sub.zip_name, sub.files)
    opts = batch.Options(out=tmp_path_factory.mktemp("out"), jobs=2, timeout_scale=3.0)
    records = batch.grade_folder(_assignment(), folder, opts, log=lambda m: None)
    return {r["student_id"]: r for r in records}


def why(record: dict) -> str:
    lines = [f"items: {record['items']}", f"status: {record['status']} {record['reason']}"]
    for o in record["outcomes"]:
        lines.append(f"  {o['item']:6} {o['status']:7} {o['name']}: {o['message'][:160]} {o['detail'][:120]}")
    return "\n".join(lines)


@pytest.mark.parametrize("sub", SUBMISSIONS, ids=lambda s: s.zip_name[:-4])
def test_real_submission_gets_a_tas_marks(sub: Sub, graded, environment):
    """Does a submission in the course's own style get the marks a TA gives, or "needs review" where a
    TA must read it, and never 0 on an automatic item the TA gives marks for?"""
    record = graded[sub.student_id]
    text = why(record)
    assert record["status"] == "ok", text
    answers_ready = not sub.pdf_answers or "report" in (record.get("answers") or {})  # the PDF's text was read
    waiting = set()
    for item, marks in sub.ta.items():
        got = record["items"].get(item)
        needs = _item_needs(sub, item)
        if any(not environment.get(f) for f in needs):
            waiting.update(f for f in needs if not environment.get(f))
            continue
        if answers_ready or item in PS_FULL or item in ENV_ITEMS:
            assert got == pytest.approx(marks), f"item {item}: TA {marks}, grader {got}\n{text}"
        else:  # the report's text is not read yet: pending, never a silent 0
            assert got is None and item in record["pending_manual"], f"item {item}: expected pending, got {got}\n{text}"
    for item in sub.review:
        assert record["items"].get(item) is None, f"item {item} should wait for a TA\n{text}"
        assert item in record["needs_review"], f"item {item} should be in needs_review with a reason\n{text}"
        assert record["needs_review"][item], text
    if waiting:
        pytest.xfail(f"the other items match the TA; the sandbox does not handle the course's {', '.join(sorted(waiting))} "
                     "yet (grader/compat.py), so those items were not compared")


def _item_needs(sub: Sub, item: str) -> tuple[str, ...]:
    """The environment lines an item's marks depend on for this submission."""
    if item in PS_FULL:
        return tuple(f for f in sub.needs if f.endswith("paths"))
    if item in ENV_ITEMS:
        return tuple(f for f in sub.needs if f == "cifar")
    return ()


def test_no_automatic_item_is_a_silent_zero(graded, environment):
    """Is every automatic item either scored as the TA scores it or pending review: no 0 where the TA gives
    at least half (the held-out check of issue 11)?"""
    a = _assignment()
    for sub in SUBMISSIONS:
        record = graded[sub.student_id]
        for item in a.items:
            if item.kind != "auto" or any(not environment.get(f) for f in _item_needs(sub, item.id)):
                continue  # compared in the test above once the sandbox handles the line it needs
            ta = sub.ta.get(item.id)
            got = record["items"].get(item.id)
            if ta is not None and ta >= item.marks / 2:
                assert got is None or got >= ta / 2, f"{sub.zip_name} item {item.id}: TA {ta}, grader {got}\n{why(record)}"


def test_missing_analytical_notebook_is_only_a_note(graded):
    """Does a submission without PSET4_Analytical.ipynb (the course never had one) lose nothing for it?"""
    record = graded["305100004"]
    assert record["status"] == "ok" and record["intake_status"] == "ok", why(record)
    assert all("PSET4_Analytical" not in (o.get("message") or "") or o["status"] in ("passed", "review")
               for o in record["outcomes"]), why(record)
