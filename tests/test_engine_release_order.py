"""Session ownership and report saving are ordered: the engine releases a closed session only
once its final report is in the store (a store outage keeps it owned until the retried save
succeeds), and an engine that starts beside a live owner does not re-derive that owner's
closed, not yet reported sessions (both would store the decisions)."""

from __future__ import annotations

import time
from collections.abc import Collection

from assessengine.ingest.fake import FakeTransport

from .ingest_engine import running
from .test_engine_owners import DEMO_CLOSE, DEMO_OPEN, Scripted
from .test_scoring_store_failures import FAILURES, FlakyStore
from .waits import WAIT_S

ALWAYS = 10**9  # saves that fail: the store stays unavailable


class Watching(Scripted):
    """`Scripted` that notes, for each session it releases, whether its report was stored."""

    def __init__(self, store: FlakyStore, others: Collection[str] = ()) -> None:
        super().__init__(others)
        self.store = store
        self.reported_at_release: dict[str, bool] = {}

    def release(self, sessions: Collection[str]) -> None:
        for s in sessions:
            if s in self.held:
                self.reported_at_release[s] = self.store.report(s) is not None
        super().release(sessions)


def _released(owners: Watching, session: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while session not in owners.released and time.monotonic() < deadline:
        time.sleep(0.05)
    return session in owners.released


def test_a_closed_session_stays_owned_until_its_report_is_saved() -> None:
    store = FlakyStore(FAILURES["unavailable"])
    owners = Watching(store)
    peer = (transport := FakeTransport()).peer()
    with running(store, transport, owners=owners) as engine:
        assert peer.request(DEMO_OPEN)["type"] == "OPENED"
        store.failing = ALWAYS
        assert peer.request(DEMO_CLOSE)["type"] == "CLOSED"
        assert engine.wait_idle(WAIT_S)
        assert store.report("S1") is None  # the save failed: kept for a retry
        assert "S1" in owners.held
        assert "S1" not in owners.released
        store.failing = 0  # the store is back: the idle retry saves it, then releases it
        assert _released(owners, "S1", within=WAIT_S)
        assert store.report("S1") is not None
    assert owners.reported_at_release == {"S1": True}


def test_an_engine_leaves_alone_a_closed_unreported_session_a_live_engine_owns() -> None:
    store = FlakyStore(FAILURES["unavailable"])
    first = Scripted()
    peer = (transport := FakeTransport()).peer()
    with running(store, transport, owners=first) as engine:
        assert peer.request(DEMO_OPEN)["type"] == "OPENED"
        store.failing = ALWAYS
        assert peer.request(DEMO_CLOSE)["type"] == "CLOSED"
        assert engine.wait_idle(WAIT_S)
    assert store.report("S1") is None  # the owner (gone now, here) never saved it
    store.failing = 0
    second = Scripted(others={"S1"})  # S1 still owned by a live engine
    with running(store, FakeTransport(), owners=second):
        pass
    assert store.report("S1") is None  # not re-derived beside its owner
    assert store.decisions("S1") == []
    third = Scripted()  # once nobody owns it, a starting engine reports it
    with running(store, FakeTransport(), owners=third):
        pass
    assert store.report("S1") is not None
