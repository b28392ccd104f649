"""No frame stops the engine: the real `Engine` (ZeroMQ ROUTER on 127.0.0.1, ingest and
scoring threads) gets hostile messages from a DEALER (any unicode, lone surrogates included,
in every header field of every message type; any bytes as frames; any payload of either
encoding) and answers each one, then still answers PING. An unexpected exception while
handling one message is answered NACK ``internal`` and the engine keeps serving."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_scenario
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import Event
from assessengine.ingest import triage
from assessengine.ingest import zmq as zmq_ingest
from assessengine.ingest.zmq import zmq_transport
from assessengine.ingest_rules import IngestRules
from assessengine.runtime.engine import Engine
from assessengine.storage.memory import MemoryStore

from .ingest_engine import RawPeer
from .test_engine_helpers import library
from .waits import WAIT_MS, WAIT_S

SCENARIO = load_scenario("forklift-warehouse")
LAYOUT = Layout.of(SCENARIO)
RUBRIC = "forklift-load-handling"
SESSION = "H1"
REPLIES = {"NACK", "ACK", "OPENED", "CLOSED", "WELCOME", "PONG"}
_nonces = itertools.count(1)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    transport = zmq_transport("tcp://127.0.0.1:*", max_frame_bytes=65_536)
    engine = Engine(MemoryStore(), library(), transport)  # the real engine, scoring in a thread
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def peer(engine: Engine) -> Iterator[RawPeer]:
    with RawPeer(engine.endpoint) as peer:
        assert peer.request(_open(SESSION))["type"] == "OPENED"
        yield peer


def _open(session: Any) -> dict[str, Any]:
    return {"type": "OPEN", "session": session, "learner": "L1", "scenario": SCENARIO.scenario,
            "rubric": RUBRIC, "metadata": {"site": "bay 3"}}  # fmt: skip


def reply_to(peer: RawPeer, *frames: bytes) -> dict[str, Any]:
    """The one reply to `frames` (an empty delimiter before it is skipped, as REQ does)."""
    peer.socket.send_multipart(list(frames))
    assert peer.socket.poll(WAIT_MS), f"no reply to {[f[:80] for f in frames]}"
    parts = peer.socket.recv_multipart()
    while parts and not parts[0]:
        parts = parts[1:]
    reply: dict[str, Any] = json.loads(parts[0])
    assert reply["type"] in REPLIES
    return reply


def assert_still_serving(engine: Engine, peer: RawPeer) -> None:
    nonce = next(_nonces)
    assert reply_to(peer, json.dumps({"type": "PING", "nonce": nonce}).encode()) == {
        "type": "PONG", "nonce": nonce}  # fmt: skip
    assert engine.running


# ------------------------------------------------------------------------------ strategies

_alphabet = st.one_of(
    st.characters(),                                 # any code point but surrogates
    st.characters(categories=["Cs"]),                # lone surrogates (JSON may escape them)
    st.sampled_from(["/", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", '"', "\\"]),
)
# lists of characters, not st.text: text() leaves surrogates out whatever its alphabet
texts = st.one_of(st.lists(_alphabet, max_size=12), st.lists(_alphabet, min_size=129,
                                                              max_size=300)).map("".join)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e400, -1e400]), texts,
)  # fmt: skip
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def _events(first: int, n: int) -> list[Event]:
    return [Event(first + i, 0.5 * (first + i), "sample", {SCENARIO.signal_names[0]: 1.0})
            for i in range(n)]  # fmt: skip


def _columns_payload(first: int, n: int) -> bytes:
    return encode_columns_v1(Columns.from_events(_events(first, n), LAYOUT), LAYOUT)


def _json_payload(first: int, n: int) -> bytes:
    return json.dumps([{"seq": e.seq, "t": e.t, "event": e.event, "signals": dict(e.signals)}
                       for e in _events(first, n)]).encode()  # fmt: skip


TEMPLATES: dict[str, tuple[dict[str, Any], bytes | None]] = {
    "HELLO": ({"type": "HELLO", "client": "fuzz", "protocol": 1}, None),
    "PING": ({"type": "PING", "nonce": 3}, None),
    "OPEN": (_open("H2") | {"rubric_version": 1, "source": "field"}, None),
    "EVENTS-json": ({"type": "EVENTS", "session": SESSION, "first_seq": 0, "count": 2,
                     "encoding": "json-v1"}, _json_payload(0, 2)),
    "EVENTS-columns": ({"type": "EVENTS", "session": SESSION, "first_seq": 0, "count": 2,
                        "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()},
                       _columns_payload(0, 2)),
    "CLOSE": ({"type": "CLOSE", "session": "H3", "t": 1.0, "next_seq": 0}, None),
    "unknown": ({"type": "SUBSCRIBE", "session": SESSION}, None),
}  # fmt: skip


@st.composite
def hostile_headers(draw: st.DrawFn) -> tuple[dict[str, Any], bytes | None]:
    """A template header with each field kept, dropped or replaced by any JSON value, and
    maybe extra fields; the payload of its template (EVENTS only)."""
    header, payload = TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))]
    out: dict[str, Any] = {}
    for key, value in header.items():
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "keep":
            out[key] = value
        elif action == "replace":
            out[key] = draw(st.one_of(texts, values))
    out.update(draw(st.dictionaries(texts, values, max_size=2)))
    return out, payload


def _serialise(header: Any, how: str) -> bytes:
    """JSON as a client might send it: ASCII (lone surrogates as \\u escapes), or raw UTF-8
    with the surrogates' bytes left in (not UTF-8 any more)."""
    if how == "ascii":
        return json.dumps(header).encode()
    return json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.binary(max_size=300),
    st.lists(st.dictionaries(st.sampled_from(["seq", "t", "event", "signals", "x"]), values,
                             max_size=5), max_size=3).map(lambda v: json.dumps(v).encode()),
    st.builds(_columns_payload, st.integers(0, 3), st.integers(1, 3)),
    st.builds(_json_payload, st.integers(0, 3), st.integers(1, 3)),
)  # fmt: skip


