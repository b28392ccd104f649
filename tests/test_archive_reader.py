"""The events reader: Parquet and Arrow IPC files of the archive's events layout into kernel
batches (per column, nulls as NaN, bounded pieces), and the rows it refuses, by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.archive.batches import BatchConverter, copy_finite
from assessengine.archive.layout import events_record_batch
from assessengine.archive.location import ArchiveError
from assessengine.archive.reader import EventsReader, event_batches
from assessengine.core.events import EventBatch
from assessengine.core.scenario import Scenario
from assessengine.sim.generate import SimBatch, simulate

from .archive_data import RUBRICS, old_layout

FS = LocalFileSystem()


@pytest.fixture(scope="module")
def run() -> tuple[Scenario, SimBatch]:
    rubric, scenario = load_rubric(RUBRICS["network-lab"])
    return scenario, simulate(scenario, "mixed", 3, seed=4, rubric=rubric.rubric)


def _record(scenario: Scenario, sim: SimBatch) -> pa.RecordBatch:
    return events_record_batch(scenario, sim.session_ids, sim.session, sim.seq, sim.t,
                               sim.event, sim.signals)  # fmt: skip


def _write(table: pa.Table, path: Path, kind: str) -> Path:
    if kind == "parquet":
        pq.write_table(table, path, compression="zstd", row_group_size=700)
    elif kind == "arrow-file":
        with pa.ipc.new_file(path, table.schema) as out:
            out.write_table(table, max_chunksize=700)
    else:
        with pa.ipc.new_stream(path, table.schema) as out:
            out.write_table(table, max_chunksize=700)
    return path


def _joined(pieces: list[EventBatch]) -> EventBatch:
    return EventBatch(*(np.concatenate([getattr(p, f) for p in pieces], axis=-1)
                        for f in ("session", "seq", "t", "event", "signals")))  # fmt: skip


@pytest.mark.parametrize("kind", ["parquet", "arrow-file", "arrow-stream"])
def test_a_file_reads_back_as_the_columns_it_was_written_from(
    kind: str, run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    path = _write(pa.Table.from_batches([_record(scenario, sim)]), tmp_path / "e", kind)
    reader = EventsReader(FS, str(path), scenario, session_ids=None, rows=500)
    pieces = list(reader)
    assert max(len(p) for p in pieces) <= 500
    got = _joined(pieces)
    assert reader.sessions_seen == list(sim.session_ids)
    assert np.array_equal(got.session, sim.session)
    assert np.array_equal(got.seq, sim.seq)
    assert np.array_equal(got.t, sim.t)
    assert np.array_equal(got.event, sim.event)
    assert np.array_equal(got.signals, sim.signals, equal_nan=True)
    assert np.isnan(sim.signals).any()  # values not reported (NaN in the file) came back
    for array in (got.session, got.seq, got.t, got.event, got.signals):
        assert array.flags.writeable
        assert array.flags.c_contiguous
    assert (got.session.dtype, got.seq.dtype, got.event.dtype) == (np.int32, np.int64, np.int32)


def test_sessions_asked_for_are_numbered_in_the_callers_order(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    path = _write(pa.Table.from_batches([_record(scenario, sim)]), tmp_path / "e", "parquet")
    wanted = [sim.session_ids[2], sim.session_ids[0]]
    got = _joined(list(event_batches(FS, str(path), scenario, session_ids=wanted)))
    keep = np.isin(sim.session, [2, 0])
    assert np.array_equal(got.seq, sim.seq[keep])
    assert np.array_equal(got.session, np.where(sim.session[keep] == 2, 0, 1))


def test_plain_string_columns_read_like_dictionary_ones(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    plain = table.set_column(0, "session", table.column("session").cast(pa.string()))
    plain = plain.set_column(3, "event", plain.column("event").cast(pa.string()))
    path = _write(plain, tmp_path / "e", "parquet")
    got = _joined(list(event_batches(FS, str(path), scenario, session_ids=None)))
    assert np.array_equal(got.event, sim.event)
    assert np.array_equal(got.session, sim.session)


def test_a_file_of_the_old_layout_with_null_signals_reads_as_the_new_one(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    assert table.column("signals").combine_chunks().field(0).null_count == 0  # NaN, not null
    old = old_layout(table)
    assert sum(old.column("signals").combine_chunks().field(k).null_count
               for k in range(len(scenario.signal_names))) > 0  # fmt: skip
    pq.write_table(old, tmp_path / "old.parquet", compression="zstd")  # the old writer's options
    new = _write(table, tmp_path / "new.parquet", "parquet")
    got_old = _joined(list(event_batches(FS, str(tmp_path / "old.parquet"), scenario,
                                         session_ids=None)))  # fmt: skip
    got_new = _joined(list(event_batches(FS, str(new), scenario, session_ids=None)))
    for name in ("session", "seq", "t", "event"):
        assert np.array_equal(getattr(got_old, name), getattr(got_new, name))
    assert np.array_equal(got_old.signals, got_new.signals, equal_nan=True)
    assert np.array_equal(got_new.signals, sim.signals, equal_nan=True)


def test_a_null_struct_row_reports_no_signal(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    struct = table.column("signals").combine_chunks()
    mask = np.zeros(len(struct), bool)
    mask[[1, 7]] = True
    nulled = pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type),
                                        mask=pa.array(mask))  # fmt: skip
    path = _write(table.set_column(4, "signals", nulled), tmp_path / "e", "parquet")
    got = _joined(list(event_batches(FS, str(path), scenario, session_ids=None)))
    assert np.isnan(got.signals[:, [1, 7]]).all()
    assert np.array_equal(got.signals[:, 2:7], sim.signals[:, 2:7], equal_nan=True)


def test_an_infinite_signal_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    signals = sim.signals.copy()
    signals[1, 612] = np.inf
    record = events_record_batch(scenario, sim.session_ids, sim.session, sim.seq, sim.t,
                                 sim.event, signals)  # fmt: skip
    path = _write(pa.Table.from_batches([record]), tmp_path / "e.parquet", "parquet")
    name = scenario.signal_names[1]
    with pytest.raises(ArchiveError, match=rf"e.parquet: row 612: signal '{name}' is inf, "
                       "expected a finite number"):  # fmt: skip
        list(event_batches(FS, str(path), scenario, session_ids=None, rows=200))


def test_an_unknown_event_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    names = table.column("event").cast(pa.string()).to_pylist()
    names[601] = "teleport"
    path = _write(table.set_column(3, "event", pa.array(names)), tmp_path / "e.parquet",
                  "parquet")  # fmt: skip
    with pytest.raises(ArchiveError, match=r"e.parquet: row 601: event 'teleport' is not an "
                       "event of scenario 'network-lab'"):  # fmt: skip
        list(event_batches(FS, str(path), scenario, session_ids=None, rows=200))


def test_a_null_seq_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    seq = table.column("seq").to_pylist()
    seq[42] = None
    path = _write(table.set_column(1, "seq", pa.array(seq, pa.int64())), tmp_path / "e.parquet",
                  "parquet")  # fmt: skip
    with pytest.raises(ArchiveError, match=r"e.parquet: row 42: column 'seq' is null"):
        list(event_batches(FS, str(path), scenario, session_ids=None))


@pytest.mark.parametrize("kind", ["arrow-file", "arrow-stream"])
@pytest.mark.parametrize("column", ["session", "event"])
def test_a_null_in_a_dictionary_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path, column: str, kind: str
) -> None:
    """A row whose dictionary index is valid but points at a null dictionary value is null
    (Arrow's logical nulls; Parquet cannot write such a dictionary, Arrow IPC can): refused
    naming the row, as a null index is. A null session id had been numbered as a session
    named None (`score` on the file then stopped on a KeyError), and a null event was
    reported as "event None is not an event of scenario ..."."""
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    k = table.schema.get_field_index(column)
    values = table.column(column).combine_chunks()
    dictionary = values.dictionary.to_pylist()
    indices = values.indices.to_pylist()
    indices[42] = len(dictionary)  # the null added to the dictionary below
    nulled = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()),
                                            pa.array([*dictionary, None], pa.string()))  # fmt: skip
    assert nulled.null_count == 0  # valid indices: only the dictionary holds the null
    path = _write(table.set_column(k, column, nulled), tmp_path / "e.arrow", kind)
    with pytest.raises(ArchiveError, match=rf"e.arrow: row 42: column '{column}' is null"):
        list(event_batches(FS, str(path), scenario, session_ids=None))


@pytest.mark.parametrize("index", [-1, 1000])
@pytest.mark.parametrize("column", ["session", "event"])
def test_a_dictionary_index_outside_the_dictionary_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path, column: str, index: int
) -> None:
    """An Arrow IPC file is read without a full validation, so a corrupt dictionary index is
    found by the reader: refused naming the row. It had been scored as another event when
    the scenario had that code (the lookup of an unchanged dictionary is the index itself),
    or stopped on a ScoringError about a session slot."""
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    k = table.schema.get_field_index(column)
    values = table.column(column).combine_chunks()
    indices = values.indices.to_pylist()
    indices[42] = index
    corrupt = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), values.dictionary,
                                             safe=False)  # fmt: skip
    path = _write(table.set_column(k, column, corrupt), tmp_path / "e.arrow", "arrow-file")
    with pytest.raises(ArchiveError, match=rf"e.arrow: row 42: column '{column}' has a "
                                           "dictionary index outside its dictionary"):
        list(event_batches(FS, str(path), scenario, session_ids=None))


def test_a_file_of_another_format_is_named(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, _ = run
    path = tmp_path / "e.csv"
    path.write_text("session,seq\nS1,0\n")
    with pytest.raises(ArchiveError, match=r"e.csv: not a readable Parquet file"):
        list(event_batches(FS, str(path), scenario, session_ids=None))


def test_a_truncated_arrow_file_is_named(run: tuple[Scenario, SimBatch], tmp_path: Path) -> None:
    scenario, sim = run
    path = _write(pa.Table.from_batches([_record(scenario, sim)]), tmp_path / "e.arrow",
                  "arrow-file")  # fmt: skip
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ArchiveError, match=r"e.arrow: not a readable Arrow IPC file"):
        list(event_batches(FS, str(path), scenario, session_ids=None))


@pytest.mark.parametrize("row", [0, 5, 999])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_the_signal_copy_names_the_first_infinite_row(row: int, value: float) -> None:
    values = np.linspace(0.0, 1.0, 1000)
    values[::7] = np.nan  # not reported: copied, not refused
    values[row] = value
    values[row + 1:] = np.where(np.arange(row + 1, 1000) % 3 == 0, np.inf, values[row + 1:])
    out = np.empty_like(values)
    assert copy_finite(values, out) == row
    assert np.array_equal(out, values, equal_nan=True)


def test_the_signal_copy_of_finite_values_and_nan_refuses_nothing() -> None:
    values = np.linspace(-5.0, 5.0, 333)
    values[::4] = np.nan
    out = np.empty_like(values)
    assert copy_finite(values, out) == -1
    assert np.array_equal(out, values, equal_nan=True)


SESSION_DICTIONARIES = (["S0", "S1", "S2"], ["S2", "S0", "S5", "S1"], ["S7"], ["S1", "S0"])


def _dictionary_record(
    scenario: Scenario, sessions: tuple[int, list[int]], events: tuple[list[str], list[int]],
) -> pa.RecordBatch:
    """A record batch whose ``session`` and ``event`` columns have the given dictionaries
    (session: an index into SESSION_DICTIONARIES) and row indices."""
    n = len(sessions[1])
    dictionary = SESSION_DICTIONARIES[sessions[0]]
    signals = pa.StructArray.from_arrays([pa.array(np.ones(n)) for _ in scenario.signal_names],
                                         names=list(scenario.signal_names))  # fmt: skip
    return pa.RecordBatch.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array(sessions[1], pa.int32()), pa.array(dictionary)),
        pa.array(np.arange(n, dtype=np.int64)), pa.array(np.arange(n, dtype=np.float64)),
        pa.DictionaryArray.from_arrays(pa.array(events[1], pa.int32()), pa.array(events[0])),
        signals,
    ], names=["session", "seq", "t", "event", "signals"])  # fmt: skip


@st.composite
def _records(draw: st.DrawFn, event_names: tuple[str, ...]) -> list[tuple[Any, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        d = draw(st.integers(0, len(SESSION_DICTIONARIES) - 1))
        n = draw(st.integers(1, 12))
        rows = draw(st.lists(st.integers(0, len(SESSION_DICTIONARIES[d]) - 1), min_size=n,
                             max_size=n))  # fmt: skip
        names = draw(st.permutations(event_names))[: draw(st.integers(1, len(event_names)))]
        codes = draw(st.lists(st.integers(0, len(names) - 1), min_size=n, max_size=n))
        out.append(((d, rows), (list(names), codes)))
    return out


@settings(max_examples=100, deadline=None)
@given(data=st.data(), fixed=st.booleans())
def test_codes_follow_each_batchs_own_dictionary(
    run: tuple[Scenario, SimBatch], data: st.DataObject, fixed: bool
) -> None:
    """Batches with changing, repeated and permuted dictionaries (the lookup table is kept
    between batches with equal dictionaries): every row's session and event code is its
    string's, sessions numbered by first appearance in the dictionaries (or the caller's
    order, other sessions' rows dropped)."""
    scenario, _ = run
    batches = data.draw(_records(scenario.event_names))
    wanted = ["S1", "S5", "S0"] if fixed else None
    convert = BatchConverter(scenario, where="d.arrow", session_ids=wanted)
    numbered: dict[str, int] = {sid: k for k, sid in enumerate(wanted or ())}
    for sessions, events in batches:
        record = _dictionary_record(scenario, sessions, events)
        convert.check_schema(record.schema)
        dictionary = SESSION_DICTIONARIES[sessions[0]]
        if not fixed:
            for name in dictionary:
                numbered.setdefault(name, len(numbered))
        expected = [(numbered.get(dictionary[i], -1), scenario.event_names.index(events[0][e]))
                    for i, e in zip(sessions[1], events[1], strict=True)]  # fmt: skip
        expected = [pair for pair in expected if pair[0] >= 0]
        batch = convert(record)
        got = [] if batch is None else list(zip(batch.session.tolist(), batch.event.tolist(),
                                                strict=True))  # fmt: skip
        assert got == expected
    if not fixed:
        assert convert.sessions_seen == list(numbered)


def test_an_unknown_event_in_a_later_dictionary_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch],
) -> None:
    scenario, _ = run
    convert = BatchConverter(scenario, where="d.arrow")
    known = list(scenario.event_names[:2])
    first = _dictionary_record(scenario, (0, [0, 1]), (known, [0, 1]))
    convert.check_schema(first.schema)
    assert convert(first, first_row=0) is not None
    assert convert(first, first_row=2) is not None  # the same dictionary again
    later = _dictionary_record(scenario, (0, [0, 1, 2]), ([*known, "teleport"], [1, 0, 2]))
    with pytest.raises(ArchiveError, match=r"^d.arrow: row 6: event 'teleport' is not an "
                       "event of scenario 'network-lab'$"):  # fmt: skip
        convert(later, first_row=4)


