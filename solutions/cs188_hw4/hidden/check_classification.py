"""Hidden checks for Problem 4, the CIFAR-10 classifier (items 4.1.2, 4.2.4, 4.3.1, 4.4.1). Trusted code.

The training loop is judged by the parameters after three SGD + momentum steps on fixed batches, starting
from weights made here, against the same three steps run here with an oracle LeNet (the handout's
architecture): a missing zero_grad, zero_grad between backward and step, step before backward, a softmax
before the cross-entropy or swapped arguments all end somewhere else; `net.zero_grad()`, zeroing at the end
of the iteration and `F.cross_entropy` end at the same place. Accuracy is judged with networks whose
outputs are known. A short run on the public fixture must learn (accuracy computed here).
"""
from __future__ import annotations

import pickle
from functools import lru_cache

import numpy as np

from grader.checks import CheckFailed, Student, Tensor, as_array, check, expect_close, expect_shape
from grader.protocol import Handle
from grader.spec import FIXTURES

MOD = "PSET4_Classification"
CIFAR = FIXTURES / "data" / "cs188_hw4" / "public" / "cifar-10-batches-py"


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def oracle_net():
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(400, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.flatten(1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return LeNet()


def initial_state(seed: int) -> dict[str, np.ndarray]:
    torch = _torch()
    torch.manual_seed(seed)
    return {k: v.detach().numpy().copy() for k, v in oracle_net().state_dict().items()}


def batches(seed: int, sizes: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, size=(n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64))
            for n in sizes]


def oracle_steps(state: dict[str, np.ndarray], data: list[tuple[np.ndarray, np.ndarray]], lr: float = 0.001,
                 momentum: float = 0.9) -> dict[str, np.ndarray]:
    torch = _torch()
    net = oracle_net()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def student_net(student: Student, state: dict[str, np.ndarray], cls: str = "Net") -> Handle:
    net = student.call(MOD, cls, ret="handle")
    if not isinstance(net, Handle):
        raise CheckFailed(f"{cls}() did not build a network", f"got {type(net).__name__}")
    keys = student.call(net, "state_dict")
    if not isinstance(keys, dict) or set(keys) != set(state):
        raise CheckFailed(f"{cls} does not have the handout's layers",
                          f"expected parameters {sorted(state)}, got {sorted(keys) if isinstance(keys, dict) else keys}",
                          "keep the given Net class as it is")
    student.call(net, "load_state_dict", {k: Tensor(v) for k, v in state.items()}, ret="none")
    return net


def wire(data: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[Tensor, Tensor]]:
    return [(Tensor(x), Tensor(y)) for x, y in data]


@lru_cache(maxsize=2)
def fixture_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    files = [f"data_batch_{k}" for k in range(1, 6)] if name == "train" else ["test_batch"]
    xs, ys = [], []
    for f in files:
        with open(CIFAR / f, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(d["data"], np.uint8))
        ys += list(d["labels"])
    x = np.concatenate(xs).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return (x - 0.5) / 0.5, np.asarray(ys, np.int64)


def oracle_accuracy(state: dict[str, np.ndarray]) -> float:
    torch = _torch()
    net = oracle_net()
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32).copy()) for k, v in state.items()})
    x, y = fixture_split("test")
    with torch.no_grad():
        pred = net(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean() * 100)


def _one_thread(student: Student, restore: int | None = None) -> int | None:
    """Run torch on one thread in the sandbox (or restore the count): batches of 4 gain nothing from
    intra-op threads, and on a busy machine their spinning makes a one-epoch run 10-20x slower."""
    try:
        before = student.call(MOD, "torch.get_num_threads")
        student.call(MOD, "torch.set_num_threads", restore or 1, ret="none")
        return int(before)
    except Exception:  # noqa: BLE001 - no `torch` in the notebook's namespace: leave the default
        return None


