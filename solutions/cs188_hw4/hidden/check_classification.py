"""Hidden checks for Problem 4, the CIFAR-10 classifier (items 4.1.2, 4.2.4, 4.3.1, 4.4.1). Trusted code.

The training loop is judged by the parameters after three SGD + momentum steps on fixed batches, starting
from weights made here, against the same three steps run here with an oracle LeNet (the handout's
architecture): a missing zero_grad, zero_grad between backward and step, step before backward, a softmax
before the cross-entropy or swapped arguments all end somewhere else; `net.zero_grad()`, zeroing at the end
of the iteration and `F.cross_entropy` end at the same place. Accuracy is judged with networks whose
outputs are known. A short run on the public fixture must learn (accuracy computed here).

Two interfaces are accepted. Our starter's (recommended): `train(..., net=)` trains the given network,
`test(..., net=)` returns the accuracy, `num_train`/`num_test`, `k3_works_unchanged` and `NetK3`. The
original course's: `train(train_loader, num_epochs, use_gpu, lr, momentum, model_save_path)` builds its own
Net() and saves it (its start is found by building Net() under the same seed: the call's seed, or the 7
the handout seeds with), `test(test_loader, model_path)` loads a Net from the file and prints the accuracy
(read from the sandbox's captured output, "%d %%" truncation allowed), the sample counts and the
kernel-size answer are in the report, and the kernel-size question is answered by editing Net in place
(so Net itself may have 3x3 kernels and fc1 16 * 6 * 6 inputs; every oracle here follows the student's
Net's shapes). What cannot be decided that way (no train function, a start that is no fresh Net(), no
printed accuracy, answers only in words the grader cannot read) goes to a TA with the evidence.
"""
from __future__ import annotations

import pickle
import re
import time
from functools import lru_cache

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array, expect_close, expect_shape, helper_module
from grader.protocol import Handle
from grader.sandbox import StudentError
from grader.spec import FIXTURES

MOD = "PSET4_Classification"
CIFAR = FIXTURES / "data" / "cs188_hw4" / "public" / "cifar-10-batches-py"
HANDOUT = (5, 400)  # (kernel size, fc1 inputs) of the handout's Net; (3, 576) once edited for 3x3 kernels


text = helper_module(__file__, "answer_text")


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def oracle_net(arch: tuple[int, int] = HANDOUT):
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    k, fc_in = arch

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, k)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, k)
            self.fc1 = nn.Linear(fc_in, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.flatten(1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return LeNet()


def initial_state(seed: int, arch: tuple[int, int] = HANDOUT) -> dict[str, np.ndarray]:
    torch = _torch()
    torch.manual_seed(seed)
    return {k: v.detach().numpy().copy() for k, v in oracle_net(arch).state_dict().items()}


def arch_of(state: dict) -> tuple[int, int]:
    """(kernel size, fc1 inputs) of a LeNet-shaped state_dict."""
    return int(np.shape(state["conv1.weight"])[-1]), int(np.shape(state["fc1.weight"])[1])


def batches(seed: int, sizes: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, size=(n, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64))
            for n in sizes]


def oracle_steps(state: dict[str, np.ndarray], data: list[tuple[np.ndarray, np.ndarray]], lr: float = 0.001,
                 momentum: float = 0.9) -> dict[str, np.ndarray]:
    torch = _torch()
    net = oracle_net(arch_of(state))
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32).copy()) for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def student_arch(student: Student, cls: str = "Net") -> tuple[int, int]:
    """The architecture of the student's `cls`: the handout's, or the handout's edited for 3x3 kernels."""
    net = student.call(MOD, cls, ret="handle")
    if not isinstance(net, Handle):
        raise CheckFailed(f"{cls}() did not build a network", f"got {type(net).__name__}")
    keys = student.call(net, "state_dict")
    expected = set(initial_state(0))
    if not isinstance(keys, dict) or set(keys) != expected:
        raise CheckFailed(f"{cls} does not have the handout's layers",
                          f"expected parameters {sorted(expected)}, got {sorted(keys) if isinstance(keys, dict) else keys}",
                          "keep the given Net class as it is")
    arch = arch_of(keys)
    if arch not in (HANDOUT, (3, 576)):
        raise CheckFailed(f"{cls} does not have the handout's layer sizes", f"kernel {arch[0]}, fc1 inputs {arch[1]}")
    return arch


def student_net(student: Student, state: dict[str, np.ndarray], cls: str = "Net") -> Handle:
    net = student.call(MOD, cls, ret="handle")
    if not isinstance(net, Handle):
        raise CheckFailed(f"{cls}() did not build a network", f"got {type(net).__name__}")
    student.call(net, "load_state_dict", {k: Tensor(v) for k, v in state.items()}, ret="none")
    return net


