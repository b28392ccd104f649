"""The engine through a PostgreSQL outage: the server stops (as a crash would) while a client
streams, and starts again. Nothing uncommitted is ACKed, the client keeps and resends its
batches, and once the server is back the engine resumes: every report equals the offline one
and every session's chain checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from assessengine.client import EngineClient
from assessengine.compose import ScoringKind, open_store, scoring_backend
from assessengine.ingest.port import Counters, IngestTransport
from assessengine.ingest.zmq import zmq_transport
from assessengine.runtime.engine import Engine
from assessengine.sim.generate import SimBatch
from assessengine.streaming import stream_sessions

from .pg_server import PgServer, start_server
from .test_engine_helpers import FAST, audit, library, offline_reports, reports, sessions
from .waits import WAIT_S

OUTAGE_S = 3.0


def _internal_nacks(engine: Engine) -> int:
    """The NACKs the engine sent because its store failed (code ``internal``)."""
    return int(engine.counters.snapshot()["nacks"].get("internal", 0))


@pytest.fixture
def pg_outage_server() -> Iterator[PgServer]:
    """A server of this test's own: it is stopped and started (the session's is shared)."""
    yield from start_server()


class AckLog:
    """An ingest transport that records every ACK it sends (session, seq) and whether the
    server was down then, around the transport `inner` makes."""

    def __init__(self) -> None:
        self.down = False
        self.acks: list[tuple[str, int, bool]] = []

    def wrap(self, inner: IngestTransport) -> IngestTransport:
        log = self

        class Recording:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def reply(self, identity: bytes, header: Any, *frames: bytes) -> None:
                if isinstance(header, bytes) and header.startswith(b'{"type":"ACK"'):
                    import json  # noqa: PLC0415

                    ack = json.loads(header)
                    log.acks.append((ack["session"], ack["seq"], log.down))
                inner.reply(identity, header, *frames)

        return Recording()  # type: ignore[return-value]


@pytest.mark.parametrize("scoring", ["thread", "process"])
def test_the_engine_rides_out_a_postgres_outage_without_losing_or_acking_uncommitted_data(
    tmp_path: Path, pg_outage_server: PgServer, scoring: ScoringKind
) -> None:
    server = pg_outage_server
    url = server.url(server.create_database())
    sim = sessions("forklift-warehouse", 6, seed=17)
    late = sessions("forklift-warehouse", 3, seed=18, first=6)  # opened during the outage
    acks = AckLog()
    make = zmq_transport("tcp://127.0.0.1:*")

    def transport(counters: Counters) -> IngestTransport:
        return acks.wrap(make(counters))

    started, halted = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first_slice(sent: int) -> None:
        started.set()
        halted.wait(60)  # the rest is sent while the server is down

    with closing(open_store(url, connect_timeout=2)) as store:
        backend = scoring_backend(scoring, store, library(), url=url,
                                  store_options={"connect_timeout": 2})  # fmt: skip
        engine = Engine(store, library(), transport, scoring=backend)
        engine.start()
        try:

            def stream(name: str, batch: SimBatch, progress: Callable[[int], None]) -> None:
                try:
                    with EngineClient(engine.endpoint, client_id=name, batch_bytes=4096,
                                      **FAST) as c:  # fmt: skip
                        stream_sessions(c, batch, timeout=120, progress=progress)
                except BaseException as exc:
                    failures.append(exc)

            streamers = [threading.Thread(target=stream, args=("sim", sim, first_slice))]
            streamers[0].start()
            assert started.wait(60)
            server.halt()
            acks.down = True
            halted.set()
            streamers.append(threading.Thread(target=stream, args=("late", late, lambda _: None)))
            streamers[1].start()
            time.sleep(OUTAGE_S)
            # the outage lasts until it is felt (on a loaded machine a batch may take longer
            # than OUTAGE_S to reach a commit), bounded so that a hang fails the test
            deadline = time.monotonic() + WAIT_S
            while not (internal_nacks := _internal_nacks(engine)) \
                    and time.monotonic() < deadline:  # fmt: skip
                time.sleep(0.05)
            acks.down = False
            server.resume()
            for streamer in streamers:
                streamer.join(120)
                assert not streamer.is_alive()
            assert not failures, failures
            assert engine.wait_idle(60)
            assert engine.running
        finally:
            engine.stop()
    assert internal_nacks > 0  # the outage was felt: batches were refused, not ACKed
    expected = offline_reports(sim, tmp_path) | offline_reports(late, tmp_path)
    every = [*sim.session_ids, *late.session_ids]
    assert reports(url, every) == expected
    with closing(open_store(url)) as after:
        stored = {sid: after.session(sid) for sid in every}
    for sid, seq, _ in acks.acks:  # every ACK is of a stored batch
        record = stored[sid]
        assert record is not None
        assert seq < record.next_seq, (sid, seq)
    for sid in every:
        code, output = audit(url, sid)  # type: ignore[arg-type]
        assert code == 0, output
