"""The scoring side of the live engine: the rubric library it serves, and the incremental
`Scorer` that turns stored batches into decisions and, at CLOSE, final reports.

    library = RubricLibrary.load([Path("rubrics")])
    scorer = Scorer(store, library)
    scorer.recover()                                  # re-open what the store holds open
    scorer.open("S1", library.resolve("forklift-warehouse", "forklift-load-handling", None))
    scorer.score([("S1", columns), ...])              # one kernel step per compiled rubric
    report = scorer.close("S1", close_t=612.0)        # final report saved, slot released

One `ScoringState` per compiled rubric (id, version, sha256) holds every open session of that
rubric; a batch group is stepped once per rubric, whatever the number of sessions in it.
Decisions are saved as they are taken (`Store.save_decisions`) and the final report at close
(`Store.save_report`); the report equals what `assessengine score` gives on the same events.

Not thread-safe: one thread (the engine's scoring thread) owns a `Scorer`. The library is
read-only after `load` and may be shared.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numba.core.registry import CPUDispatcher as Dispatcher

from ..adapters.library import list_scenarios, load_rubric, rubric_files
from ..core import codec_kernel, kernel
from ..core.codec import (
    JSON_V1,
    Columns,
    Layout,
    adjacent_records,
    decode_events,
    encode_json_v1,
    warm_up_decoder,
)
from ..core.codec_kernel import gather_columns
from ..core.compiler import VERDICT_NAMES, CompiledRubric, compile_rubric
from ..core.events import EventBatch
from ..core.kernel_scorer import spans
from ..core.report import SessionReport
from ..core.rubric import Rubric
from ..core.scenario import Scenario
from ..core.scorer import (
    MIN_CAPACITY,
    SCRATCH_ROWS,
    Decisions,
    ScoringState,
    close,
    close_chunks,
    step,
)
from ..core.scoring import DecisionLog, evidence_rows
from ..errors import AssessEngineError, ScoringError
from ..storage.port import SessionRecord, Store, unavailable
from . import fused

log = logging.getLogger(__name__)

REPLAY_ROWS: Final = 65_536
"""Rows per kernel step when replaying stored batches (recovery)."""


# ================================================================================ rubric library


@dataclass(frozen=True, slots=True)
class RubricEntry:
    """A rubric of the library, with its scenario and content hash."""

    rubric: Rubric
    scenario: Scenario
    sha256: str
    path: Path

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.rubric.rubric, self.rubric.version, self.sha256)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an OPEN cannot be served: a NACK code (`unknown_scenario`, `unknown_rubric`) and a
    message for the client."""

    code: str
    message: str