def _unknown_kwarg(exc: StudentError, name: str) -> bool:
    return exc.error == "TypeError" and f"'{name}'" in exc.message and "keyword" in exc.message


def run_train(student: Student, loader, path: str, seed: int, timeout: float | None = None,
              **kwargs) -> tuple[dict, list[dict], object]:
    """Run the student's train() once; (trained state, possible starting states, its return value).

    Our starter's train(net=) trains a network whose start the grader sets; the original train() builds
    its own Net(): its start is Net() under the call's seed, or under the handout's manual_seed(7)."""
    if not text.defined(student, MOD, "train"):
        raise NeedsReview("the notebook defines no train() function (the training loop is top-level code?)",
                          "the loop cannot be run on the grader's batches: a TA reads the code and the loss curve")
    arch = student_arch(student)
    start = initial_state(seed, arch)
    net = student_net(student, start)
    try:
        out = student.call(MOD, "train", loader, net=net, model_save_path=path, seed=seed, timeout=timeout, **kwargs)
        return student.call(net, "state_dict"), [start], out
    except StudentError as exc:
        if not _unknown_kwarg(exc, "net"):
            raise
    out = student.call(MOD, "train", loader, model_save_path=path, seed=seed, timeout=timeout, **kwargs)
    try:
        trained = student.call(MOD, "torch.load", path)
    except StudentError as exc:
        raise NeedsReview("train() did not save the trained network to model_save_path",
                          f"torch.load({path!r}) raised {exc.error}: {exc.message[:200]}") from None
    if not isinstance(trained, dict) or set(trained) != set(start):
        raise NeedsReview("the file train() saved is not the Net's state_dict", f"got {type(trained).__name__}")
    starts = []
    for s in (seed, 7):
        handle = student.call(MOD, "Net", ret="handle", seed=s)
        starts.append(student.call(handle, "state_dict"))
    return trained, starts, out


