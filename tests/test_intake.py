"""Intake: the naming rule, safe extraction into a box, module discovery, lateness (grader/intake.py).

Every zip is built here, in tmp_path, with the zipfile module. Zips live in tmp_path/zips and the box is
tmp_path/work/box, so a path that escapes the box by one or two levels lands somewhere these tests can see.
"""
from __future__ import annotations

import hashlib
import random
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from grader import intake, spec
from grader.intake import IntakeError

GOOD = "Assignment2_12345678d_CHAN_Dawen.zip"
MODULE_FILES = {"Raysampling.py": "def stratified_sampling(near, far, n):\n    pass\n",
                "volume_rendering.py": "def volume_rendering(rgb, sigma, t):\n    pass\n",
                "dcnn.py": "class DeformableConv2d:\n    pass\n",
                "resnet_vgg.py": "def build_models(num_classes=10, pretrained=False):\n    pass\n",
                "tiny_nerf.py": "def positional_encoding(x):\n    pass\n"}
ALL = ("Raysampling", "volume_rendering", "dcnn", "resnet_vgg", "tiny_nerf")


@pytest.fixture(scope="module")
def a2() -> spec.Assignment:
    return spec.load("comp4423_a2")


def make_zip(path: Path, members, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """members: (name or ZipInfo, str or bytes) pairs, written in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            if not isinstance(name, zipfile.ZipInfo):
                info.compress_type = compression
            zf.writestr(info, data)
    return path


def good_members(prefix: str = "", names: tuple[str, ...] = ("Raysampling.py", "volume_rendering.py", "dcnn.py")) -> list[tuple[str, str]]:
    return [(prefix + name, MODULE_FILES[name]) for name in names]


def snapshot(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


class Unpacker:
    """Builds a zip in tmp_path/zips, extracts it into tmp_path/work/box, and watches everything else."""

    def __init__(self, root: Path, assignment: spec.Assignment) -> None:
        self.root, self.assignment = root, assignment
        self.zips, self.box = root / "zips", root / "work" / "box"

    def zip(self, members, name: str = GOOD, compression: int = zipfile.ZIP_DEFLATED) -> Path:
        return make_zip(self.zips / name, members, compression)

    def extract(self, zip_path: Path) -> intake.Submission:
        before = snapshot(self.root)
        sub = intake.identify(zip_path, self.assignment)
        try:
            intake.extract(sub, self.assignment, self.box)
        finally:
            self.assert_nothing_outside_box(before)
        return sub

    def expect_error(self, zip_path: Path, status: str = "bad_zip") -> IntakeError:
        with pytest.raises(IntakeError) as err:
            self.extract(zip_path)
        assert err.value.status == status, err.value.reason
        assert err.value.reason and str(err.value) == err.value.reason
        return err.value

    def assert_nothing_outside_box(self, before: set[Path]) -> None:
        box = self.box.relative_to(self.root)
        new = {p for p in snapshot(self.root) - before if p != box.parent and box not in (p, *p.parents)}
        assert not new, f"written outside the box: {sorted(map(str, new))}"

    def boxed(self) -> set[str]:
        return {p.relative_to(self.box).as_posix() for p in self.box.rglob("*") if p.is_file()} if self.box.exists() else set()


@pytest.fixture
def unpack(tmp_path: Path, a2: spec.Assignment) -> Unpacker:
    return Unpacker(tmp_path, a2)


# -- identify: the naming rule ------------------------------------------------------------------
def test_good_name_gives_id_name_and_hash(tmp_path, a2):
    """Does a zip named by the rule give its student id, its name with spaces, status ok and the zip's SHA-256?"""
    path = make_zip(tmp_path / GOOD, good_members())
    sub = intake.identify(path, a2)
    assert (sub.student_id, sub.name, sub.status, sub.reason) == ("12345678d", "CHAN Dawen", "ok", "")
    assert sub.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sub.zip_path == path and sub.late_days == 0 and sub.module_files == {}


@pytest.mark.parametrize("zip_name, student_id, name", [
    ("Assignment2_87654321A_LEE_Tai-Man.zip", "87654321A", "LEE Tai-Man"),
    ("Assignment2_11111111z_Wong.zip", "11111111z", "Wong"),
])
def test_other_good_names(tmp_path, a2, zip_name, student_id, name):
    """Do an upper-case id letter, a hyphenated name and a one-word name follow the rule?"""
    sub = intake.identify(make_zip(tmp_path / zip_name, good_members()), a2)
    assert (sub.status, sub.student_id, sub.name) == ("ok", student_id, name)


@pytest.mark.parametrize("zip_name", [
    "assignment2-final.zip",
    "Assignment2_1234_X.zip",                       # id too short
    "Assignment2_12345678d.zip",                    # no name
    "assignment2_12345678d_CHAN_Dawen.zip",         # lower-case a
    "Assignment1_12345678d_CHAN_Dawen.zip",         # wrong assignment
    "Assignment2_12345678_CHAN_Dawen.zip",          # id without its letter
    "Assignment2_12345678d_CHAN Dawen.zip",         # space
    "Assignment2_12345678d_CHAN_Dawen (1).zip",     # a browser's duplicate download
    "Assignment2_12345678d_CHAN_Dawen.zip.zip",
])
def test_wrong_names_give_naming_error(tmp_path, a2, zip_name):
    """Does a name that breaks the rule give naming_error, a reason quoting the rule's example, and a safe fallback id?"""
    path = make_zip(tmp_path / zip_name, good_members())
    sub = intake.identify(path, a2)
    assert sub.status == "naming_error"
    assert "rule" in sub.reason and a2.naming_example in sub.reason and repr(zip_name) in sub.reason
    assert "zero" in sub.reason
    assert sub.student_id.startswith("misnamed-") and sub.name == ""
    # the id becomes a file name in results/ and feedback/: only safe characters
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in sub.student_id)
    assert sub.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_misnamed_id_from_odd_file_name_is_safe(tmp_path, a2):
    """Does a misnamed zip whose name holds spaces, brackets and non-ASCII letters still get a file-name-safe id?"""
    path = tmp_path / "作业 2 (final)!.zip"
    path.write_bytes(b"not even a zip")
    sub = intake.identify(path, a2)
    assert sub.status == "naming_error"
    assert sub.student_id.startswith("misnamed-")
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in sub.student_id), sub.student_id