class RubricLibrary:
    """The rubrics the engine scores against, by (id, version) and by (id, version, sha256).

    When two files have the same id and version, the first one loaded answers OPENs; both stay
    reachable by sha256 (sessions stored with either keep being scored). Compiled rubrics and
    layouts are built once, on first use (thread-safe).
    """

    def __init__(self, entries: Iterable[RubricEntry], *, scenarios: Iterable[str] = ()) -> None:
        self._by_sha: dict[tuple[str, int, str], RubricEntry] = {}
        self._by_version: dict[tuple[str, int], RubricEntry] = {}
        self._latest: dict[str, RubricEntry] = {}
        for entry in entries:
            self._by_sha.setdefault(entry.key, entry)
            self._by_version.setdefault(entry.key[:2], entry)
            latest = self._latest.get(entry.rubric.rubric)
            if latest is None or entry.rubric.version > latest.rubric.version:
                self._latest[entry.rubric.rubric] = entry
        self.scenarios = frozenset(scenarios) | {e.scenario.scenario for e in self._by_sha.values()}
        self._compiled: dict[tuple[str, int, str], CompiledRubric] = {}
        self._layouts: dict[tuple[str, int, str], Layout] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, dirs: Sequence[Path], *, scenario_dirs: Sequence[Path] = ()
    ) -> tuple[RubricLibrary, list[str]]:
        """Every valid rubric (``*.yaml``, ``*.yml``; not the ``*.tests.yaml`` beside them) in
        `dirs`, in order; returns the library and one line per file that was skipped (invalid,
        or its scenario missing)."""
        entries: list[RubricEntry] = []
        skipped: list[str] = []
        for folder in dirs:
            for path in rubric_files(Path(folder)):
                try:
                    rubric, scenario = load_rubric(path, scenario_dirs=scenario_dirs)
                except (AssessEngineError, OSError) as exc:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    skipped.append(f"{path}: skipped: {first}")
                    continue
                entries.append(RubricEntry(rubric, scenario, rubric.sha256(), path))
        return cls(entries, scenarios=list_scenarios(scenario_dirs=scenario_dirs)), skipped

    def __len__(self) -> int:
        return len(self._by_sha)

    def entries(self) -> list[RubricEntry]:
        return list(self._by_sha.values())

    def resolve(self, scenario: str, rubric: str, version: int | None) -> RubricEntry | Refusal:
        """The rubric an OPEN names (`version` None: the latest), checked against its scenario."""
        if scenario not in self.scenarios:
            known = ", ".join(sorted(self.scenarios)) or "none"
            return Refusal("unknown_scenario", f"unknown scenario {scenario!r} (known: {known})")
        entry = self._latest.get(rubric) if version is None else self._by_version.get(
            (rubric, version)
        )
        if entry is None:
            what = f"rubric {rubric!r}" + ("" if version is None else f" version {version}")
            ids = sorted({e.rubric.rubric for e in self._latest.values()
                          if e.scenario.scenario == scenario})  # fmt: skip
            hint = f"; rubrics for {scenario}: {', '.join(ids)}" if ids else ""
            return Refusal("unknown_rubric", f"unknown {what}{hint}")
        if entry.scenario.scenario != scenario:
            return Refusal(
                "unknown_rubric",
                f"rubric {rubric!r} is for scenario {entry.scenario.scenario!r}, not {scenario!r}",
            )
        return entry

    def find(self, rubric: str, version: int, sha256: str) -> RubricEntry | None:
        """The exact rubric a stored session was opened with, if the library still has it."""
        return self._by_sha.get((rubric, version, sha256))

    def compiled(self, entry: RubricEntry) -> CompiledRubric:
        with self._lock:
            found = self._compiled.get(entry.key)
            if found is None:
                found = self._compiled[entry.key] = compile_rubric(entry.rubric, entry.scenario)
            return found

    def layout(self, entry: RubricEntry) -> Layout:
        with self._lock:
            found = self._layouts.get(entry.key)
            if found is None:
                found = self._layouts[entry.key] = Layout.of(entry.scenario)
            return found


# ================================================================================ the scorer


@dataclass(slots=True)
class _Track:
    """The scoring state of every open session of one compiled rubric."""

    compiled: CompiledRubric
    state: ScoringState
    log: DecisionLog


@dataclass(slots=True)
class Recovery:
    """What `Scorer.recover` did."""

    reopened: int = 0           # open sessions whose state was rebuilt
    reported: int = 0           # closed sessions without a report, now reported
    batches: int = 0
    events: int = 0
    decisions_saved: int = 0    # decisions the crash had kept from being saved
    skipped: list[str] = field(default_factory=list)  # sessions that could not be rebuilt


Rows = dict[str, list[dict[str, Any]]]
"""session id -> decision rows ({criterion, verdict, evidence}) in the order taken."""


