"""Hidden checks for Task 6 (training tiny NeRF, items 6.1 and 6.2). Trusted code.

The grader, not the student's code, runs the experiment: it builds `make_trainer(BASELINE, ...)` and
`make_trainer(IMPROVED, ...)` with the same seed (passed as an argument; the worker's global RNGs are
deliberately NOT seeded, so a trainer that ignores its seed is caught by the reproducibility check),
calls `train_step(index)` ITERS times on each with the same image sequence (so neither version can
train longer than the other), renders the held-out poses with `render(pose)` and computes the PSNR in
this process against held-out images that never enter the sandbox. Training data come from the
public fixture (fixtures/data/comp4423_a2/public/tiny_nerf_data.npz, also mounted at
`student.data_dir`); the held-out images from fixtures/data/comp4423_a2/nerf_heldout.npz.

6.1 (the improvement): IMPROVED differs from BASELINE (configuration or architecture), and the
improved version trains (finite losses, the weights move at every probed step) and changes the
result. 6.2 (results of both versions) is only earned with such an improvement: the given helpers
still work, the renderer matches the analytic spheres, the baseline reaches a calibrated PSNR floor,
the improved version is no worse than the baseline minus a tolerance, and runs are reproducible.

No image-based answer earns these marks (issue 12): the floor is also above the best trivial answer
the grader computes from the training views themselves (the nearest training view, the mean of the two
nearest, the mean image, black), and a rendering counts only if it depends on the trained model:
after the held-out renders the grader flips the sign of every parameter of `trainer.model` and renders
again, and the held-out PSNR must fall by DEPENDENCE_DB (a render that returns or blends training
views does not change at all).

Calibration (fixture: 40 training views of 16x16, 2 held-out views, three spheres on black, whose
all-black rendering scores 13.6 dB; one CPU thread, Adam lr 2e-3, 300 steps of one full image each):
the reference BASELINE reaches 24.5 dB at the marking seed 4423 (24.5-25.3 dB at other seeds), the
reference IMPROVED (hidden 128 -> 256) 26.3 dB, a 3-hidden-layer MLP 25.2 dB (seed 4426, its first
live one); filter_size 8 and a train_step without zero_grad stay far below. FLOOR_DB = 21 leaves
3.5 dB below the reference. Cost (CPU seconds of the sandbox): the baseline about 7 s, the 256-wide
model about 25 s, the whole of 6.1 + 6.2 about 35-40 s.
The marking seed is SEED, fixed by the grader. A version whose density is <= 0 at every sample when
initialised gets no gradient (a dead ReLU) and does not move at its first step: when that happens at
SEED but not at every one of SEEDS (an unlucky initialisation, not a train_step that never steps), the
items go to a TA with the seeds as evidence instead of the marker choosing another seed (which the
submission could steer by playing dead at the seeds it does not want).

Results are cached per submission across checks and sandbox restarts, keyed by the hash of every file
of the submission (two submissions sharing one file never share results).
"""
from __future__ import annotations

import importlib.util
import math
import time
import hashlib
from pathlib import Path

import numpy as np
import pytest

from grader.checks import CheckFailed, NeedsReview, Student, Tensor, as_array, expect_shape
from grader.oracles import volume
from grader.protocol import Handle

MOD = "tiny_nerf"
ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "fixtures" / "data" / "comp4423_a2"
PUBLIC = DATA / "public" / "tiny_nerf_data.npz"
HELDOUT = DATA / "nerf_heldout.npz"

SEED = 4423  # the grader's seed for both versions
SEEDS = tuple(SEED + k for k in range(6))  # probed only to tell a dead initialisation from a train_step that never steps
ITERS = 300  # optimisation steps given to each version (one full training image per step)
FLOOR_DB = 21.0  # the baseline must reach this held-out PSNR after ITERS steps, and
TRIVIAL_MARGIN_DB = 1.0  # this much more than the best image-based answer (see _trivial_db)
DEPENDENCE_DB = 3.0  # flipping the sign of the trained model's parameters must cost at least this much PSNR
ROLL_TOL_DB = 2.0  # the held-out views rolled by 90 degrees (the same rays, turned) may score at most this much less
TOLERANCE_DB = 0.5  # the improved version may not be worse than the baseline by more than this
REPRO_ITERS = 5  # steps of each reproducibility run
REPRO_DB = 1e-4
PROBES = (0, 1)  # steps (and the last two) at which the weights must move
# Budgets in CPU seconds of the sandbox's processes (less sensitive to a loaded machine than wall time),
# before the runner's timeout scale. On one idle CPU thread the baseline needs about 7 s and the 256-wide
# model about 25 s; with 2 torch threads on a machine loaded 10x, OpenMP spin-waiting inflated the CPU
# time of the baseline about 8x, hence the margins. A run over budget is reported as a timeout (status
# "timeout" in the gradebook, for a TA to regrade), never as a silent fail. The sandbox is restarted
# first when the CPU time other items used would leave too little of its RLIMIT_CPU. A wall-clock cap
# per version stops code that sleeps instead of computing.
STEP_TIMEOUT = 30.0
BASELINE_BUDGET = 90.0
IMPROVED_BUDGET = 180.0
WALL_CAP = 600.0
TRAIN_BUDGET = 2 * WALL_CAP + 300.0  # a check that trains both versions: their wall caps, plus the probes

