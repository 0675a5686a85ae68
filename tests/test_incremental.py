"""Incremental regrade: only what changed runs again.

Works on a temporary copy of COMP4423 A2's solution folder (with the training items switched off to
stay quick), so a hidden test file can be edited without touching the repository.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader import batch, spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "fixtures" / "examples" / "comp4423_a2"
ZIPS = ("Assignment2_11111111a_REF_Solution.zip", "Assignment2_33333333c_BUGGY_Student.zip")
NUMERIC = ("2.1", "3.1", "4.1", "4.2", "5.1", "5.2")


@pytest.fixture()
def a2_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> spec.Assignment:
    solutions = tmp_path / "solutions"
    shutil.copytree(ROOT / "solutions" / "comp4423_a2", solutions / "comp4423_a2",
                    ignore=shutil.ignore_patterns("__pycache__", "check_resnet_vgg.py", "check_tiny_nerf.py"))
    rubric = solutions / "comp4423_a2" / "rubric.toml"
    text = rubric.read_text()
    for item in ("1.1", "1.2", "1.3", "6.1", "6.2"):  # the training items: declared, not built, in this copy
        at = text.index(f'id = "{item}"')
        end = text.index("[[items]]", at) if "[[items]]" in text[at:] else len(text)
        text = text[:at] + text[at:end].replace("built = true", "built = false") + text[end:]
    rubric.write_text(text)
    monkeypatch.setattr(spec, "SOLUTIONS", solutions)
    return spec.load("comp4423_a2")


def _grade(a: spec.Assignment, subs: Path, out: Path, **kw) -> dict[str, dict]:
    log: list[str] = []
    batch.grade_folder(a, subs, batch.Options(out=out, jobs=2, progress=False, **kw), log=log.append)
    return {p.stem: json.loads(p.read_text())["extra_data"] for p in (out / "results").glob("*.json")}


def _stamps(record: dict) -> dict[str, str]:
    return {i: v["graded_at"] for i, v in record["provenance"]["items"].items()}


def test_edit_one_hidden_test_file_reruns_only_its_items(a2_copy: spec.Assignment, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ZIPS:
        shutil.copy(EXAMPLES / name, subs / name)
    out = tmp_path / "out"
    first = _grade(a2_copy, subs, out)
    assert set(_stamps(first["11111111a"])) == set(NUMERIC)
    assert first["11111111a"]["items"]["4.1"] == 12

    again = _grade(a2_copy, subs, out)  # unchanged: nothing runs
    for sid in first:
        assert _stamps(again[sid]) == _stamps(first[sid])
        assert again[sid]["items"] == first[sid]["items"]

    check = a2_copy.solution_dir / "hidden" / "check_raysampling.py"
    check.write_text(check.read_text() + "\n# an instructor's edit\n")
    edited = _grade(a2_copy, subs, out)
    for sid in first:
        before, after = _stamps(first[sid]), _stamps(edited[sid])
        changed = {i for i in NUMERIC if before[i] != after[i]}
        assert changed == {"4.1", "4.2"}, (sid, changed)
        assert edited[sid]["items"] == first[sid]["items"]

    only = _grade(a2_copy, subs, out, only=frozenset({"5.2"}))
    for sid in first:
        changed = {i for i in NUMERIC if _stamps(edited[sid])[i] != _stamps(only[sid])[i]}
        assert changed == {"5.2"}, (sid, changed)


def test_a_late_zip_is_graded_alone(a2_copy: spec.Assignment, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / ZIPS[0], subs / ZIPS[0])
    out = tmp_path / "out"
    first = _grade(a2_copy, subs, out)
    shutil.copy(EXAMPLES / ZIPS[1], subs / ZIPS[1])
    second = _grade(a2_copy, subs, out)
    assert _stamps(second["11111111a"]) == _stamps(first["11111111a"])
    assert set(_stamps(second["33333333c"])) == set(NUMERIC)
    assert (out / "gradebook.csv").read_text().count("\n") == 3


def test_a_regrade_runs_the_slowest_submissions_first(tmp_path: Path) -> None:
    """With previous results, parallel jobs take the slowest submissions first (no lone slow tail)."""
    from types import SimpleNamespace

    (tmp_path / "results").mkdir()
    subs = [SimpleNamespace(student_id=s) for s in ("a", "b", "c", "d")]
    for sid, seconds in (("a", 1.0), ("b", 61.0), ("d", 3.5)):  # "c" is new: unknown, so first
        (tmp_path / "results" / f"{sid}.json").write_text(json.dumps({"extra_data": {"seconds": seconds}}))
    order = batch._longest_first(subs, batch.Options(out=tmp_path))
    assert [subs[i].student_id for i in order] == ["c", "b", "d", "a"]