# -- 4.1 (ii) --------------------------------------------------------------------------------------
@check("4.1.2", "num_train and num_test are the numbers of samples loaded", module=MOD)
def sample_counts(student: Student) -> None:
    x_train, _ = fixture_split("train")
    x_test, _ = fixture_split("test")
    for name, expected in (("num_train", len(x_train)), ("num_test", len(x_test))):
        got = student.get(MOD, name)
        if not isinstance(got, (int, float)) or got != expected:
            raise CheckFailed(f"{name} is not the number of samples", f"expected {expected}, got {got!r}",
                              "len(train_data) / len(test_data): samples, not batches (len of the loader)")


# -- 4.2 Q4: kernel size 3 -------------------------------------------------------------------------
@check("4.2.4", "k3_works_unchanged is False", weight=1, module=MOD)
def k3_answer(student: Student) -> None:
    got = student.get(MOD, "k3_works_unchanged")
    if got is not False:
        raise CheckFailed("k3_works_unchanged should be False", f"got {got!r}",
                          "with 3x3 kernels the feature map before fc1 is 16 x 6 x 6 = 576 values, not 400")


@check("4.2.4", "NetK3 uses 3x3 convolutions and maps a 32x32 batch to 10 outputs", weight=2, module=MOD, timeout=60)
def k3_network(student: Student) -> None:
    net = student.call(MOD, "NetK3", ret="handle")
    if not isinstance(net, Handle):
        raise CheckFailed("NetK3() did not build a network", f"got {type(net).__name__}")
    state = student.call(net, "state_dict")
    if not isinstance(state, dict):
        raise CheckFailed("NetK3 has no state_dict", f"got {type(state).__name__}")
    kernels = [tuple(np.shape(v)[2:]) for v in state.values() if np.ndim(v) == 4]
    if not kernels or any(k != (3, 3) for k in kernels):
        raise CheckFailed("NetK3's convolutions should all be 3x3", f"kernel sizes {kernels}")
    x = np.random.default_rng(3).uniform(-1, 1, size=(5, 3, 32, 32)).astype(np.float32)
    out = as_array(student.call(net, "__call__", Tensor(x)), "NetK3(x)")
    expect_shape(out, (5, 10), "NetK3 output for a batch of 5 images",
                 "fc1 must take 16 * 6 * 6 inputs once both convolutions are 3x3")


# -- 4.3 (i): training ------------------------------------------------------------------------------
@check("4.3.1", "three SGD steps from known weights match the reference", weight=3, module=MOD, timeout=60)
def three_steps(student: Student) -> None:
    state = initial_state(11)
    data = batches(12, (4, 4, 4))
    expected = oracle_steps(state, data)
    net = student_net(student, state)
    student.call(MOD, "train", wire(data), num_epochs=1, net=net, model_save_path="/tmp/cs188_three_steps.pth", ret="none")
    got = student.call(net, "state_dict")
    unchanged = all(np.allclose(got[k], state[k]) for k in state)
    one_step = oracle_steps(state, data[:1])
    hint = ""
    if unchanged:
        hint = "the parameters never changed: optimizer.step() must come after loss.backward(), and zero_grad() before backward"
    elif all(np.allclose(np.asarray(got[k]), one_step[k], atol=1e-6) for k in state):
        hint = "only one step took effect"
    for k in sorted(state):
        expect_close(got[k], expected[k], f"parameter {k} after 3 steps", atol=1e-6, rtol=1e-4,
                     hint=hint or "per batch: optimizer.zero_grad(); outputs = net(inputs); loss = criterion(outputs, labels); "
                                  "loss.backward(); optimizer.step() (raw logits into CrossEntropyLoss, no softmax)")


