"""A real crash: `assessengine serve` is killed with SIGKILL while clients stream several
sessions, then restarted on the same database. No acknowledged event is lost, the clients'
resends complete every session, the final reports equal an uninterrupted run's (and
`assessengine score`'s), and `assessengine audit` passes on every session."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assessengine.adapters.signer import IssuerKey
from assessengine.client import EngineClient
from assessengine.core.codec import Columns
from assessengine.sim.generate import SimBatch
from assessengine.storage import open_store
from assessengine.streaming import stream_sessions

from .test_engine_helpers import (
    FAST,
    audit,
    offline_reports,
    reports,
    running_engine,
    serve,
    sessions,
)
from .waits import WAIT_S

SLICE_ROWS = 400
PAUSE = 0.04


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their names (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out[int(entry.name)] = name
    return out


class _Streamer(threading.Thread):
    """One client streaming its sessions at a modest pace (events interleaved in time
    order, a pause after every `SLICE_ROWS` rows), closing each after its last event."""

    def __init__(self, endpoint: str, sim: SimBatch) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.sim = endpoint, sim
        self.client: EngineClient | None = None
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        sim = self.sim
        try:
            with EngineClient(self.endpoint, client_id=sim.scenario, batch_bytes=8192,
                              **FAST) as c:  # fmt: skip
                self.client = c
                for k, sid in enumerate(sim.session_ids):
                    c.open(sid, learner=sim.learners[k], scenario=sim.scenario,
                           rubric=sim.rubric)  # fmt: skip
                order = np.argsort(sim.t, kind="stable")
                last = {k: int(sim.offsets[k + 1]) - 1 for k in range(len(sim.session_ids))}
                for start in range(0, len(order), SLICE_ROWS):
                    rows = order[start : start + SLICE_ROWS]
                    for k in np.unique(sim.session[rows]).tolist():
                        mine = rows[sim.session[rows] == k]
                        sid = sim.session_ids[k]
                        c.send(sid, Columns(sim.seq[mine], sim.t[mine], sim.event[mine],
                                            sim.signals[:, mine]))  # fmt: skip
                        if mine[-1] == last[k]:
                            c.close(sid, float(sim.close_t[k]))
                    self.sent += len(rows)
                    time.sleep(PAUSE)
                c.flush(60)
        except BaseException as exc:
            self.error = exc


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_stream_loses_nothing_acknowledged_and_reports_match(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """On a SQLite file, or on a PostgreSQL database (the issuer key given as a file)."""
    sims = [sessions("forklift-warehouse", 2, seed=21), sessions("lhd-underground", 2, seed=22),
            sessions("haul-truck-surface", 2, seed=23)]  # fmt: skip
    ids = [sid for sim in sims for sid in sim.session_ids]
    db: Path | str = tmp_path / "crash.db"
    options: tuple[str, ...] = ()
    if backend == "postgres":
        db = request.getfixturevalue("pg_store_url")
        key = tmp_path / "issuer.pem"
        key.write_bytes(IssuerKey.generate().to_pem())
        options = ("--issuer-key", str(key))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    first = serve(db, *options, zmq=endpoint)
    streamers = [_Streamer(endpoint, sim) for sim in sims]
    try:
        for s in streamers:
            s.start()
        deadline = time.monotonic() + WAIT_S
        while min(s.sent for s in streamers) < 8 * SLICE_ROWS and time.monotonic() < deadline:
            time.sleep(0.02)
        children = _children(first.process.pid)  # the scoring process (and spawn's tracker)
        first.kill()  # SIGKILL, mid-stream
    finally:
        if first.process.poll() is None:
            first.kill()
    assert "ae-scoring" in children.values(), f"serve runs no scoring process: {children}"
    deadline = time.monotonic() + WAIT_S
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a child outlived it"
    assert all(s.is_alive() for s in streamers), "a stream ended before the crash"
    acked = {sid: s.client.acked(sid) for s in streamers if s.client is not None
             for sid in s.sim.session_ids}  # fmt: skip
    assert len(acked) == len(ids)
    assert sum(seq >= 0 for seq in acked.values()) >= 3  # a good part was acknowledged
    with open_store(db) as store:  # what the crashed engine acknowledged is there
        for sid, seq in acked.items():
            record = store.session(sid)
            assert record is not None
            assert record.next_seq - 1 >= seq
        assert any(r.status == "open" for r in store.sessions())

    second = serve(db, *options, zmq=endpoint)
    try:
        for s in streamers:
            s.join(60)
        assert [s.error for s in streamers] == [None] * len(streamers)
        deadline = time.monotonic() + WAIT_S
        while None in reports(db, ids).values() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert second.health() == 200
    finally:
        code = second.terminate()
    assert code == 0, second.log()

    crashed = reports(db, ids)
    with running_engine(tmp_path / "uninterrupted.db") as (engine, _):
        for sim in sims:
            with EngineClient(engine.endpoint, client_id="again", **FAST) as c:
                stream_sessions(c, sim)
        assert engine.wait_idle(WAIT_S)
    assert crashed == reports(tmp_path / "uninterrupted.db", ids)
    for sim in sims:
        assert {sid: crashed[sid] for sid in sim.session_ids} == offline_reports(sim, tmp_path)
    with open_store(db) as store:
        for sim in sims:
            for k, sid in enumerate(sim.session_ids):
                record = store.session(sid)
                assert record is not None
                assert (record.status, record.next_seq) == ("closed", int(np.diff(sim.offsets)[k]))
    for sid in ids:
        code, output = audit(db, sid)
        assert code == 0, output
