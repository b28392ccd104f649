"""Fuzz: 10,000+ random and mutated messages over a real socket. Every one gets exactly one
reply (a NACK for the broken ones), the engine loop never fails, the counters agree with what
the fuzzer saw, and afterwards a well-formed session is stored completely with its chain
intact."""

from __future__ import annotations

import functools
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from assessengine.client import EngineClient
from assessengine.core.codec import Columns, Layout, decode_events, encode_columns_v1
from assessengine.core.events import Event
from assessengine.ingest.zmq import zmq_transport
from assessengine.storage.memory import MemoryStore

from .ingest_engine import DEMO, RawPeer, chain_intact, running, status
from .waits import WAIT_S

LAYOUT = Layout.of(DEMO)
MESSAGES = 10_500
CHUNK = 250
MAX_FRAME = 8192

Frames = list[bytes]


def _events(first: int, n: int) -> list[Event]:
    return [Event(i, 0.5 * i, ("sample", "horn", "stop")[i % 3], {"speed": float(i % 20)})
            for i in range(first, first + n)]


SESSIONS = 2000
"""Pre-opened sessions the EVENTS templates aim at, so that many mutated batches are new data
(decoded and validated) rather than duplicates (acknowledged unread)."""


@functools.cache
def _templates(session: str) -> list[Frames]:
    def columns(first: int, n: int) -> Frames:
        head = {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
                "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()}
        payload = encode_columns_v1(Columns.from_events(_events(first, n), LAYOUT), LAYOUT)
        return [json.dumps(head).encode(), payload]

    def as_json(first: int, n: int) -> Frames:
        head = {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
                "encoding": "json-v1"}
        items = [{"seq": e.seq, "t": e.t, "event": e.event, "signals": dict(e.signals)}
                 for e in _events(first, n)]
        return [json.dumps(head).encode(), json.dumps(items).encode()]

    singles: list[dict[str, Any]] = [
        {"type": "HELLO", "client": "fuzz", "protocol": 1},
        _open(session),
        {"type": "CLOSE", "session": session, "t": 1e6, "next_seq": 5},
        {"type": "PING", "nonce": 7},
    ]
    return [
        *([json.dumps(m).encode()] for m in singles),
        columns(0, 5), columns(3, 9), columns(12, 4), as_json(0, 3), as_json(5, 6),
    ]


def _open(session: str) -> dict[str, Any]:
    return {"type": "OPEN", "session": session, "learner": "L", "scenario": "demo",
            "rubric": "r", "metadata": {"k": [1, 2]}}


ODD_VALUES: list[Any] = [None, -1, 0, "", "x" * 300, math.nan, math.inf, 1e308, [], {}, True,
                         2**70, "columns-v1", "json-v1", [["seq", "<i8"]], "F", 1.5]


def _mutate_json(rng: random.Random, frames: Frames) -> Frames:
    head = json.loads(frames[0])
    key = rng.choice([*head, "extra"])
    roll = rng.random()
    if roll < 0.2 and key in head:
        del head[key]
    else:
        head[key] = rng.choice(ODD_VALUES)
    return [json.dumps(head).encode(), *frames[1:]]


def _flip(rng: random.Random, frames: Frames) -> Frames:
    out = list(frames)
    i = rng.randrange(len(out))
    data = bytearray(out[i])
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    out[i] = bytes(data)
    return out


def _truncate(rng: random.Random, frames: Frames) -> Frames:
    out = list(frames)
    i = rng.randrange(len(out))
    out[i] = out[i][: rng.randrange(len(out[i]) + 1)]
    return out


def _frame_count(rng: random.Random, frames: Frames) -> Frames:
    if len(frames) > 1 and rng.random() < 0.5:
        return frames[:1]
    return [*frames, *(rng.randbytes(rng.randint(0, 20)) for _ in range(rng.randint(1, 3)))]


def _random(rng: random.Random, _: Frames) -> Frames:
    return [rng.randbytes(rng.randint(0, 200)) for _ in range(rng.randint(1, 3))]


def _huge(rng: random.Random, frames: Frames) -> Frames:
    return [frames[0], rng.randbytes(MAX_FRAME + rng.randint(1, 20_000))]


def _valid(rng: random.Random, frames: Frames) -> Frames:
    return frames


MUTATORS: list[tuple[Callable[[random.Random, Frames], Frames], int]] = [
    (_random, 20), (_flip, 25), (_truncate, 15), (_mutate_json, 20), (_frame_count, 10),
    (_huge, 2), (_valid, 8),
]


def test_ten_thousand_bad_messages_then_a_good_session_is_stored_whole() -> None:
    rng = random.Random(20260101)
    mutators = [m for m, weight in MUTATORS for _ in range(weight)]
    store = MemoryStore()
    replies: Counter[str] = Counter()
    nacks: Counter[str] = Counter()
    transport = zmq_transport("tcp://127.0.0.1:*", max_frame_bytes=MAX_FRAME,
                              max_header_bytes=4096, max_message_bytes=2**20)
    with running(store, transport) as engine:
        with RawPeer(engine.endpoint, sndhwm=0, rcvhwm=0) as fuzzer:
            for k in range(SESSIONS):
                fuzzer.send(_open(f"F{k}"))
            assert all(fuzzer.recv()["type"] == "OPENED" for _ in range(SESSIONS))  # type: ignore[index]
            for _ in range(MESSAGES // CHUNK):
                for _ in range(CHUNK):
                    templates = _templates(f"F{rng.randrange(SESSIONS)}")
                    fuzzer.socket.send_multipart(rng.choice(mutators)(rng, rng.choice(templates)))
                for _ in range(CHUNK):  # exactly one reply per message
                    reply = fuzzer.recv(timeout=WAIT_S)
                    assert reply is not None, f"no reply after {replies.total()} replies"
                    replies[reply["type"]] += 1
                    if reply["type"] == "NACK":
                        nacks[reply["code"]] += 1
            assert fuzzer.recv(timeout=0.05) is None

        snapshot = engine.counters.snapshot()
        assert snapshot["messages"] == MESSAGES + SESSIONS
        print(f"fuzz: {MESSAGES} messages, replies {dict(replies)}, NACKs {dict(nacks)}")
        assert snapshot["nacks"] == dict(nacks)
        assert replies.total() == MESSAGES
        assert replies["NACK"] > 0.8 * MESSAGES
        assert {"bad_header", "bad_message", "frame_count", "too_large", "unknown_type",
                "truncated", "bad_payload"} <= set(nacks)

        sent = [Event(i, 0.1 * i, "horn" if i % 50 == 0 else "sample",
                      {"speed": float(i % 13), "load": float(i)}) for i in range(6000)]
        with EngineClient(engine.endpoint, client_id="good", batch_bytes=4096,
                          reply_timeout=0.2, resend_after=0.5, dead_after=1.0) as c:
            c.open("GOOD", learner="L1", scenario="demo", rubric="r")
            c.send("GOOD", sent[:5000])
            c.send("GOOD", sent[5000:], encoding="json-v1")
            c.close("GOOD", 700.0)
            c.flush(timeout=WAIT_S)

    got: list[Event] = []
    for batch in store.batches("GOOD"):
        got.extend(decode_events(batch.header, batch.payload, LAYOUT).to_events(LAYOUT))
    assert got == sent
    assert status(store, "GOOD") == "closed"
    assert chain_intact(store, "GOOD")
    assert all(chain_intact(store, f"F{k}") for k in range(SESSIONS))
