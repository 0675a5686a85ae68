"""Zip -> Submission: the naming rule, safe extraction into a fresh box, module discovery, lateness."""
from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath

from .spec import Assignment

MAX_MEMBERS = 500
MAX_TOTAL_BYTES = 50 << 20
MAX_MEMBER_BYTES = 20 << 20
MAX_RATIO = 200  # uncompressed / compressed, per member
IGNORED = re.compile(r"(^|/)(__MACOSX|\.DS_Store|__pycache__|\.ipynb_checkpoints|\._[^/]*)(/|$)")


class IntakeError(Exception):
    """The submission cannot be graded; `status` names the gradebook status."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Submission:
    zip_path: Path
    student_id: str
    name: str
    sha256: str
    status: str = "ok"
    reason: str = ""
    late_days: int = 0  # after the student's extension
    charged_days: int = 0  # late days that cost marks: after the student's late-day budget
    submitted_at: str = ""
    module_files: dict[str, str] = field(default_factory=dict)  # module -> path inside the box
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # for a TA to look at (one id on zips with different names)
    answers: dict[str, str] = field(default_factory=dict)  # item id -> written answer, read before any code runs


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# An LMS's bulk download renames each file: Canvas prefixes `<name>_[late_]<user id>_<submission id>_` and
# numbers resubmissions `<original>-1.zip`. The naming rule applies to the name the student gave.
CANVAS_PREFIX = re.compile(r"^[A-Za-z0-9-]+_(?:late_|LATE_)?\d+_\d+_(?P<original>.+)$")
RESUBMITTED = re.compile(r"^(?P<stem>.+)-\d{1,3}(?P<ext>\.zip)$", re.I)


def original_names(name: str) -> list[str]:
    """The zip's name, then what it was before an LMS renamed it (Canvas prefix, resubmission number, case)."""
    names = [name]
    m = CANVAS_PREFIX.match(name)
    if m:
        names.append(m["original"])
    for n in list(names):
        r = RESUBMITTED.match(n)
        if r:
            names.append(r["stem"] + r["ext"])
    for n in list(names):
        if n[-4:] != ".zip" and n[-4:].lower() == ".zip":
            names.append(n[:-4] + ".zip")
    return list(dict.fromkeys(names))


def identify(zip_path: Path, assignment: Assignment) -> Submission:
    """Apply the naming rule. A wrong name keeps a row (id from the file name) with naming_error."""
    sha = sha256_file(zip_path)
    for name in original_names(zip_path.name):
        match = assignment.naming_pattern.match(name)
        if match:
            sub = Submission(zip_path, match["student_id"], match["name"].replace("_", " "), sha)
            if name != zip_path.name:
                sub.notes.append(f"named {name!r} by the student (the download renamed it {zip_path.name!r})")
            return sub
    fallback = re.sub(r"[^A-Za-z0-9_.-]", "_", zip_path.stem)[:80] or "unnamed"
    sub = Submission(zip_path, f"misnamed-{fallback}", "", sha)
    sub.status = "naming_error"
    sub.reason = f"zip name {zip_path.name!r} does not follow the rule, e.g. {assignment.naming_example}; wrong naming scores zero"
    return sub


def extract(sub: Submission, assignment: Assignment, box: Path) -> None:
    """Safely unpack into `box` and find the assignment's modules; raises IntakeError."""
    _unpack(sub.zip_path, box)
    inner = [p for p in box.rglob("*") if p.is_file()]
    if len(inner) == 1 and inner[0].suffix.lower() == ".zip":  # a zip inside the zip: unpack it too (once)
        nested = inner[0]
        data = io.BytesIO(nested.read_bytes())  # bounded: it was one member of the outer zip
        nested.unlink()
        _unpack(data, box)
        sub.notes.append(f"the zip held one zip ({nested.name}); its files were graded")
    sub.module_files = find_modules(box, assignment)
    if not sub.module_files:
        wanted = ", ".join(f"{m}.py" for m in assignment.modules)
        single = (f", or one file matching {assignment.single_file_pattern.pattern}"
                  if assignment.single_file_pattern.pattern not in ("", "^$") else "")
        raise IntakeError("missing_files", f"no Python file or notebook for this assignment found (expected {wanted}, "
                                           f"the same names as .ipynb{single})")
    _add_given(box, assignment, sub)
    missing = [m for m in assignment.modules if m not in sub.module_files]
    if missing:
        sub.notes.append("no file found for: " + ", ".join(f"{m}.py (or {m}.ipynb)" for m in missing))


