"""A fuzz test of the HTTP API from its own OpenAPI document: hypothesis draws an operation, its
path and query parameters and its body from the schema, or from values at the edges (integers
past 64 bits, 1e308, NaN, dates past year 9999 after their offset, empty and over-long text,
control characters), sends them with an admin token, a learner's or none, and every answer
must be below 500. Every operation gets its share of 400 examples (about 20 s in all)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.api.app import create_app

from .test_api_support import LEARNER, OTHER_LEARNER, copy_template, make_tokens

EXAMPLES = 400
EDGE_TEXT = st.sampled_from([
    "", " ", "0", "-1", "1e308", "-1e308", "nan", "NaN", "inf", "-Infinity", "null", "true",
    str(2**63), str(2**63 - 1), str(-(2**63) - 1), str(2**64), "9" * 40, "0x10", "1_000",
    "2026-02-30T00:00:00Z", "99999-01-01", "\x00", "\u202e", "é", "../../etc/passwd", "%2F",
    "a" * 201, "a" * 5000,
    "learner-000001", "forklift-load-handling", "forklift-operator", "urn:uuid:1",
])  # fmt: skip
EDGE_DATES = st.sampled_from([  # past year 9999 or before year 1 once in UTC
    "9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z",
])  # fmt: skip
CURSORS = st.builds(  # what a cursor is made of (kind:key, base64url), with any key
    lambda kind, key: base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("="),
    st.sampled_from("sa"),
    st.integers() | st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30]) | st.text(max_size=4),
)
DOCUMENT_KEYS = st.sampled_from([  # a credential to verify: any JSON object, these keys matter
    "validFrom", "validUntil", "credentialStatus", "proof", "@context", "type", "issuer", "id",
    "credentialSubject",
])  # fmt: skip
EDGE_NUMBERS = st.sampled_from([
    0, -1, 1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30,
    1e308, -1e308, 1e-308, 0.5, 1e9, 1e9 + 1,
])  # fmt: skip


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None  # the JSON body's schema
    form: dict[str, Any] | None  # the multipart body's schema


def operations(schema: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            found.append(Operation(
                method.upper(), path, tuple(op.get("parameters", ())),
                content.get("application/json", {}).get("schema"),
                content.get("multipart/form-data", {}).get("schema"),
            ))  # fmt: skip
    return sorted(found, key=lambda o: (o.path, o.method))


class Values:
    """Strategies for the values a JSON schema (with its ``$ref``s) allows, and edge values;
    a field or parameter whose name is in `known` mostly takes one of the stored records' (so
    that requests reach the code behind the lookups)."""

    def __init__(self, components: dict[str, Any], known: dict[str, list[Any]]) -> None:
        self.components, self.known = components, known

    def of(self, schema: dict[str, Any], depth: int = 0, name: str = "") -> st.SearchStrategy[Any]:
        """Mostly values the schema allows (so that requests get past validation to the code
        behind it), one in eight at the edges."""
        edge = st.one_of(EDGE_TEXT, EDGE_NUMBERS, EDGE_DATES, st.none(), st.booleans())
        if depth >= 4:
            return edge
        valid = self._valid(schema, depth)
        if name in self.known:
            valid = st.one_of(st.sampled_from(self.known[name]), valid)
        return st.integers(0, 7).flatmap(lambda k: edge if k == 0 else valid)

    def _valid(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            return self.of(self.components[schema["$ref"].rsplit("/", 1)[-1]], depth + 1)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                return st.one_of([self.of(s, depth + 1) for s in schema[key]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if kind == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "number":
            return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            return st.lists(self.of(schema.get("items", {}), depth + 1), max_size=4)
        if schema.get("additionalProperties") is True and "properties" not in schema:
            field = st.one_of(EDGE_DATES, self.of({}, depth + 1))
            return st.dictionaries(DOCUMENT_KEYS, field, max_size=4)
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            return st.fixed_dictionaries(
                {k: self.of(v, depth + 1, k) for k, v in properties.items()
                 if k in schema.get("required", ())},
                optional={k: self.of(v, depth + 1, k) for k, v in properties.items()
                          if k not in schema.get("required", ())},
            )  # fmt: skip
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat())
        return st.text(min_size=schema.get("minLength", 0),
                       max_size=min(schema.get("maxLength", 40), 40))  # fmt: skip


Fuzzed = tuple[TestClient, dict[str, str], dict[str, list[Any]]]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """A client over a copy of the template store, its tokens, and the names it knows."""
    folder = tmp_path_factory.mktemp("fuzz")
    db, stored = copy_template(tmp_path_factory, folder)
    with sqlite3.connect(db) as edit:  # a session closed at the far end of time
        edit.execute("UPDATE sessions SET close_t = 1e308 WHERE session = ?",
                     (stored.forklift_mixed[1],))  # fmt: skip
    app = create_app(db_path=db, web=False)
    tokens = make_tokens(app.state.service)
    known: dict[str, list[Any]] = {
        "session_id": list(stored.all), "session": list(stored.all),
        "sessions": [list(stored.all[:2])], "learner": [LEARNER, OTHER_LEARNER],
        "rubric": ["forklift-load-handling", "network-lab"], "version": [1],
        "policy": ["forklift-operator"], "criterion": ["looks_before_reversing"],
        "list_id": [1], "rescore_id": [1], "verdict": ["pass", "fail"],
    }  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tokens, known


@st.composite
def requests(draw: st.DrawFn, op: Operation, values: Values) -> tuple[str, dict[str, Any]]:
    """A path (its parameters filled in) and the query, body or form of a request to `op`."""
    path, query = op.path, {}
    for parameter in op.parameters:
        name = parameter["name"]
        value = draw(CURSORS if name == "cursor" else values.of(parameter.get("schema", {}),
                                                                 name=name))  # fmt: skip
        text = json.dumps(value) if not isinstance(value, str) else value
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", quote(text, safe="") or "x")
        elif parameter["in"] == "query" and value is not None and (
            parameter.get("required") or draw(st.integers(0, 2)) == 0
        ):
            query[parameter["name"]] = text
    kwargs: dict[str, Any] = {"params": query}
    if op.body is not None:
        body = draw(values.of(op.body))
        kwargs["content"] = draw(st.sampled_from([json.dumps(body)] * 3 + ["{", "[]" * 3000]))
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif op.form is not None:
        kwargs["files"] = {"file": ("log.csv", draw(st.binary(max_size=200)))}
        kwargs["data"] = {k: str(draw(values.of(v, name=k)))
                          for k, v in op.form.get("properties", {}).items() if k != "file"}
    return path, kwargs


OPERATIONS_OF_THE_APP = [
    "GET /api/v1/me", "GET /api/v1/sessions", "GET /api/v1/sessions/{session_id}",
    "GET /api/v1/sessions/{session_id}/events", "POST /api/v1/sessions/{session_id}/observations",
    "POST /api/v1/sessions/{session_id}/overrides", "POST /api/v1/field-sessions",
    "GET /api/v1/rubrics", "POST /api/v1/rubrics", "GET /api/v1/rubrics/{rubric}/{version}",
    "POST /api/v1/rescores", "GET /api/v1/rescores/{rescore_id}",
    "GET /api/v1/learners/{learner}/history", "GET /api/v1/audit",
    "POST /api/v1/credentials/issue", "GET /api/v1/learners/{learner}",
    "GET /api/v1/learners/{learner}/credentials",
    "GET /api/v1/learners/{learner}/credentials/{credential_id}",
    "POST /api/v1/credentials/{credential_id}/revoke", "POST /api/v1/credentials/verify",
    "GET /api/v1/credentials/status/{list_id}", "GET /api/v1/achievements/{policy}",
    "GET /api/v1/sessions/{session_id}/xapi", "POST /api/v1/sessions/{session_id}/xapi/forward",
    "GET /health", "GET /metrics",
    "GET /api/v1/review-queue", "GET /api/v1/review-queue.csv", "GET /api/v1/sessions.csv",
    "GET /api/v1/dashboard", "GET /api/v1/learners/{learner}/progress",
    "GET /api/v1/calibration/agreement", "GET /api/v1/calibration/validity",
    "GET /api/v1/credentials/expiring",
    "GET /api/v1/achievements/{policy}/image", "GET /api/v1/achievements/{policy}/image.{kind}",
    "GET /api/v1/learners/{learner}/credentials/{credential_id}/badge.{kind}",
    "GET /api/v1/learners/{learner}/credentials/{credential_id}/certificate.pdf",
    "GET /api/v1/credentials/{credential_id}/share",
    "PUT /api/v1/credentials/{credential_id}/share",
    "DELETE /api/v1/credentials/{credential_id}/share",
    "GET /api/v1/sessions/{session_id}/double-marking",
    "POST /api/v1/sessions/{session_id}/double-marking",
    "GET /api/v1/double-marking", "POST /api/v1/sessions/{session_id}/double-marks",
    "GET /api/v1/calibration/inter-rater", "GET /.well-known/did.json",
]  # fmt: skip
PER_OPERATION = EXAMPLES // len(OPERATIONS_OF_THE_APP) + 1


@pytest.mark.parametrize("name", OPERATIONS_OF_THE_APP)
def test_no_request_drawn_from_the_openapi_schema_is_answered_5xx(
    fuzzed: Fuzzed, name: str
) -> None:
    client, tokens, known = fuzzed
    schema = client.app.openapi()  # type: ignore[attr-defined]
    op = next(o for o in operations(schema) if f"{o.method} {o.path}" == name)
    values = Values(schema["components"]["schemas"], known)

    @settings(max_examples=PER_OPERATION, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=requests(op, values), role=st.sampled_from(["admin", "admin", "learner", None]))
    def check(request: tuple[str, dict[str, Any]], role: str | None) -> None:
        path, kwargs = request
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {tokens[role]}"
        answer = client.request(op.method, path, headers=headers, **kwargs)
        assert answer.status_code < 500, (
            f"{op.method} {path} {kwargs} as {role}: {answer.status_code} {answer.text[:300]}"
        )

    check()


def test_every_operation_of_the_schema_is_fuzzed(fuzzed: Fuzzed) -> None:
    schema = fuzzed[0].app.openapi()  # type: ignore[attr-defined]
    found = {f"{o.method} {o.path}" for o in operations(schema)}
    assert found == set(OPERATIONS_OF_THE_APP)
