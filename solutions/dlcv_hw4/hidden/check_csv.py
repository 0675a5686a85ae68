"""Hidden tests for DLCV HW4 Problem 2's output (P2_inference.py, item 2.4). Trusted code.

The TA's p2_grade.py zips the prediction rows with the ground-truth rows and asserts that id and filename match
row by row: the output keeps the INPUT CSV's order. The public val.csv / test.csv rows are not in file-name order,
and the predictions are handed over in file-name (glob) order, as an inference loop over the folder makes them.
The written CSV is read back inside the sandbox with the module's own pathlib / io / os names.
"""
from __future__ import annotations

import csv
import io
import uuid

import pytest

from grader.checks import CheckFailed, NeedsReview, Student
from grader.sandbox import StudentError
from grader.spec import FIXTURES

MOD = "P2_inference"
PUBLIC = FIXTURES / "data" / "dlcv_hw4" / "public" / "office"


def _data(student: Student, name: str) -> str:
    return f"{student.data_dir}/office/{name}" if student.data_dir else str(PUBLIC / name)


def _rows(name: str) -> list[dict[str, str]]:
    with open(PUBLIC / name, newline="") as f:
        return list(csv.DictReader(f))


def _read_back(student: Student, path: str) -> str:
    """The text of a file the student's code wrote inside the sandbox."""
    names = set(student.names(MOD))
    try:
        if "pathlib" in names or "Path" in names:
            p = student.call(MOD, "pathlib.Path" if "pathlib" in names else "Path", path, ret="handle")
            return student.call(p, "read_text")
        if "io" in names:
            return student.call(student.call(MOD, "io.open", path, ret="handle"), "read")
        if "os" in names:
            fd = student.call(MOD, "os.open", path, 0)
            return student.call(student.call(MOD, "os.read", fd, 1 << 20, ret="handle"), "decode")
    except StudentError as exc:
        if exc.error in ("FileNotFoundError", "IsADirectoryError"):
            raise CheckFailed("write_predictions wrote no file at output_csv", f"{exc.error}: {exc.message}") from None
        raise
    raise NeedsReview("the grader cannot read the written CSV back (the module imports none of pathlib, io, os)",
                      f"top-level names: {sorted(names)[:40]}")


def _predict(rows: list[dict[str, str]]) -> dict[str, str]:
    """A classifier's output keyed by file name, in file-name order (not the CSV's)."""
    labels = sorted({r["label"] for r in _rows("train.csv")})
    return {name: labels[(7 * int(name[:5])) % len(labels)] for name in sorted(r["filename"] for r in rows)}


def _written(student: Student, csv_name: str) -> tuple[list[list[str]], dict[str, str]]:
    rows = _rows(csv_name)
    predictions = _predict(rows)
    out = f"/tmp/dlcv_hw4_pred_{uuid.uuid4().hex[:8]}.csv"
    student.call(MOD, "write_predictions", _data(student, csv_name), predictions, out, ret="none")
    return list(csv.reader(io.StringIO(_read_back(student, out)))), predictions


@pytest.mark.item("2.4", weight=2, timeout=30, module=MOD)
def test_header(student):
    """the output CSV starts with the header id,filename,label"""
    lines, _ = _written(student, "val.csv")
    if not lines or lines[0] != ["id", "filename", "label"]:
        raise CheckFailed("the CSV header is not id,filename,label", f"got {lines[0] if lines else 'an empty file'}",
                          "p2_grade.py skips one header line and then reads id, filename, label per row")


@pytest.mark.item("2.4", weight=4, timeout=30, module=MOD)
@pytest.mark.parametrize("csv_name", ["val.csv", "test.csv"], ids=["val", "test"])
def test_rows_in_input_order(student, csv_name):
    """one row per input row, in the input CSV's order, with its id and filename and the predicted class name"""
    lines, predictions = _written(student, csv_name)
    body = [line for line in lines[1:] if line]
    rows = _rows(csv_name)
    if len(body) != len(rows):
        raise CheckFailed("the CSV has the wrong number of rows", f"expected {len(rows)}, got {len(body)}")
    for k, (line, row) in enumerate(zip(body, rows)):
        if line[:2] != [row["id"], row["filename"]]:
            raise CheckFailed("the rows are not in the input CSV's order (or lose its ids)",
                              f"row {k + 1}: expected id,filename = {row['id']},{row['filename']}; got {','.join(line[:2])}",
                              "the TA's script compares row by row: iterate over the input CSV, not over the images")
        if len(line) < 3 or line[2] != predictions[row["filename"]]:
            raise CheckFailed("a row's label is not the prediction for its file", f"row {k + 1}: got {line[2:]}",
                              "write the predicted class name for that row's filename")


@pytest.mark.item("2.4", weight=2, timeout=30, module=MOD)
def test_label_index_sorted(student):
    """build_label2idx numbers the training classes in sorted order"""
    got = student.call(MOD, "build_label2idx", _data(student, "train.csv"))
    expected = {name: k for k, name in enumerate(sorted({r["label"] for r in _rows("train.csv")}))}
    if not isinstance(got, dict) or {str(k): v for k, v in got.items()} != expected:
        raise CheckFailed("build_label2idx is not the sorted-class mapping", f"got {got!r}"[:300],
                          "index k is the k-th class name in sorted order; the header row is not a class")