# ------------------------------------------------------------------------------ properties


@pytest.mark.parametrize(
    "header",
    [b'{"type":"PING","session":"\\ud800"}', b'{"type":"\\ud800"}',
     b'{"type":"OPEN","session":"\\udfff","learner":"L1"}', b'{"type":"\xed\xa0\x80"}',
     b'{"type":"EVENTS","session":"S\\ud83d","first_seq":0}'],
)  # fmt: skip
def test_a_lone_surrogate_in_type_or_session_is_nacked_and_the_engine_keeps_serving(
    engine: Engine, peer: RawPeer, header: bytes
) -> None:
    reply = reply_to(peer, header)
    assert reply["type"] == "NACK"
    assert reply["code"] == "bad_header"
    assert_still_serving(engine, peer)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=hostile_headers(), how=st.sampled_from(["ascii", "raw"]),
       payload=st.one_of(st.none(), payloads), extra=st.lists(st.binary(max_size=8), max_size=2))
def test_no_header_field_value_of_any_message_type_stops_the_engine(
    engine: Engine, peer: RawPeer, message: tuple[dict[str, Any], bytes | None], how: str,
    payload: bytes | None, extra: list[bytes],
) -> None:  # fmt: skip
    header, template_payload = message
    body = payload if payload is not None else template_payload
    frames = [_serialise(header, how), *([body] if body is not None else []), *extra]
    reply_to(peer, *frames)
    assert_still_serving(engine, peer)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_no_frames_of_any_bytes_stop_the_engine(
    engine: Engine, peer: RawPeer, frames: list[bytes]
) -> None:
    reply_to(peer, *frames)
    assert_still_serving(engine, peer)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoding=st.sampled_from(["EVENTS-json", "EVENTS-columns"]), payload=payloads,
       first=st.integers(0, 4), count=st.integers(1, 4))
def test_no_payload_of_either_encoding_stops_the_engine(
    engine: Engine, peer: RawPeer, encoding: str, payload: bytes, first: int, count: int
) -> None:
    header = TEMPLATES[encoding][0] | {"first_seq": first, "count": count}
    reply_to(peer, json.dumps(header).encode(), payload)
    assert_still_serving(engine, peer)


def test_an_empty_first_frame_gets_the_delimiter_hint_which_a_req_socket_shows(
    engine: Engine,
) -> None:
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(engine.endpoint)
        req.send(json.dumps({"type": "PING", "nonce": 1}).encode())
        assert req.poll(WAIT_MS), "the REQ socket got no reply"
        reply = json.loads(req.recv())
    finally:
        req.close(linger=0)
        context.term()
    assert reply["type"] == "NACK"
    assert reply["code"] == "frame_count"
    assert "delimiter" in reply["message"]
    assert "DEALER" in reply["message"]