class Scorer:
    """Incremental scoring of open sessions; see the module docstring.

    capacity: initial session slots per compiled rubric (grows by doubling).
    """

    def __init__(self, store: Store, library: RubricLibrary, *, capacity: int = 64) -> None:
        self._store = store
        self._library = library
        self._capacity = capacity
        self._tracks: dict[tuple[str, int, str], _Track] = {}
        self._session_track: dict[str, _Track] = {}
        self._entries: dict[str, RubricEntry] = {}
        self._broken: set[str] = set()
        self._replayed: dict[str, int] = {}  # session -> last seq replayed from the store
        self.events_scored = 0
        self.reports_saved = 0
        self.scoring_errors = 0
        self.save_errors = 0
        self._unsaved: tuple[Rows, dict[str, dict[str, Any]]] = ({}, {})  # see `_save`

    @property
    def sessions_open(self) -> int:
        return len(self._session_track)

    def layout_of(self, session: str) -> Layout | None:
        """The columns layout of an open session's scenario (None: not open here)."""
        entry = self._entries.get(session)
        return None if entry is None else self._library.layout(entry)

    def is_open(self, session: str) -> bool:
        return session in self._session_track

    def warm_up(self) -> None:
        """`warm_up_kernel` for this scorer's library: the first batches do not wait for
        numba to load (or, on a fresh install, compile) the kernel."""
        warm_up_kernel(self._library)

    # -------------------------------------------------------------------------- open / score

    def open(self, session: str, entry: RubricEntry, *, replay: bool = False) -> None:
        """Give `session` a slot in its rubric's state (no-op when it has one). With `replay`
        (the engine has just taken the session over from another engine), rebuild its state
        from the store instead, whatever this scorer held: replay the stored batches and save
        the decisions missing; rows the replay covered are skipped when their batches are
        scored after it (they were stored before the replay read them)."""
        if replay:
            self._take_over(session)
            return
        if session in self._session_track:
            return
        track = self._tracks.get(entry.key)
        if track is None:
            compiled = self._library.compiled(entry)
            state = ScoringState.new(compiled, capacity=self._capacity)
            track = self._tracks[entry.key] = _Track(compiled, state, DecisionLog(compiled))
        track.state.open([session])
        self._session_track[session] = track
        self._entries[session] = entry

    def score(self, batches: Sequence[tuple[str, Columns]], *, save: bool = True) -> Rows:
        """Step every open session's new rows (batches in arrival order; rows of one session
        in seq order), one kernel step per compiled rubric. Saves the decisions taken (unless
        `save` is false) and returns them. Batches of sessions that are not open are ignored."""
        groups: dict[int, tuple[_Track, list[tuple[int, Columns]]]] = {}
        for session, given in batches:
            track = self._session_track.get(session)
            cols = self._unreplayed(session, given) if session in self._replayed else given
            if track is None or session in self._broken or not len(cols):
                continue
            slot = track.state.slot_of[session]
            groups.setdefault(id(track), (track, []))[1].append((slot, cols))
        rows: Rows = {}
        for track, parts in groups.values():
            decisions = [d for chunk in _steps(parts) for d in self._step(track, chunk)]
            self.events_scored += sum(len(cols) for _, cols in parts)
            for session, taken in self._rows(track, decisions).items():
                rows.setdefault(session, []).extend(taken)
        if save and rows:
            self._save(rows, {})
        return rows

    def _step(self, track: _Track, parts: list[tuple[int, Columns]]) -> list[Decisions]:
        try:
            return [step(track.compiled, track.state, _batch(parts, track.state.steps_fused))]
        except ScoringError:
            pass
        # all or nothing failed: step each batch alone, so one bad session spoils nothing else
        out: list[Decisions] = []
        for slot, cols in parts:
            session = track.state.session_of[slot]
            if session in self._broken:
                continue
            try:
                out.append(step(track.compiled, track.state,
                                _batch([(slot, cols)], track.state.steps_fused)))
            except ScoringError as exc:
                self.scoring_errors += 1
                self._broken.add(session)
                log.error("session %r: cannot score a batch (%s); it will be re-scored from "
                          "the store at close", session, exc)  # fmt: skip
        return out

    def _rows(self, track: _Track, taken: Iterable[Decisions]) -> Rows:
        rows: Rows = {}
        criteria = track.compiled.rubric.criteria
        session_of = track.state.session_of
        for decisions in taken:
            evidence = evidence_rows(track.compiled, decisions)
            track.log.add(decisions, evidence)
            slots, verdicts = decisions.slot.tolist(), decisions.verdict.tolist()
            for slot, c, v, ev in zip(
                slots, decisions.criterion.tolist(), verdicts, evidence, strict=True
            ):
                row = {"criterion": criteria[c].id, "verdict": VERDICT_NAMES[v],
                       "evidence": ev.to_data()}  # fmt: skip
                rows.setdefault(session_of[slot], []).append(row)
        return rows

    # -------------------------------------------------------------------------- close

    def close(self, session: str, close_t: float) -> SessionReport | None:
        """Decide what is pending at `close_t`, save the decisions and the final report,
        release the slot. None when the session is not open here (closed already)."""
        return self.close_many([(session, close_t)]).get(session)

    def close_many(
        self, closing: Sequence[tuple[str, float]], *, scored: Rows | None = None
    ) -> dict[str, SessionReport]:
        """`close` for many sessions: one kernel call per rubric, one store transaction.
        Sessions that are not open here are left out of the result.

        scored: decisions `score(..., save=False)` returned just before, saved in the same
        transaction as the closes' decisions and reports (before them, each session's rows in
        order): the rows stored are those of `score` then `close_many`, one transaction fewer.
        They are saved even when closing fails. (A session re-scored from the store here saves
        what its replay finds missing first; the stores keep one decision per criterion, so
        its rows in `scored` are not stored twice.)"""
        groups: dict[int, tuple[_Track, list[str], list[float]]] = {}
        reports: dict[str, SessionReport] = {}
        seen: set[str] = set()
        for session, close_t in closing:
            track = self._session_track.get(session)
            if track is None or session in seen:  # closed already (a repeated CLOSE)
                continue
            seen.add(session)
            if session in self._broken:
                report = self._rescore(session, close_t)
                if report is not None:
                    reports[session] = report
                continue
            group = groups.setdefault(id(track), (track, [], []))
            group[1].append(session)
            group[2].append(close_t)
        rows: Rows = {sid: list(taken) for sid, taken in (scored or {}).items()}
        closed: dict[str, SessionReport] = {}
        try:
            for track, sessions, times in groups.values():
                closed.update(self._close(track, sessions, times, rows))
        finally:
            if closed or rows:
                self._save(rows, {sid: r.to_data() for sid, r in closed.items()})
        return reports | closed

    # -------------------------------------------------------------------------- saving

    @property
    def unsaved(self) -> bool:
        """Whether results a failed save left wait to be saved (see `save_unsaved`)."""
        return bool(self._unsaved[0] or self._unsaved[1])

    @property
    def unsaved_reports(self) -> frozenset[str]:
        """The closed sessions whose final report waits for a failed save to be retried."""
        return frozenset(self._unsaved[1])

    def save_unsaved(self) -> bool:
        """Save what failed saves left (nothing else): True once nothing waits."""
        return self._save({}, {})

    def _save(self, rows: Rows, reports: dict[str, dict[str, Any]]) -> bool:
        """Save decisions and final reports in one store transaction, after those earlier
        failed saves left (each session's rows stay in order). When the store is unavailable
        (`unavailable`: a database server gone, a locked store file, a full disk) nothing is
        lost: the results are kept, the error is logged and counted, and the next save (or
        `save_unsaved`, which the engine calls when idle and at stop) saves them too. (A
        crash meanwhile loses nothing either: `recover` re-derives them from the stored
        batches.) Results the store refuses (an invalid write) are logged and dropped, as a
        restart re-derives them: they never hold up later saves. True when saved."""
        kept_rows, kept_reports = self._unsaved
        if kept_rows or kept_reports:
            merged = {sid: list(taken) for sid, taken in kept_rows.items()}
            for sid, taken in rows.items():
                merged.setdefault(sid, []).extend(taken)
            rows, reports = merged, kept_reports | reports
        if not rows and not reports:
            return True
        try:
            self._store.save_results(rows, reports)
        except Exception as exc:
            self.save_errors += 1
            if not unavailable(exc):  # refused: saving it again cannot succeed
                self._unsaved = ({}, {})
                log.error("scoring: the store refused the decisions of %d session(s) and %d "
                          "report(s) (a restart re-derives them): %s", len(rows), len(reports),
                          exc)  # fmt: skip
                return False
            self._unsaved = (rows, reports)
            log.error("scoring: cannot save the decisions of %d session(s) and %d report(s) "
                      "(kept; saved with the next results): %s", len(rows), len(reports), exc)
            return False
        self._unsaved = ({}, {})
        self.reports_saved += len(reports)
        return True

    def _close(
        self, track: _Track, sessions: list[str], times: list[float], rows: Rows
    ) -> dict[str, SessionReport]:
        slots = np.array([track.state.slot_of[sid] for sid in sessions], np.int32)
        ct = np.array(times, np.float64)
        decided = close_chunks(track.compiled, track.state, slots, ct)  # consumed part by part
        for sid, taken in self._rows(track, decided).items():
            rows.setdefault(sid, []).extend(taken)
        out = {
            sid: track.log.pop_report(int(slot), sid, span=span)
            for sid, slot, span in zip(sessions, slots, spans(track.state, slots, ct), strict=True)
        }
        track.state.release(sessions)
        for sid in sessions:
            del self._session_track[sid]
            del self._entries[sid]
            self._replayed.pop(sid, None)
        return out

    def forget(self, session: str) -> None:
        """Drop an open session's state without a report (it is rebuilt by `recover`)."""
        self._replayed.pop(session, None)
        track = self._session_track.pop(session, None)
        if track is not None:
            track.log.by_slot.pop(track.state.slot_of[session], None)
            track.state.release([session])
            self._entries.pop(session, None)
        self._broken.discard(session)

    # -------------------------------------------------------------------------- recovery

    def recover(self, skip: Collection[str] = frozenset()) -> Recovery:
        """Rebuild the state of every session the store holds open by replaying its stored
        batches (exact: the kernel does not depend on how batches are split), save the
        decisions a crash kept from being saved, and report closed sessions that have none.
        Sessions in `skip` (owned by another engine) are left alone."""
        result = Recovery()
        for record in self._store.sessions(status="open"):
            if record.info.session not in skip:
                self._replay(record, result)
        for record in self._store.sessions(status="closed"):
            sid = record.info.session
            if sid in skip:
                continue
            if self._store.report(sid) is None and self._replay(record, result):
                assert record.close_t is not None
                self.close(sid, record.close_t)
                result.reported += 1
        return result

    def _replay(self, record: SessionRecord, result: Recovery) -> bool:
        info = record.info
        entry = self._library.find(info.rubric, info.rubric_version, info.rubric_sha256)
        if entry is None:
            result.skipped.append(f"{info.session}: rubric {info.rubric} v{info.rubric_version} "
                                  f"({info.rubric_sha256[:12]}) is not in the library")
            return False
        self.forget(info.session)
        self.open(info.session, entry)
        rows: list[dict[str, Any]] = []
        last = -1
        try:
            for part in _chunks(self._store, info.session, self._library.layout(entry), result):
                rows += self.score([(info.session, part)], save=False).get(info.session, [])
                last = int(part.seq[-1])
        except AssessEngineError as exc:
            self.forget(info.session)
            result.skipped.append(f"{info.session}: cannot replay its stored batches: {exc}")
            return False
        missing = _missing(self._store.decisions(info.session), rows)
        if missing:
            self._store.save_decisions(info.session, missing)
            result.decisions_saved += len(missing)
        result.reopened += record.status == "open"
        if last >= 0:
            self._replayed[info.session] = last
        return True

    def _take_over(self, session: str) -> None:
        """`open(session, replay=True)`: rebuild the session's state from what the store
        holds now. The session stays open here even if the store holds it closed by now: its
        CLOSE (stored after the takeover, by this engine) is queued behind this and closes it."""
        record = self._store.session(session)
        if record is not None:
            self._replay(record, Recovery())

    def _unreplayed(self, session: str, cols: Columns) -> Columns:
        """The rows of `cols` after those replayed from the store (the batches stored before a
        takeover that are also queued to be scored)."""
        last = self._replayed[session]
        if not len(cols) or int(cols.seq[0]) > last:
            del self._replayed[session]  # past the replay: nothing more to skip
            return cols
        return cols.tail(min(len(cols), last + 1 - int(cols.seq[0])))

    def _rescore(self, session: str, close_t: float) -> SessionReport | None:
        """Close a session whose live state was spoiled: score it again from the store."""
        self.forget(session)
        record = self._store.session(session)
        if record is None or not self._replay(record, Recovery()) or session in self._broken:
            self.forget(session)
            log.error("session %r: no report (cannot re-score it from the store)", session)
            return None
        return self.close(session, close_t)


