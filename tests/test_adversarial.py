"""The adversarial corpus (tests/adversarial) graded in ONE batch by the real command.

Every case is asserted on its own (status, marks of the five built items, a reason a TA can read),
and the batch as a whole: it completes, the clean reference in it keeps full marks, no process
outlives it, nothing is written outside the boxes, the listener on 127.0.0.1 never sees a
connection, and the input zips are unchanged.

Under GRADER_SANDBOX=rlimits (no bubblewrap) the worker runs as the grading user: cases whose
outcome only bubblewrap can guarantee are graded but not asserted (each says why), and attacks that
would hit the grader or the machine itself (signals to other processes, disk bombs, writes to the
machine's folders) are left out of the corpus.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader.sandbox import detect_mode
from grader.spec import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adversarial import BUILT, FULL, Context, build  # noqa: E402
from adversarial.cases import make_zip  # noqa: E402

TIMEOUT_SCALE = "0.25"


class Listener:
    """A TCP listener and a UDP socket on 127.0.0.1 that record anything that reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True), threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    @property
    def ports(self) -> tuple[int, int]:
        return self.tcp.getsockname()[1], self.udp.getsockname()[1]

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                continue
            self.seen.append(f"tcp from {addr}")
            conn.close()

    def _recv(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.udp.recvfrom(4096)
            except OSError:
                continue
            self.seen.append(f"udp {data!r} from {addr}")

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


def _processes(*needles: str) -> list[str]:
    """Processes (other than this one) whose command line contains one of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in needles):
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _marked(folder: Path, marker: str, depth: int) -> list[str]:
    """Paths under `folder` (to `depth` levels, not following links) whose name holds the marker."""
    hits, todo = [], [(folder, 0)]
    while todo:
        current, level = todo.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for e in entries:
            if marker in e.name:
                hits.append(e.path)
            if level < depth and e.is_dir(follow_symlinks=False) and e.name not in (".git", ".venv", "proc", "sys"):
                todo.append((Path(e.path), level + 1))
    return hits


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    mode = detect_mode()
    tmp = tmp_path_factory.mktemp("adversarial")
    subs, out, boxes, watch = tmp / "subs", tmp / "out", tmp / "boxes", tmp / "watched"
    for d in (subs, boxes, watch):
        d.mkdir()
    (watch / "canary.txt").write_text("nobody writes here\n")
    listener = Listener()
    rng = random.Random()
    marker = f"advmark{os.getpid()}x{rng.randrange(10**6)}"
    sleep = f"{600 + rng.randrange(300)}.{rng.randrange(100, 999)}"
    ctx = Context(ROOT, out, subs, boxes, watch, *listener.ports, marker, sleep, mode, _forks_capped(mode))
    cases = build(ctx)
    for case in cases:
        (subs / case.name).write_bytes(case.zip_bytes())
    hashes = {p.name: _sha(p) for p in subs.iterdir()}
    hidden_before = sorted(p.name for p in (ROOT / "solutions" / "comp4423_a2" / "hidden").iterdir())
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "comp4423_a2", "--out", str(out),
           "--jobs", "2", "--timeout-scale", TIMEOUT_SCALE]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, TMPDIR=str(boxes)))
    finally:
        time.sleep(0.5)  # anything that got away would still be running now
        leftovers = _processes(marker, str(boxes), f"sleep {sleep}")
        listener.close()
        for line in leftovers:  # never leave them running, whatever the test says next
            try:
                os.kill(int(line.split(":")[0]), 9)
            except OSError:
                pass
    records = {}
    for path in (out / "results").glob("*.json"):
        if marker in path.name:  # written by an attack (possible only without bubblewrap; judged below)
            continue
        record = json.loads(path.read_text())["extra_data"]
        records[record["zip"]] = record
    with open(out / "gradebook.csv", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    yield SimpleNamespace(
        mode=mode, ctx=ctx, cases={c.sid: c for c in cases}, proc=proc, seconds=time.monotonic() - started,
        records=records, rows=rows, leftovers=leftovers, seen=list(listener.seen), hashes=hashes, tmp=tmp,
        hidden_before=hidden_before, outside=_outside(ctx),
    )
    for path in _outside(ctx):  # the fallback mode lets attacks write these; clean up after them
        try:
            os.unlink(path)
        except OSError:
            pass


def _forks_capped(mode: str) -> bool:
    """Whether a fork bomb is bounded here: bwrap, RLIMIT_NPROC (not root) or a pids cgroup."""
    if mode == "bwrap" or os.getuid() != 0:
        return True
    from grader.sandbox import PidsCgroup

    group = PidsCgroup(8)
    capped = group.path is not None
    group.kill_all()
    return capped


def _outside(ctx: Context) -> list[str]:
    """Files an attack managed to create outside the boxes (their names hold the marker)."""
    hits = _marked(ctx.root, ctx.marker, 4) + _marked(ctx.boxes.parent, ctx.marker, 3)
    for folder in ("/tmp", "/dev/shm", "/", "/opt"):
        hits += _marked(Path(folder), ctx.marker, 0)
    return sorted(set(hits))


# The case ids, known at collection time (the corpus under bubblewrap is the largest).
_IDS = [c.sid for c in build(Context(ROOT, Path("/o"), Path("/s"), Path("/b"), Path("/w"), 1, 2, "m", "1.0", "bwrap", True))]


def test_the_batch_completes(batch):
    """Does one batch of the whole corpus finish, with one result and one gradebook row per zip?"""
    assert batch.proc.returncode == 0, batch.proc.stderr[-3000:]
    assert len(batch.cases) >= 30
    assert set(batch.records) == {c.name for c in batch.cases.values()}, "a zip has no result"
    assert len(batch.rows) == len(batch.cases), "the gradebook lost or duplicated a row"
    assert "Traceback" not in batch.proc.stderr, batch.proc.stderr[-3000:]


def test_the_clean_reference_keeps_full_marks(batch):
    """Does a clean submission graded in the same batch as every attack get exactly the reference's marks?"""
    record = batch.records[batch.cases["70000000a"].name]
    # The corpus's clean zip hands in the numeric modules only: "partial", naming exactly the modules it lacks.
    assert record["status"] in ("ok", "partial"), record["reason"]
    if record["status"] == "partial":
        assert all(part.startswith("no file for ") for part in record["reason"].split("; ")), record["reason"]
    assert {i: record["items"][i] for i in BUILT} == FULL


@pytest.mark.parametrize("sid", _IDS)
def test_case(batch, sid):
    """Does this attack get exactly its expected status, marks and a readable reason?"""
    case = batch.cases.get(sid)
    if case is None:
        pytest.skip("left out of the corpus without bubblewrap: it would attack the grader or the machine itself")
    record = batch.records[case.name]
    got = {i: record["items"].get(i) for i in BUILT}
    if case.needs_bwrap and batch.mode != "bwrap":
        pytest.skip(f"graded, not asserted: {case.needs_bwrap}")
    status = record["status"]
    if status == "partial" and all(part.startswith("no file for ") for part in record.get("reason", "").split("; ")):
        status = "ok"  # the corpus hands in only the modules an attack needs; the others are named, as they should be
    text = " ".join([status, record.get("reason", ""), *record.get("notes", [])] + [
        f"{o['message']} {o['detail']}" for o in record.get("outcomes", []) if FULL.get(o["item"], 0) != case.marks.get(o["item"])
    ])
    assert status in case.status.split("|"), f"{case.title}: status {record['status']} ({record.get('reason')})"
    assert got in (case.marks, case.alt_marks), f"{case.title}: marks {got}, expected {case.marks}; {text[:600]}"
    assert any(r.lower() in text.lower() for r in case.reason.split("|")), f"{case.title}: no {case.reason!r} in {text[:600]!r}"
    row = batch.rows[record["student_id"]]
    assert {i: float(row[i]) for i in BUILT} == got, "the gradebook disagrees with the result file"


def test_no_process_outlives_the_batch(batch):
    """Is every process an attack started (daemons, sleeps, fork bombs) gone when the batch ends?"""
    assert batch.leftovers == []
    assert _processes(batch.ctx.marker, f"sleep {batch.ctx.sleep}") == []


def test_the_listener_never_sees_a_connection(batch):
    """Does the sandbox keep student code off the network (a listener on 127.0.0.1 stays silent)?"""
    if batch.mode != "bwrap":
        pytest.skip("without bubblewrap the worker shares the grader's network (README, Security)")
    assert batch.seen == []


def test_nothing_is_written_outside_the_boxes(batch):
    """Are the repository, the output and input folders, /tmp and the watched folder untouched?"""
    ctx = batch.ctx
    assert sorted(p.name for p in (ROOT / "solutions" / "comp4423_a2" / "hidden").iterdir()) == batch.hidden_before
    mine = lambda p: ctx.marker not in p.name  # noqa: E731 - files an attack wrote are judged below (bwrap only)
    assert {p.name: _sha(p) for p in ctx.subs.iterdir() if mine(p)} == batch.hashes, "an input zip changed"
    assert [p.name for p in ctx.boxes.iterdir() if p.name.startswith("box-")] == [], "boxes were left behind"
    results = sorted(p.name for p in (ctx.out / "results").iterdir() if mine(p))
    assert results == sorted(f"{r['student_id']}.json" for r in batch.records.values())
    for record in batch.records.values():  # a forged results file never survives: the grader's own is there
        res = json.loads((ctx.out / "results" / f"{record['student_id']}.json").read_text())
        assert res["score"] == record["final"] <= sum(FULL.values()) + 100
    if batch.mode != "bwrap":
        pytest.skip("without bubblewrap the worker can write every file the grading user can (README, Security)")
    assert batch.outside == []
    assert [p.name for p in ctx.watch.iterdir()] == ["canary.txt"]
    assert (ctx.watch / "canary.txt").read_text() == "nobody writes here\n"
    git = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True)
    assert ctx.marker not in git.stdout


