"""One rule for session and learner ids (`core.ids`), and every edge that takes one keeps
it: the ZeroMQ protocol, events files, the store itself (a backstop). Uploads and learner
tokens are in test_api_uploads / test_api_access."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_scenario
from assessengine.core.events import parse_events_lines
from assessengine.core.ids import MAX_ID_LENGTH, check_id, id_problem, is_id
from assessengine.core.wire import HeaderProblem, Open, parse_client_header
from assessengine.errors import EventsError
from assessengine.sim.generate import simulate
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo, Store, StoreError
from assessengine.storage.sqlite import SqliteStore

from .ingest_engine import DEMO

VALID = ["S1", "L", "forklift-warehouse-s1-000042", "learner-000042", "field-3f9a0c1b2d4e",
         "0b6f3c1e-8d2a-4f51-9a7e-5c3b2d1e0f9a", "ana.lopez@mine.example", "site:7",
         "x" * MAX_ID_LENGTH, "0"]  # fmt: skip
INVALID = ["", ".", "..", "a/b", "../etc", "a b", "-rm", "_x", "a%2Fb", "tab\t", "nul\x00",
           "x" * (MAX_ID_LENGTH + 1), "é", "\ud800", "a?b", "a#b"]  # fmt: skip


@pytest.mark.parametrize("value", VALID)
def test_ids_a_simulator_a_uuid_or_an_email_make_are_valid(value: str) -> None:
    assert is_id(value)
    assert id_problem(value, "session") is None
    assert check_id(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_slashes_dots_spaces_control_characters_and_long_ids_are_not(value: str) -> None:
    assert not is_id(value)
    problem = id_problem(value, "session")
    assert problem is not None
    assert problem.startswith("session ")
    assert "\n" not in problem
    with pytest.raises(ValueError, match="session"):
        check_id(value, "session")


@pytest.mark.parametrize("value", [None, 7, b"S1", ["S1"]])
def test_an_id_is_a_string(value: object) -> None:
    assert id_problem(value, "learner") == (
        f"learner must be a string (an id), got {type(value).__name__}")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_ID_LENGTH + 5))
def test_the_pydantic_type_and_the_function_agree(value: str) -> None:
    header = Open(type="OPEN", session="S1", learner="L1", scenario="s", rubric="r")
    frame = header.model_dump_json().replace('"S1"', json.dumps(value), 1).encode()
    parsed = parse_client_header(frame)
    assert isinstance(parsed, Open) == is_id(value)


@pytest.mark.parametrize("scenario", ["forklift-warehouse", "network-lab"])
def test_the_simulator_makes_valid_ids(scenario: str) -> None:
    sim = simulate(load_scenario(scenario), "mixed", 3, seed=1)
    assert all(is_id(s) for s in (*sim.session_ids, *sim.learners))


# ------------------------------------------------------------------------------ ZeroMQ OPEN


@pytest.mark.parametrize("field", ["session", "learner"])
@pytest.mark.parametrize("value", ["a/b", "x" * 5000, "ctl\x01", "."])
def test_an_open_with_an_invalid_id_is_nacked_naming_the_field(field: str, value: str) -> None:
    header = {"type": "OPEN", "session": "S1", "learner": "L1", "scenario": "demo",
              "rubric": "r"} | {field: value}  # fmt: skip
    parsed = parse_client_header(_dumps(header))
    assert isinstance(parsed, HeaderProblem)
    assert parsed.code == "bad_message"
    assert parsed.message.startswith(f"OPEN field '{field}':")


@pytest.mark.parametrize("kind", ["EVENTS", "CLOSE"])
def test_events_and_close_take_only_valid_session_ids(kind: str) -> None:
    header = ({"type": "EVENTS", "session": "a/b", "first_seq": 0, "count": 1,
               "encoding": "json-v1"} if kind == "EVENTS" else
              {"type": "CLOSE", "session": "a/b", "t": 1.0, "next_seq": 0})  # fmt: skip
    parsed = parse_client_header(_dumps(header))
    assert isinstance(parsed, HeaderProblem)
    assert "field 'session'" in parsed.message


def _dumps(header: dict[str, object]) -> bytes:
    return json.dumps(header).encode()


# ------------------------------------------------------------------------------ events files


@pytest.mark.parametrize(
    ("line", "says"),
    [('{"session": "a/b", "seq": 0, "t": 0, "event": "horn"}', "session 'a/b' is not a valid id"),
     ('{"session": "", "close": {"t": 1}}', "session '' is not a valid id"),
     ('{"session": "S1", "open": {"learner": "L\\u0001"}}', "open.learner 'L\\x01' is not"),
     ('{"session": "S1", "open": {"learner": "%s"}}' % ("L" * 5000),
      "open.learner has 5000 characters; an id has at most 128"),
     ('{"session": "S1", "open": {"learner": 42}}', "open.learner must be a string")],
)  # fmt: skip
def test_an_events_file_with_an_invalid_id_names_its_line(line: str, says: str) -> None:
    ok = '{"session": "S0", "seq": 0, "t": 0, "event": "horn"}'
    with pytest.raises(EventsError) as caught:
        parse_events_lines([ok, line], scenario=DEMO, source="shift.jsonl")
    assert str(caught.value).startswith("shift.jsonl:2: ")
    assert says in str(caught.value)


# ------------------------------------------------------------------------------ the store


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("field", ["session", "learner"])
def test_the_store_refuses_a_session_whose_ids_break_the_rule(
    tmp_path: Path, kind: str, field: str
) -> None:
    store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    try:
        info = SessionInfo("S1", "L1", "demo", "r", 1, "0" * 64, "simulator", {})
        bad = replace(info, **{field: "a/b"})
        (result,) = store.open_sessions([bad])
        assert isinstance(result, StoreError)
        assert f"{field} 'a/b' is not a valid id" in str(result)
        assert store.sessions() == []
    finally:
        store.close()