WARM_UP_CAPACITY: Final = MIN_CAPACITY
"""Session slots of the state `warm_up_kernel` steps: the fewest a state holds, whose arrays
numba types as every live state's (`scorer.MIN_CAPACITY`)."""


def prepare_kernel(
    library: RubricLibrary, *, meanwhile: Callable[[], object] | None = None
) -> bool:
    """What a starting command does before it scores (`serve`, the demo): wait for every
    rubric's fused step (`fused.wait_for`: a first run compiles them all at once, in child
    processes; `meanwhile` runs here while they do), then `warm_up_kernel` on them, so that a
    first run does not also compile the table-driven kernel, which would score only until
    they are ready (it still does for a rubric whose fused step failed). True when something
    was compiled (a first run)."""
    before = _kernel_compilations()
    compiled_fused = fused.wait_for(
        (library.compiled(entry) for entry in library.entries()), meanwhile=meanwhile
    )
    warm_up_kernel(library)
    return compiled_fused > 0 or _kernel_compilations() > before


def warm_up_kernel(library: RubricLibrary, *, table_only: bool = False) -> bool:
    """Compile every rubric of `library` and run the kernel and the copy into a step on every
    kind of batch the live paths hand it, in this process: decoded columns-v1 (read-only
    views: contiguous for one record, strided for several), decoded json-v1, batches read
    back from the store (plain arrays, whole or a tail) and one above the step's scratch
    (`SCRATCH_ROWS`: sub-steps), for a state of several slots, as a live state has. numba
    compiles a variant of a function per kind of array (layout, read-only or not); a variant
    missed here would be compiled inside the first batches that need it, under whatever
    waits for them. True when numba compiled something (a first
    run: minutes on a busy machine; it caches what it compiled on disk, so every later
    process, a scoring process included, loads it in about a second); False when all came
    from its cache. What waits for a scoring process to start (``scoring_start_timeout``)
    runs this first, so that the timeout never includes a first run's compile. The states
    step by the rubrics' fused steps where they are ready, else by the table-driven kernel;
    `table_only`: by the table-driven kernel alone (what scores a rubric whose fused step is
    not ready, such as one a trainer uploads while the engine runs)."""
    before = _kernel_compilations()
    for entry in library.entries():
        compiled = library.compiled(entry)
        state = ScoringState(compiled, WARM_UP_CAPACITY, table_only=table_only)
        batches = list(_warm_up_batches(library.layout(entry)))
        slots = state.open([f"warm-up-{k}" for k in range(len(batches))])  # each from seq 0
        for slot, cols in zip(slots.tolist(), batches, strict=True):
            step(compiled, state, _batch([(slot, cols)]))
        close(compiled, state, slots, np.zeros(len(slots)))
        spans(state, slots, np.zeros(len(slots)))  # as a live close reads its sessions' spans
    return _kernel_compilations() > before