_CACHE: dict = {}  # (box, sha256 of every file of the submission) -> results (plain data only), across restarts
_DIGESTS: dict = {}  # box -> (the files' names, sizes and mtimes, their sha256)
_ROLLED: dict = {}  # the rolled held-out views (see _rolled_views)
LAST: dict = {}  # the latest experiment's numbers (PSNR, seconds, errors), for calibration and tests


def _scene_module():
    spec = importlib.util.spec_from_file_location("_gen_nerf_scene", ROOT / "fixtures" / "gen_nerf_scene.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fixture() -> dict[str, np.ndarray]:
    with np.load(PUBLIC) as pub, np.load(HELDOUT) as held:
        return {"images": pub["images"], "poses": pub["poses"], "focal": float(pub["focal"]),
                "test_poses": held["test_poses"], "test_images": held["test_images"]}


def _psnr(rendered: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((rendered - target) ** 2))
    if not math.isfinite(mse):
        return float("nan")
    return -10.0 * math.log10(max(mse, 1e-12))


def _digest(box: Path) -> str:
    """sha256 of every file of the submission's box (names and contents), recomputed when a file changes."""
    files = sorted(p for p in box.rglob("*") if p.is_file() and not p.is_symlink())
    stats = tuple((p.relative_to(box).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    cached = _DIGESTS.get(str(box))
    if cached is None or cached[0] != stats:
        h = hashlib.sha256()
        for (rel, size, _), path in zip(stats, files):
            h.update(f"{rel}\0{size}\0".encode())
            h.update(path.read_bytes())
        cached = (stats, h.hexdigest())
        _DIGESTS[str(box)] = cached
    return cached[1]


def _state(student: Student) -> dict:
    """Per-submission memo, so that both versions are trained once even when a timeout restarts the sandbox.
    Keyed by the hash of the WHOLE submission: a thin module importing another file shares nothing."""
    box = Path(student.sandbox.box)
    key = (str(box), _digest(box))
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = {}
    return _CACHE[key]


def _plain(value):
    """A configuration value as comparable plain data (handles by type name)."""
    if isinstance(value, Handle):
        return f"<{value.type_name}>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _device(student: Student) -> str:
    return "cuda" if student.on_gpu else "cpu"


def _make_trainer(student: Student, which: str, seed: int = SEED) -> Handle:
    fx = _fixture()
    config = student.get(MOD, which, ret="handle")
    try:
        trainer = student.call(MOD, "make_trainer", config, Tensor(fx["images"]), Tensor(fx["poses"]), fx["focal"],
                               seed, _device(student), ret="handle", timeout=60)
    except Exception as exc:  # noqa: BLE001 - re-raised with the version named
        if isinstance(exc, CheckFailed):
            raise
        from grader.sandbox import StudentError

        if isinstance(exc, StudentError):
            raise CheckFailed(f"make_trainer({which}, ...) raised {exc.error}: {exc.message[:300]}") from None
        raise
    return trainer


def _state_dict(student: Student, trainer: Handle) -> dict | None:
    """The trainer's model.state_dict() as plain data, or None when it cannot be read."""
    from grader.sandbox import StudentError

    try:
        sd = student.call(trainer, "model.state_dict", timeout=30)
    except StudentError:
        return None
    return sd if isinstance(sd, dict) else None


def _shapes(student: Student, trainer: Handle) -> list | None:
    """Names and shapes of the trainer's model parameters, or None when they cannot be read."""
    sd = _state_dict(student, trainer)
    if sd is None:
        return None
    try:
        return sorted((k, tuple(np.asarray(v).shape)) for k, v in sd.items() if not isinstance(v, Handle))
    except Exception:  # noqa: BLE001
        return None


def _shapes_of(student: Student, which: str) -> list | None:
    try:
        return _shapes(student, _make_trainer(student, which))
    except CheckFailed:  # make_trainer raised: the training checks report it
        return None


def _weights(student: Student, trainer: Handle) -> np.ndarray | None:
    """Every float array of the trainer's state_dict, flattened in name order, or None."""
    sd = _state_dict(student, trainer)
    if sd is None:
        return None
    parts = [np.asarray(v, dtype=np.float64).ravel() for _, v in sorted(sd.items()) if isinstance(v, np.ndarray)]
    return np.concatenate(parts) if parts else None


def declared(student: Student) -> dict:
    """What the student declared as the improvement: a config diff and/or a different architecture."""
    state = _state(student)
    if "declared" in state:
        return state["declared"]
    base = _plain(student.get(MOD, "BASELINE"))
    imp = _plain(student.get(MOD, "IMPROVED"))
    if not isinstance(base, dict) or not isinstance(imp, dict):
        result = {"real": False, "why": "BASELINE and IMPROVED should be dicts of settings"}
    else:
        diff = sorted(k for k in set(base) | set(imp) if base.get(k, "<missing>") != imp.get(k, "<missing>"))
        shapes_b, shapes_i = (_shapes_of(student, which) for which in ("BASELINE", "IMPROVED"))
        arch = shapes_b is not None and shapes_i is not None and shapes_b != shapes_i
        params = [sum(math.prod(s) for _, s in sh) if sh is not None else None for sh in (shapes_b, shapes_i)]
        what = []
        if diff:
            what.append("changed settings: " + ", ".join(f"{k}: {base.get(k, '-')!r} -> {imp.get(k, '-')!r}" for k in diff[:6]))
        if arch:
            what.append(f"parameters: {params[0]} -> {params[1]}")
        result = {"real": bool(diff or arch), "why": "; ".join(what), "params": params,
                  "diff": diff, "arch": arch}
    state["declared"] = result
    return result


ENTRY_POINTS = ("BASELINE", "IMPROVED", "make_trainer")  # the starter's; the original notebook had none of them


def _require_entry_points(student: Student) -> None:
    """A Task 6 in the original notebook's form (its own training loop, no BASELINE / IMPROVED / make_trainer)
    cannot be driven by the marker: a TA marks it, shown what the module defines."""
    found = student.names(MOD)
    missing = [n for n in ENTRY_POINTS if n not in found]
    if missing:
        notebook = [n for n in ("VeryTinyNerfModel", "run_one_iter_of_tinynerf", "render_volume_density") if n in found]
        shown = ", ".join(sorted(found)[:40]) + (" ..." if len(found) > 40 else "")
        raise NeedsReview(f"tiny_nerf defines no {', '.join(missing)} (the starter's entry points the marker trains "
                          "both versions through)" + ("; it has the original notebook's functions" if notebook else ""),
                          f"names the module defines: {shown or '(none)'}")


def _require_improvement(student: Student) -> dict:
    _require_entry_points(student)
    info = declared(student)
    if not info["real"]:
        raise CheckFailed(
            "there is no improved version to compare: IMPROVED has the same settings and architecture as BASELINE",
            info.get("why", ""),
            "Task 6 asks for ONE change to the baseline, described by IMPROVED; 6.2 compares the two versions",
        )
    return info


def _order(seed: int, iters: int) -> np.ndarray:
    """The training image of every step (chosen by the grader, the same for both versions)."""
    return np.random.default_rng(seed).integers(len(_fixture()["images"]), size=iters)


def _run(student: Student, which: str, iters: int, seed: int, probes: bool, budget: float) -> dict:
    """Train one version under the grader's control; return PSNR, losses and what went wrong."""
    from grader.sandbox import SandboxError, StudentError

    fx = _fixture()
    n = len(fx["images"])
    order = _order(seed, iters)
    out: dict = {"psnr": float("nan"), "error": "", "moved": True, "losses": [], "seconds": 0.0}
    start, cpu0 = time.monotonic(), 0.0
    scale = student.scale
    try:
        student.fresh_worker(cpu_needed=budget * scale + 20.0)  # RLIMIT_CPU counts the worker's whole life
        cpu0 = student.cpu_seconds()
        trainer = _make_trainer(student, which, seed)
        probe_at = set(PROBES) | {iters - 2, iters - 1} if probes else set()
        for step, index in enumerate(order):
            before = _weights(student, trainer) if step in probe_at else None
            loss = student.call(trainer, "train_step", int(index), timeout=STEP_TIMEOUT)
            try:
                loss = float(np.asarray(loss, dtype=np.float64).reshape(-1)[0]) if not isinstance(loss, Handle) else float("nan")
            except (TypeError, ValueError, IndexError):
                loss = float("nan")
            out["losses"].append(loss)
            if before is not None:
                after = _weights(student, trainer)
                if after is None or after.shape != before.shape or np.array_equal(after, before):
                    out["moved"] = False
                    out["stuck_at"] = step
                    out["error"] = f"a call of train_step left the {which} model's weights unchanged (step {step})"
                    return out
            cpu = student.cpu_seconds() - cpu0
            if cpu > budget * scale or time.monotonic() - start > WALL_CAP * scale:
                out["over_budget"] = True
                out["error"] = (f"{which} used more than {budget * scale:.0f} s of CPU (or {WALL_CAP * scale:.0f} s of "
                                f"wall time) for {step + 1} of {iters} steps "
                                f"({'on a GPU' if student.on_gpu else 'on one CPU thread'}); the baseline needs about 10 s")
                return out
        renders = [as_array(student.call(trainer, "render", Tensor(p), timeout=60), f"render of the held-out pose ({which})")
                   for p in fx["test_poses"]]
        for r in renders:
            expect_shape(r, fx["test_images"].shape[1:], f"render(pose) of {which}",
                         hint="render returns the (H, W, 3) image seen from the pose")
        out["render"] = np.stack(renders)
        out["psnr"] = float(np.mean([_psnr(r, t) for r, t in zip(renders, fx["test_images"])]))
        if iters == ITERS:  # the marked runs only (a few steps leave the model close to its initialisation)
            rolled = _rolled_views()
            again = [as_array(student.call(trainer, "render", Tensor(p), timeout=60), f"render of a rolled held-out pose ({which})")
                     for p in rolled["poses"]]
            for r in again:
                expect_shape(r, rolled["images"].shape[1:], f"render(pose) of {which}")
            out["psnr_rolled"] = float(np.mean([_psnr(r, t) for r, t in zip(again, rolled["images"])]))
            out["psnr_flipped"] = _flipped_psnr(student, trainer, which)
    except CheckFailed as exc:
        out["error"] = exc.what + (f" ({exc.detail})" if exc.detail else "")
    except StudentError as exc:
        out["error"] = f"{which}: your code raised {exc.error}: {exc.message[:300]}"
    except SandboxError as exc:  # the sandbox is closed; the next check starts a fresh one
        out["error"] = f"{which}: {exc.status} ({exc}) after {len(out['losses'])} of {iters} steps"
    finally:
        out["seconds"] = round(time.monotonic() - start, 1)
        out["cpu"] = round(student.cpu_seconds() - cpu0, 1)
    return out


def _flipped_psnr(student: Student, trainer: Handle, which: str) -> float | None:
    """Held-out PSNR after flipping the sign of every parameter of trainer.model (the trainer is spent after);
    None when the model has no parameter to flip. NaN or inf in the flipped rendering counts as 0 dB."""
    from grader.sandbox import StudentError

    fx = _fixture()
    flipped = 0
    try:
        gen = student.call(trainer, "model.parameters", ret="handle")
        for _ in range(1000):
            try:
                param = student.call(gen, "send", None, ret="handle")  # next(generator)
            except StudentError as exc:
                if exc.error == "StopIteration":
                    break
                raise
            student.call(param, "data.neg_", ret="none")
            flipped += 1
    except StudentError:
        return None
    if not flipped:
        return None
    scores = []
    for pose, target in zip(fx["test_poses"], fx["test_images"]):
        r = as_array(student.call(trainer, "render", Tensor(pose), timeout=60), f"render of the held-out pose ({which})",
                     allow_nonfinite=True)
        scores.append(_psnr(r, target) if r.shape == target.shape and np.all(np.isfinite(r)) else 0.0)
    return float(np.mean(scores))


def _rolled_views() -> dict[str, np.ndarray]:
    """The held-out poses turned by 90 degrees about their viewing axis, and their exact images (rendered here
    from the analytic scene): the same rays as the held-out views, so a NeRF renders them as well, while no
    training image looks like them."""
    if "rolled" not in _ROLLED:
        scene, fx = _scene_module(), _fixture()
        roll = np.eye(4)
        roll[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
        poses = np.stack([p.astype(np.float64) @ roll for p in fx["test_poses"]])
        h, w = fx["test_images"].shape[1:3]
        images = np.stack([scene.render(*scene.rays(h, w, fx["focal"], p)) for p in poses])
        _ROLLED["rolled"] = {"poses": poses.astype(np.float32), "images": images.astype(np.float32)}
    return _ROLLED["rolled"]


def _trivial_db() -> tuple[float, str]:
    """The best held-out PSNR of an answer made from the training images alone (no model): black, the mean
    training image, the nearest training view, the mean of the two nearest views (by camera centre)."""
    fx = _fixture()
    images, centres = fx["images"][..., :3].astype(np.float64), fx["poses"][:, :3, 3]
    answers: dict[str, list[float]] = {"black": [], "the mean training image": [], "the nearest training view": [],
                                       "the mean of the two nearest training views": []}
    for pose, target in zip(fx["test_poses"], fx["test_images"]):
        order = np.argsort(np.linalg.norm(centres - pose[:3, 3], axis=1))
        answers["black"].append(_psnr(np.zeros_like(target), target))
        answers["the mean training image"].append(_psnr(images.mean(0), target))
        answers["the nearest training view"].append(_psnr(images[order[0]], target))
        answers["the mean of the two nearest training views"].append(_psnr(images[order[:2]].mean(0), target))
    name = max(answers, key=lambda k: float(np.mean(answers[k])))
    return float(np.mean(answers[name])), name


def _floor() -> float:
    return max(FLOOR_DB, _trivial_db()[0] + TRIVIAL_MARGIN_DB)


def _alive(student: Student, which: str, seed: int) -> bool:
    """Does the first train_step of this version move its weights? A ReLU-density NeRF whose density
    output is <= 0 at every sample when initialised gets no gradient at all and never trains."""
    from grader.sandbox import StudentError

    try:
        trainer = _make_trainer(student, which, seed)
        before = _weights(student, trainer)
        first = _order(seed, ITERS)[0]  # the training run's first image
        student.call(trainer, "train_step", int(first), timeout=STEP_TIMEOUT)
        after = _weights(student, trainer)
    except (CheckFailed, StudentError):
        return True  # the training run reports the error
    return before is None or after is None or before.shape != after.shape or not np.array_equal(before, after)


def _check_seed(student: Student) -> int:
    """The marking seed is SEED, whatever the submission does. A version that does not move at its first
    step there: a TA decides when it moves at another of SEEDS (a dead initialisation, evidence given);
    a failure when it moves at none (a train_step that never steps)."""
    state = _state(student)
    if "seed" not in state:
        dead = [which for which in ("IMPROVED", "BASELINE") if not _alive(student, which, SEED)]
        state["seed"] = {"dead": dead, "alive_at": {}}
        for which in dead:
            state["seed"]["alive_at"][which] = [seed for seed in SEEDS[1:] if _alive(student, which, seed)]
    info = state["seed"]
    for which in info["dead"]:
        if info["alive_at"][which]:
            raise NeedsReview(f"the {which} version gets no gradient at the marking seed {SEED} (a dead "
                              "initialisation: its density output is <= 0 at every sample), so the comparison "
                              "cannot be run automatically",
                              f"the first train_step leaves the {which} model unchanged at seed {SEED}; it moves "
                              f"at seeds {', '.join(map(str, info['alive_at'][which]))} of {', '.join(map(str, SEEDS))}")
    return SEED


def _experiment(student: Student, *which: str) -> dict:
    """The named versions trained once per submission (cached across the checks and sandbox restarts)."""
    state = _state(student)
    runs = state.setdefault("experiment", {})
    for name in which:
        if name not in runs:
            budget = BASELINE_BUDGET if name == "BASELINE" else IMPROVED_BUDGET
            seed = _check_seed(student)
            runs[name] = _run(student, name, ITERS, seed, probes=name == "IMPROVED", budget=budget)
            runs[name]["seed"] = seed
            LAST[name] = {f: runs[name].get(f) for f in ("psnr", "psnr_rolled", "psnr_flipped", "seconds", "cpu", "error", "seed")}
    return runs


def _usable(run: dict, what: str, hint: str = "") -> dict:
    """The run, or the verdict on it: a timeout when it ran over its budget, else a failure."""
    from grader.sandbox import SandboxTimeout

    if run.get("over_budget"):
        raise SandboxTimeout(run["error"])
    if run["error"]:
        raise CheckFailed(what, run["error"], hint)
    if "psnr_rolled" in run and not run["psnr_rolled"] >= run["psnr"] - ROLL_TOL_DB:
        raise CheckFailed("the held-out views turned about their viewing axis render much worse than the views themselves",
                          f"{run['psnr']:.2f} dB on the held-out views, {run['psnr_rolled']:.2f} dB on the same views "
                          "rolled by 90 degrees (the same rays)",
                          "render(pose) must volume-render what the trained model predicts along the pose's rays")
    if "psnr_flipped" in run:  # a marked run: the rendering must come from the trained model
        flipped = run["psnr_flipped"]
        if flipped is None or not run["psnr"] - flipped >= DEPENDENCE_DB:
            raise CheckFailed("the held-out rendering does not depend on the trained model",
                              "trainer.model has no parameters to perturb" if flipped is None else
                              f"flipping the sign of every parameter of trainer.model changes the held-out PSNR by "
                              f"{run['psnr'] - flipped:+.2f} dB",
                              "render(pose) must volume-render what the trained model predicts along the pose's rays")
    return run


def _fmt(run: dict) -> str:
    return f"held-out PSNR {run['psnr']:.2f} dB after {ITERS} steps, seed {run.get('seed')} ({run['seconds']:.0f} s)"


# -- 6.1: the improvement -----------------------------------------------------------------------------
@pytest.mark.item("6.1", weight=2, timeout=90, module=MOD)
def test_improvement_declared(student: Student) -> None:
    """IMPROVED differs from BASELINE (settings or architecture)"""
    _require_improvement(student)


@pytest.mark.item("6.1", weight=2, timeout=STEP_TIMEOUT, module=MOD, budget=TRAIN_BUDGET)
def test_improvement_trains(student: Student) -> None:
    """the improved version trains and changes the result"""
    _require_improvement(student)
    imp = _experiment(student, "IMPROVED")["IMPROVED"]
    if not imp["moved"]:
        hint = ("every call of train_step must make one optimisation step; "
                "the marker gives both versions the same number of steps")
        raise CheckFailed("a call of train_step left the improved model's weights unchanged",
                          f"at step {imp.get('stuck_at')} of {ITERS}", hint)
    _usable(imp, "the improved version does not train",
            "if you changed the number of encoding frequencies, the model's input size must follow it")
    losses = np.asarray(imp["losses"], dtype=np.float64)
    if len(losses) != ITERS or not np.all(np.isfinite(losses)):
        raise CheckFailed("the improved version's train_step returned a non-finite loss",
                          f"{int((~np.isfinite(losses)).sum())} of {len(losses)} steps")
    if not math.isfinite(imp["psnr"]):
        raise CheckFailed("the improved version renders NaN or inf on the held-out view", _fmt(imp))
    base = _experiment(student, "BASELINE")["BASELINE"]
    if not base["error"] and "render" in base and np.array_equal(base["render"], imp["render"]):
        raise CheckFailed("the improved version gives exactly the baseline's result",
                          "same seed, same steps, identical renderings: the change has no effect on training",
                          "make the Trainer / build_model actually use the setting you changed")


# -- 6.2: results of both versions ------------------------------------------------------------------
@pytest.mark.item("6.2", weight=2, timeout=60, module=MOD)
def test_helpers_intact(student: Student) -> None:
    """the given helpers still work on the fixture"""
    _require_improvement(student)
    fx = _fixture()
    pose = fx["test_poses"][0].astype(np.float32)
    focal = fx["focal"]
    loaded = student.call(MOD, "load_data", f"{student.data_dir}/tiny_nerf_data.npz")
    if not isinstance(loaded, (tuple, list)) or len(loaded) < 3:
        raise CheckFailed("load_data(path) should return (images, poses, focal, test_poses)")
    expect_shape(as_array(loaded[0], "load_data's images"), fx["images"].shape, "load_data's images")
    h, w = 20, 28  # not square, so swapped axes show
    o, d = student.call(MOD, "get_ray_bundle", h, w, focal, Tensor(pose))
    o, d = as_array(o, "ray origins"), as_array(d, "ray directions")
    expect_shape(o, (h, w, 3), "get_ray_bundle's origins")
    expect_shape(d, (h, w, 3), "get_ray_bundle's directions", hint="(H, W, 3): rows first")
    R = pose[:3, :3].astype(np.float64)
    for (j, i) in ((0, 0), (h - 1, w - 1), (0, w - 1)):
        want = R @ np.array([(i - w * 0.5) / focal, -(j - h * 0.5) / focal, -1.0])
        if not np.allclose(d[j, i], want, atol=1e-4, rtol=1e-4):
            raise CheckFailed(f"the ray direction of pixel (row {j}, column {i}) is wrong",
                              f"expected {np.round(want, 5)}, got {np.round(d[j, i], 5)}",
                              "keep the notebook's pinhole convention (the camera looks down its -z axis, x right, y up)")
    if not np.allclose(o, pose[:3, 3], atol=1e-5):
        raise CheckFailed("ray origins should all be the camera centre (the pose's translation)")
    n = 16
    pts, depth = student.call(MOD, "compute_query_points_from_rays", Tensor(o.astype(np.float32)),
                              Tensor(d.astype(np.float32)), 2.0, 6.0, n)
    pts, depth = as_array(pts, "query points"), as_array(depth, "depth values")
    expect_shape(depth, (h, w, n), "depth values")
    expect_shape(pts, (h, w, n, 3), "query points")
    if depth.min() < 2.0 - 1e-5 or depth.max() > 6.0 + 4.0 / n + 1e-5:
        raise CheckFailed("depth values leave [near, far + (far - near)/N]", f"range {depth.min():.4f} .. {depth.max():.4f}")
    if not np.allclose(pts, o[..., None, :] + d[..., None, :] * depth[..., None], atol=1e-4):
        raise CheckFailed("query points are not origin + depth * direction")
    x = np.random.default_rng(0).uniform(-1.5, 1.5, size=(5, 3)).astype(np.float32)
    for L in (6, 4):
        enc = as_array(student.call(MOD, "positional_encoding", Tensor(x), L), f"positional_encoding(x, {L})")
        expect_shape(enc, (5, 3 + 6 * L), f"positional_encoding of 5 points with L={L}",
                     hint="keep the notebook's encoding: the point itself, then a sine and a cosine per frequency")
        freqs = 2.0 ** np.arange(L)
        cands = [x] + [f(x * c * s) for s in (1.0, np.pi) for c in freqs for f in (np.sin, np.cos)]
        cols = np.concatenate(cands, axis=-1)
        for k in range(enc.shape[1]):
            if not np.any(np.all(np.abs(cols - enc[:, k:k + 1]) < 1e-4, axis=0)):
                raise CheckFailed(f"positional_encoding(x, {L}) has a column that is neither x nor sin/cos(2^k x) "
                                  "(nor with pi)", f"column {k}")
    for mse in (0.01, 0.0037):
        got = as_array(student.call(MOD, "mse2psnr", Tensor(np.array(mse, dtype=np.float64))), f"mse2psnr({mse})")
        if got.size != 1 or not abs(float(got.reshape(-1)[0]) - (-10.0 * math.log10(mse))) < 1e-6:
            raise CheckFailed(f"mse2psnr({mse}) is wrong", f"expected {-10.0 * math.log10(mse):.6f}, got {got.reshape(-1)[:3]}",
                              "keep the given PSNR helper (images in [0, 1])")
    for which in ("BASELINE", "IMPROVED"):
        trainer = _make_trainer(student, which)
        pts7 = Tensor(np.random.default_rng(1).uniform(-1, 1, size=(7, 3)).astype(np.float32))
        enc = student.call(trainer, "encode", pts7, ret="handle")
        out = as_array(student.call(trainer, "model", enc), f"the {which} model's output")
        expect_shape(out, (7, 4), f"the {which} model's output for 7 encoded points",
                     hint="the model maps each encoded point to a colour and a density; its input size must follow the encoding")


def _analytic_raw(scene, o: np.ndarray, d: np.ndarray, t: np.ndarray, spheres) -> np.ndarray:
    """Raw (pre-activation) field: logit(colour) and sigma inside a sphere, sigma -4 (relu -> 0) outside."""
    pts = o[..., None, :] + d[..., None, :] * t[..., None]
    raw = np.zeros(pts.shape[:-1] + (4,))
    raw[..., :3] = np.log(0.3 / 0.7)  # any colour where there is no density
    raw[..., 3] = -4.0
    for centre, radius, colour, sigma in spheres:
        inside = np.sum((pts - np.asarray(centre)) ** 2, -1) < radius**2
        c = np.asarray(colour)
        raw[inside, :3] = np.log(c / (1 - c))
        raw[inside, 3] = sigma
    return raw


@pytest.mark.item("6.2", weight=2, timeout=60, module=MOD)
def test_renderer_analytic(student: Student) -> None:
    """render_volume_density matches the analytic spheres"""
    _require_improvement(student)
    scene = _scene_module()
    fx = _fixture()
    spheres = tuple((c, r, col, 2.5) for c, r, col, _ in scene.SPHERES)  # semi-transparent
    h = w = 24
    o, d = scene.rays(h, w, 1.3889 * w, fx["test_poses"][1].astype(np.float64))
    n = 512
    t = np.broadcast_to(np.linspace(2.0, 6.0, n), (h, w, n))
    raw = _analytic_raw(scene, o, d, t, spheres)
    # What the notebook's renderer computes from these samples (relu density, sigmoid colour, last delta
    # 1e10), from the shared oracle; on 512 samples it is the spheres' closed form to 1e-2 (at their rims).
    want = volume.render(np.maximum(raw[..., 3], 0.0), t, 1.0 / (1.0 + np.exp(-raw[..., :3])),
                         last_delta=volume.NERF_LAST_DELTA).feature
    out = student.call(MOD, "render_volume_density", Tensor(raw.astype(np.float32)), Tensor(o.astype(np.float32)),
                       Tensor(np.ascontiguousarray(t, dtype=np.float32)), timeout=60)
    if not isinstance(out, (tuple, list)) or len(out) < 1:
        raise CheckFailed("render_volume_density should return (rgb_map, depth_map, acc_map)")
    rgb = as_array(out[0], "rgb_map")
    expect_shape(rgb, (h, w, 3), "rgb_map")
    err = np.abs(rgb - want)
    if not np.all(np.isfinite(rgb)) or err.max() > 2e-2 or err.mean() > 2e-3:
        raise CheckFailed("the rendered spheres differ from the closed form c (1 - exp(-sigma l))",
                          f"max error {np.nanmax(err):.3g}, mean {np.nanmean(err):.3g} (tolerance 2e-2 / 2e-3)",
                          "keep the notebook's renderer as given: non-negative densities, colours squashed into "
                          "[0, 1], and transmittance from the samples in front only")


@pytest.mark.item("6.2", weight=3, timeout=STEP_TIMEOUT, module=MOD, budget=TRAIN_BUDGET)
def test_baseline_floor(student: Student) -> None:
    """the baseline reaches the calibrated PSNR floor on the held-out views, above image-based answers"""
    _require_improvement(student)
    base = _usable(_experiment(student, "BASELINE")["BASELINE"], "the baseline does not train")
    if not base["psnr"] >= _floor():
        raise CheckFailed("the baseline's held-out PSNR is below the floor", _fmt(base),
                          "keep BASELINE the notebook's model, and keep train_step a complete optimisation step")


def _save_renders(student: Student, base: dict, imp: dict) -> None:
    """Put the student's own held-out renderings (baseline | improved, first held-out pose) in the feedback.

    Only the student's outputs are shown, never the held-out image itself."""
    if "render" not in base or "render" not in imp:
        return
    pair = np.concatenate([base["render"][0], np.ones_like(base["render"][0][:, :1]), imp["render"][0]], axis=1)
    pixels = (np.clip(np.nan_to_num(pair), 0.0, 1.0) * 255).round().astype(np.uint8)
    pixels = np.repeat(np.repeat(pixels, 8, axis=0), 8, axis=1)  # 16 px views are too small to see
    rgba = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    student.saved_figures.append(("heldout-baseline-vs-improved", rgba))


@pytest.mark.item("6.2", weight=4, timeout=STEP_TIMEOUT, module=MOD, budget=TRAIN_BUDGET)
def test_improved_vs_baseline(student: Student) -> None:
    """the improved version is at least as good (within a tolerance) at the same budget"""
    _require_improvement(student)
    imp = _usable(_experiment(student, "IMPROVED")["IMPROVED"], "the improved version does not train")
    base = _usable(_experiment(student, "BASELINE")["BASELINE"],
                   "the baseline does not train, so there is nothing to compare with")
    _save_renders(student, base, imp)
    if "render" in base and "render" in imp and np.array_equal(base["render"], imp["render"]):
        raise CheckFailed("the improved version gives exactly the baseline's result", "the change has no effect")
    if not imp["psnr"] >= _floor() - TOLERANCE_DB:
        raise CheckFailed("the improved version's held-out PSNR is below the floor", _fmt(imp))
    if not imp["psnr"] >= base["psnr"] - TOLERANCE_DB:
        raise CheckFailed("the improved version is worse than the baseline on the held-out views",
                          f"baseline {base['psnr']:.2f} dB, improved {imp['psnr']:.2f} dB, same seed ({base.get('seed')}) and {ITERS} steps",
                          "the held-out PSNR is what counts, not the PSNR against a training image")


@pytest.mark.item("6.2", weight=1, timeout=STEP_TIMEOUT, module=MOD, budget=TRAIN_BUDGET)
def test_reproducible(student: Student) -> None:
    """the same seed gives the same result (both versions)"""
    _require_improvement(student)
    for which in ("BASELINE", "IMPROVED"):
        a = _run(student, which, REPRO_ITERS, SEED + 1, probes=False, budget=30.0)
        b = _run(student, which, REPRO_ITERS, SEED + 1, probes=False, budget=30.0)
        for run in (a, b):
            _usable(run, f"{which} does not train")
        if not abs(a["psnr"] - b["psnr"]) <= REPRO_DB:
            raise CheckFailed(f"two runs of {which} with the same seed differ",
                              f"held-out PSNR {a['psnr']:.6f} vs {b['psnr']:.6f} dB after {REPRO_ITERS} steps",
                              "make_trainer must seed every random number generator it uses with its seed argument")