def test_staff_files_hold_no_student_markup(batch):
    """Do review.md, the feedback (Markdown and HTML), gradebook.csv and the terminal table hold no terminal
    escapes, no raw HTML and no forged headings from students, and do the figure folders stay within their caps?"""
    from adversarial.cases_staff import ANSWER_BEHIND_OUTPUT, CONTROL, outside_fences

    from grader import spec
    from grader.report import md_inline
    from grader.runner import MAX_FIGURE_BYTES, MAX_FIGURE_FILES

    out, a2 = batch.ctx.out, spec.load("comp4423_a2")
    staff = {"gradebook.csv": (out / "gradebook.csv").read_text(), "the terminal table": batch.proc.stdout,
             "manual_marks.csv": (out / "manual_marks.csv").read_text(), "review.md": (out / "review.md").read_text()}
    staff.update({f"feedback/{p.name}": p.read_text() for p in (out / "feedback").glob("*.md")})
    for name, text in staff.items():
        found = CONTROL.search(text.replace("\n", "").replace("\t", ""))
        assert found is None, f"{name} holds the control character {found and found[0]!r}"
    with open(out / "gradebook.csv", newline="") as fh:
        assert not any(cell.startswith(("=", "+", "-", "@")) for row in csv.reader(fh) for cell in row)
    sids = {r["student_id"] for r in batch.records.values() if r["status"] != "naming_error"}
    for name, text in staff.items():
        if not name.endswith(".md"):
            continue
        visible = outside_fences(text)
        assert not [ln for ln in visible if "<" in ln], f"{name}: raw HTML outside a code block"
        headings = [ln for ln in visible if ln.startswith("#")]
        if name == "review.md":  # under each manual item, exactly one section per graded student, none forged
            for item in (i for i in a2.items if i.kind == "manual"):
                start = next(n for n, h in enumerate(headings) if h.startswith(f"## {item.id} "))
                end = next((n for n, h in enumerate(headings[start + 1:], start + 1) if h.startswith("## ")), len(headings))
                got = sorted(h.split()[1] for h in headings[start + 1:end])
                assert got == sorted(md_inline(s) for s in sids), f"review.md, item {item.id}: sections {got[:5]}..."
        else:
            allowed = ("# Feedback: ", "## Your figures", "## Not graded yet", "## What the grader adapted") + tuple(
                f"## {md_inline(i.id)} {md_inline(i.title)}" for i in a2.items)
            assert all(h.startswith(allowed) for h in headings), f"{name}: {[h for h in headings if not h.startswith(allowed)]}"
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[tuple[str, list]] = []

        def handle_starttag(self, tag, attrs):
            self.found.append((tag, attrs))

    for page in sorted((out / "feedback").glob("*.html")):  # the HTML feedback: no markup a student wrote
        parser = Tags()
        parser.feed(page.read_text())
        for tag, attrs in parser.found:
            assert tag not in ("script", "iframe", "object", "embed", "form", "input", "link", "base"), f"{page.name}: <{tag}>"
            for key, value in attrs:
                assert not key.startswith("on"), f"{page.name}: <{tag} {key}=...>"
                if key in ("src", "href") and value:
                    local = value.startswith("data:image/png;base64,") or ":" not in value.split("/")[0]
                    assert local and "javascript:" not in value.lower(), f"{page.name}: <{tag} {key}={value[:40]!r}>"
    for folder in (out / "feedback").glob("*-figures"):
        pngs = list(folder.iterdir())
        assert len(pngs) <= MAX_FIGURE_FILES and sum(p.stat().st_size for p in pngs) <= MAX_FIGURE_BYTES, folder.name
    sid, item, marks = ANSWER_BEHIND_OUTPUT
    (record,) = [r for r in batch.records.values() if r["student_id"] == sid]
    assert record["items"][item] == marks, f"{sid}: the written answer behind a large plot output was not read"


CS188 = ROOT / "solutions" / "cs188_hw4" / "rubric.toml"


@pytest.mark.skipif(not CS188.exists(), reason="the notebook assignment cs188_hw4 is not in this tree yet")
def test_a_notebook_that_is_not_json(tmp_path):
    """Does a notebook with invalid JSON get a clear status, no marks, and not stop its batch?"""
    from grader import spec

    a = spec.load("cs188_hw4")
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    broken = {f"{m}.ipynb": '{"cells": [ {"cell_type": "code", "source": "import os" ' for m in a.modules}
    (subs / a.naming_example).write_bytes(make_zip(broken))
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--assignment", "cs188_hw4", "--out", str(out),
                           "--jobs", "1", "--timeout-scale", TIMEOUT_SCALE], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = [json.loads(p.read_text())["extra_data"] for p in (out / "results").glob("*.json")]
    assert result["total"] == 0 and result["final"] == 0
    assert all(not v for v in result["items"].values())
    text = " ".join([result["status"], result.get("reason", "")] + [o["message"] for o in result.get("outcomes", [])]).lower()
    assert "json" in text or "notebook" in text, text[:600]
