"""Rubric and policy files -> frozen dataclasses. Scoring policy lives here, checks elsewhere."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
STARTERS = ROOT / "starter"
FIXTURES = ROOT / "fixtures"


FEEDBACK_LEVELS = ("full", "verdict")


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    title: str
    marks: float
    kind: str  # "auto" or "manual"
    built: bool = True
    module: str | None = None
    guide: str = ""  # marking guide shown to TAs next to students' answers (manual items)
    # What the student's feedback shows before the deadline: "full" (checks, messages, hints, marks) or
    # "verdict" (only passed / not passed, for answers small enough to guess by resubmitting).
    feedback: str = "full"

    @property
    def graded_automatically(self) -> bool:
        return self.kind == "auto" and self.built


@dataclass(frozen=True)
class LatePolicy:
    deadline: datetime | None
    penalty_per_day: float
    max_days: int
    budget_days: int = 0  # late days each student may spend without penalty (per student: the extensions CSV)


@dataclass(frozen=True)
class TimeLimits:
    """Wall-clock limits for importing a submission's module or notebook (before --timeout-scale)."""

    import_seconds: float = 60.0  # one module or notebook, all its top-level code
    cell_seconds: float = 20.0  # one notebook cell or one top-level statement of a .py module


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    cap: float
    modules: tuple[str, ...]
    single_file_pattern: re.Pattern
    naming_pattern: re.Pattern
    naming_example: str
    late: LatePolicy
    items: tuple[Item, ...]
    solution_dir: Path
    starter_dir: Path
    limits: "TimeLimits" = None  # type: ignore[assignment]  # set by load(); defaults when the rubric has no [limits]
    # Libraries the fork server imports once per job before any student code ([assignment] preload);
    # None: the grader's default list (grader/zygote.py PRELOAD). Import only what the assignment needs.
    preload: tuple[str, ...] | None = None

    data_dir: Path | None = None  # [assignment] data, relative to the rubric (an assignment folder outside solutions/)
    # [assignment] libraries: the grader's field libraries (grader/<name>/, e.g. lite3d) the course code imports;
    # copied into the starter, and importable in the sandbox from the grader's own copy (a student's copy never wins).
    libraries: tuple[str, ...] = ()
    # [assignment] given: course files the students do not edit (no solution markers); when a zip lacks one,
    # the grader puts the course's copy beside the student's modules, so a zip of only the edited files runs.
    given: tuple[str, ...] = ()

    @property
    def public_data_dir(self) -> Path:
        """Fixture inputs the student's code may read (mounted read-only at /data in the sandbox)."""
        return self.data_dir if self.data_dir is not None else FIXTURES / "data" / self.id / "public"

    @property
    def total_marks(self) -> float:
        return sum(i.marks for i in self.items)

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"{self.id} has no rubric item {item_id!r}")


def available() -> list[str]:
    return sorted(p.parent.name for p in SOLUTIONS.glob("*/rubric.toml"))


