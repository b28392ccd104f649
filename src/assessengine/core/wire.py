"""Wire models of the ingest protocol v1 (`docs/protocol.md`): the JSON header frame of every
message, and the registry of NACK codes.

Every message is a ZeroMQ multipart message: one JSON header frame (an object with ``type``),
then payload frames (only EVENTS has one). Client -> engine: HELLO, OPEN, EVENTS, CLOSE, PING.
Engine -> client: WELCOME, OPENED, ACK, NACK, CLOSED, PONG.

`parse_client_header` turns a header frame into a model or a `HeaderProblem` carrying the NACK
code; the client parses the engine's headers with `parse_server_header`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .codec import Encoding
from .ids import ID_PATTERN, ID_RULE, Id

PROTOCOL: Final = 1
"""The protocol version this module speaks (``assessengine ingest protocol v1``)."""

MAX_SEQ: Final = 2**53
"""Seqs and counts stay below 2**53 so that every language's JSON number handles them exactly."""

Text = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
SessionId = Id
"""Session ids follow the one id rule of `core.ids` (learner ids too)."""
Seq = Annotated[int, Field(ge=0, lt=MAX_SEQ)]
Time = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WireModel(BaseModel):
    """Frozen, unknown keys rejected, no type coercion ("1" is not 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def to_frame(self) -> bytes:
        """The header frame: compact UTF-8 JSON, null fields left out."""
        return self.model_dump_json(exclude_none=True).encode()


# ------------------------------------------------------------------------------ client -> engine


class Hello(WireModel):
    type: Literal["HELLO"]
    client: Text
    protocol: int


class Open(WireModel):
    type: Literal["OPEN"]
    session: SessionId
    learner: Id
    scenario: Text
    rubric: Text
    rubric_version: Annotated[int, Field(ge=1)] | None = None
    source: Literal["simulator", "field"] = "simulator"
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _finite(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        where = _not_finite(value)
        if where is not None:
            raise ValueError(f"metadata must be finite JSON: {where} is NaN or infinite")
        return value


class Events(WireModel):
    type: Literal["EVENTS"]
    session: SessionId
    first_seq: Seq
    count: Annotated[int, Field(ge=1, lt=MAX_SEQ)]
    encoding: Encoding
    dtype: list[Annotated[list[str], Field(min_length=2, max_length=2)]] | None = None

    @model_validator(mode="after")
    def _dtype_with_columns(self) -> Events:
        if (self.encoding == "columns-v1") != (self.dtype is not None):
            raise ValueError("'dtype' is required with columns-v1 and not allowed with json-v1")
        return self

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


class Close(WireModel):
    type: Literal["CLOSE"]
    session: SessionId
    t: Time
    next_seq: Seq


class Ping(WireModel):
    type: Literal["PING"]
    nonce: Annotated[int, Field(ge=0, lt=MAX_SEQ)] = 0


ClientMessage = Hello | Open | Events | Close | Ping
PAYLOAD_FRAMES: Final[dict[str, int]] = {"HELLO": 0, "OPEN": 0, "EVENTS": 1, "CLOSE": 0, "PING": 0}


# ------------------------------------------------------------------------------ engine -> client


class Welcome(WireModel):
    type: Literal["WELCOME"] = "WELCOME"
    protocol: int = PROTOCOL
    engine: str
    max_frame_bytes: int
    max_header_bytes: int


class Opened(WireModel):
    type: Literal["OPENED"] = "OPENED"
    session: SessionId
    next_seq: int
    closed: bool = False
    signals: list[str]
    events: list[str]


class Ack(WireModel):
    type: Literal["ACK"] = "ACK"
    session: SessionId
    seq: int = Field(ge=-1)
    """Highest seq durably stored; -1 while none is."""


class Nack(WireModel):
    type: Literal["NACK"] = "NACK"
    session: str | None = None
    code: str
    message: str
    expected_seq: int | None = None
    in_reply_to: str | None = None
    first_seq: int | None = None


class Closed(WireModel):
    type: Literal["CLOSED"] = "CLOSED"
    session: SessionId
    t: float
    seq: int


class Pong(WireModel):
    type: Literal["PONG"] = "PONG"
    nonce: int = 0


ServerMessage = Welcome | Opened | Ack | Nack | Closed | Pong


# ------------------------------------------------------------------------------ NACK codes


@dataclass(frozen=True, slots=True)
class NackCode:
    code: str
    retry: bool
    """True: resend (after fixing nothing); False: the message is wrong and will stay wrong."""
    meaning: str


NACK_CODES: Final[dict[str, NackCode]] = {
    c.code: c
    for c in (
        NackCode("frame_count", False, "wrong number of frames for the message type"),
        NackCode("too_large", False, "a frame is larger than the engine's limit"),
        NackCode("bad_header", False, "header frame is not a UTF-8 JSON object with a 'type'"),
        NackCode("unknown_type", False, "'type' is not a client message type"),
        NackCode("bad_message", False, "a header field is missing, unexpected or invalid"),
        NackCode("unsupported_version", False, "HELLO names a protocol the engine does not speak"),
        NackCode("bad_encoding", False, "EVENTS encoding is not json-v1 or columns-v1"),
        NackCode("bad_payload", False, "json-v1 payload is not a JSON array of event objects"),
        NackCode("dtype_mismatch", False, "columns-v1 dtype differs from the scenario's layout"),
        NackCode("truncated", False, "columns-v1 payload is not a whole number of records"),
        NackCode("count_mismatch", False, "number of events differs from the header's count"),
        NackCode("seq_order", False, "seqs are not first_seq, first_seq+1, ... (or CLOSE "
                 "next_seq is below what is stored)"),
        NackCode("bad_time", False, "a time is NaN, infinite, negative, or goes backwards"),
        NackCode("unknown_event", False, "an event name or code is not in the scenario"),
        NackCode("unknown_signal", False, "a signal name is not in the scenario"),
        NackCode("bad_value", False, "a signal value is infinite or not a number"),
        NackCode("unknown_session", False, "no OPEN was stored for this session"),
        NackCode("gap", True, "first_seq (or CLOSE next_seq) is beyond the next expected seq; "
                 "resend from expected_seq"),
        NackCode("closed", False, "new events or a different end time after CLOSE"),
        NackCode("session_conflict", False, "OPEN for an existing session with different details"),
        NackCode("unknown_scenario", False, "OPEN names a scenario the engine does not know"),
        NackCode("unknown_rubric", False, "OPEN names a rubric (or version) the engine does not "
                 "know, or one for another scenario"),
        NackCode("internal", True, "the engine could not store the message; resend later"),
        NackCode("session_owned", True, "another engine on the same database owns the "
                 "session: send to that engine, or resend later (taken over once it is gone)"),
    )
}


# ------------------------------------------------------------------------------ parsing


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    """A header frame that is not a valid client message: the NACK to answer it with."""

    code: str
    message: str
    session: str | None = None
    in_reply_to: str | None = None


_CLIENT: TypeAdapter[ClientMessage] = TypeAdapter(
    Annotated[ClientMessage, Field(discriminator="type")]
)
_SERVER: TypeAdapter[ServerMessage] = TypeAdapter(
    Annotated[ServerMessage, Field(discriminator="type")]
)
_SPECIAL_FIELDS: Final = {"t": "bad_time", "encoding": "bad_encoding"}


EMPTY_HEADER_HINT: Final = (
    "the first frame is empty, but it must be the JSON header: an empty delimiter frame is a "
    "REQ/REP convention; connect a DEALER socket and send the header first"
)
"""What a NACK says to a client whose first frame is empty (a REQ socket's delimiter)."""


def parse_client_header(frame: bytes) -> ClientMessage | HeaderProblem:
    """The client message in a header frame, or the problem (with its NACK code). Never
    raises, whatever the bytes; the problem's strings are always valid UTF-8."""
    if not frame:
        return HeaderProblem("bad_header", EMPTY_HEADER_HINT)
    try:
        return _CLIENT.validate_json(frame)
    except ValidationError as exc:
        return _problem(frame, exc)


def parse_server_header(frame: bytes) -> ServerMessage:
    """An engine message (raises pydantic.ValidationError if the frame is not one)."""
    return _SERVER.validate_json(frame)


def _problem(frame: bytes, exc: ValidationError) -> HeaderProblem:
    error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], error["loc"]
    session, mtype = _best_effort_ids(frame)
    if kind == "json_invalid":
        return HeaderProblem("bad_header", f"header is not JSON: {error['msg']}", session, mtype)
    if not loc and kind in ("dict_type", "model_type", "model_attributes_type"):
        return HeaderProblem("bad_header", "header must be a JSON object", session, mtype)
    if kind == "union_tag_not_found":
        return HeaderProblem("bad_header", "header has no 'type' field", session, mtype)
    if kind == "union_tag_invalid":
        return HeaderProblem(
            "unknown_type",
            f"unknown message type {mtype!r}; expected one of: "
            f"{', '.join(PAYLOAD_FRAMES)}",
            session,
            mtype,
        )
    where = ".".join(str(p) for p in loc[1:])
    code = _SPECIAL_FIELDS.get(str(loc[1]), "bad_message") if len(loc) > 1 else "bad_message"
    if not where:
        return HeaderProblem(code, f"{mtype}: {error['msg']}", session, mtype)
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == ID_PATTERN:
        error["msg"] = f"an id is {ID_RULE}"
    got = error.get("input")
    shown = "" if kind == "missing" else f" (got {json.dumps(got, default=repr)[:80]})"
    return HeaderProblem(code, f"{mtype} field {where!r}: {error['msg']}{shown}", session, mtype)


def _best_effort_ids(frame: bytes) -> tuple[str | None, str | None]:
    """Session id and type of a header that failed validation, when they are readable: short
    strings that are valid UTF-8 (so that the NACK echoing them can be sent)."""
    try:
        data: Any = json.loads(frame)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    return _echoable(data.get("session"), 200), _echoable(data.get("type"), 40)


def _echoable(value: object, limit: int) -> str | None:
    """`value` if it is a string of at most `limit` characters that UTF-8 can encode (JSON
    escapes may spell lone surrogates, which it cannot), else None."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


def _not_finite(value: JsonValue, where: str = "metadata") -> str | None:
    """The path of the first NaN or infinite number in a JSON value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    items: Any = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in items:
        found = _not_finite(item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]")
        if found is not None:
            return found
    return None
