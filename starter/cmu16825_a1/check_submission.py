"""Check a submission zip before handing it in: the naming rule, the files the grader looks for, the public tests.

This file is copied into every starter as check_submission.py, with the assignment's settings filled
in, so a student without the grader's repository can run it: Python's standard library only (pytest for
the public tests, as the starter's README asks). It runs nothing the students cannot see: no hidden
tests, no expected outputs, and it says nothing about marks.

    python check_submission.py path/to/your.zip
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

SETTINGS = json.loads(r'''{"example": "A1_jdoe2_Jane_Doe.zip", "modules": ["dolly_zoom", "camera_transforms", "meshes", "render_generic", "sample_points"], "naming": "^A1_(?P<student_id>[a-z][a-z0-9]{1,15})_(?P<name>[A-Za-z]+(?:[_-][A-Za-z]+)*)\\.zip$", "single_file_pattern": "^$"}''')  # filled in by `grader starter`: naming, example, modules, single_file_pattern
MAX_BYTES = 200 << 20


def check(zip_path: Path, settings: dict, tests_dir: Path | None, run_tests: bool = True) -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each step; stops early when the zip cannot be read."""
    results: list[tuple[str, bool, str]] = []
    match = re.match(settings["naming"], zip_path.name)
    results.append(("the zip's name follows the rule", bool(match),
                    f"{zip_path.name!r}; expected something like {settings['example']}" if not match else zip_path.name))
    try:
        archive = zipfile.ZipFile(zip_path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError) as exc:
        results.append(("the zip can be read", False, str(exc)))
        return results
    if sum(i.file_size for i in archive.infolist()) > MAX_BYTES:
        results.append(("the zip is a reasonable size", False, "it unpacks to more than 200 MB"))
        return results
    results.append(("the zip can be read", True, f"{len(names)} file(s)"))
    found = _modules(names, settings)
    missing = [m for m in settings["modules"] if m not in found]
    results.append(("the grader finds your files", not missing,
                    "found " + ", ".join(f"{m} in {p}" for m, p in found.items()) if not missing else
                    "no file for " + ", ".join(f"{m}.py (or {m}.ipynb)" for m in missing)))
    if run_tests and tests_dir is not None and tests_dir.is_dir():
        results.append(_public_tests(archive, tests_dir))
    return results


def _modules(names: list[str], settings: dict) -> dict[str, str]:
    files = sorted((n for n in names if n.lower().endswith((".py", ".ipynb")) and "__MACOSX" not in n),
                   key=lambda n: (n.count("/"), n))
    found: dict[str, str] = {}
    for module in settings["modules"]:
        for name in files:
            if PurePosixPath(name).stem.lower() == module.lower():
                found[module] = name
                break
    single = settings.get("single_file_pattern") or "^$"
    singles = [n for n in files if re.match(single, PurePosixPath(n).name)]
    for module in settings["modules"]:
        if module not in found and singles:
            found[module] = singles[0]
    return found


def _public_tests(archive: zipfile.ZipFile, tests_dir: Path) -> tuple[str, bool, str]:
    work = Path(tempfile.mkdtemp(prefix="check-submission-"))
    try:
        for info in archive.infolist():
            rel = PurePosixPath(info.filename)
            if info.is_dir() or rel.is_absolute() or ".." in rel.parts or "__MACOSX" in rel.parts:
                continue
            target = work / PurePosixPath(*rel.parts[-1:])  # the grader finds files in any folder; tests want them here
            if not target.exists():
                target.write_bytes(archive.read(info))
        shutil.copytree(tests_dir, work / "tests")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=work,
                              capture_output=True, text=True, timeout=1800)
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
        return ("the public tests pass on the files in your zip", proc.returncode == 0,
                tail + ("" if proc.returncode == 0 else "\n" + proc.stdout[-3000:]))
    except FileNotFoundError as exc:
        return ("the public tests pass on the files in your zip", False, f"could not run pytest: {exc}")
    except subprocess.TimeoutExpired:
        return ("the public tests pass on the files in your zip", False, "the public tests ran for more than 30 minutes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: list[tuple[str, bool, str]]) -> int:
    for what, ok, detail in results:
        print(f"[{'ok' if ok else 'NO'}] {what}" + (f": {detail}" if detail else ""))
    bad = [r for r in results if not r[1]]
    print("\nReady to hand in." if not bad else f"\n{len(bad)} problem(s) to fix before handing in.")
    return 0 if not bad else 1


QUOTES = "'" * 3
EMPTY = "SETTINGS = json.loads(r" + QUOTES + "{}" + QUOTES + ")"


def settings_of(assignment) -> dict:
    return {"naming": assignment.naming_pattern.pattern, "example": assignment.naming_example,
            "modules": list(assignment.modules), "single_file_pattern": assignment.single_file_pattern.pattern}


def script(assignment) -> str:
    """This file's source with one assignment's settings filled in (the starter's check_submission.py)."""
    settings = settings_of(assignment)
    source = Path(__file__).read_text()
    if EMPTY not in source:
        raise RuntimeError("student_check.py lost its SETTINGS line")
    filled = "SETTINGS = json.loads(r" + QUOTES + json.dumps(settings, sort_keys=True) + QUOTES + ")"
    return source.replace(EMPTY, filled, 1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not SETTINGS:
        print(__doc__.strip().splitlines()[-1].strip())
        return 2
    here = Path(__file__).resolve().parent
    return report(check(Path(args[0]), SETTINGS, here / "tests"))


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
