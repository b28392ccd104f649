"""Test support for the API tests (no tests here): a real SQLite store filled the way the engine
fills it (simulated sessions, codec-encoded batches appended through `SqliteStore`, reports from
the kernel scorer), tokens for every role, and clients."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_rubric
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.core.codec import Columns, Layout, encode_columns_v1, encode_json_v1
from assessengine.core.events import SessionEvents
from assessengine.core.offline import score_sessions
from assessengine.sim.generate import simulate
from assessengine.storage.port import SessionInfo
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import copy_store

ROOT = Path(__file__).resolve().parents[1]
FORKLIFT = ROOT / "rubrics" / "forklift-load-handling.yaml"
NETWORK = ROOT / "rubrics" / "network-lab.yaml"
EVENTS_PER_BATCH = 500
LEARNER = "learner-000001"
OTHER_LEARNER = "learner-000002"
ROLES = ("admin", "trainer", "assessor", "learner")


@dataclass(frozen=True)
class Stored:
    """What the template store holds: session ids by kind, in open order."""

    forklift_competent: tuple[str, ...]   # outcome incomplete: the observed criterion pending
    forklift_mixed: tuple[str, ...]
    network: tuple[str, ...]
    open_session: str

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.forklift_competent, *self.forklift_mixed, *self.network, self.open_session)


def store_sessions(
    store: SqliteStore, path: Path, profile: str, count: int, seed: int, *,
    close: bool = True, encode_json: bool = False,
) -> list[str]:  # fmt: skip
    """Simulate `count` sessions of the rubric at `path`, store them as the engine does and
    (closed ones) save their kernel reports. Returns their ids."""
    rubric, scenario = load_rubric(path)
    layout = Layout.of(scenario)
    sessions = simulate(scenario, profile, count, seed=seed).to_sessions()
    for s in sessions:
        _append(store, s, rubric.rubric, rubric.version, rubric.sha256(), scenario.scenario,
                layout, encode_json)  # fmt: skip
    if close:
        for s in sessions:
            assert s.close_t is not None
            store.close_session(s.session, s.close_t)
        for report in score_sessions(rubric, scenario, sessions):
            store.save_report(report.session, report.to_data())
    return [s.session for s in sessions]


def _append(
    store: SqliteStore, s: SessionEvents, rubric: str, version: int, sha: str, scenario: str,
    layout: Layout, encode_json: bool,
) -> None:  # fmt: skip
    store.open_session(SessionInfo(s.session, str(s.open["learner"]), scenario, rubric, version,
                                   sha, metadata={"profile": s.open.get("profile")}))  # fmt: skip
    items = []
    for start in range(0, len(s.events), EVENTS_PER_BATCH):
        part = s.events[start : start + EVENTS_PER_BATCH]
        header: dict[str, Any] = {"session": s.session, "first_seq": part[0].seq,
                                  "count": len(part)}  # fmt: skip
        if encode_json:
            header["encoding"] = "json-v1"
            payload = encode_json_v1(part, layout)
        else:
            header |= {"encoding": "columns-v1", "dtype": layout.dtype_header()}
            payload = encode_columns_v1(Columns.from_events(part, layout), layout)
        items.append((s.session, part[0].seq, len(part), header["encoding"],
                      json.dumps(header).encode(), payload))  # fmt: skip
    store.append_batches(items)


_TEMPLATE: dict[str, tuple[Path, Stored]] = {}
_LOCK = threading.Lock()


def template(folder: Path) -> tuple[Path, Stored]:
    """The template store, built once per test run."""
    with _LOCK:
        if "db" not in _TEMPLATE:
            path = folder / "template.db"
            with SqliteStore(path) as store:
                competent = store_sessions(store, FORKLIFT, "competent", 3, seed=1)
                mixed = store_sessions(store, FORKLIFT, "mixed", 6, seed=2)
                network = store_sessions(store, NETWORK, "mixed", 3, seed=3, encode_json=True)
                (still_open,) = store_sessions(store, FORKLIFT, "competent", 1, seed=4,
                                               close=False)  # fmt: skip
            stored = Stored(tuple(competent), tuple(mixed), tuple(network), still_open)
            _TEMPLATE["db"] = (path, stored)
        return _TEMPLATE["db"]


@dataclass
class Api:
    """A client over a private copy of the template store, with a token per role."""

    client: TestClient
    service: ReviewService
    db: Path
    stored: Stored
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, url: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers(role), **kwargs)

    def post(self, url: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.headers(role), **kwargs)


def make_tokens(service: ReviewService) -> dict[str, str]:
    tokens = {}
    for role in ROLES:
        learner = LEARNER if role == "learner" else None
        tokens[role] = service.create_token(name=f"{role}-1", role=role, learner=learner,
                                            actor="test")[1]  # fmt: skip
    tokens["learner2"] = service.create_token(name="learner-2", role="learner",
                                              learner=OTHER_LEARNER, actor="test")[1]  # fmt: skip
    return tokens


def copy_template(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Path, Stored]:
    path, stored = template(tmp_path_factory.getbasetemp())
    db = tmp_path / "engine.db"
    copy_store(path, db)
    return db, stored


def open_api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    """An `Api` over a private copy of the template store (for an `api` fixture)."""
    db, stored = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db, metrics=lambda: "assessengine_up 1\n", web=False)
    service: ReviewService = app.state.service
    tokens = make_tokens(service)
    with TestClient(app) as client:
        yield Api(client, service, db, stored, tokens)
