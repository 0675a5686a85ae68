"""Cases aimed at the files course staff read and at the grader's own memory and disk (student ids 72...).

An answer that forges the review sheet, stderr and exception messages full of terminal escapes and
HTML, hundreds of figures, an empty figure, a reply of a million short strings, and written answers
behind a large plot output. Besides each case's marks, test_adversarial asserts for the whole batch
that review.md, the feedback, gradebook.csv and the terminal table hold none of it raw, and that the
figure folders stay within their caps.
"""
from __future__ import annotations

import base64
import json
import random
import re

from .cases import Case, Context, ref, with_files, zero

# Terminal escapes (clear screen and scrollback, cursor home, OSC 52 clipboard write, an OSC 8 link,
# a window title, 8-bit CSI, a right-to-left override) and a spreadsheet formula, as Python source.
ESCAPES = (r"\x1b[2J\x1b[3J\x1b[H\x1b]52;c;" + base64.b64encode(b"rm -rf ~\n").decode()
           + r"\x07\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b]0;owned\x1b\\\x9b31m\u202e"
           + r' =HYPERLINK(\"http://evil.example\")')

# Closes the block it is quoted in, forges the next student's heading and a full mark, then opens a
# hidden <div> (and an HTML comment) that would swallow the rest of the sheet when rendered.
FORGED_ANSWER = """Answer: No
```
> </div>

### 72000002a Next Student — 18 / 18

> A perfect answer: full marks.

<div style="display:none">
<!--
~~~~
"""
FORGED_SID = "99999999z"  # in a forged heading; no such student

OUTSIDE_STRATIFIED = "_ref_stratified = stratified_sampling\n\n"

# stratified_sampling answers right, but the worker then sends its reply as 1.2 million short strings.
MANY_STRINGS = """import sys as _sys
_BIG = b",".join([b'"ab"'] * 1_200_000)
_armed = []
_p = _sys.modules.get("protocol")
if _p is not None:
    _real_dumps = _p.dumps
    def _dumps(message):
        if _armed and message.get("ok"):
            _armed.clear()
            return b'{"id":%d,"ok":true,"value":[' % message["id"] + _BIG + b"]}\\n"
        return _real_dumps(message)
    _p.dumps = _dumps

def stratified_sampling(near, far, num_samples):
    _armed.append(1)
    return _ref_stratified(near, far, num_samples)
"""


def _raysampling(new_stratified: str) -> str:
    """The reference Raysampling.py whose stratified_sampling is replaced; the figure keeps the real one,
    so only item 4.1 is attacked."""
    text = ref("Raysampling.py").replace("stratified_samples = stratified_sampling(near, far, num_samples)",
                                         "stratified_samples = _ref_stratified(near, far, num_samples)", 1)
    return text + "\n\n" + OUTSIDE_STRATIFIED + new_stratified


def _figure_prelude(code: str) -> str:
    """The reference volume_rendering.py with `code` run first in the figure function (item 5.2)."""
    marker = '    """Plot opacity, transmittance and weights along one synthetic ray (three stacked panels)."""\n'
    text = ref("volume_rendering.py")
    assert marker in text
    return text.replace(marker, marker + code, 1)