def _unpack(zip_path: Path | io.BytesIO, box: Path) -> None:
    """Unpack one zip into `box` with every safety check; raises IntakeError."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # ValueError: undecodable member names
        raise IntakeError("bad_zip", f"not a readable zip file ({type(exc).__name__}: {exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not IGNORED.search(m.filename)]
        if len(members) > MAX_MEMBERS:
            raise IntakeError("bad_zip", f"the zip holds {len(members)} files; at most {MAX_MEMBERS} are accepted")
        total = 0
        for m in members:
            rel = _safe_name(m)
            if m.is_dir():
                continue
            total += m.file_size
            if m.file_size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
                raise IntakeError("bad_zip", f"the zip unpacks to more than {MAX_TOTAL_BYTES >> 20} MB (zip bomb?)")
            if m.compress_size and m.file_size / m.compress_size > MAX_RATIO and m.file_size > (1 << 20):
                raise IntakeError("bad_zip", f"{m.filename!r} is compressed {m.file_size // m.compress_size}:1 (zip bomb?)")
            target = box / rel
            try:
                data = _read_bounded(archive, m)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise IntakeError("bad_zip", f"cannot read {m.filename!r} from the zip ({exc})") from None
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except OSError as exc:
                raise IntakeError("bad_zip", f"{m.filename!r} clashes with another entry of the zip ({type(exc).__name__})") from None


def _add_given(box: Path, assignment: Assignment, sub: Submission) -> None:
    """The course's given files the zip lacks go beside the student's first module (their own copy wins)."""
    given = getattr(assignment, "given", ())
    if not given or not sub.module_files:
        return
    home = (box / next(iter(sub.module_files.values()))).parent
    have = {p.name.lower() for p in box.rglob("*") if p.is_file()}
    added = []
    for name in given:
        if Path(name).name.lower() in have:
            continue
        root = home  # the assignment's folder in the zip: where the course's layout puts `name`
        parent = Path(name).parent.parts
        if parent and home.parts[-len(parent):] == parent and home != box:
            root = Path(*home.parts[: -len(parent)])  # the modules sit in the given file's own folder
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assignment.solution_dir / name, target)
        added.append(name)
    if added:
        sub.notes.append("the course's given files were used where the zip had none: " + ", ".join(added))


def collect(folder: Path, exclude: Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every zip under `folder` (any depth, `.zip` in any case: an LMS's folder per student), in a stable
    order, and every other file with why it is not graded. `exclude`: the run's output folder."""
    zips: list[Path] = []
    ignored: list[tuple[Path, str]] = []
    skip = exclude.resolve() if exclude is not None else None
    if skip is not None and (skip == folder.resolve() or skip in folder.resolve().parents):
        skip = None  # the folder is inside the output folder (an unpacked download): nothing to leave out
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if skip is not None and (path.resolve() == skip or skip in path.resolve().parents):
            continue
        if not path.is_file() or IGNORED.search(str(rel).replace("\\", "/")):
            continue
        if path.is_symlink():
            ignored.append((path, "a symbolic link, not a file"))
        elif path.suffix.lower() == ".zip":
            zips.append(path)
        elif path.name in ("times.csv", "extensions.csv", "manual_marks.csv"):
            ignored.append((path, "a settings file, not a submission (read only when given with --times / --extensions)"))
        else:
            ignored.append((path, "not a .zip file: only zips are graded"))
    return zips, ignored