# -- extract: layouts that should work ------------------------------------------------------------
def test_three_files_at_top_level(unpack):
    """Do the module files at the zip's top level map to themselves, with no notes?"""
    sub = unpack.extract(unpack.zip(good_members(names=tuple(MODULE_FILES))))
    assert sub.module_files == {m: f"{m}.py" for m in ALL}
    assert sub.notes == [] and sub.status == "ok"
    assert (unpack.box / "dcnn.py").read_text() == MODULE_FILES["dcnn.py"]


def test_single_file_layout_maps_every_module(unpack):
    """Does the handout's single Assignment2_<ID>_<NAME>.py serve all three modules?"""
    sub = unpack.extract(unpack.zip([("Assignment2_12345678d_CHAN_Dawen.py", "# everything\n"), ("README.txt", "hi")]))
    assert sub.module_files == {m: "Assignment2_12345678d_CHAN_Dawen.py" for m in ALL}
    assert sub.notes == []


def test_single_file_in_a_folder_fills_only_missing_modules(unpack):
    """With dcnn.py plus the single file in a folder, does dcnn keep its own file and the rest use the single file?"""
    single = "Assignment2_12345678d_CHAN_Dawen/Assignment2_12345678d_CHAN_Dawen.py"
    sub = unpack.extract(unpack.zip([(single, "# tasks 4 and 5\n"), ("dcnn.py", MODULE_FILES["dcnn.py"])]))
    assert sub.module_files == {**{m: single for m in ALL}, "dcnn": "dcnn.py"}


def test_one_lone_python_file_is_used_for_everything(unpack):
    """Is a zip holding one Python file under any other name treated as the single-file layout?"""
    sub = unpack.extract(unpack.zip([("my_answers.py", "# all tasks\n")]))
    assert set(sub.module_files.values()) == {"my_answers.py"} and len(sub.module_files) == len(ALL)


def test_nested_folder_and_different_case(unpack):
    """Are 'src/Volume_Rendering.py', 'src/RAYSAMPLING.py' and 'src/deep/DCNN.py' found despite folder and case?"""
    sub = unpack.extract(unpack.zip([("src/Volume_Rendering.py", "a = 1\n"), ("src/RAYSAMPLING.py", "b = 2\n"),
                                     ("src/deep/DCNN.py", "c = 3\n")]))
    assert sub.module_files == {"Raysampling": "src/RAYSAMPLING.py", "volume_rendering": "src/Volume_Rendering.py",
                                "dcnn": "src/deep/DCNN.py"}
    assert (unpack.box / "src" / "Volume_Rendering.py").read_text() == "a = 1\n"