def _warm_up_batches(layout: Layout) -> Iterator[Columns]:
    """Batches of each kind the live paths score (see `warm_up_kernel`), each starting at
    seq 0 with the first event of `layout` and no signal reported."""
    yield from warm_up_decoder(layout)
    for n in (1, 3):
        rows = Columns(np.arange(n, dtype=np.int64), np.zeros(n), np.zeros(n, np.int32),
                       np.full((len(layout.signal_names), n), np.nan))  # fmt: skip
        plain = decode_events({"encoding": JSON_V1, "first_seq": 0, "count": n},
                              encode_json_v1(rows, layout), layout)  # fmt: skip
        yield plain
        if n > 1:
            yield plain.tail(1)  # what a replay leaves of a batch (`Scorer._unreplayed`)
    n = SCRATCH_ROWS + 1  # a batch above the step's scratch: sub-steps on column slices
    yield Columns(np.arange(n, dtype=np.int64), np.zeros(n), np.zeros(n, np.int32),
                  np.full((len(layout.signal_names), n), np.nan))  # fmt: skip


def _kernel_compilations() -> int:
    """How many functions of the kernel, the codec and the fused steps (`runtime.fused`) this
    process compiled (numba's cache missed)."""
    table = sum(sum(f.stats.cache_misses.values()) for module in (kernel, codec_kernel)
                for f in vars(module).values() if isinstance(f, Dispatcher))  # fmt: skip
    return table + fused.compilations()


