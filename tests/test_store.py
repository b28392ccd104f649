"""The store port: one suite run on both implementations (the in-memory fake and SQLite on a
real temporary file), then what only a file can show (reopening, WAL readers, bad files)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from assessengine.core import chain
from assessengine.storage.memory import MemoryStore
from assessengine.storage.migrate import head_version
from assessengine.storage.port import (
    BatchRefusedError,
    SessionInfo,
    SessionRecord,
    Store,
    StoreError,
)
from assessengine.storage.postgres import PostgresStore
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import edit_payload

Tamper = Callable[[Store, str, int], None]


def info(session: str = "S1", **changes: Any) -> SessionInfo:
    base = SessionInfo(
        session=session,
        learner="L1",
        scenario="forklift-warehouse",
        rubric="forklift-load-handling",
        rubric_version=1,
        rubric_sha256="ab" * 32,
        metadata={"site": "north", "attempt": 2},
    )
    return replace(base, **changes)


def item(
    session: str, first_seq: int, count: int = 10, *, fill: int = 0
) -> tuple[str, int, int, str, bytes, bytes]:
    header = f'{{"first_seq":{first_seq},"count":{count}}}'.encode()
    return (session, first_seq, count, "columns-v1", header, bytes([fill]) * (60 * count))


# ------------------------------------------------------------------------------ fixtures


class Stores:
    """Opens stores of one kind (SQLite: always on the same file; PostgreSQL: always on the
    same database) and closes them all."""

    def __init__(self, kind: str, path: Path, url: str = "") -> None:
        self.kind, self.path, self.url = kind, path, url
        self.opened: list[Store] = []

    @property
    def target(self) -> str:
        """What `open_store` opens: the file's path or the database's URL."""
        return self.url if self.kind == "postgres" else str(self.path)

    def open(self) -> Store:
        store: Store
        if self.kind == "sqlite":
            store = SqliteStore(self.path)
        elif self.kind == "postgres":
            store = PostgresStore(self.url)
        else:
            store = MemoryStore()
        self.opened.append(store)
        return store

    def tamper_payload(self, store: Store, session: str, index: int) -> None:
        """Flip one byte of a stored payload behind the store's back."""
        if isinstance(store, MemoryStore):
            batches = store._sessions[session].batches
            payload = bytearray(batches[index].payload)
            payload[7] ^= 0xFF
            batches[index] = replace(batches[index], payload=bytes(payload))
            return
        if self.kind == "postgres":
            with psycopg.connect(self.url) as conn:
                conn.execute(
                    "UPDATE batches b SET payload = overlay(b.payload PLACING "
                    "set_byte('\\x00'::bytea, 0, get_byte(b.payload, 7) # 255) FROM 8 FOR 1) "
                    "FROM sessions s WHERE s.id = b.session_id AND s.session = %s "
                    "AND b.idx = %s",
                    (session, index),
                )
            return
        edit_payload(self.path, "s.session = ? AND b.idx = ?", (session, index),
                     lambda payload: payload.__setitem__(7, payload[7] ^ 0xFF))


BACKENDS = ["memory", "sqlite", "postgres"]
"""Every `Store`: the contract tests run on each (postgres: on the tests' own server)."""


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    url = request.getfixturevalue("pg_store_url") if request.param == "postgres" else ""
    opened = Stores(request.param, tmp_path / "store.db", url)
    yield opened
    for store in opened.opened:
        store.close()


@pytest.fixture
def store(stores: Stores) -> Store:
    return stores.open()