def test_shallowest_copy_wins(unpack):
    """When a module appears twice, is the copy nearest the top of the zip chosen?"""
    sub = unpack.extract(unpack.zip([("old/backup/Raysampling.py", "old = 1\n"), *good_members("final/"),
                                     ("Raysampling.py", "new = 1\n")]))
    assert sub.module_files["Raysampling"] == "Raysampling.py"
    assert sub.module_files["dcnn"] == "final/dcnn.py"


def test_windows_backslash_paths(unpack):
    """Are names written with backslashes ('sub\\dcnn.py') unpacked into folders?"""
    sub = unpack.extract(unpack.zip(good_members("sub\\")))
    assert sub.module_files["dcnn"] == "sub/dcnn.py"
    assert (unpack.box / "sub" / "dcnn.py").is_file()


def test_missing_module_is_a_note_not_an_error(unpack):
    """Does a zip with only Raysampling.py extract, mapping that module and noting the two missing files?"""
    sub = unpack.extract(unpack.zip([("Raysampling.py", "x = 1\n"), ("helper.py", "y = 2\n")]))
    assert sub.module_files == {"Raysampling": "Raysampling.py"}
    assert len(sub.notes) == 1 and "volume_rendering.py" in sub.notes[0] and "dcnn.py" in sub.notes[0]


def test_macosx_and_other_junk_are_ignored(unpack):
    """Are __MACOSX/, .DS_Store, __pycache__ and .ipynb_checkpoints skipped, never written, never counted?"""
    junk = [("__MACOSX/._Raysampling.py", b"\x00\x05\x16\x07"), ("__MACOSX/src/._dcnn.py", b"\x00\x05"),
            (".DS_Store", b"\x00\x00\x00\x01Bud1"), ("src/.DS_Store", b"Bud1"),
            ("__pycache__/dcnn.cpython-311.pyc", b"\x00"), (".ipynb_checkpoints/dcnn-checkpoint.py", "old\n"),
            ("__MACOSX/../../evil.py", "escape\n")]
    sub = unpack.extract(unpack.zip(junk[:3] + good_members("src/") + junk[3:]))
    assert unpack.boxed() == {"src/Raysampling.py", "src/volume_rendering.py", "src/dcnn.py"}
    assert sub.module_files["dcnn"] == "src/dcnn.py"


def test_junk_does_not_count_towards_member_limit(unpack):
    """Do 500 real files plus 50 __MACOSX entries stay within the member limit?"""
    members = good_members() + [(f"data/f{i:03}.txt", "x") for i in range(intake.MAX_MEMBERS - 3)]
    members += [(f"__MACOSX/data/._f{i:03}.txt", "x") for i in range(50)]
    sub = unpack.extract(unpack.zip(members, compression=zipfile.ZIP_STORED))
    assert len(sub.module_files) == 3


def test_directory_entries_and_dot_segments(unpack):
    """Are explicit directory entries and './' segments accepted?"""
    members = [("src/", ""), ("./src/Raysampling.py", "x\n"), ("src/./dcnn.py", "y\n"), ("volume_rendering.py", "z\n")]
    sub = unpack.extract(unpack.zip(members))
    assert sub.module_files == {"Raysampling": "src/Raysampling.py", "volume_rendering": "volume_rendering.py",
                                "dcnn": "src/dcnn.py"}


def _rename_bytes(path: Path, placeholder: bytes, raw: bytes) -> None:
    """Swap a name's bytes in both the local header and the central directory (same length, CRCs unaffected)."""
    assert len(placeholder) == len(raw)
    data = path.read_bytes()
    assert data.count(placeholder) == 2, "placeholder must occur once per header"
    path.write_bytes(data.replace(placeholder, raw))


def test_non_utf8_member_names(unpack):
    """Does a folder named in GBK bytes (no UTF-8 flag, as Windows zip tools write) unpack inside the box with its modules found?"""
    gbk = "作业".encode("gbk")
    path = unpack.zip(good_members("QQQQ/") + [("QQQQ/notes.txt", "hello")])
    _rename_bytes(path, b"QQQQ/Raysampling.py", gbk + b"/Raysampling.py")
    _rename_bytes(path, b"QQQQ/dcnn.py", gbk + b"/dcnn.py")
    _rename_bytes(path, b"QQQQ/volume_rendering.py", gbk + b"/volume_rendering.py")
    _rename_bytes(path, b"QQQQ/notes.txt", gbk + b"/notes.txt")
    sub = unpack.extract(path)
    folder = gbk.decode("cp437")  # how zipfile reads names without the UTF-8 flag
    assert sub.module_files == {"Raysampling": f"{folder}/Raysampling.py", "volume_rendering": f"{folder}/volume_rendering.py",
                                "dcnn": f"{folder}/dcnn.py"}
    assert (unpack.box / folder / "notes.txt").read_text() == "hello"


