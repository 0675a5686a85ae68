"""`grade --engine ray`: the same per-submission function on Ray actors. Does it give exactly the local
run's results and feedback (embedded and on a two-node loopback cluster), survive an actor killed
mid-batch, resume after the driver is killed, and refuse a node that would grade differently?"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader.spec import ROOT

ray = pytest.importorskip("ray", reason="Ray is the optional [ray] extra; make env installs it")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_new_assignment import _build  # noqa: E402  (README's one-item numpy assignment)

VOLATILE = {"seconds", "graded_at", "host", "peak_mb"}  # timings and where it ran: the rest must be identical


def _class(tmp: Path, n: int = 6, sleep: float = 0.0) -> tuple[Path, Path]:
    folder = _build(tmp)
    good = (folder / "metrics.py").read_text()
    variants = [good, good.replace("10 * np.log10", "20 * np.log10"), "def psnr(:\n",
                good.replace("np.mean(", "np.sum("), good, good]
    subs = tmp / "subs"
    subs.mkdir()
    for i in range(n):
        text = variants[i % len(variants)]
        if sleep:
            text = f"import time\ntime.sleep({sleep})\n" + text
        with zipfile.ZipFile(subs / f"PSNR_{500 + i}_Stu.zip", "w") as zf:
            zf.writestr("metrics.py", text)
    return folder, subs


def _grade(folder: Path, subs: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--assignment", str(folder), "--out", str(out),
                           "--jobs", "2", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _same_results(a: Path, b: Path) -> None:
    assert (a / "gradebook.csv").read_text() == (b / "gradebook.csv").read_text()
    names = sorted(p.name for p in (a / "results").glob("*.json"))
    assert names == sorted(p.name for p in (b / "results").glob("*.json")) and names
    for name in names:
        assert _strip(json.loads((a / "results" / name).read_text())) == _strip(json.loads((b / "results" / name).read_text())), name
    for md in sorted((a / "feedback").glob("*.md")):
        assert md.read_text() == (b / "feedback" / md.name).read_text(), md.name


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    folder, subs = _class(tmp)
    proc = _grade(folder, subs, tmp / "local")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder, subs, tmp


def test_embedded_ray_gives_the_local_results(local_run):
    """Does --engine ray (an embedded single-machine Ray) give byte-identical gradebook and feedback, and
    results identical but for timings, to --engine local on the same class?"""
    folder, subs, tmp = local_run
    proc = _grade(folder, subs, tmp / "ray", "--engine", "ray")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "started an embedded Ray" in proc.stderr and "token authentication on" in proc.stderr
    _same_results(tmp / "local", tmp / "ray")


def test_an_actor_killed_mid_batch_loses_nothing(local_run):
    """When a grading actor dies in the middle of a job, is it restarted and the job retried, so every
    submission still gets the local run's result?"""
    folder, subs, tmp = local_run
    marker = tmp / "died-once"
    proc = _grade(folder, subs, tmp / "ray-killed", "--engine", "ray", env={"GRADER_RAY_TEST_DIE_ONCE": str(marker)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.exists(), "no actor was killed: the test did not test anything"
    _same_results(tmp / "local", tmp / "ray-killed")


def test_a_two_node_loopback_cluster_gives_the_local_results(local_run):
    """On a cluster of a head and a second node (loopback, token authentication, no dashboard), joined with
    --address, are the results the local run's, graded on actors of both nodes?"""
    folder, subs, tmp = local_run
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = 6300 + secrets.randbelow(600)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        for cmd in ([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                    [ray_cli, "start", f"--address=127.0.0.1:{port}", *common]):
            started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            assert started.returncode == 0, started.stderr[-2000:]
        proc = _grade(folder, subs, tmp / "cluster", "--engine", "ray", "--address", f"127.0.0.1:{port}",
                      env={k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"joined the Ray cluster at 127.0.0.1:{port}: 2 CPUs" in proc.stderr
        assert "2 grading actor(s) on 2 node(s)" in proc.stderr
        _same_results(tmp / "local", tmp / "cluster")
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_a_killed_driver_resumes_with_only_what_is_missing(tmp_path):
    """When the driver is killed mid-batch, does the rerun grade only the submissions without a result and
    end with every one graded?"""
    folder, subs = _class(tmp_path, n=4, sleep=2.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", str(folder), "--out", str(out),
           "--jobs", "1", "--engine", "ray", "--no-calibrate"]
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list((out / "results").glob("*.json"))) < 1:
            time.sleep(0.2)
        assert list((out / "results").glob("*.json")), "no result was written before the kill"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = len(list((out / "results").glob("*.json")))
    assert before < 4, "the batch finished before the kill: the test did not test anything"
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"({before} without running student code)" in proc.stderr
    assert len(list((out / "results").glob("*.json"))) == 4


def test_a_node_that_would_grade_differently_refuses(local_run):
    """Does a grading actor whose node has other hidden tests (or another sandbox mode) than the driver's
    refuse to start, naming what differs?"""
    from grader import batch, spec
    from grader.ray_engine import _Actor

    folder, _, _ = local_run
    ctx = batch.build_context(spec.load(str(folder)), "bwrap")
    expected = {"mode": "bwrap", "grader_version": ctx.grader_version, "item_keys": ctx.item_keys,
                "hidden": {**ctx.hidden_files, "check_extra.py": "0" * 64}, "fixtures": ctx.fixtures_hash}
    opts = batch.Options(out=Path("unused"), fork_server=False, mode="bwrap")
    with pytest.raises(RuntimeError, match="has another hidden than the driver"):
        _Actor(str(folder), opts, expected, None)
    with pytest.raises(RuntimeError, match="would grade with the sandbox 'bwrap', the driver with 'rlimits'"):
        _Actor(str(folder), opts, {**expected, "mode": "rlimits"}, None)


def test_the_sandbox_exposes_only_the_assigned_gpus(tmp_path, monkeypatch):
    """With CUDA_VISIBLE_DEVICES set (a Ray GPU actor's assignment), does the sandbox expose only those GPUs'
    device nodes plus the control nodes, none when it is empty, and every GPU when it is unset?"""
    from grader import sandbox

    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidia2"):
        (tmp_path / name).write_text("")
    monkeypatch.delenv("GRADER_NO_GPU", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    got = {Path(p).name for p in sandbox.gpu_devices(tmp_path)}
    assert got == {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia1"}
    assert sandbox._scrubbed_env(1, gpu=True)["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sandbox.gpu_devices(tmp_path) == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert len(sandbox.gpu_devices(tmp_path)) == 6
