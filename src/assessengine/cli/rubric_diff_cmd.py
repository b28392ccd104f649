"""`assessengine rubric diff`: what-if, the same sessions under two versions of a rubric
(attaches itself to the `rubric` group)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from ..adapters.library import check_rubric_file
from ..core.codec import CodecError, Columns, Layout
from ..core.compiler import compile_rubric
from ..core.jsontext import dumps
from ..core.offline import collect_sessions, score_sessions
from ..core.rubric import Rubric
from ..core.rubric_diff import (
    RubricDiff,
    diff_reports,
    render_text,
    scenario_mismatch,
    score_many,
    to_data,
)
from ..core.scenario import Scenario
from ..core.session_columns import decode_session
from ..errors import EventsError
from ..inputs import read_input
from ..storage import open_existing
from ..storage.port import SessionRecord, Store
from ._app import scenario_dirs_option
from .rubric_cmd import EXIT_PROBLEMS, rubric
from .where import WINDOW_KEYS, in_window, parse_where, window

WHERE_KEYS = ("session", "learner", "rubric", "version", "source", "opened_from", "opened_to",
              "since", "until")
MAX_SESSIONS = 100_000


@rubric.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--events", "events", type=click.Path(dir_okay=False, path_type=Path),
              help="Recorded sessions: an events file (JSON Lines, as `assessengine score`).")
@click.option("--db", "db", metavar="URL",
              help="Stored sessions: a store URL or SQLite file (closed sessions only).")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help=f"With --db: only sessions where KEY is VALUE ({', '.join(WHERE_KEYS)};"
              " opened_from/opened_to: ISO dates, inclusive; since/until: opened at or after"
              " since, before until, as `rescore`). Comma-separated or repeated.")
@click.option("--limit", type=click.IntRange(1, MAX_SESSIONS), default=10_000,
              show_default=True, help="With --db: at most this many sessions (oldest first).")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@scenario_dirs_option
def diff(
    old: Path, new: Path, events: Path | None, db: str | None, where: tuple[str, ...],
    limit: int, as_json: bool, scenario_dirs: tuple[Path, ...],
) -> None:  # fmt: skip
    """Score the same sessions under rubric OLD and rubric NEW and show what changes.

    Prints what changed in the rubric, then every session whose verdicts or outcome change:
    each changed criterion with the evidence of both versions (where it was decided, the
    window, the signal values), then the totals.

    \b
    Examples:
      assessengine rubric diff v1.yaml v2.yaml --events recorded.jsonl
      assessengine rubric diff v1.yaml v2.yaml --db engine.db --where rubric=forklift-load-handling

    \b
    Exit status: 0 when compared (whatever changed); 2 on a bad rubric, rubrics of different
    scenarios, a bad events file or store, or bad options.
    """
    if (events is None) == (db is None):
        raise click.UsageError("give exactly one of --events FILE or --db URL")
    if where and db is None:
        raise click.UsageError("--where goes with --db")
    filters = _filters(where)
    before, after = _checked(old, scenario_dirs), _checked(new, scenario_dirs)
    mismatch = scenario_mismatch(before[0], after[0])
    if mismatch is not None:
        _fail(mismatch)
    if events is not None:
        result = _from_events(before, after, events)
    else:
        assert db is not None
        result = _from_store(before, after, db, filters, limit)
    click.echo(dumps(to_data(result), indent=2) if as_json else render_text(result),
               nl=as_json)  # fmt: skip


Loaded = tuple[Rubric, Scenario]


def _checked(path: Path, scenario_dirs: Sequence[Path]) -> Loaded:
    """The rubric at `path` and its scenario; its problems printed and exit 2 otherwise."""
    result = check_rubric_file(path, scenario_dirs=scenario_dirs)
    if not result.ok or result.rubric is None or result.scenario is None:
        for problem in result.problems:
            click.echo(str(problem))
        raise SystemExit(EXIT_PROBLEMS)
    return result.rubric, result.scenario


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_PROBLEMS)


def _filters(where: Sequence[str]) -> Filters:
    found = parse_where(where, WHERE_KEYS)
    if "version" in found and not found["version"].isdigit():
        raise click.BadParameter(f"version={found['version']!r}: a version is a whole number",
                                 param_hint="--where")  # fmt: skip
    since, until = window(found)
    return Filters({k: v for k, v in found.items() if k not in WINDOW_KEYS}, since, until)


@dataclass(frozen=True)
class Filters:
    """`--where`: exact values and prefix bounds (`equal`), and the time window."""

    equal: dict[str, str]
    since: datetime | None = None
    until: datetime | None = None


# ==================================================================================== sources


def _from_events(old: Loaded, new: Loaded, path: Path) -> RubricDiff:
    scenario = old[1]
    try:
        found, _ = collect_sessions(read_input(path, scenario=scenario), scenario)
    except (EventsError, OSError) as exc:
        _fail(str(exc))
    sessions, skipped = [], []
    for session in found:
        declared = session.open.get("scenario")
        if declared is not None and declared != scenario.scenario:
            skipped.append((session.session, f"a {declared!r} session"))
        else:
            sessions.append(session)
    before = score_sessions(*old, sessions)
    after = score_sessions(*new, sessions)
    learners = {s.session: str(s.open["learner"]) for s in sessions if "learner" in s.open}
    return diff_reports(old[0], new[0], before, after, learners=learners,
                        skipped=skipped)  # fmt: skip


def _from_store(
    old: Loaded, new: Loaded, url: str, filters: Filters, limit: int
) -> RubricDiff:
    store = open_existing(url, read_only=True)
    try:
        records = [r for r in store.sessions(status="closed")
                   if r.info.scenario == old[0].scenario and _kept(r, filters)][:limit]
        sessions, skipped = _decoded(store, records, Layout.of(old[1]))
    finally:
        store.close()
    before = score_many(compile_rubric(*old), sessions)
    after = score_many(compile_rubric(*new), sessions)
    learners = {r.info.session: r.info.learner for r in records}
    return diff_reports(old[0], new[0], before, after, learners=learners,
                        skipped=skipped)  # fmt: skip


def _kept(record: SessionRecord, filters: Filters) -> bool:
    info = record.info
    if (filters.since or filters.until) and not in_window(
        datetime.fromisoformat(record.opened_at), filters.since, filters.until
    ):
        return False
    values = {"session": info.session, "learner": info.learner, "rubric": info.rubric,
              "version": str(info.rubric_version), "source": info.source}  # fmt: skip
    for key, wanted in filters.equal.items():
        if key == "opened_from" and record.opened_at[: len(wanted)] < wanted:
            return False
        if key == "opened_to" and record.opened_at[: len(wanted)] > wanted:
            return False
        if key in values and values[key] != wanted:
            return False
    return True


def _decoded(
    store: Store, records: Sequence[SessionRecord], layout: Layout
) -> tuple[list[tuple[str, Columns, float]], list[tuple[str, str]]]:
    sessions: list[tuple[str, Columns, float]] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        sid = record.info.session
        try:
            cols = decode_session(store.batches(sid), layout)
        except CodecError as exc:
            skipped.append((sid, f"a stored batch does not decode: {exc}"))
            continue
        sessions.append((sid, cols, record.close_t or 0.0))
    return sessions, skipped

