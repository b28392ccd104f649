"""`assessengine score`: score recorded sessions offline (attaches itself to the root group)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..adapters.library import load_rubric
from ..archive.chunks import archive_chunks, is_archive_location
from ..archive.location import ArchiveError, s3_options
from ..core.compiler import CompiledRubric, compile_rubric
from ..core.jsontext import dumps
from ..core.offline import collect_sessions, score_chunks, score_sessions
from ..core.recorded import Chunk
from ..core.report import SessionReport
from ..errors import EventsError, RubricError
from ..inputs import read_input
from ..runtime import fused
from ._app import main, scenario_dirs_option
from .summary import count_failed, render_failed

EXIT_INPUT = 2


def default_workers() -> int:
    """Parsing processes by default: the machine's cores less the one this process scores on
    (on 2 cores: 1, this process alone; two parsing processes there ran at 0.58x one,
    docs/performance.md)."""
    return max(1, (os.cpu_count() or 1) - 1)


@main.command("score")
@click.argument("events", metavar="EVENTS")
@click.option(
    "--rubric",
    "rubric_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The rubric YAML file to score against.",
)
@click.option("--reference", is_flag=True, help="Use the plain reference scorer (the oracle).")
@click.option("--json", "as_json", is_flag=True, help='Print {"sessions": [REPORT, ...]} as JSON.')
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip malformed lines (counted and listed on stderr) instead of stopping.",
)
@click.option(
    "--format",
    "input_format",
    default=None,
    metavar="NAME",
    help="Input format (jsonl, parquet, arrow); default: from the file's suffix (stdin and "
    "other names: jsonl).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Processes that parse the input (default: the machine's cores less one, which scores;"
    " 1: this process only). Used for inputs larger than a few blocks (32 MB of JSON Lines);"
    " results do not change.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Events, sessions and rate on stderr every few seconds (default: when stderr is a"
    " terminal).",
)
@scenario_dirs_option
def score(
    events: str,
    rubric_path: Path,
    reference: bool,
    as_json: bool,
    skip_invalid: bool,
    input_format: str | None,
    workers: int | None,
    progress: bool | None,
    scenario_dirs: tuple[Path, ...],
) -> None:
    """Score the sessions in EVENTS against a rubric: JSON Lines ('-' for stdin), Parquet or
    Arrow IPC in the archive's events layout (by suffix or --format), or a whole archive (a
    directory or s3://BUCKET/PREFIX: the sessions of the rubric's scenario).

    \b
    Each line is one of:
      {"session": "S1", "open": {"learner": "L1", "scenario": "...", "rubric": "..."}}
      {"session": "S1", "seq": 0, "t": 0.0, "event": "sample", "signals": {"speed": 3.2}}
      {"session": "S1", "close": {"t": 612.0}}
    A session that is not closed closes at its last event (so does every session of a
    Parquet or Arrow file; an archive's sessions close at their archived close times).

    Sessions may interleave; each is scored as its records arrive and decided at its close,
    so memory holds one block of the file and the open sessions, whatever the file's size.
    --format picks another registered input format (default: by suffix; JSON Lines).

    Exit status: 0 when scored, 2 on a bad rubric or a malformed events line.
    """
    try:
        rubric, scenario = load_rubric(rubric_path, scenario_dirs=scenario_dirs)
    except RubricError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(EXIT_INPUT) from None
    source = "<stdin>" if events == "-" else events
    try:
        chunks: Iterable[Chunk]
        if input_format is None and events != "-" and is_archive_location(events):
            chunks = archive_chunks(events, scenario, s3_options(os.environ))
        else:
            chunks = read_input(events, scenario=scenario, declared=input_format,
                                skip_invalid=skip_invalid,
                                workers=workers or default_workers())  # fmt: skip
        if progress if progress is not None else sys.stderr.isatty():
            chunks = Progress(chunks)
        if reference:
            sessions, problems = collect_sessions(chunks, scenario)
            ids, opens = [s.session for s in sessions], [s.open for s in sessions]
        else:
            compiled = compile_rubric(rubric, scenario)
            scored = score_chunks(compiled, fused_step_first(chunks, compiled))
            ids, opens = [r.session for r in scored.reports], scored.opens
            problems = scored.problems
        _check_open_lines(ids, opens, rubric.rubric, scenario.scenario, source)
    except (EventsError, ArchiveError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_INPUT) from None
    for skipped in problems:
        click.echo(f"skipped: {skipped}", err=True)
    if problems:
        click.echo(f"skipped {len(problems)} invalid line(s)", err=True)
    if reference:
        reports = score_sessions(rubric, scenario, sessions, engine="reference")
    else:
        reports = scored.reports
    if as_json:
        click.echo(dumps({"sessions": [r.to_data() for r in reports]}, indent=2))
    else:
        click.echo(render_table(reports))


def fused_step_first(chunks: Iterable[Chunk], compiled: CompiledRubric) -> Iterator[Chunk]:
    """`chunks`, the first one handed on once the rubric's fused step is ready (or failed):
    `score_chunks` asks for the step before it reads, so on a first run the step compiles in
    a child process while the first chunk is read (the reader's own first compile, about
    10 s); the first chunk is then scored by the step, not by the table-driven kernel, whose
    first compile (about 20 s) a first run would otherwise add when the input is read before
    the step is ready (a small file: docs/performance.md, "A first `score`")."""
    it = iter(chunks)
    for first in it:
        fused.wait_for([compiled])
        yield first
        yield from it


def _check_open_lines(
    ids: Sequence[str],
    opens: Sequence[Mapping[str, Any]],
    rubric_id: str,
    scenario_id: str,
    source: str,
) -> None:
    """EventsError for the first session (by first appearance) whose open record names
    another scenario than the rubric's."""
    for session, meta in zip(ids, opens, strict=True):
        declared = meta.get("scenario")
        if declared is not None and declared != scenario_id:
            raise EventsError(
                f"{source}: session {session!r} is a {declared!r} session, "
                f"but the rubric is for scenario {scenario_id!r}"
            )


class Progress:
    """Passes chunks through, writing events, sessions and rate to stderr every
    `EVERY` seconds (and once at the end, when it wrote any)."""

    EVERY = 2.0

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self.chunks = chunks
        self.start = self.last = time.monotonic()
        self.events = self.sessions = 0
        self.wrote = False

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self.chunks:
            self.events += len(chunk.batch)
            self.sessions += len(chunk.sessions)
            now = time.monotonic()
            if now - self.last >= self.EVERY:
                self.last = now
                self._write(now)
            yield chunk
        if self.wrote:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        rate = self.events / max(now - self.start, 1e-9)
        click.echo(f"read {self.events:,} events, {self.sessions:,} sessions "
                   f"({rate:,.0f} events/s)", err=True)  # fmt: skip
        self.wrote = True


def render_table(reports: Sequence[SessionReport]) -> str:
    """A readable summary: one line per session, the outcomes, each failure with its time,
    and last the number of sessions that failed each criterion (most failed first)."""
    if not reports:
        return "no sessions"
    width = max(7, *(len(r.session) for r in reports))
    lines = [f"{'session':<{width}}  {'outcome':<10}  {'score':>6}  failed / pending criteria"]
    for r in reports:
        open_items = [c for c in r.criteria if c.verdict in ("fail", "pending")]
        summary = ", ".join(f"{c.id} ({c.verdict})" for c in open_items) or "-"
        lines.append(f"{r.session:<{width}}  {r.outcome:<10}  {r.score:6.1f}  {summary}")
    counts = {o: sum(r.outcome == o for r in reports) for o in ("pass", "fail", "incomplete")}
    lines.append(
        f"\n{len(reports)} session(s): {counts['pass']} pass, {counts['fail']} fail, "
        f"{counts['incomplete']} incomplete  (rubric {reports[0].rubric} "
        f"v{reports[0].rubric_version}, sha256 {reports[0].rubric_sha256[:12]})"
    )
    lines.extend(
        f"  {r.session}: {c.id} failed at t={_fmt(c.evidence.t)}s (seq {c.evidence.seq}), "
        f"from t={_fmt(c.evidence.t_start)}s: {c.title}"
        for r in reports
        for c in r.criteria
        if c.verdict == "fail" and c.evidence.t is not None
    )
    failed = count_failed([(c.id, c.verdict) for c in r.criteria] for r in reports)
    lines.append(f"failed sessions per criterion: {render_failed(failed)}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