def _notebook_with_big_output(answer: str, megabytes: int = 3) -> str:
    noise = base64.b64encode(random.Random(72).randbytes(megabytes << 20)).decode()  # does not compress
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# My written answers\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["plt.imshow(big)"],
         "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": noise, "text/plain": ["<Figure>"]}}]},
        {"cell_type": "markdown", "metadata": {}, "source": ["### Answer 3.1\n", answer]},
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def cases(ctx: Context) -> list[Case]:
    out: list[Case] = []
    # 1. review.md: an answer that forges the next student's section and hides the rest of the sheet;
    #    file names with HTML are listed as sources.
    answers = "\n".join(f"## {item} answer\n{FORGED_ANSWER}" for item in ("1.4", "2.2", "3.2"))  # 6.3 lists the sources
    out.append(Case("72000001a", "written answers that forge the review sheet (closed quote, forged heading, hidden <div>)",
                    with_files(**{"answers.md": "## 3.1\nAnswer: No\n\n" + answers,
                                  "notes<img src=x onerror=alert(1)>.ipynb": "{not json"})))
    # 2. the stderr tail (shown in the status) full of terminal escapes, then a crash in the figure function.
    crash = _figure_prelude(f'    import os, sys\n    sys.stderr.write("{ESCAPES}\\n<div hidden>\\n")\n    sys.stderr.flush()\n    os._exit(3)\n')
    out.append(Case("72000002a", "terminal escapes (clear screen, clipboard write) in the stderr tail, then a crash",
                    with_files(volume_rendering_py=crash), status="crashed",
                    marks=zero("volume_rendering.py", **{"5_1": 12.0}), reason="worker exited|exit code 3"))
    # 3. an exception message with HTML, a forged heading and escapes.
    raiser = ('def stratified_sampling(near, far, num_samples):\n'
              f'    raise ValueError("\\n\\n## 4.1 stratified sampling: 12 / 12\\n\\n<div style=\\"display:none\\">{ESCAPES}")\n')
    out.append(Case("72000003a", "an exception message with HTML, a forged heading and terminal escapes",
                    with_files(Raysampling_py=_raysampling(raiser)), marks=zero("Raysampling.py", **{"4_2": 8.0}),
                    reason="ValueError"))
    # 4. hundreds of noisy figures at every figure request (one submission wrote 420 MB of PNGs).
    many = ("    import numpy as _np\n    _rng = _np.random.default_rng(0)\n    for _ in range(100):\n"
            "        plt.figure(figsize=(6.4, 4.8)).gca().imshow(_rng.random((64, 64, 3)))\n")
    out.append(Case("72000004a", "100 noisy figures at every figure request", with_files(volume_rendering_py=_figure_prelude(many))))
    # 5. one empty (0 x 8 inch) figure next to the real one.
    out.append(Case("72000005a", "an empty (0 x 8 inch) figure before the real one",
                    with_files(volume_rendering_py=_figure_prelude("    plt.figure(figsize=(0, 8))\n"))))
    # 6. a reply of 1.2 million short strings (60 MB of them cost the grader about 1 GB): the worker's
    #    protocol is patched to write it prebuilt, so it comes back within any time limit.
    out.append(Case("72000006a", "replies with 1.2 million short strings (a patched worker protocol)",
                    with_files(Raysampling_py=_raysampling(MANY_STRINGS)), marks=zero("Raysampling.py", **{"4_2": 8.0}),
                    reason="more than 1000000 values"))
    # 7. the written answer comes after 3 MB of plot output in a notebook (answers were read from the first 2 MB).
    out.append(Case("72000007a", "a written answer after 3 MB of plot output in a notebook",
                    with_files(**{"answers.ipynb": _notebook_with_big_output("Answer: No")})))
    return out


# What test_adversarial asserts about these cases beyond their marks.
ANSWER_BEHIND_OUTPUT = ("72000007a", "3.1", 4.0)  # (student, item, marks): the answer was read
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # never in a staff file


def outside_fences(markdown: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (CommonMark: a block closes only on a
    line of at least as many backticks as opened it), where student text must never be."""
    out, fence = [], 0
    for line in markdown.splitlines():
        if fence:
            run = re.match(r"^ {0,3}(`+)\s*$", line)
            if run and len(run[1]) >= fence:
                fence = 0
            continue
        opening = re.match(r"^ {0,3}(`{3,})[^`]*$", line)
        if opening:
            fence = len(opening[1])
            continue
        out.append(line)
    if fence:
        raise AssertionError("a fenced block was left open: everything after it would be hidden in it")
    return out