def unpack_download(download: Path, dest: Path) -> Path:
    """An LMS's one-zip bulk download (Moodle's "Download all submissions", Canvas's submissions.zip),
    unpacked once into `dest` (redone when the download changes); returns the folder to grade."""
    digest = sha256_file(download)
    marker = dest / ".download-sha256"
    if marker.is_file() and marker.read_text().strip() == digest:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(download) as archive:
            for m in archive.infolist():
                if m.is_dir() or IGNORED.search(m.filename):
                    continue
                target = dest / _safe_name(m)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, OSError, ValueError, IntakeError) as exc:
        raise ValueError(f"{download}: cannot unpack this download ({exc})") from None
    marker.write_text(digest + "\n")
    return dest


def _safe_name(member: zipfile.ZipInfo) -> PurePosixPath:
    name = member.filename.replace("\\", "/")
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise IntakeError("bad_zip", f"the zip contains a symbolic link ({name!r}); links are not accepted")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise IntakeError("bad_zip", f"the zip contains a special file ({name!r})")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts or not path.parts:
        raise IntakeError("bad_zip", f"unsafe path in the zip: {name!r}")
    if any(part.startswith(".") and part not in (".",) for part in path.parts) and name.endswith(".py"):
        raise IntakeError("bad_zip", f"hidden file in the zip: {name!r}")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _read_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    with archive.open(member) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise IntakeError("bad_zip", f"{member.filename!r} unpacks to more than declared (zip bomb?)")
    return data


def find_modules(box: Path, assignment: Assignment) -> dict[str, str]:
    """Map each module to a file in the box: its own file (any folder, any case), or the single file."""
    py_files = sorted((p for p in box.rglob("*.py") if p.is_file()), key=lambda p: (len(p.parts), str(p)))
    notebooks = sorted((p for p in box.rglob("*") if p.suffix.lower() == ".ipynb" and p.is_file()),
                       key=lambda p: (len(p.parts), str(p)))
    found: dict[str, str] = {}
    for module in assignment.modules:
        for p in py_files + notebooks:  # <module>.py first, then the notebook <module>.ipynb
            if p.stem.lower() == module.lower():
                found[module] = str(p.relative_to(box))
                break
    if len(found) < len(assignment.modules):
        singles = [p for p in py_files if assignment.single_file_pattern.match(p.name)]
        if not singles and not found and len(py_files) == 1:
            singles = py_files
        if singles:
            for module in assignment.modules:
                found.setdefault(module, str(singles[0].relative_to(box)))
    return found


# -- lateness ------------------------------------------------------------------------------------
def read_times(path: Path, tz: tzinfo | None = None) -> dict[str, datetime]:
    """CSV with a `submitted_at` column (ISO 8601) and a `file` (zip name) or `student_id` column.
    A time without a timezone is in `tz` (the deadline's), else UTC. A bad time names the file and line."""
    return {key: when for key, (when, _line) in read_times_lines(path, tz).items()}


def read_times_lines(path: Path, tz: tzinfo | None = None) -> dict[str, tuple[datetime, int]]:
    """read_times, with the CSV line each time came from (for reports on zips it names that do not exist)."""
    times: dict[str, tuple[datetime, int]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:  # Excel writes a byte-order mark
        reader = csv.DictReader(fh)
        if not {"submitted_at"} <= set(reader.fieldnames or ()) or not {"file", "student_id"} & set(reader.fieldnames or ()):
            raise ValueError(f"{path}: the times CSV needs a submitted_at column and a file or student_id column")
        for row in reader:
            key = (row.get("file") or row.get("student_id") or "").strip()
            when = (row.get("submitted_at") or "").strip()
            if key and when:
                try:
                    parsed = datetime.fromisoformat(when.replace(" UTC", "+00:00").replace("Z", "+00:00"))
                except ValueError:
                    raise ValueError(f"{path} line {reader.line_num}: submitted_at {when!r} is not an ISO 8601 time "
                                     "(e.g. 2023-03-29T23:15:00+08:00)") from None
                times[key] = (_aware(parsed, tz), reader.line_num)
    return times


def _aware(when: datetime, tz: tzinfo | None = None) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=tz or timezone.utc)


def late_days(submitted: datetime | None, deadline: datetime | None) -> int:
    """Days late, each started day counting as one; 0 when on time or unknown."""
    if submitted is None or deadline is None or submitted <= _aware(deadline):
        return 0
    return math.ceil((submitted - _aware(deadline)) / timedelta(days=1))