def load(assignment_id: str) -> Assignment:
    """An assignment by id (solutions/<id>/rubric.toml) or by the path of its folder (any folder holding a
    rubric.toml and hidden/; its [assignment] data key then names the public data folder, relative to it)."""
    folder = Path(assignment_id)
    external = ("/" in assignment_id or assignment_id.startswith(".")) and (folder / "rubric.toml").is_file()
    path = folder.resolve() / "rubric.toml" if external else SOLUTIONS / assignment_id / "rubric.toml"
    if not path.is_file():
        raise ValueError(f"unknown assignment {assignment_id!r}; known: {', '.join(available()) or 'none'} "
                         f"(or give the path of a folder holding rubric.toml)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    _require(raw, path)
    a, naming, late = raw["assignment"], raw["naming"], raw.get("late", {})
    if str(a.get("id")) != path.parent.name:
        raise ValueError(f"{path}: [assignment] id is {a.get('id')!r} but the folder is {path.parent.name!r}; "
                         f"they must be the same (starter and fixture paths follow the id)")
    items = tuple(
        Item(
            id=str(i["id"]), task=i["task"], title=i["title"], marks=float(i["marks"]), kind=i["kind"],
            built=bool(i.get("built", True)), module=i.get("module"), guide=str(i.get("guide", "")).strip(),
            feedback=str(i.get("feedback", "full")),
        )
        for i in raw["items"]
    )
    for it in items:
        if it.kind not in ("auto", "manual"):
            raise ValueError(f"{path}: item {it.id} has kind {it.kind!r}; use 'auto' or 'manual'")
        if it.feedback not in FEEDBACK_LEVELS:
            raise ValueError(f"{path}: item {it.id} has feedback {it.feedback!r}; use one of {', '.join(FEEDBACK_LEVELS)}")
    if len({it.id for it in items}) != len(items):
        raise ValueError(f"{path}: duplicate item ids")
    deadline = late.get("deadline")
    return Assignment(
        id=a["id"], title=a["title"], cap=float(a.get("cap", float("inf"))), modules=tuple(a["modules"]),
        single_file_pattern=re.compile(a.get("single_file_pattern", r"^$")),
        naming_pattern=re.compile(naming["pattern"]), naming_example=naming.get("example", ""),
        late=LatePolicy(
            deadline=datetime.fromisoformat(deadline) if deadline else None,
            penalty_per_day=float(late.get("penalty_per_day", 0.0)), max_days=int(late.get("max_days", 0)),
            budget_days=int(late.get("budget_days", 0)),
        ),
        items=items, solution_dir=path.parent, starter_dir=STARTERS / a["id"] if not external else path.parent.with_name(f"{a['id']}_starter"),
        data_dir=(path.parent / a["data"]).resolve() if external and a.get("data") else None,
        limits=_time_limits(raw.get("limits", {}), path),
        preload=_preload(a.get("preload"), path),
        libraries=_libraries(a.get("libraries", []), path),
        given=_given(a.get("given", []), path),
    )


# What a rubric must hold: table -> {key: type}. Each problem is one line naming the file and the key.
REQUIRED = {
    "assignment": {"id": str, "title": str, "modules": list},
    "naming": {"pattern": str},
}
ITEM_KEYS = {"id": str, "task": str, "title": str, "marks": (int, float), "kind": str}


def _require(raw: dict, path: Path) -> None:
    for table, keys in REQUIRED.items():
        if not isinstance(raw.get(table), dict):
            raise ValueError(f"{path}: the [{table}] table is missing")
        for key, kind in keys.items():
            if key not in raw[table]:
                raise ValueError(f"{path}: [{table}] {key} is missing")
            if not isinstance(raw[table][key], kind):
                raise ValueError(f"{path}: [{table}] {key} should be a {kind.__name__}, got {raw[table][key]!r}")
    if not isinstance(raw.get("items"), list) or not raw["items"]:
        raise ValueError(f"{path}: no [[items]]: the rubric lists every item of the handout's task breakdown")
    for n, item in enumerate(raw["items"], 1):
        for key, kind in ITEM_KEYS.items():
            if key not in item:
                raise ValueError(f"{path}: [[items]] number {n} ({item.get('id', 'no id')}) has no {key}")
            if not isinstance(item[key], kind) or isinstance(item[key], bool):
                raise ValueError(f"{path}: [[items]] {item.get('id', n)}: {key} = {item[key]!r} has the wrong type")
    try:
        pattern = re.compile(raw["naming"]["pattern"])
    except re.error as exc:
        raise ValueError(f"{path}: [naming] pattern is not a valid regular expression ({exc})") from None
    missing = {"student_id", "name"} - set(pattern.groupindex)
    if missing:
        raise ValueError(f"{path}: [naming] pattern needs the named groups (?P<student_id>...) and (?P<name>...); "
                         f"missing: {', '.join(sorted(missing))}")
    if "single_file_pattern" in raw["assignment"]:
        try:
            re.compile(raw["assignment"]["single_file_pattern"])
        except re.error as exc:
            raise ValueError(f"{path}: [assignment] single_file_pattern is not a valid regular expression ({exc})") from None


def _time_limits(raw: dict, path: Path) -> TimeLimits:
    limits = TimeLimits(**{k: float(v) for k, v in raw.items() if k in ("import_seconds", "cell_seconds")})
    unknown = set(raw) - {"import_seconds", "cell_seconds"}
    if unknown or limits.import_seconds <= 0 or limits.cell_seconds <= 0:
        raise ValueError(f"{path}: [limits] takes positive import_seconds and cell_seconds (got {raw})")
    return limits


def _libraries(raw: object, path: Path) -> tuple[str, ...]:
    here = Path(__file__).resolve().parent
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise ValueError(f"{path}: [assignment] libraries is a list of the grader's library names, e.g. [\"lite3d\"]")
    for name in raw:
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or not (here / name / "__init__.py").is_file():
            raise ValueError(f"{path}: [assignment] libraries names {name!r}, which is not a library of the grader "
                             f"(a package in {here})")
    return tuple(raw)


def _given(raw: object, path: Path) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise ValueError(f"{path}: [assignment] given is a list of file names in the assignment's folder")
    for name in raw:
        file = path.parent / name
        if ".." in Path(name).parts or Path(name).is_absolute() or not file.is_file():
            raise ValueError(f"{path}: [assignment] given names {name!r}, which is not a file in {path.parent}")
        if file.suffix == ".py" and "BEGIN SOLUTION" in file.read_text(errors="replace"):
            raise ValueError(f"{path}: [assignment] given names {name!r}, but it has solution markers (a file students edit)")
    return tuple(raw)


def _preload(raw: object, path: Path) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z_][\w.]*", n) for n in raw):
        raise ValueError(f"{path}: [assignment] preload is a list of module names, e.g. [\"numpy\", \"matplotlib.pyplot\"]")
    return tuple(raw)
