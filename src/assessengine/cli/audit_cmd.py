"""`assessengine audit`: prove a stored session is intact and its report reproducible.

Three checks, each reported even when an earlier one fails:

1. chain:  the genesis is recomputed from the session's info and every batch's chain value from
           its stored header and payload (`core.chain`); batch indexes and seqs run on gaplessly.
2. events: every batch decodes with its codec (`core.codec`) and agrees with its stored
           first_seq, count and encoding.
3. report: the session is scored again from those events with the same rubric (found by id,
           version and sha256) and the result must equal the stored report exactly (as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from ..adapters.library import load_rubric, rubric_files
from ..core import chain
from ..core.codec import CodecError, Layout, decode_events
from ..core.events import Event, SessionEvents
from ..core.jsontext import dumps
from ..core.offline import score_sessions
from ..core.rubric import Rubric
from ..core.scenario import Scenario
from ..errors import AssessEngineError
from ..storage import open_existing, parse_url
from ..storage.port import SessionRecord, StoredBatch, StoreError
from ._app import main, scenario_dirs_option

EXIT_MISMATCH = 1
EXIT_USAGE = 2
MAX_DIFFERENCES = 20


@dataclass(slots=True)
class Audit:
    """What the audit found. `ok` when the chain holds, every batch decodes and the report
    reproduces; `unusable` names what kept the audit from running (a usage problem)."""

    session: str
    chain_ok: bool = True
    batches: int = 0
    first_bad: int | None = None
    events: int = 0
    problems: list[str] = field(default_factory=list)
    report_ok: bool | None = None  # None: nothing to compare (open session, or no rubric)
    differences: list[str] = field(default_factory=list)
    unusable: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain_ok and not self.problems and self.report_ok is not False

    def to_data(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "ok": self.ok and self.unusable is None,
            "chain": {"ok": self.chain_ok, "batches": self.batches, "first_bad": self.first_bad},
            "events": {"count": self.events, "problems": self.problems},
            "report": {"ok": self.report_ok, "differences": self.differences},
            "unusable": self.unusable,
            "notes": self.notes,
        }


@main.command("audit")
@click.argument("session")
@click.option(
    "--db",
    "db_url",
    required=True,
    metavar="PATH|URL",
    help="The engine's store: a SQLite file (PATH or sqlite:///PATH) or postgresql://...",
)
@click.option(
    "--rubric-dir",
    "rubric_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    metavar="DIR",
    help="Look for the session's rubric (*.yaml) in DIR. Repeatable. "
    "Default: the rubrics bundled with assessengine.",
)
@scenario_dirs_option
@click.option("--reference", is_flag=True, help="Re-score with the plain reference scorer.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def audit(
    session: str,
    db_url: str,
    rubric_dirs: tuple[Path, ...],
    scenario_dirs: tuple[Path, ...],
    reference: bool,
    as_json: bool,
) -> None:
    """Verify SESSION in the store: its hash chain, its raw events, and its report.

    Recomputes the chain from the session's genesis over every stored batch (naming the first
    batch that does not follow), decodes every batch back into events, scores the session
    again with the rubric it was scored with (same id, version and sha256) and compares the
    result with the stored report.

    \b
    Exit status: 0 when everything matches; 1 on a broken chain, a batch that does not
    decode, or a report that differs (each difference is printed); 2 on a usage problem
    (no such store or session, rubric not found).

    \b
    Example:
      assessengine audit S-0042 --db engine.db
    """
    try:
        with closing(open_existing(db_url, read_only=True)) as store:
            record = store.session(session)
            if record is None:
                raise click.UsageError(f"no session {session!r} in {parse_url(db_url)}")
            result = run_audit(
                store.batches(session),
                record,
                store.report(session),
                rubric_dirs=rubric_dirs or default_rubric_dirs(),
                scenario_dirs=scenario_dirs,
                engine="reference" if reference else "kernel",
            )
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    click.echo(dumps(result.to_data(), indent=2) if as_json else render(result, record))
    if not result.ok:
        raise SystemExit(EXIT_MISMATCH)
    if result.unusable is not None:
        raise SystemExit(EXIT_USAGE)


# ================================================================================ the audit


def run_audit(
    batches: Iterable[StoredBatch],
    record: SessionRecord,
    stored_report: dict[str, Any] | None,
    *,
    rubric_dirs: Sequence[Path],
    scenario_dirs: Sequence[Path] = (),
    engine: str = "kernel",
) -> Audit:
    """Check one session's stored batches and report (see the module docstring)."""
    info = record.info
    result = Audit(info.session)
    found = find_rubric(info.rubric, info.rubric_version, info.rubric_sha256, rubric_dirs,
                        scenario_dirs)  # fmt: skip
    if isinstance(found, str):
        result.unusable = found
    layout = None if isinstance(found, str) else Layout.of(found[1])
    events = _check_batches(batches, record, layout, result)
    if layout is None or isinstance(found, str):
        return result
    if record.status != "closed":
        result.notes.append("the session is still open: no final report to compare")
        return result
    if stored_report is None:
        result.report_ok = False
        result.differences.append("the session is closed but no report is stored")
        return result
    rubric, scenario = found
    session_events = SessionEvents(
        info.session,
        events,
        {"learner": info.learner, "scenario": info.scenario, "rubric": info.rubric},
        record.close_t,
    )
    (report,) = score_sessions(
        rubric,
        scenario,
        [session_events],
        engine="reference" if engine == "reference" else "kernel",
    )
    result.differences = differences(stored_report, report.to_data())
    result.report_ok = not result.differences
    return result