def test_utf8_member_names(unpack):
    """Does a UTF-8 folder name (with the UTF-8 flag) unpack inside the box with its modules found?"""
    sub = unpack.extract(unpack.zip(good_members("作业二/")))
    assert sub.module_files["volume_rendering"] == "作业二/volume_rendering.py"


def test_invalid_utf8_name_with_utf8_flag_is_bad_zip(unpack):
    """Does a name flagged UTF-8 but holding invalid bytes give bad_zip rather than an uncaught UnicodeDecodeError?"""
    path = unpack.zip(good_members() + [("notes_é.txt", "hi")])
    _rename_bytes(path, "é".encode(), b"\xff\xfe")
    unpack.expect_error(path)


# -- extract: archives that must be refused, with nothing written outside the box ------------------
@pytest.mark.parametrize("evil", ["../evil.py", "../../evil.py", "src/../../evil.py", "..\\evil.py", "..\\..\\evil.py"])
def test_zip_slip_is_bad_zip(unpack, evil):
    """Does a zip-slip path give bad_zip and write nothing outside the box?"""
    err = unpack.expect_error(unpack.zip(good_members() + [(evil, "print('escaped')\n")]))
    assert "unsafe path" in err.reason
    assert not list(unpack.root.rglob("evil.py"))


def test_zip_slip_first_member_writes_nothing(unpack):
    """Is a zip whose first member escapes refused before anything at all is written?"""
    unpack.expect_error(unpack.zip([("../evil.py", "x\n"), *good_members()]))
    assert unpack.boxed() == set()


def test_absolute_path_is_bad_zip(unpack):
    """Does an absolute member path ('/etc/evil.py') give bad_zip without touching /etc?"""
    # Canary first: an absolute path into tmp_path. If intake wrote it, stop here rather than let a broken
    # intake write into the real /etc (these tests may run as root).
    canary = unpack.root / "canary" / "evil.py"
    with pytest.raises(IntakeError):
        intake.extract(intake.identify(unpack.zip([(canary.as_posix(), "x\n")], name="canary.zip"), unpack.assignment),
                       unpack.assignment, unpack.root / "canary_box")
    assert not canary.exists(), "absolute member paths are written outside the box; not trying /etc"
    assert not Path("/etc/evil.py").exists(), "/etc/evil.py exists before the test; remove it"
    err = unpack.expect_error(unpack.zip(good_members() + [("/etc/evil.py", "x\n")]))
    assert "unsafe path" in err.reason and "/etc/evil.py" in err.reason
    assert not Path("/etc/evil.py").exists()


def test_absolute_path_into_tmp_is_bad_zip(unpack):
    """Does an absolute path pointing at a folder we can watch give bad_zip and leave that folder empty?"""
    target = unpack.root / "outside" / "evil.py"
    unpack.expect_error(unpack.zip(good_members() + [(target.as_posix(), "x\n")]))
    assert not target.exists() and not target.parent.exists()


@pytest.mark.parametrize("name", ["C:/evil.py", "C:\\Windows\\evil.py", "c:evil.py"])
def test_windows_drive_path_is_bad_zip(unpack, name):
    """Does a Windows drive path give bad_zip?"""
    unpack.expect_error(unpack.zip(good_members() + [(name, "x\n")]))


def test_symlink_member_is_bad_zip(unpack):
    """Does a symbolic-link member (external_attr 0o120777 << 16) give bad_zip and create no link?"""
    link = zipfile.ZipInfo("Raysampling.py")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    err = unpack.expect_error(unpack.zip([(link, "/etc/passwd"), *good_members("other/")]))
    assert "link" in err.reason
    assert not any(p.is_symlink() for p in unpack.root.rglob("*"))
    assert unpack.boxed() == set()


def test_special_file_member_is_bad_zip(unpack):
    """Does a FIFO or device member give bad_zip?"""
    fifo = zipfile.ZipInfo("pipe.py")
    fifo.create_system = 3
    fifo.external_attr = 0o010644 << 16
    err = unpack.expect_error(unpack.zip(good_members() + [(fifo, "")]))
    assert "special file" in err.reason