def test_a_dictionary_shared_by_a_files_batches_is_looked_up_once(
    run: tuple[Scenario, SimBatch], tmp_path: Path
) -> None:
    scenario, sim = run
    path = _write(pa.Table.from_batches([_record(scenario, sim)]), tmp_path / "e.arrow",
                  "arrow-file")  # fmt: skip
    reader = EventsReader(FS, str(path), scenario, session_ids=None, rows=200)
    lookups: list[int] = []
    number = reader.convert._number_sessions

    def counted(names: list[str]) -> list[int]:
        lookups.append(len(names))
        return number(names)

    reader.convert._session_lookup._lookup = counted
    batches = list(reader)
    assert len(batches) >= 3
    assert lookups == [len(sim.session_ids)]


@pytest.mark.parametrize("kind", ["parquet", "arrow-file"])
@pytest.mark.parametrize("bad", ["", "bad/id", "x" * 129])
def test_a_session_id_that_breaks_the_id_rule_is_refused_naming_the_row(
    run: tuple[Scenario, SimBatch], tmp_path: Path, kind: str, bad: str
) -> None:
    """Parquet and Arrow input hold session ids to the id rule (`core.ids`) as JSON Lines,
    CSV and the wire do: an empty id or ``bad/id`` had been scored as a session (found by
    fuzzing)."""
    scenario, sim = run
    table = pa.Table.from_batches([_record(scenario, sim)])
    k = table.schema.get_field_index("session")
    values = table.column("session").combine_chunks()
    dictionary = values.dictionary.to_pylist()
    indices = values.indices.to_pylist()
    indices[42] = len(dictionary)
    renamed = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()),
                                             pa.array([*dictionary, bad], pa.string()))  # fmt: skip
    path = _write(table.set_column(k, "session", renamed), tmp_path / "e.arrow", kind)
    with pytest.raises(ArchiveError, match=r"e.arrow: row 42: session (.* is not a valid id|"
                                           r"has 129 characters)"):  # fmt: skip
        list(event_batches(FS, str(path), scenario, session_ids=None))