def _near(a: dict, b: dict, tol: float) -> bool:
    return all(np.allclose(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64), atol=tol) for k in b)


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
    net = oracle_net(arch_of(state))
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
@pytest.mark.item("4.1.2", module=MOD)
def test_sample_counts(student: Student) -> None:
    """the numbers of training and test samples"""
    if text.defined(student, MOD, "num_train") and text.defined(student, MOD, "num_test"):
        for name, split in (("num_train", "train"), ("num_test", "test")):
            got = student.get(MOD, name)
            if isinstance(got, bool) or not isinstance(got, (int, float)) or not got == len(fixture_split(split)[1]):
                raise CheckFailed(f"{name} is not the number of samples loaded", f"got {got!r}",
                                  "count samples, not batches")
        return
    # The original asks for code that prints them, and the counts in the report: on CIFAR-10 itself.
    texts = text.candidates(student, "4.1.2")
    for written in texts:
        numbers = {int(n.replace(",", "")) for n in re.findall(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b", written)}
        if {50000, 10000} <= numbers or {len(fixture_split("train")[1]), len(fixture_split("test")[1])} <= numbers:
            return
    written = texts[0] if texts else None
    raise NeedsReview("the sample counts are not variables num_train/num_test and the written answer does not "
                      "state both counts in a form the grader reads", text.evidence(written))


# -- 4.2 Q4: kernel size 3 -------------------------------------------------------------------------
NEGATIVE = re.compile(r"\b(?:not? (?:be )?(?:able|work|possible|run|pass|match)\w*|cannot|can't|can ?not|won't|wouldn't|"
                      r"doesn't|does not|will not|would not|fails?|error|mismatch\w*|incompatible|breaks?)\b", re.I)


@pytest.mark.item("4.2.4", weight=1, module=MOD)
def test_k3_answer(student: Student) -> None:
    """whether 3x3 kernels work without other changes"""
    if text.defined(student, MOD, "k3_works_unchanged"):
        if student.get(MOD, "k3_works_unchanged") is not False:
            raise CheckFailed("k3_works_unchanged is not right")
        return
    written = text.find(student, "4.2.4")
    verdict = text.yes_no(written) if written and hasattr(text, "yes_no") else None
    if written and (verdict == "no" or (verdict is None and NEGATIVE.search(text.clean(written)))):
        return
    raise NeedsReview("the answer to whether 3x3 kernels work unchanged is in words the grader does not read",
                      text.evidence(written))


@pytest.mark.item("4.2.4", weight=2, timeout=60, module=MOD)
def test_k3_network(student: Student) -> None:
    """a network with 3x3 convolutions maps a 32x32 batch to 10 outputs"""
    cls = "NetK3" if text.defined(student, MOD, "NetK3") else "Net"  # the original: Net edited in place for the question
    net = student.call(MOD, cls, ret="handle")
    if not isinstance(net, Handle):
        raise CheckFailed(f"{cls}() did not build a network", f"got {type(net).__name__}")
    state = student.call(net, "state_dict")
    if not isinstance(state, dict):
        raise CheckFailed(f"{cls} has no state_dict", f"got {type(state).__name__}")
    kernels = [tuple(np.shape(v)[2:]) for v in state.values() if np.ndim(v) == 4]
    if cls == "Net" and kernels and all(k == (5, 5) for k in kernels):
        raise NeedsReview("no NetK3, and Net still has its 5x5 kernels: the 3x3 network is not in the final notebook",
                          text.evidence(text.find(student, "4.2.4")))
    if not kernels or any(k != (3, 3) for k in kernels):
        raise CheckFailed(f"{cls}'s convolutions are not all 3x3", f"kernel sizes {kernels}")
    x = np.random.default_rng(3).uniform(-1, 1, size=(5, 3, 32, 32)).astype(np.float32)
    out = as_array(student.call(net, "__call__", Tensor(x)), f"{cls}(x)")
    expect_shape(out, (5, 10), f"{cls} output for a batch of 5 images")


# -- 4.3 (i): training ------------------------------------------------------------------------------
@pytest.mark.item("4.3.1", weight=3, timeout=60, module=MOD)
def test_three_steps(student: Student) -> None:
    """three SGD steps from known weights match the reference"""
    data = batches(12, (4, 4, 4))
    got, starts, _ = run_train(student, wire(data), "/tmp/cs188_three_steps.pth", seed=11, num_epochs=1)
    for start in starts:
        expected = oracle_steps(start, data)
        if _near(got, expected, 1e-6 + 1e-4 * max(1.0, max(float(np.abs(v).max()) for v in expected.values()))):
            if all(np.allclose(np.asarray(got[k]), expected[k], atol=1e-6, rtol=1e-4) for k in expected):
                return
    start = next((s for s in starts if _near(got, s, 0.05)), None)
    if start is None:  # it did not start from a fresh Net(): a global network, another seed...
        raise NeedsReview("train() did not start from a fresh Net() (the grader's seed or the handout's seed 7), "
                          "so its steps cannot be compared", "the parameters after train() are far from both starts")
    expected = oracle_steps(start, data)
    hint = ""
    if all(np.allclose(np.asarray(got[k]), start[k]) for k in start):
        hint = "the parameters never changed"
    elif all(np.allclose(np.asarray(got[k]), oracle_steps(start, data[:1])[k], atol=1e-6) for k in start):
        hint = "only one step took effect"
    for k in sorted(expected):
        expect_close(got[k], expected[k], f"parameter {k} after 3 steps", atol=1e-6, rtol=1e-4,
                     hint=hint or "check the order of the steps in each iteration, and what goes into the loss")


@pytest.mark.item("4.3.1", weight=1.5, timeout=180, module=MOD)
def test_learns(student: Student) -> None:
    # One epoch of the notebook's own train_loader (250 batches of 4) with lr = 0.003. Calibrated on the
    # reference: about 80% test accuracy here (36-80% over other seeds; chance is 10%), and a running
    # loss of about 430 for the epoch against 250 * ln(10) = 576 for a network that learns nothing.
    """a short run on the fixture learns"""
    loader = student.get(MOD, "train_loader", ret="handle")
    threads = _one_thread(student)
    try:
        trained, _, curve = run_train(student, loader, "/tmp/cs188_learns.pth", seed=7, timeout=180, num_epochs=1, lr=0.003)
    finally:
        _one_thread(student, threads)
    if curve is not None:  # the original train() may return nothing: its curve is a figure
        curve = as_array(curve, "the running-loss list returned by train")
        expect_shape(curve, (1,), "the running-loss list (one entry per 250 mini-batches; one epoch of 250 batches)")
        chance = 250 * np.log(10)
        if not curve[0] < 0.9 * chance:
            raise CheckFailed("the running loss does not go down", f"{curve[0]:.1f} over 250 batches")
    acc = oracle_accuracy(trained)
    if acc < 30.0:
        raise CheckFailed("the trained network does not learn the fixture",
                          f"test accuracy {acc:.1f}% after one epoch (chance: 10%)")


@pytest.mark.item("4.3.1", weight=0.5, module=MOD)
def test_loss_plot(student: Student) -> None:
    """plot_loss_curve draws the list as one line"""
    if not text.defined(student, MOD, "plot_loss_curve"):
        return  # the original has no such function: the curve is a figure of the notebook, read by a TA
    student.figures()
    values = [512.0, 400.5, 301.25, 250.0, 249.0]
    student.call(MOD, "plot_loss_curve", values, ret="none")
    figs = student.figures(save_as="loss-curve")
    lines = [ln for fig in figs for ax in fig["axes"] for ln in ax["lines"]]
    if not any(len(ln["y"]) == len(values) and np.allclose(ln["y"], values) for ln in lines):
        raise CheckFailed("no line shows the running-loss values", f"{len(lines)} line(s) drawn")


# -- 4.4 (i): accuracy -----------------------------------------------------------------------------
def _constant_net(student: Student, cls: int) -> tuple[Handle, dict]:
    state = {k: np.zeros_like(v) for k, v in initial_state(0, student_arch(student)).items()}
    state["fc3.bias"][cls] = 1.0
    return student_net(student, state), state


def _new_output(student: Student, before: str) -> str:
    """What the student's code printed since `before` was the captured output (waits for the pipe)."""
    deadline = time.monotonic() + 2.0
    while True:
        after = getattr(student.sandbox, "stderr_tail", "") or ""
        if after != before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not before:
        return after
    anchor = before[-300:]
    at = after.rfind(anchor)
    return after[at + len(anchor):] if at >= 0 else after


def _accuracy(student: Student, loader, net: Handle, path: str = "/tmp/cs188_test_net.pth") -> tuple[float, bool]:
    """(accuracy, printed with %d) of the student's test() on `loader` for network `net`."""
    before = getattr(student.sandbox, "stderr_tail", "") or ""
    try:
        got = student.call(MOD, "test", loader, net=net, model_path=path)
    except StudentError as exc:
        if not _unknown_kwarg(exc, "net"):
            raise
        # the original test(test_loader, model_path) loads a Net from the file: save this one there
        sd = student.call(net, "state_dict", ret="handle")
        student.call(MOD, "torch.save", sd, path, ret="none")
        before = getattr(student.sandbox, "stderr_tail", "") or ""
        got = student.call(MOD, "test", loader, model_path=path)
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        return float(got), False
    if got is not None:
        raise CheckFailed("test should return the accuracy (or return nothing and print it)", f"got {type(got).__name__}")
    printed = _new_output(student, before)
    found = re.findall(r"(\d+(?:\.\d+)?)\s*%", printed)
    if not found:
        raise NeedsReview("test() returned nothing and printed no accuracy the grader could read",
                          "its output: " + (printed.strip()[-500:] or "(nothing)"))
    return float(found[-1]), "." not in found[-1]


def _expect_accuracy(got: tuple[float, bool], expected_percent: float, what: str) -> None:
    value, truncated = got
    ok = abs(value - expected_percent) < 1e-6 or abs(value - expected_percent / 100) < 1e-8
    if truncated:  # printed with '%d %%': the handout's own format truncates
        ok = ok or value in (np.floor(expected_percent), np.round(expected_percent))
    if not ok:
        raise CheckFailed(f"the accuracy is not right ({what})", f"got {value:g}",
                          "correct predictions over the number of images")


@pytest.mark.item("4.4.1", weight=2, module=MOD)
def test_known_outputs(student: Student) -> None:
    """accuracy of a network whose predictions are known"""
    net, _ = _constant_net(student, 3)  # predicts class 3 for every image
    data = batches(31, (4, 4, 2))
    labels = [np.array([3, 1, 3, 3]), np.array([0, 3, 9, 3]), np.array([3, 5])]  # 6 of 10 are class 3
    loader = wire([(x, y.astype(np.int64)) for (x, _), y in zip(data, labels)])
    _expect_accuracy(_accuracy(student, loader, net), 60.0, "a network that always predicts one class")


@pytest.mark.item("4.4.1", weight=1, module=MOD)
def test_random_net(student: Student) -> None:
    """accuracy of a random network matches the reference"""
    torch = _torch()
    arch = student_arch(student)
    state = initial_state(5, arch)
    data = batches(41, (4, 4, 4, 4, 3))
    net_ref = oracle_net(arch)
    net_ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    with torch.no_grad():
        correct = sum(int((net_ref(torch.from_numpy(x)).argmax(1).numpy() == y).sum()) for x, y in data)
    expected = 100.0 * correct / sum(len(y) for _, y in data)
    net = student_net(student, state)
    _expect_accuracy(_accuracy(student, wire(data), net), expected, "a randomly initialised network")