def test_hidden_python_file_is_bad_zip(unpack):
    """Is a hidden .py file outside __MACOSX ('.sitecustomize.py') refused?"""
    unpack.expect_error(unpack.zip(good_members() + [("src/.sitecustomize.py", "x\n")]))


def _write_zeros(path: Path, name: str, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Raysampling.py", "x = 1\n")
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as fh:
            for _ in range(size // len(chunk)):
                fh.write(chunk)
            fh.write(bytes(size % len(chunk)))
    return path


def test_zip_bomb_is_bad_zip(unpack):
    """Does one member of 100 MB of zeros (deflated to a few hundred KB) give bad_zip before any of it is written?"""
    path = _write_zeros(unpack.zips / GOOD, "zeros.bin", 100 << 20)
    assert path.stat().st_size < 1 << 20
    err = unpack.expect_error(path)
    assert "zip bomb" in err.reason
    assert not (unpack.box / "zeros.bin").exists()
    assert sum(p.stat().st_size for p in unpack.root.rglob("*") if p.is_file()) < 2 << 20


def test_high_ratio_member_is_bad_zip(unpack):
    """Is a 5 MB member (under the size limit) compressed more than 200:1 refused as a likely bomb?"""
    err = unpack.expect_error(_write_zeros(unpack.zips / GOOD, "zeros.bin", 5 << 20))
    assert "zip bomb" in err.reason and "compressed" in err.reason
    assert not (unpack.box / "zeros.bin").exists()


def test_total_size_limit(unpack, monkeypatch):
    """When the members together exceed the total limit (lowered here to 1000 bytes), is the zip refused?"""
    monkeypatch.setattr(intake, "MAX_TOTAL_BYTES", 1000)
    members = good_members() + [(f"data{i}.txt", "x" * 400) for i in range(3)]
    err = unpack.expect_error(unpack.zip(members, compression=zipfile.ZIP_STORED))
    assert "zip bomb" in err.reason


def test_member_size_limit(unpack, monkeypatch):
    """Is one member over the per-member limit (lowered here to 1000 bytes) refused even when stored uncompressed?"""
    monkeypatch.setattr(intake, "MAX_MEMBER_BYTES", 1000)
    err = unpack.expect_error(unpack.zip(good_members() + [("data.txt", "x" * 2000)], compression=zipfile.ZIP_STORED))
    assert "zip bomb" in err.reason
    assert not (unpack.box / "data.txt").exists()


def test_too_many_members_is_bad_zip(unpack):
    """Does a zip with more members than the limit give bad_zip naming the limit, with nothing unpacked?"""
    members = good_members() + [(f"data/f{i:03}.txt", "x") for i in range(intake.MAX_MEMBERS)]
    err = unpack.expect_error(unpack.zip(members, compression=zipfile.ZIP_STORED))
    assert str(intake.MAX_MEMBERS) in err.reason
    assert unpack.boxed() == set()


def test_corrupt_zip_is_bad_zip(unpack):
    """Does a file of random bytes named like a submission pass identify but give bad_zip on extract?"""
    path = unpack.zips / GOOD
    path.parent.mkdir(parents=True)
    path.write_bytes(random.Random(4423).randbytes(4096))
    assert intake.identify(path, unpack.assignment).status == "ok"
    err = unpack.expect_error(path)
    assert "not a readable zip" in err.reason
    assert not unpack.box.exists()


def test_truncated_zip_is_bad_zip(unpack):
    """Does a zip cut off half way (no central directory) give bad_zip?"""
    path = unpack.zip(good_members())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    unpack.expect_error(path)


def test_damaged_member_is_bad_zip(unpack):
    """Does a member whose bytes no longer match its CRC give bad_zip naming the member?"""
    path = unpack.zip(good_members(), compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.index(b"class DeformableConv2d")
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    err = unpack.expect_error(path)
    assert "dcnn.py" in err.reason


def test_empty_zip_is_missing_files(unpack):
    """Does an empty zip give IntakeError with status missing_files, naming the expected files?"""
    err = unpack.expect_error(unpack.zip([]), status="missing_files")
    assert "Raysampling.py" in err.reason and "Assignment2_" in err.reason


def test_zip_without_python_is_missing_files(unpack):
    """Does a zip of notebooks and PDFs but no .py give missing_files?"""
    unpack.expect_error(unpack.zip([("A2.ipynb", "{}"), ("report.pdf", b"%PDF-1.4")]), status="missing_files")


def test_only_junk_is_missing_files(unpack):
    """Does a zip holding only __MACOSX copies of the modules give missing_files?"""
    unpack.expect_error(unpack.zip(good_members("__MACOSX/")), status="missing_files")
    assert unpack.boxed() == set()


@pytest.mark.parametrize("order", ["file_first", "folder_first"])
def test_file_and_folder_with_same_name_is_bad_zip(unpack, order):
    """Does a zip where 'src' is both a file and a folder give bad_zip rather than an uncaught OSError?"""
    members = [("src", "I am a file"), ("src/Raysampling.py", "x\n")]
    unpack.expect_error(unpack.zip(members if order == "file_first" else members[::-1]))


# -- lateness ------------------------------------------------------------------------------------
def test_late_days(a2):
    """Is on time 0, one minute late 1, 24 h late 1, 24 h + 1 s late 2, 47 h late 2, and an unknown time 0?"""
    deadline = a2.late.deadline
    assert deadline == datetime(2023, 3, 30, tzinfo=timezone(timedelta(hours=8)))
    assert intake.late_days(deadline - timedelta(hours=3), deadline) == 0
    assert intake.late_days(deadline, deadline) == 0
    assert intake.late_days(deadline + timedelta(minutes=1), deadline) == 1
    assert intake.late_days(deadline + timedelta(hours=24), deadline) == 1
    assert intake.late_days(deadline + timedelta(hours=24, seconds=1), deadline) == 2
    assert intake.late_days(deadline + timedelta(hours=47), deadline) == 2
    assert intake.late_days(deadline + timedelta(days=10), deadline) == 10
    assert intake.late_days(None, deadline) == 0
    assert intake.late_days(deadline + timedelta(days=3), None) == 0


def test_late_days_across_time_zones(a2):
    """Is 23:59 UTC on 29 March (07:59 next morning in Hong Kong) one day late for a midnight +08:00 deadline, and a naive deadline read as UTC?"""
    deadline = a2.late.deadline
    assert intake.late_days(datetime(2023, 3, 29, 15, 59, tzinfo=timezone.utc), deadline) == 0
    assert intake.late_days(datetime(2023, 3, 29, 23, 59, tzinfo=timezone.utc), deadline) == 1
    naive = datetime(2023, 3, 30)
    assert intake.late_days(datetime(2023, 3, 30, 7, 59, tzinfo=timezone(timedelta(hours=8))), naive) == 0
    assert intake.late_days(datetime(2023, 3, 30, 8, 1, tzinfo=timezone(timedelta(hours=8))), naive) == 1


def test_read_times_by_file(tmp_path):
    """Does a times CSV keyed by zip file name give aware datetimes, naive ones read as UTC, and skip blank rows?"""
    path = tmp_path / "times.csv"
    path.write_text("file,submitted_at\n"
                    f"{GOOD},2023-03-31T09:30:00+08:00\n"
                    "Assignment2_87654321a_LEE.zip, 2023-03-29T12:00:00 \n"
                    "assignment2-final.zip,\n"
                    ",2023-03-29T12:00:00\n")
    times = intake.read_times(path)
    assert times == {GOOD: datetime(2023, 3, 31, 9, 30, tzinfo=timezone(timedelta(hours=8))),
                     "Assignment2_87654321a_LEE.zip": datetime(2023, 3, 29, 12, tzinfo=timezone.utc)}
    assert all(t.tzinfo is not None for t in times.values())


def test_read_times_by_student_id(tmp_path, a2):
    """Does a times CSV keyed by student_id (with extra columns) work, and feed late_days?"""
    path = tmp_path / "times.csv"
    path.write_text("student_id,name,submitted_at\n"
                    "12345678d,CHAN Dawen,2023-03-30T00:01:00+08:00\n"
                    "87654321a,LEE Tai Man,2023-03-29T23:00:00+08:00\n")
    times = intake.read_times(path)
    assert set(times) == {"12345678d", "87654321a"}
    assert intake.late_days(times["12345678d"], a2.late.deadline) == 1
    assert intake.late_days(times["87654321a"], a2.late.deadline) == 0


def test_read_times_with_excel_bom(tmp_path):
    """Does a times CSV saved by Excel as 'CSV UTF-8' (with a byte-order mark) still give its times?"""
    path = tmp_path / "times.csv"
    path.write_bytes(f"file,submitted_at\n{GOOD},2023-03-31T09:30:00+08:00\n".encode("utf-8-sig"))
    assert GOOD in intake.read_times(path)
