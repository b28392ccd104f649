"""Make docs/sample-credential.json: a forklift operator credential, issued end to end.

Sessions are simulated (competent operator, `assessengine.sim`), written to a store exactly as
the engine stores them (hash-chained json-v1 batches), scored offline with the assessor's
observations recorded, then the `forklift-operator` policy is decided and the credential
issued and signed by `CredentialService`. The key, the dates, the credential id and the
status index are fixed, so the output is the same on every run.

    python docs/sample_credential.py          # rewrite docs/sample-credential.json
    python docs/sample_credential.py --check  # exit 1 if the file is out of date

tests/test_credentials_e2e.py runs the check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from assessengine.storage.credentials import MemoryCredentialStore
from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.storage.memory import MemoryStore
from assessengine.adapters.policies import load_policy
from assessengine.adapters.signer import IssuerKey
from assessengine.storage.port import SessionInfo, SessionRecord, Source, Store
from assessengine.core.codec import Layout, encode_json_v1
from assessengine.core.offline import score_sessions
from assessengine.credential_service import CredentialService, EngineUrls
from assessengine.sim.generate import simulate

OUT = Path(__file__).with_name("sample-credential.json")
ISSUER_KEY = IssuerKey.from_seed(hashlib.sha256(b"assessengine sample issuer").digest())
BASE_URL = "https://engine.example.org"
ISSUED_AT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
CREDENTIAL_ID = "urn:uuid:3f6c2a9e-8b41-4d7a-9c0e-5b2f7d1a4e68"
STATUS_INDEX = 94_567
EVENTS_PER_BATCH = 1024
LEARNER = "L-0042"
EMAIL = "dana.reyes@example.org"  # the learner's address: only its salted sha256 is written
# (session, source, simulated operator profile, when it closed): a pass, a failure that breaks
# the run, two consecutive passes, then a field pass (the horn was forgotten once: 85 / 100).
PLAN: tuple[tuple[str, Source, str, datetime], ...] = (
    ("FLT-S-0101", "simulator", "no-tilt", datetime(2025, 5, 5, 15, 2, 10, tzinfo=UTC)),
    ("FLT-S-0107", "simulator", "speeder", datetime(2025, 5, 12, 14, 5, 31, tzinfo=UTC)),
    ("FLT-S-0112", "simulator", "rushed-shutdown", datetime(2025, 5, 14, 10, 41, 2, tzinfo=UTC)),
    ("FLT-S-0118", "simulator", "competent", datetime(2025, 5, 16, 9, 12, 40, tzinfo=UTC)),
    ("FLT-F-0031", "field", "no-horn", datetime(2025, 5, 28, 8, 17, 45, tzinfo=UTC)),
)


def record_sessions(
    store: Store,
    rubric_id: str,
    learner: str,
    sessions: Sequence[tuple[str, Source, str]],
    *,
    seed: int = 1,
    assessor: str = "A-7",
    observe: bool = True,
) -> None:
    """Simulate, store (chained json-v1 batches), close and score `sessions` of `learner`,
    each given as (session id, source, simulated operator profile).

    Field sessions name `assessor` in their metadata; with `observe`, every `observed`
    criterion of every session is recorded as passed (otherwise it stays pending).
    """
    rubric, scenario = load_rubric(find_rubric(rubric_id))
    layout = Layout.of(scenario)
    for k, (session_id, source, profile) in enumerate(sessions):
        (events,) = simulate(scenario, profile, 1, seed=seed, first=k).to_sessions()
        events.session = session_id
        metadata = {"assessor": assessor} if source == "field" else {}
        info = SessionInfo(
            session_id, learner, scenario.scenario, rubric.rubric, rubric.version,
            rubric.sha256(), source, metadata,
        )  # fmt: skip
        store.open_session(info)
        for start in range(0, len(events.events), EVENTS_PER_BATCH):
            part = events.events[start : start + EVENTS_PER_BATCH]
            header = {"session": session_id, "first_seq": part[0].seq, "count": len(part),
                      "encoding": "json-v1"}  # fmt: skip
            payload = encode_json_v1(part, layout)
            item = (
                session_id,
                part[0].seq,
                len(part),
                "json-v1",
                json.dumps(header).encode(),
                payload,
            )
            store.append_batches([item])
        store.close_session(session_id, events.end_t)
        observed = {c.id: "pass" for c in rubric.criteria if c.observed is not None}
        (report,) = score_sessions(
            rubric, scenario, [events], observations={session_id: observed} if observe else None
        )
        store.save_report(session_id, report.to_data())


class FixedCloseTimes:
    """A read-only view of a store whose sessions closed at the given times (the store itself
    stamps the wall clock), so the sample does not depend on when it is made."""

    def __init__(self, store: Store, closed_at: Mapping[str, datetime]) -> None:
        self._store, self._closed_at = store, closed_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fixed(self, record: SessionRecord) -> SessionRecord:
        moment = self._closed_at[record.info.session]
        return dataclasses.replace(record, closed_at=moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    def session(self, session_id: str) -> SessionRecord | None:
        record = self._store.session(session_id)
        return None if record is None else self._fixed(record)

    def sessions(self, *, status: Any = None) -> list[SessionRecord]:
        return [self._fixed(r) for r in self._store.sessions(status=status)]


def build_sample() -> dict[str, Any]:
    """The sample credential (a fresh dict)."""
    store = MemoryStore()
    try:
        record_sessions(store, "forklift-load-handling", LEARNER, [p[:3] for p in PLAN])
        service = CredentialService(
            FixedCloseTimes(store, {p[0]: p[3] for p in PLAN}),  # type: ignore[arg-type]
            MemoryCredentialStore(),
            key=ISSUER_KEY,
            issuer_name="Example Training Centre",
            issuer_url="https://training.example.org",
            issuer_description="Material handling and mobile plant training, simulator and "
            "field.",
            issuer_email="credentials@training.example.org",
            issuer_image="https://training.example.org/logo.png",
            urls=EngineUrls(BASE_URL),
            new_salt=lambda: "5c0b7a3e9d214f6a",
            clock=lambda: ISSUED_AT + timedelta(microseconds=250_000),
            new_id=lambda: CREDENTIAL_ID,
            choose=lambda size: STATUS_INDEX,
        )
        issued = service.issue(LEARNER, load_policy("forklift-operator"), email=EMAIL)
        return dict(issued.document)
    finally:
        store.close()


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str]) -> int:
    text = render(build_sample())
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python docs/sample_credential.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