def _check_batches(
    batches: Iterable[StoredBatch], record: SessionRecord, layout: Layout | None, result: Audit
) -> list[Event]:
    """Walk the chain (and decode, given a layout); returns the decoded events."""
    prev = genesis = chain.genesis(record.info)
    next_seq, last_t = 0, 0.0
    events: list[Event] = []
    for position, batch in enumerate(batches):
        result.batches += 1
        expected = chain.next_chain(prev, batch.header, batch.payload)
        if result.chain_ok and batch.chain != expected:
            result.chain_ok, result.first_bad = False, position
        prev = batch.chain
        where = f"batch {position} (seqs {batch.first_seq}..{batch.first_seq + batch.count - 1})"
        if batch.index != position:
            result.problems.append(f"{where}: stored with index {batch.index}")
        if batch.first_seq != next_seq:
            result.problems.append(f"{where}: starts at seq {batch.first_seq}, not {next_seq}")
        next_seq = batch.first_seq + batch.count
        if layout is not None:
            decoded = _decode(batch, layout, last_t, where, result)
            events += decoded
            last_t = decoded[-1].t if decoded else last_t
    result.events = len(events)
    if result.chain_ok and record.chain_head != (prev if result.batches else genesis):
        result.chain_ok = False
        result.problems.append("the session's chain head is not its last batch's chain value")
    return events


def _decode(
    batch: StoredBatch, layout: Layout, min_t: float, where: str, result: Audit
) -> list[Event]:
    try:
        header = json.loads(batch.header)
        if not isinstance(header, dict):
            raise CodecError("bad_header", "header is not a JSON object")
        for key, stored in (("encoding", batch.encoding), ("first_seq", batch.first_seq),
                            ("count", batch.count)):  # fmt: skip
            if header.get(key) != stored:
                raise CodecError("bad_header", f"header {key} is {header.get(key)!r}, "
                                 f"the store says {stored!r}")  # fmt: skip
        return decode_events(header, batch.payload, layout, min_t=min_t).to_events(layout)
    except (CodecError, ValueError) as exc:
        result.problems.append(f"{where}: does not decode: {exc}")
        return []


# ================================================================================ rubrics


def default_rubric_dirs() -> list[Path]:
    """The rubrics bundled with the package, then (editable install) the repository's."""
    places = [Path(str(resources.files("assessengine") / "_data" / "rubrics"))]
    package = Path(__file__).resolve().parents[1]
    root = package.parent.parent
    if package.parent.name == "src" and (root / "pyproject.toml").is_file():
        places.append(root / "rubrics")
    return [p for p in places if p.is_dir()]


