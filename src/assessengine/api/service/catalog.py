"""Rubric versions the service knows: the files in the rubric directories (the bundled ones
included) and the versions uploaded over HTTP (kept in the store). Each is parsed, checked and
compiled once, then kept in memory by sha256."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...adapters.library import check_rubric_file, rubric_files
from ...adapters.library import rubric_dirs as bundled_rubric_dirs
from ...core.compiler import CompiledRubric, compile_rubric
from ...core.rubric import Rubric
from ...core.scenario import Scenario
from ...errors import AssessEngineError, LocatedProblem
from ...storage.reviews import ReviewStore, RubricRow
from .models import RubricVersionOut

MAX_RUBRIC_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Entry:
    """A usable rubric version: the checked rubric, its scenario and its compiled tables."""

    rubric: Rubric
    scenario: Scenario
    compiled: CompiledRubric
    origin: str              # "upload" | "file"
    filename: str
    uploaded_by: str | None = None
    uploaded_at: str | None = None

    @property
    def sha256(self) -> str:
        return self.compiled.sha256

    def describe(self) -> RubricVersionOut:
        r = self.rubric
        return RubricVersionOut(
            rubric=r.rubric, version=r.version, sha256=self.sha256, scenario=r.scenario,
            title=r.title, criteria=len(r.criteria), origin="upload" if self.origin == "upload"
            else "file", filename=self.filename, uploaded_by=self.uploaded_by,
            uploaded_at=self.uploaded_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of checking uploaded rubric text: an entry, or located problems."""

    entry: Entry | None
    problems: tuple[LocatedProblem, ...]


class Catalog:
    """Rubric versions by (id, version) and by sha256. Thread-safe."""

    def __init__(
        self, review: ReviewStore, *, rubric_dirs: Sequence[Path] = (),
        scenario_dirs: Sequence[Path] = (),
    ) -> None:  # fmt: skip
        self._review = review
        self._dirs = list(dict.fromkeys(Path(d).resolve() for d in [*rubric_dirs,
                                                                    *bundled_rubric_dirs()]))
        self._scenario_dirs = tuple(scenario_dirs)
        self._lock = threading.Lock()
        self._by_sha: dict[str, Entry] = {}
        self._files: list[Entry] | None = None
        self._uploads: dict[int, Entry | None] = {}  # review_rubrics row id -> entry

    def check_text(self, text: str, filename: str) -> Checked:
        """Check rubric text as `assessengine rubric check` checks a file (problems with line
        and column in `text`); never raises for a bad rubric."""
        with tempfile.TemporaryDirectory(prefix="assessengine-rubric-") as tmp:
            path = Path(tmp) / "rubrics" / "upload.yaml"
            path.parent.mkdir()
            path.write_text(text, encoding="utf-8")
            result = check_rubric_file(path, scenario_dirs=self._scenario_dirs)
        if not result.ok or result.rubric is None or result.scenario is None:
            return Checked(None, result.problems)
        compiled = compile_rubric(result.rubric, result.scenario)
        return Checked(Entry(result.rubric, result.scenario, compiled, "upload", filename), ())

    def entries(self, rubric: str | None = None) -> list[Entry]:
        """Every known version (files first, then uploads), optionally of one rubric id,
        sorted by id and version; a version present both as a file and uploaded once."""
        found: dict[tuple[str, int, str], Entry] = {}
        for entry in [*self._file_entries(), *self._upload_entries()]:
            key = (entry.rubric.rubric, entry.rubric.version, entry.sha256)
            found.setdefault(key, entry)
        chosen = [e for e in found.values() if rubric is None or e.rubric.rubric == rubric]
        return sorted(chosen, key=lambda e: (e.rubric.rubric, e.rubric.version, e.origin))

    def find(self, rubric: str, version: int | None = None, sha256: str | None = None) -> (
        Entry | None
    ):
        """The version with this id (and version, and sha256 when given); the highest version
        when `version` is None."""
        if sha256 is not None:
            with self._lock:
                hit = self._by_sha.get(sha256)
            if hit is None:
                self.entries()  # load what is new, once
                with self._lock:
                    hit = self._by_sha.get(sha256)
            if hit is not None and hit.rubric.rubric == rubric and (
                version is None or hit.rubric.version == version
            ):
                return hit
            return None
        matches = [e for e in self.entries(rubric) if version in (None, e.rubric.version)]
        return matches[-1] if matches else None

    def find_for(self, info: Mapping[str, Any]) -> Entry | None:
        """The version a session's stored info (its JSON, parsed) names; None when it names
        none (or not one known here)."""
        rubric, version, sha = info.get("rubric"), info.get("rubric_version"), info.get(
            "rubric_sha256")
        if not isinstance(rubric, str) or not isinstance(version, int):
            return None
        return self.find(rubric, version, sha if isinstance(sha, str) else None)

    # ------------------------------------------------------------------------------ loading

    def _file_entries(self) -> list[Entry]:
        with self._lock:
            if self._files is not None:
                return self._files
        entries: list[Entry] = []
        for folder in self._dirs:
            if not folder.is_dir():
                continue
            for path in rubric_files(folder):
                result = check_rubric_file(path, scenario_dirs=self._scenario_dirs)
                if result.ok and result.rubric is not None and result.scenario is not None:
                    compiled = compile_rubric(result.rubric, result.scenario)
                    entries.append(Entry(result.rubric, result.scenario, compiled, "file",
                                         path.name))  # fmt: skip
        with self._lock:
            if self._files is None:
                self._files = entries
                for entry in entries:
                    self._by_sha.setdefault(entry.sha256, entry)
            return self._files

    def _upload_entries(self) -> list[Entry]:
        rows = self._review.rubrics()
        out: list[Entry] = []
        for row in rows:
            entry = self._upload_entry(row)
            if entry is not None:
                out.append(entry)
        return out

    def _upload_entry(self, row: RubricRow) -> Entry | None:
        with self._lock:
            if row.id in self._uploads:
                return self._uploads[row.id]
        entry: Entry | None = None
        try:
            checked = self.check_text(row.text, row.filename)
        except (AssessEngineError, OSError):
            checked = Checked(None, ())
        # a scenario changed since the upload: the version is unusable here
        if checked.entry is not None and checked.entry.sha256 == row.sha256:
            entry = Entry(checked.entry.rubric, checked.entry.scenario, checked.entry.compiled,
                          "upload", row.filename, row.uploaded_by, row.uploaded_at)  # fmt: skip
        with self._lock:
            self._uploads[row.id] = entry
            if entry is not None:
                self._by_sha.setdefault(row.sha256, entry)
        return entry
