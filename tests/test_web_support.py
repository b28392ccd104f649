"""Test support for the web page tests (no tests here): a real SQLite store holding simulated,
scored sessions (stored as the engine stores them: columns-v1 batches appended through
`SqliteStore`, the kernel's report saved), tokens for every role, and sign-in helpers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.api.service import ReviewService
from assessengine.api.service.models import ObservationIn
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_scorer import score_columns
from assessengine.sim.generate import simulate
from assessengine.storage.port import SessionInfo
from assessengine.storage.sqlite import SqliteStore

ROWS_PER_BATCH = 1000
LEARNER = "learner-000001"
OTHER_LEARNER = "learner-000002"


@dataclass(frozen=True)
class Sessions:
    """The stored sessions. `speeder`: fails `loaded_speed` and `empty_speed` (outcome fail);
    `no_tilt`: fails `mast_tilted_back` and waits for the observed `looks_before_reversing`
    (outcome incomplete; a passing observation makes it pass); both are LEARNER's. `competent`
    (forklift) and `network` (network-lab) are OTHER_LEARNER's; `critical` (learner-000003)
    fails the critical `pre_use_checks`; `running` (learner-000003 too) is still open (events
    stored, no report)."""

    speeder: str
    no_tilt: str
    competent: str
    network: str
    critical: str
    running: str


def fill_store(path: Path) -> Sessions:
    """Simulate, store and score the `Sessions` in a new store at `path`."""
    with SqliteStore(path) as store:
        speeder = _store(store, "forklift-load-handling", "speeder", seed=2, index=0)
        no_tilt = _store(store, "forklift-load-handling", "no-tilt", seed=1, index=0)
        competent = _store(store, "forklift-load-handling", "competent", seed=3, index=1)
        network = _store(store, "network-lab", "competent", seed=4, index=1)
        critical = _store(store, "forklift-load-handling", "skips-inspection", seed=5, index=2)
        running = _store(store, "forklift-load-handling", "competent", seed=6, index=2,
                         close=False)  # fmt: skip
    return Sessions(speeder, no_tilt, competent, network, critical, running)


def _store(
    store: SqliteStore, rubric_id: str, profile: str, *, seed: int, index: int, close: bool = True,
    learner: str | None = None, source: str = "simulator", metadata: dict[str, str] | None = None,
) -> str:  # fmt: skip
    rubric, scenario = load_rubric(find_rubric(rubric_id))
    compiled = compile_rubric(rubric, scenario)
    layout = Layout.of(scenario)
    sim = simulate(scenario, profile, 1, seed=seed, first=index)
    sid = sim.session_ids[0] if learner is None else f"{learner}-{source}-{seed}"
    cols = Columns(sim.seq, sim.t, sim.event, sim.signals)
    store.open_session(SessionInfo(sid, learner or sim.learners[0], scenario.scenario,
                                   rubric.rubric, rubric.version, compiled.sha256,
                                   "field" if source == "field" else "simulator",
                                   {"profile": profile, **(metadata or {})}))  # fmt: skip
    items = []
    for start in range(0, len(cols), ROWS_PER_BATCH):
        end = start + ROWS_PER_BATCH
        part = Columns(cols.seq[start:end], cols.t[start:end], cols.event[start:end],
                       cols.signals[:, start:end])  # fmt: skip
        header = {"session": sid, "first_seq": start, "count": len(part),
                  "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
        items.append((sid, start, len(part), "columns-v1", json.dumps(header).encode(),
                      encode_columns_v1(part, layout)))  # fmt: skip
    store.append_batches(items)
    if not close:
        return sid
    store.close_session(sid, float(sim.close_t[0]))
    (report,) = score_columns(compiled, cols.to_batch(0), [sid], sim.close_t)
    store.save_report(sid, report.to_data())
    return sid


def make_tokens(service: ReviewService) -> dict[str, str]:
    """A token per role (the learner's is LEARNER's), and ``other_learner`` for OTHER_LEARNER."""
    tokens = {}
    for role in ("admin", "trainer", "assessor", "learner"):
        learner = LEARNER if role == "learner" else None
        _, tokens[role] = service.create_token(name=f"{role}-ann", role=role, learner=learner,
                                               actor="test")  # fmt: skip
    _, tokens["other_learner"] = service.create_token(
        name="other", role="learner", learner=OTHER_LEARNER, actor="test"
    )
    return tokens


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF value of the first form on a page."""
    found = CSRF_FIELD.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def add_session(
    path: Path, profile: str, *, seed: int, learner: str, source: str = "simulator",
    metadata: dict[str, str] | None = None, rubric: str = "forklift-load-handling",
) -> str:  # fmt: skip
    """One more scored session of `learner` in the store at `path`; its id."""
    with SqliteStore(path) as store:
        return _store(store, rubric, profile, seed=seed, index=seed, learner=learner,
                      source=source, metadata=metadata)  # fmt: skip


ELIGIBLE = "learner-eligible"


def add_eligible_and_tokens(db: Path) -> dict[str, str]:
    """ELIGIBLE's two simulator passes and one field pass, each observed by an assessor (they
    meet `forklift-operator`), and a token per role (`make_tokens`)."""
    mine = [add_session(db, "competent", seed=seed, learner=ELIGIBLE, source=source)
            for seed, source in ((31, "simulator"), (32, "simulator"), (33, "field"))]
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
        who = service.authenticate(tokens["assessor"])
        for sid in mine:
            service.observe(who, sid, ObservationIn(criterion="looks_before_reversing",
                                                    verdict="pass", note="seen"))  # fmt: skip
    finally:
        service.close()
    return tokens