def guarded(what: str, action: Callable[..., object], *args: Any) -> bool:
    """Run a scorer action; an error is logged, never raised: False. Whoever scores (the
    engine's scoring thread or its scoring process) goes on: every batch is in the store, and
    the next restart, or the session's close, re-scores."""
    try:
        action(*args)
    except Exception:
        log.exception("scoring: %s failed", what)
        return False
    return True


GC_THRESHOLDS: Final = (50_000, 20, 10)
"""The cyclic collector's thresholds while an engine runs. Under load the engine keeps tens of
thousands of young containers alive for a while (queued batches, decisions awaiting their
session's close) and makes no garbage cycles of its own. With CPython's default (700, 10,
10) the collector made about 370 passes per 4.5 M-event benchmark round (64 KiB frames),
about 75 ms holding the GIL that both threads need; with these, two passes and 15 ms."""


def score_then_close(
    scorer: Scorer, batches: Sequence[tuple[str, Columns]], closing: Sequence[tuple[str, float]]
) -> int:
    """One submission of a scoring backend: `scorer.score(batches)` then
    `scorer.close_many(closing)`, each `guarded` (a failure of one is logged and does not stop
    the other), their decisions and reports saved in ONE store transaction (the rows stored
    are those of the two calls one after the other). Returns how many of the two failed."""
    scored: Rows = {}
    failed = 0
    if batches:
        failed += not guarded("score", _score_into, scorer, batches, scored)
    if closing or scored:
        close = functools.partial(scorer.close_many, scored=scored)
        failed += not guarded(f"close {len(closing)} session(s)", close, closing)
    return failed