@pytest.fixture(params=["sqlite", "postgres"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Stores that outlive the object (a file, a database): reopened, shared, killed."""
    url = request.getfixturevalue("pg_store_url") if request.param == "postgres" else ""
    opened = Stores(request.param, tmp_path / "store.db", url)
    yield opened
    for store in opened.opened:
        store.close()


# ------------------------------------------------------------------------------ sessions


def test_fresh_session_expects_seq_0_and_its_chain_head_is_the_genesis(store: Store) -> None:
    record = store.open_session(info())
    assert record.status == "open"
    assert record.next_seq == 0
    assert record.batches == 0
    assert record.chain_head == chain.genesis(info())
    assert record.info == info()
    assert record.opened_at.endswith("Z")
    assert record.close_t is None


def test_reopening_with_identical_info_returns_the_stored_session(store: Store) -> None:
    first = store.open_session(info())
    store.append_batches([item("S1", 0)])
    again = store.open_session(info(metadata={"attempt": 2, "site": "north"}))
    assert again.opened_at == first.opened_at
    assert again.next_seq == 10
    assert again.batches == 1


def test_reopening_with_different_info_is_refused_naming_the_field(store: Store) -> None:
    store.open_session(info())
    with pytest.raises(StoreError, match=r"'S1' already exists with different info \(learner"):
        store.open_session(info(learner="L2"))


def test_metadata_that_is_not_plain_json_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="metadata must be plain JSON"):
        store.open_session(info(metadata={"x": float("nan")}))
    assert store.session("S1") is None


def test_unknown_session_is_none(store: Store) -> None:
    assert store.session("nope") is None


def test_sessions_are_listed_in_open_order_and_by_status(store: Store) -> None:
    for sid in ("B", "A", "C"):
        store.open_session(info(sid))
    store.close_session("A", 12.5)
    assert [r.info.session for r in store.sessions()] == ["B", "A", "C"]
    assert [r.info.session for r in store.sessions(status="open")] == ["B", "C"]
    (closed,) = store.sessions(status="closed")
    assert closed.info.session == "A"
    assert closed.close_t == 12.5
    assert closed.closed_at is not None
    assert closed.closed_at.endswith("Z")


def test_close_is_idempotent_for_the_same_close_t_only(store: Store) -> None:
    store.open_session(info())
    first = store.close_session("S1", 30.0)
    assert store.close_session("S1", 30.0) == first
    with pytest.raises(StoreError, match=r"already closed at t=30\.0, not t=31\.0"):
        store.close_session("S1", 31.0)


def test_closing_an_unknown_session_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown session 'nope'"):
        store.close_session("nope", 1.0)


def test_open_sessions_opens_many_and_answers_each_on_its_own(store: Store) -> None:
    first = store.open_session(info("S1"))
    store.append_batches([item("S1", 0)])
    results = store.open_sessions(
        [info("S2"), info("S1"), info("S3", learner="L9"), info(""),
         info("S5", learner="L2")]
    )  # fmt: skip
    opened_s2, reopened_s1, opened_s3, bad, opened_s5 = results
    assert isinstance(opened_s2, SessionRecord)
    assert (opened_s2.status, opened_s2.next_seq, opened_s2.batches) == ("open", 0, 0)
    assert isinstance(reopened_s1, SessionRecord)
    assert reopened_s1.next_seq == 10  # the stored session, as open_session gives it
    assert reopened_s1.chain_head != first.chain_head
    assert isinstance(opened_s3, SessionRecord)
    assert opened_s3.info.learner == "L9"
    assert isinstance(bad, StoreError)
    assert isinstance(opened_s5, SessionRecord)
    conflict, again = store.open_sessions([info("S5"), info("S5", learner="L2")])
    assert isinstance(conflict, StoreError)
    assert "exists with different" in str(conflict)
    assert again == opened_s5
    assert [r.info.session for r in store.sessions()] == ["S1", "S2", "S3", "S5"]
    assert store.open_sessions([]) == []


def test_close_sessions_closes_many_and_answers_each_on_its_own(store: Store) -> None:
    for sid in ("S1", "S2", "S3"):
        store.open_session(info(sid))
    store.append_batches([item("S2", 0)])
    store.close_session("S3", 5.0)
    results = store.close_sessions([("S1", 10.0), ("nope", 1.0), ("S2", 20.0), ("S3", 6.0)])
    closed_s1, unknown, closed_s2, reclosed = results
    assert isinstance(closed_s1, SessionRecord)
    assert closed_s1.status == "closed"
    assert closed_s1.close_t == 10.0
    assert isinstance(unknown, StoreError)
    assert "unknown session 'nope'" in str(unknown)
    assert isinstance(closed_s2, SessionRecord)
    assert closed_s2.next_seq == 10
    assert isinstance(reclosed, StoreError)
    assert "not t=6.0" in str(reclosed)
    records = [store.session(s) for s in ("S1", "S2", "S3")]
    assert [(r.status, r.close_t) for r in records if r] == [
        ("closed", 10.0), ("closed", 20.0), ("closed", 5.0)
    ]


# ------------------------------------------------------------------------------ batches


def test_appends_advance_next_seq_and_return_their_chain_values(store: Store) -> None:
    store.open_session(info())
    stored = store.append_batches([item("S1", 0, 10), item("S1", 10, 5)])
    stored += store.append_batches([item("S1", 15, 1)])
    assert [(b.index, b.first_seq, b.count) for b in stored] == [(0, 0, 10), (1, 10, 5), (2, 15, 1)]
    record = store.session("S1")
    assert record is not None
    assert (record.next_seq, record.batches, record.chain_head) == (16, 3, stored[-1].chain)
    assert list(store.batches("S1")) == stored


def test_chain_values_are_those_of_core_chain(store: Store) -> None:
    store.open_session(info())
    items = [item("S1", 0, 3, fill=1), item("S1", 3, 4, fill=2)]
    stored = store.append_batches(items)
    prev = chain.genesis(info())
    for (_, _, _, _, header, payload), batch in zip(items, stored, strict=True):
        prev = chain.next_chain(prev, header, payload)
        assert batch.chain == prev
    assert chain.verify_chain(chain.genesis(info()), store.batches("S1")) is None


def test_stored_batches_keep_header_payload_and_encoding_as_they_arrived(store: Store) -> None:
    store.open_session(info())
    sent = ("S1", 0, 2, "json-v1", b'{"encoding":"json-v1"}', b'[{"seq":0},{"seq":1}]')
    store.append_batches([sent])
    (batch,) = store.batches("S1")
    assert (batch.session, batch.first_seq, batch.count, batch.encoding) == sent[:4]
    assert (batch.header, batch.payload) == sent[4:]
    assert batch.received_at.endswith("Z")


def test_one_group_appends_to_many_sessions(store: Store) -> None:
    for sid in ("A", "B"):
        store.open_session(info(sid))
    store.append_batches([item("A", 0, 2), item("B", 0, 3), item("A", 2, 2)])
    a, b = store.session("A"), store.session("B")
    assert a is not None
    assert b is not None
    assert (a.next_seq, a.batches, b.next_seq, b.batches) == (4, 2, 3, 1)


def test_a_wrong_first_seq_refuses_the_whole_group(store: Store) -> None:
    for sid in ("A", "B"):
        store.open_session(info(sid))
    with pytest.raises(BatchRefusedError, match="starts at seq 7, the session expects seq 0") as e:
        store.append_batches([item("A", 0), item("B", 7)])
    assert (e.value.index, e.value.session, e.value.expected_seq) == (1, "B", 0)
    assert list(store.batches("A")) == []
    assert list(store.batches("B")) == []
    record = store.session("A")
    assert record is not None
    assert record.next_seq == 0


def test_a_resent_batch_is_refused_with_the_seq_expected(store: Store) -> None:
    store.open_session(info())
    store.append_batches([item("S1", 0)])
    with pytest.raises(BatchRefusedError) as e:
        store.append_batches([item("S1", 0)])
    assert e.value.expected_seq == 10
    assert len(list(store.batches("S1"))) == 1


def test_batches_for_an_unknown_or_closed_session_are_refused(store: Store) -> None:
    store.open_session(info())
    store.close_session("S1", 5.0)
    with pytest.raises(BatchRefusedError, match="unknown session 'nope'"):
        store.append_batches([item("nope", 0)])
    with pytest.raises(BatchRefusedError, match="'S1' is closed"):
        store.append_batches([item("S1", 0)])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("S1", -1, 1, "json-v1", b"", b""), "first_seq must be an integer >= 0"),
        (("S1", 0, 0, "json-v1", b"", b""), "count must be an integer >= 1"),
        (("S1", 0, 1, "", b"", b""), "encoding must be a non-empty string"),
        (("S1", 0, 1, "json-v1", "text", b""), "header must be bytes"),
    ],
)
def test_malformed_items_are_refused(
    store: Store, bad: tuple[str, int, int, str, bytes, bytes], message: str
) -> None:
    store.open_session(info())
    with pytest.raises(BatchRefusedError, match=message):
        store.append_batches([bad])


def test_a_tampered_payload_breaks_the_chain_at_that_batch(stores: Stores, store: Store) -> None:
    store.open_session(info())
    store.append_batches([item("S1", 10 * k, fill=k) for k in range(4)])
    stores.tamper_payload(store, "S1", 2)
    assert chain.verify_chain(chain.genesis(info()), store.batches("S1")) == 2


def test_batches_of_an_unknown_session_are_refused_at_once(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown session"):
        store.batches("nope")


def test_payloads_round_trip_exactly_whatever_their_size_or_kind(store: Store) -> None:
    store.open_session(info())
    big = bytes(range(256)) * (4 * 2**12)  # 4 MiB
    view = memoryview(b"a received frame: " + bytes(range(256)))[18:]  # read-only, no copy
    sent = [("S1", 0, 1, "json-v1", b"{}", b""), ("S1", 1, 1, "columns-v1", b"h", big),
            ("S1", 2, 1, "columns-v1", b"\x00\xff", view)]  # fmt: skip
    stored = store.append_batches(sent)
    got = list(store.batches("S1"))
    assert [b.payload for b in got] == [b"", big, bytes(range(256))]
    assert all(type(b.payload) is bytes and type(b.header) is bytes for b in got)
    assert [b.chain for b in got] == [b.chain for b in stored]
    assert chain.verify_chain(chain.genesis(info()), got) is None


def test_a_group_of_many_batches_lands_whole_and_in_order(store: Store) -> None:
    for sid in ("A", "B"):
        store.open_session(info(sid))
    group = [item("A" if k % 3 else "B", 0, 1, fill=k % 256) for k in range(1200)]
    seqs = {"A": 0, "B": 0}
    for k, (sid, *rest) in enumerate(group):
        group[k] = (sid, seqs[sid], *rest[1:])
        seqs[sid] += 1
    store.append_batches(group)
    for sid in ("A", "B"):
        got = list(store.batches(sid))
        assert [b.first_seq for b in got] == list(range(seqs[sid]))
        assert [b.payload for b in got] == [g[5] for g in group if g[0] == sid]
        assert chain.verify_chain(chain.genesis(info(sid)), got) is None


def test_writers_racing_on_one_session_keep_one_unbroken_chain(durable: Stores) -> None:
    """Two stores (two processes' worth of connections) append to one session at once, each
    taking the seq the store says is next and retrying when the other got there first."""
    first, second = durable.open(), durable.open()
    first.open_session(info())
    errors: list[BaseException] = []

    def write(store: Store, fill: int) -> None:
        try:
            stored = 0
            while stored < 40:
                record = store.session("S1")
                assert record is not None
                with contextlib.suppress(BatchRefusedError):  # the other one was first
                    store.append_batches([item("S1", record.next_seq, 2, fill=fill)])
                    stored += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, f)) for s, f in ((first, 1), (second, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    batches = list(first.batches("S1"))
    assert [b.first_seq for b in batches] == list(range(0, 160, 2))
    assert sorted(b.payload[0] for b in batches) == [1] * 40 + [2] * 40
    assert chain.verify_chain(chain.genesis(info()), batches) is None


# ------------------------------------------------------------------------------ results


def test_decisions_round_trip_in_order(store: Store) -> None:
    store.open_session(info())
    rows = [
        {"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4, "values": {"v": 9.5}}},
        {"criterion": "belt", "verdict": "pass", "evidence": {"seq": None, "span": (1, 2)}},
    ]
    store.save_decisions("S1", rows[:1])
    store.save_decisions("S1", rows[1:])
    got = store.decisions("S1")
    assert got[0] == rows[0]
    expected = {"criterion": "belt", "verdict": "pass", "evidence": {"seq": None, "span": [1, 2]}}
    assert got[1] == expected  # the tuple comes back as a JSON list


def test_a_criterions_decision_is_kept_once_whoever_saves_it_again(store: Store) -> None:
    """Two engines that derived the same decision (a takeover's replay, the old owner after
    an outage) both save it: it is stored once, the first kept."""
    store.open_session(info())
    speed = {"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4}}
    belt = {"criterion": "belt", "verdict": "pass", "evidence": {"seq": 9}}
    store.save_decisions("S1", [speed])
    store.save_results({"S1": [speed, belt, belt]}, {})
    store.save_decisions("S1", [{"criterion": "speed", "verdict": "pass", "evidence": {}}])
    assert store.decisions("S1") == [speed, belt]


def test_a_decision_without_evidence_is_refused(store: Store) -> None:
    store.open_session(info())
    with pytest.raises(StoreError, match="decision 0 needs an 'evidence' mapping"):
        store.save_decisions("S1", [{"criterion": "c", "verdict": "pass"}])
    assert store.decisions("S1") == []


def test_a_report_round_trips_and_is_replaced(store: Store) -> None:
    store.open_session(info())
    assert store.report("S1") is None
    report = {"session": "S1", "score": 87.5, "criteria": [{"id": "c", "verdict": "pass"}]}
    store.save_report("S1", report)
    assert store.report("S1") == report
    store.save_report("S1", {**report, "score": 90.0})
    assert store.report("S1") == {**report, "score": 90.0}


def test_a_second_final_save_of_a_session_stores_nothing_twice(store: Store) -> None:
    """Two engines that both derived a session's final results (an owner's lock lost in a
    store outage, the session taken over and reported meanwhile) store them once: the first
    final save (decisions with the report) wins, a later one of the same session is left out
    of its save, the other sessions of that save are kept."""
    store.open_session(info("S1"))
    store.open_session(info("S2"))
    row = {"criterion": "c", "verdict": "fail", "evidence": {"t": 1.0}}
    store.save_results({"S1": [row]}, {"S1": {"score": 0.0}})
    store.save_results({"S1": [row], "S2": [row]}, {"S1": {"score": 0.0}, "S2": {"score": 1.0}})
    assert store.decisions("S1") == [row]
    assert store.decisions("S2") == [row]
    assert store.report("S2") == {"score": 1.0}
    later = {"criterion": "d", "verdict": "pass", "evidence": {}}
    store.save_results({"S1": [later]}, {})  # decisions without a report: the owner's, kept
    assert store.decisions("S1") == [row, later]


def test_results_of_an_unknown_session_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown session"):
        store.save_report("nope", {})
    with pytest.raises(StoreError, match="unknown session"):
        store.save_decisions("nope", [])


def test_sqlite_looks_a_session_up_once_for_its_results(tmp_path: Path) -> None:
    """Results are saved at every scoring step: the session's row id is read once, then
    cached (rows of `sessions` are never deleted or renumbered)."""
    with SqliteStore(tmp_path / "s.db") as store:
        store.open_session(info("S1"))
        store.open_session(info("S2"))
        lookups: list[str] = []
        assert store._db is not None
        store._db.set_trace_callback(lambda sql: lookups.append(sql) if "FROM sessions" in sql
                                     else None)  # fmt: skip
        for k in range(3):
            row = {"criterion": f"c{k}", "verdict": "pass", "evidence": {}}
            store.save_results({"S1": [row], "S2": [row]}, {})
        store.save_report("S1", {"score": 1.0})
        assert len(lookups) == 2
        assert len(store.decisions("S1")) == 3
        with pytest.raises(StoreError, match="unknown session"):
            store.save_results({"nope": [row]}, {})


def test_open_and_close_return_the_records_a_read_gives(store: Store) -> None:
    """`open_sessions` / `close_sessions` answer with what they wrote (no read back): each
    record equals what `session` reads afterwards, fresh, re-opened, with batches, closed and
    closed again."""
    opened = store.open_sessions([info("S1"), info("S2", metadata={"shift": {"n": 2}})])
    assert opened == [store.session("S1"), store.session("S2")]
    store.append_batches([item("S1", 0), item("S1", 10)])
    again = store.open_session(info("S1"))
    assert again == store.session("S1")
    assert (again.next_seq, again.batches) == (20, 2)
    closed = store.close_sessions([("S1", 7.5), ("S2", 0.0), ("nope", 1.0)])
    assert closed[:2] == [store.session("S1"), store.session("S2")]
    assert isinstance(closed[2], StoreError)
    first = closed[0]
    assert isinstance(first, SessionRecord)
    assert (first.status, first.close_t, first.next_seq, first.batches) == ("closed", 7.5, 20, 2)
    assert store.close_session("S1", 7.5) == first
    assert store.open_session(info("S1")) == first


# ------------------------------------------------------------------------------ lifecycle


def test_close_is_idempotent_and_later_calls_are_refused(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.session("S1")


# ================================================================================ SQLite only


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "engine.db"


def test_everything_persists_across_reopening_the_store(durable: Stores) -> None:
    with durable.open() as first:  # type: ignore[attr-defined]
        first.open_session(info())
        stored = first.append_batches([item("S1", 0), item("S1", 10)])
        first.close_session("S1", 42.0)
        first.save_decisions("S1", [{"criterion": "c", "verdict": "pass", "evidence": {}}])
        first.save_report("S1", {"score": 100.0})
        before = first.session("S1")
    with durable.open() as second:  # type: ignore[attr-defined]
        assert second.session("S1") == before
        assert list(second.batches("S1")) == stored
        assert second.decisions("S1") == [{"criterion": "c", "verdict": "pass", "evidence": {}}]
        assert second.report("S1") == {"score": 100.0}


def test_the_file_is_in_wal_mode_with_foreign_keys_and_a_schema_version(db_path: Path) -> None:
    SqliteStore(db_path).close()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == head_version()
        db.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO decisions VALUES (1, 99, 'c', 'pass', '{}', 'now')")
    finally:
        db.close()


def test_a_reader_connection_reads_while_the_writer_appends(db_path: Path) -> None:
    writer = SqliteStore(db_path)
    reader = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.open_session(info())
        writer.append_batches([item("S1", 0)])
        reader.execute("BEGIN")  # a read snapshot held open across the writer's commits
        assert reader.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 1
        writer.append_batches([item("S1", 10), item("S1", 20)])  # not blocked by the reader
        assert reader.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 3
    finally:
        reader.close()
        writer.close()


def test_two_writers_append_to_one_session_in_turn_and_the_chain_holds(durable: Stores) -> None:
    """A store keeps each session's chain head after its own appends; a commit by another
    connection (the API's store beside the engine's) must make it read the head again."""
    engine, api = durable.open(), durable.open()
    engine.open_session(info())
    for k in range(8):
        (engine if k % 2 == 0 else api).append_batches([item("S1", 10 * k, fill=k)])
    record = engine.session("S1")
    assert record is not None
    assert (record.next_seq, record.batches) == (80, 8)
    assert chain.verify_chain(chain.genesis(record.info), engine.batches("S1")) is None


def test_a_store_reads_a_head_once_then_appends_from_memory_until_the_session_closes(
    db_path: Path,
) -> None:
    store = SqliteStore(db_path)
    try:
        store.open_session(info())
        store.append_batches([item("S1", 0)])
        statements: list[str] = []
        store._connection().set_trace_callback(statements.append)
        store.append_batches([item("S1", 10)])
        store.append_batches([item("S1", 20)])
        assert not [s for s in statements if "FROM sessions" in s]  # no head query
        store.close_session("S1", 99.0)
        with pytest.raises(BatchRefusedError, match="is closed"):
            store.append_batches([item("S1", 30)])
    finally:
        store.close()


def test_sqlite_open_and_close_read_a_session_once_and_never_read_it_back(db_path: Path) -> None:
    """Issue #22 item 4: an OPEN of a new session is one lookup and its INSERT, a CLOSE one
    lookup and its UPDATE; neither reads the session back after writing it (the store knows
    the row it wrote). A repeated OPEN or CLOSE is the lookup alone."""
    with SqliteStore(db_path) as store:
        statements: list[str] = []
        store._connection().set_trace_callback(statements.append)

        def writes() -> list[str]:  # the trace repeats a statement for each trigger it fires
            unique = [s for k, s in enumerate(statements) if k == 0 or s != statements[k - 1]]
            statements.clear()
            return [s.split()[0] for s in unique if "sessions" in s.split("WHERE")[0]]

        store.open_sessions([info("S1"), info("S2")])
        assert writes() == ["SELECT", "INSERT", "SELECT", "INSERT"]
        store.append_batches([item("S1", 0)])
        statements.clear()
        store.open_session(info("S1"))
        assert writes() == ["SELECT"]
        store.close_sessions([("S1", 5.0), ("S2", 6.0)])
        assert writes() == ["SELECT", "UPDATE", "SELECT", "UPDATE"]
        store.close_session("S1", 5.0)
        assert writes() == ["SELECT"]


def test_another_connections_writes_that_move_no_head_keep_the_heads_in_memory(
    db_path: Path,
) -> None:
    """The live engine's scoring process commits decisions and reports between nearly every
    two appends of the ingest thread: those must not send each append back to the store for
    every session's head (revision 0018's ``head_changes``; before it, any commit by another
    connection did)."""
    store, scorer = SqliteStore(db_path), SqliteStore(db_path)
    try:
        store.open_sessions([info("S1"), info("S2")])
        store.append_batches([item("S1", 0), item("S2", 0)])
        statements: list[str] = []
        store._connection().set_trace_callback(statements.append)
        for k in range(1, 4):
            decision = {"criterion": f"c{k}", "verdict": "pass", "evidence": {"row": k}}
            scorer.save_decisions("S1", [decision])
            scorer.save_report("S2", {"outcome": "pass", "k": k})
            store.append_batches([item("S1", 10 * k), item("S2", 10 * k)])
        assert not [s for s in statements if "FROM sessions" in s]  # no head query
        for session in ("S1", "S2"):
            record = store.session(session)
            assert record is not None
            assert (record.next_seq, record.batches) == (40, 4)
            assert chain.verify_chain(chain.genesis(record.info), store.batches(session)) is None
    finally:
        scorer.close()
        store.close()


@pytest.mark.parametrize("change", ["append", "close", "delete"])
def test_a_head_another_connection_moved_is_read_again(db_path: Path, change: str) -> None:
    """Every change of a head by another connection (a batch appended, the session closed, a
    batch deleted as recovery does) makes the store read that head again before it appends."""
    store, other = SqliteStore(db_path), SqliteStore(db_path)
    try:
        store.open_session(info())
        store.append_batches([item("S1", 0), item("S1", 10)])  # the head is in memory now
        if change == "append":
            other.append_batches([item("S1", 20, fill=7)])
            store.append_batches([item("S1", 30)])
            expected = (40, 4)
        elif change == "close":
            other.close_session("S1", 99.0)
            with pytest.raises(BatchRefusedError, match="is closed"):
                store.append_batches([item("S1", 20)])
            expected = (20, 2)
        else:
            db = sqlite3.connect(db_path)
            db.execute("DELETE FROM batches WHERE idx = 1")
            db.commit()
            db.close()
            store.append_batches([item("S1", 10, fill=3)])  # follows batch 0, not the deleted 1
            expected = (20, 2)
        record = store.session("S1")
        assert record is not None
        assert (record.next_seq, record.batches) == expected
        assert chain.verify_chain(chain.genesis(record.info), store.batches("S1")) is None
    finally:
        other.close()
        store.close()


def test_a_second_store_reads_while_another_thread_writes(durable: Stores) -> None:
    writer, reader = durable.open(), durable.open()
    writer.open_session(info())
    done = threading.Event()

    def write() -> None:
        for k in range(200):
            writer.append_batches([item("S1", 10 * k, fill=k % 250)])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[int] = []
    try:
        while not done.is_set():
            record = reader.session("S1")
            assert record is not None
            seen.append(record.batches)
        thread.join()
        assert seen == sorted(seen)
        assert chain.verify_chain(chain.genesis(info()), reader.batches("S1")) is None
        assert len(list(reader.batches("S1"))) == 200
    finally:
        thread.join()


def test_a_file_that_is_not_sqlite_is_refused_clearly(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="is not an assessengine store: not a SQLite database"):
        SqliteStore(db_path)


def test_a_damaged_file_is_reported_as_damaged(db_path: Path) -> None:
    with SqliteStore(db_path) as store:
        store.open_session(info())
        store.append_batches([item("S1", 10 * k) for k in range(50)])
    data = bytearray(db_path.read_bytes())
    page = 16_384
    data[2 * page : 6 * page] = b"\xa5" * (4 * page)  # table and index pages overwritten
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is damaged"), SqliteStore(db_path) as damaged:
        list(damaged.batches("S1"))  # the open or the first read finds it


def test_another_applications_database_is_refused(db_path: Path) -> None:
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"not an assessengine store .*tables: customers"):
        SqliteStore(db_path)


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("INSERT INTO schema_version VALUES (?, 'later')", (head_version() + 1,))
    db.commit()
    db.close()
    head = head_version()
    refusal = f"version {head + 1}; this assessengine supports up to {head}"
    with pytest.raises(StoreError, match=refusal):
        SqliteStore(db_path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SqliteStore(tmp_path)


def test_a_missing_directory_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open .*does its directory exist"):
        SqliteStore(tmp_path / "missing" / "x.db")


@pytest.mark.parametrize("options", [{"synchronous": "SOMETIMES"}, {"checkpoint_bytes": 10}])
def test_bad_options_are_refused_when_built(db_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SqliteStore(db_path, **options)
    assert not db_path.exists()


def test_background_checkpoints_keep_the_wal_small(db_path: Path) -> None:
    """Payloads live in segment files, but decision rows and reports go through the WAL."""
    with SqliteStore(db_path, checkpoint_bytes=2**20) as store:
        store.open_session(info())
        for k in range(512):  # 32 MiB of rows: a WAL never started over holds them all
            row = {"criterion": f"c{k}", "verdict": "pass", "evidence": {"note": "x" * 2**16}}
            store.save_decisions("S1", [row])
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.stat().st_size < 16 * 2**20


WRITER = """
import sys
from assessengine.storage.port import SessionInfo
from assessengine.storage import open_store
store = open_store(sys.argv[1])
store.open_session(SessionInfo("S1", "L1", "s", "r", 1, "ab" * 32))
k = 0
while True:
    store.append_batches([("S1", 10 * k, 10, "columns-v1", b"{}", bytes([k % 256]) * 20000)])
    print(k, flush=True)  # the ACK: sent only after the commit returned
    k += 1
"""


def test_every_acknowledged_batch_survives_a_sigkill(durable: Stores) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, durable.target], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        acked = -1
        while acked < 300:
            acked = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with durable.open() as store:  # type: ignore[attr-defined]
        record = store.session("S1")
        assert record is not None
        assert record.batches > acked
        genesis = chain.genesis(record.info)
        assert chain.verify_chain(genesis, store.batches("S1")) is None


# ================================================================================ PostgreSQL only


def test_a_postgres_store_reconnects_after_the_server_dropped_its_connections(
    pg_store_url: str,
) -> None:
    """A server restart or a failover closes every connection: the next call takes a new one
    (the pool checks a connection before handing it out) instead of failing."""
    store = PostgresStore(pg_store_url, pool_size=2)
    try:
        store.open_session(info())
        with psycopg.connect(pg_store_url, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert dropped is not None
        assert dropped[0] >= 1
        record = store.session("S1")
        assert record is not None
        store.append_batches([item("S1", 0)])
        assert len(list(store.batches("S1"))) == 1
    finally:
        store.close()