@check("4.3.1", "a short run on the fixture learns", weight=1.5, module=MOD, timeout=180)
def learns(student: Student) -> None:
    # One epoch of the notebook's own train_loader (250 batches of 4) with lr = 0.003. Calibrated on the
    # reference: about 80% test accuracy here (36-80% over other seeds; chance is 10%), and a running
    # loss of about 430 for the epoch against 250 * ln(10) = 576 for a network that learns nothing.
    state = initial_state(7)
    net = student_net(student, state)
    loader = student.get(MOD, "train_loader", ret="handle")
    threads = _one_thread(student)
    try:
        curve = student.call(MOD, "train", loader, num_epochs=1, lr=0.003, net=net, model_save_path="/tmp/cs188_learns.pth",
                             seed=7, timeout=180)
    finally:
        _one_thread(student, threads)
    curve = as_array(curve, "the running-loss list returned by train")
    expect_shape(curve, (1,), "the running-loss list (one entry per 250 mini-batches; one epoch of 250 batches)")
    chance = 250 * np.log(10)
    if not curve[0] < 0.9 * chance:
        raise CheckFailed("the running loss does not go down", f"{curve[0]:.1f} over 250 batches; a network that "
                          f"learns nothing scores about {chance:.0f}")
    acc = oracle_accuracy(student.call(net, "state_dict"))
    if acc < 30.0:
        raise CheckFailed("the trained network does not learn the fixture",
                          f"test accuracy {acc:.1f}% after one epoch (reference: about 80%; chance: 10%)")


@check("4.3.1", "plot_loss_curve draws the list as one line", weight=0.5, module=MOD)
def loss_plot(student: Student) -> None:
    student.figures()
    values = [512.0, 400.5, 301.25, 250.0, 249.0]
    student.call(MOD, "plot_loss_curve", values, ret="none")
    figs = student.figures(save_as="loss-curve")
    lines = [ln for fig in figs for ax in fig["axes"] for ln in ax["lines"]]
    if not any(len(ln["y"]) == len(values) and np.allclose(ln["y"], values) for ln in lines):
        raise CheckFailed("no line shows the running-loss values", f"{len(lines)} line(s) drawn",
                          "plt.plot(running_loss_list) (x: the logging step)")


# -- 4.4 (i): accuracy -----------------------------------------------------------------------------
def _constant_net(student: Student, cls: int) -> Handle:
    state = {k: np.zeros_like(v) for k, v in initial_state(0).items()}
    state["fc3.bias"][cls] = 1.0
    return student_net(student, state)


def _accuracy(student: Student, loader, net: Handle) -> float:
    got = student.call(MOD, "test", loader, net=net, model_path="/tmp/none.pth")
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise CheckFailed("test should return the accuracy", f"got {type(got).__name__}")
    return float(got)


def _expect_accuracy(got: float, expected_percent: float, what: str) -> None:
    if not (abs(got - expected_percent) < 1e-6 or abs(got - expected_percent / 100) < 1e-8):
        raise CheckFailed(f"the accuracy is wrong ({what})", f"expected {expected_percent:g}% (or {expected_percent / 100:g}), got {got:g}",
                          "correct predictions / number of images (labels.size(0) per batch), not / number of batches")


@check("4.4.1", "accuracy of a network whose predictions are known", weight=2, module=MOD)
def known_outputs(student: Student) -> None:
    net = _constant_net(student, 3)  # predicts class 3 for every image
    data = batches(31, (4, 4, 2))
    labels = [np.array([3, 1, 3, 3]), np.array([0, 3, 9, 3]), np.array([3, 5])]  # 6 of 10 are class 3
    loader = wire([(x, y.astype(np.int64)) for (x, _), y in zip(data, labels)])
    _expect_accuracy(_accuracy(student, loader, net), 60.0, "a network that always predicts class 3")


@check("4.4.1", "accuracy of a random network matches the reference", weight=1, module=MOD)
def random_net(student: Student) -> None:
    torch = _torch()
    state = initial_state(5)
    data = batches(41, (4, 4, 4, 4, 3))
    net_ref = oracle_net()
    net_ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    with torch.no_grad():
        correct = sum(int((net_ref(torch.from_numpy(x)).argmax(1).numpy() == y).sum()) for x, y in data)
    expected = 100.0 * correct / sum(len(y) for _, y in data)
    net = student_net(student, state)
    _expect_accuracy(_accuracy(student, wire(data), net), expected, "a randomly initialised network")