def test_a_lone_empty_frame_is_nacked_with_the_same_hint(engine: Engine, peer: RawPeer) -> None:
    reply = reply_to(peer, b"")
    assert (reply["code"], "DEALER" in reply["message"]) == ("bad_header", True)


# ------------------------------------------------------------------------------ a failing step


@pytest.mark.parametrize("where", ["decide", "parse"])
def test_an_exception_on_one_message_nacks_it_and_the_engine_keeps_serving(
    engine: Engine, peer: RawPeer, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A bug that raises for one message (here: in the ingest rules, or in parsing the header
    frame) costs that message a NACK ``internal``; the others of its round are answered as
    usual and the engine goes on."""
    if where == "decide":
        real_events = IngestRules.events

        def events(self: IngestRules, header: Any, raw: bytes, payload: Any) -> Any:
            if header.session == "BOOM":
                raise RuntimeError("bug")
            return real_events(self, header, raw, payload)

        monkeypatch.setattr(IngestRules, "events", events)
    else:
        real_parse = triage.parse_client_header

        def parse(frame: bytes) -> Any:
            if b"BOOM" in frame:
                raise RuntimeError("bug")
            return real_parse(frame)

        monkeypatch.setattr(triage, "parse_client_header", parse)
    good = f"G-{where}"
    assert peer.request(_open(good))["type"] == "OPENED"
    if where == "decide":
        assert peer.request(_open("BOOM"))["type"] == "OPENED"
    boom = TEMPLATES["EVENTS-columns"][0] | {"session": "BOOM"}
    fine = TEMPLATES["EVENTS-columns"][0] | {"session": good}
    payload = TEMPLATES["EVENTS-columns"][1]
    assert payload is not None
    peer.socket.send_multipart([json.dumps(fine).encode(), payload])
    peer.socket.send_multipart([json.dumps(boom).encode(), payload])
    peer.socket.send_multipart([json.dumps(fine | {"first_seq": 2}).encode(),
                                _columns_payload(2, 2)])
    replies = [peer.recv(WAIT_S) for _ in range(3)]
    assert all(r is not None for r in replies), replies
    by_kind = sorted((r["type"], r.get("code"), r.get("seq")) for r in replies if r)
    assert by_kind == [("ACK", None, 1), ("ACK", None, 3), ("NACK", "internal", None)]
    assert_still_serving(engine, peer)
    stored = engine.store.session(good)
    assert stored is not None
    assert stored.next_seq == 4
    monkeypatch.undo()
    if where == "decide":  # nothing of the failed message counts as stored
        assert reply_to(peer, json.dumps(boom).encode(), payload) == {
            "type": "ACK", "session": "BOOM", "seq": 1}  # fmt: skip


def test_nan_and_infinite_metadata_are_refused_naming_the_field(
    engine: Engine, peer: RawPeer
) -> None:
    for number, session in ((b"NaN", "M1"), (b"1e400", "M2"), (b"-Infinity", "M3")):
        frame = json.dumps(_open(session)).encode().replace(b'"bay 3"', b"[1, %s]" % number)
        reply = reply_to(peer, frame)
        assert reply["type"] == "NACK"
        assert reply["code"] == "bad_message"
        assert "metadata must be finite JSON: metadata.site[1]" in reply["message"]
    assert reply_to(peer, json.dumps(_open("M1")).encode())["type"] == "OPENED"


def test_a_nack_carries_text_utf8_cannot_encode_escaped() -> None:
    """The last line of defence: whatever text a NACK is given (a session id or message with
    a lone surrogate, say from a future code path), it is sent, escaped, and never raises."""
    with zmq_ingest.ZmqIngest("tcp://127.0.0.1:*") as ingest, RawPeer(ingest.endpoint) as peer:
        peer.send(_open("S9"))
        (message,) = _poll_until_one(ingest)
        ingest.nack(message.identity, "bad_message", "odd \ud800 text", session="S\udfff",
                    in_reply_to="\ud83d")  # fmt: skip
        reply = peer.recv(WAIT_S)
    assert reply == {"type": "NACK", "session": "S\\udfff", "code": "bad_message",
                     "message": "odd \\ud800 text", "in_reply_to": "\\ud83d"}  # fmt: skip


def _poll_until_one(ingest: zmq_ingest.ZmqIngest) -> list[zmq_ingest.Message]:
    got = ingest.poll(WAIT_S)  # returns once the first message is there
    assert got, "the OPEN did not arrive"
    return got