def find_rubric(
    rubric_id: str,
    version: int,
    sha256: str,
    dirs: Sequence[Path],
    scenario_dirs: Sequence[Path] = (),
) -> tuple[Rubric, Scenario] | str:
    """The rubric with this id, version and sha256 (and its scenario) from the first of `dirs`
    that has it; else a message saying what was searched and what came close."""
    close: list[str] = []
    for path in _rubric_files(dirs):
        try:
            rubric, scenario = load_rubric(path, scenario_dirs=scenario_dirs)
        except (AssessEngineError, OSError):
            continue
        if (rubric.rubric, rubric.version) != (rubric_id, version):
            continue
        if rubric.sha256() == sha256:
            return rubric, scenario
        close.append(f"{path} has sha256 {rubric.sha256()[:12]}")
    searched = ", ".join(str(d) for d in dirs) or "no directory"
    detail = f" ({'; '.join(close)})" if close else ""
    return (f"rubric {rubric_id!r} v{version} with sha256 {sha256[:12]}... not found in "
            f"{searched}{detail}; give its directory with --rubric-dir")  # fmt: skip


def _rubric_files(dirs: Sequence[Path]) -> Iterator[Path]:
    for folder in dirs:
        yield from rubric_files(folder)


# ================================================================================ comparing


def differences(stored: Any, recomputed: Any, path: str = "report") -> list[str]:
    """Where two JSON values differ, as ``path: stored X, recomputed Y`` lines (at most
    `MAX_DIFFERENCES`). Equal exactly when their canonical JSON texts are equal."""
    out: list[str] = []
    _walk(stored, recomputed, path, out)
    if not out and _canonical(stored) != _canonical(recomputed):
        out.append(f"{path}: differs in representation")
    return out[:MAX_DIFFERENCES]


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if len(out) >= MAX_DIFFERENCES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in b or key not in a:
                which = "recomputed" if key not in b else "stored"
                out.append(f"{path}.{key}: missing from the {which} report")
            else:
                _walk(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", out)
    elif _canonical(a) != _canonical(b):
        out.append(f"{path}: stored {_short(a)}, recomputed {_short(b)}")


def _canonical(value: Any) -> str:
    return dumps(value, sort_keys=True, separators=(",", ":"))


def _short(value: Any) -> str:
    text = dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ================================================================================ output


def render(result: Audit, record: SessionRecord) -> str:
    info = record.info
    lines = [
        f"session {info.session}: learner {info.learner}, scenario {info.scenario}, "
        f"rubric {info.rubric} v{info.rubric_version} ({record.status})"
    ]
    if result.chain_ok:
        lines.append(f"chain:  ok ({result.batches} batches, head {record.chain_head[:16]}...)")
    elif result.first_bad is not None:
        lines.append(f"chain:  BROKEN at batch {result.first_bad} of {result.batches}: its stored "
                     "chain value does not follow from the batches before it and its own "
                     "header and payload")  # fmt: skip
    else:
        lines.append("chain:  BROKEN")
    lines += [f"        {p}" for p in result.problems if "chain head" in p]
    batch_problems = [p for p in result.problems if "chain head" not in p]
    if result.unusable is None:
        state = "ok" if not batch_problems else f"{len(batch_problems)} problem(s)"
        lines.append(f"events: {state} ({result.events} events decoded)")
    lines += [f"        {p}" for p in batch_problems]
    if result.unusable is not None:
        lines.append(f"report: not checked: {result.unusable}")
    elif result.report_ok is None:
        lines += [f"report: not checked: {n}" for n in result.notes]
    elif result.report_ok:
        lines.append("report: matches the stored report exactly")
    else:
        lines.append("report: DIFFERS from the stored report:")
        lines += [f"        {d}" for d in result.differences]
    if not result.ok:
        lines.append("audit: FAILED")
    else:
        lines.append("audit: ok" if result.unusable is None else "audit: incomplete")
    return "\n".join(lines)