def _score_into(scorer: Scorer, batches: Sequence[tuple[str, Columns]], out: Rows) -> None:
    out.update(scorer.score(batches, save=False))


def settle_collector() -> tuple[int, int, int]:
    """Once a serving process has loaded everything (modules, numba, pydantic schemas,
    rubrics), which lives as long as it does: keep that out of the collector's full passes
    (they paused the threads for 40-80 ms every few seconds under load: ACK latency p99) and
    set GC_THRESHOLDS. Returns the thresholds before."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return before


def _steps(parts: list[tuple[int, Columns]]) -> Iterator[list[tuple[int, Columns]]]:
    """`parts` in order, cut into kernel steps of at most SCRATCH_ROWS rows (a larger part is a
    step of its own): such a step reuses the state's work arrays and its columns stay in cache
    (a 250K-row step cost 1.35 times the CPU per event in the engine benchmark)."""
    chunk: list[tuple[int, Columns]] = []
    rows = 0
    for part in parts:
        n = len(part[1])
        if chunk and rows + n > SCRATCH_ROWS:
            yield chunk
            chunk, rows = [], 0
        chunk.append(part)
        rows += n
    if chunk:
        yield chunk


def _batch(parts: list[tuple[int, Columns]], views: bool = False) -> EventBatch:
    """One `EventBatch` of many sessions' columns. With `views` (the step is fused:
    `ScoringState.steps_fused`) and when the parts' columns are views of records lying back to
    back in one buffer (`adjacent_records`: a scoring process's submission), views spanning
    them all, no copy; else fresh C-contiguous writable arrays (decoded columns are read-only
    strided views, and every other array kind would make numba compile (and cache) the
    table-driven kernel once more)."""
    lengths = [len(cols) for _, cols in parts]
    slots = np.repeat(np.array([slot for slot, _ in parts], np.int32), lengths)
    spanned = adjacent_records([cols for _, cols in parts]) if views else None
    if spanned is not None:
        return EventBatch(slots, spanned.seq, spanned.t, spanned.event, spanned.signals)
    total = sum(lengths)
    seq, t = np.empty(total, np.int64), np.empty(total, np.float64)
    event = np.empty(total, np.int32)
    signals = np.empty((parts[0][1].signals.shape[0], total), np.float64)  # C order
    start = 0
    for (_, cols), n in zip(parts, lengths, strict=True):
        gather_columns(cols.seq, cols.t, cols.event, cols.signals, seq, t, event, signals, start)
        start += n
    return EventBatch(slots, seq, t, event, signals)


def _chunks(store: Store, session: str, layout: Layout, result: Recovery) -> Iterator[Columns]:
    """The session's stored events, decoded, in parts of about `REPLAY_ROWS` rows."""
    pending: list[Columns] = []
    rows = 0
    for batch in store.batches(session):
        cols = decode_events(batch.header, batch.payload, layout)
        result.batches += 1
        result.events += len(cols)
        pending.append(cols)
        rows += len(cols)
        if rows >= REPLAY_ROWS:
            yield _join(pending)
            pending, rows = [], 0
    if pending:
        yield _join(pending)


def _join(parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return Columns(
        np.concatenate([c.seq for c in parts]),
        np.concatenate([c.t for c in parts]),
        np.concatenate([c.event for c in parts]),
        np.concatenate([c.signals for c in parts], axis=1),
    )


def _missing(
    stored: Sequence[Mapping[str, Any]], replayed: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The replayed decision rows that are not stored yet (as a multiset, by canonical JSON)."""
    have = Counter(_canonical(row) for row in stored)
    out = []
    for row in replayed:
        key = _canonical(row)
        if have[key]:
            have[key] -= 1
        else:
            out.append(row)
    return out


def _canonical(row: Mapping[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"))
