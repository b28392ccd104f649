"""xAPI 1.0.3 statements for a scored session. Pure: a report and a few facts in, statements out.

For each closed session:

- ``completed`` (cmi5 verb) with ``result.completion`` and ``result.duration``;
- then, once the outcome is decided, ``passed`` or ``failed`` (cmi5 verbs) with
  ``result.success``, ``result.score`` (``scaled`` = score / 100, ``raw``, ``min`` 0,
  ``max`` 100), ``result.completion``, ``result.duration`` and the per-criterion verdicts as
  the result extension `EXT_CRITERIA`. An ``incomplete`` session (an observation still
  pending) carries its criteria on the ``completed`` statement instead. The statement that
  carries the criteria also carries, when `SessionFacts.reasons` gives them, the reasons for the
  outcome in words (`core.reasons`: failed critical criteria by title, the score against the
  pass mark, pending items) as the result extension `EXT_REASONS`, a list of strings.

Identities: the learner (actor) and the assessor (``context.instructor``, field sessions only)
are xAPI accounts on the engine's home page; the object is the rubric at its version
(``<activity base>/rubrics/<rubric>/versions/<version>``). ``context.registration`` is a UUID
derived from the session id (uuid5): every statement of a session carries it. A statement's id
is derived from its content (`content_id`: uuid5 over the canonical JSON of the statement
without its id), so producing the same statement again gives the same id (an LRS keeps one),
and a statement that changed (an observation decided the session, a re-scoring changed a
verdict) gets a new id: an LRS that enforces statement immutability (xAPI 1.0.3: a differing
statement under a known id is a 409 Conflict) stores it instead of refusing it.

The verbs are the cmi5 ones by IRI, but the statements are not "cmi5 defined" statements (no
launching LMS or AU is involved), so they carry no cmi5 category or session extension.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import quote

from ..errors import AssessEngineError
from .instants import utc_text

XAPI_VERSION: Final = "1.0.3"
VERBS: Final[Mapping[str, str]] = {
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
}
ASSESSMENT_ACTIVITY: Final = "http://adlnet.gov/expapi/activities/assessment"
VOIDED: Final = "http://adlnet.gov/expapi/verbs/voided"

ENGINE_IRI: Final = "https://assessengine.dev/xapi"
EXT_CRITERIA: Final = f"{ENGINE_IRI}/extensions/criteria"
EXT_REASONS: Final = f"{ENGINE_IRI}/extensions/reasons"
EXT_SESSION: Final = f"{ENGINE_IRI}/extensions/session"
EXT_SOURCE: Final = f"{ENGINE_IRI}/extensions/source"
EXT_RUBRIC_SHA256: Final = f"{ENGINE_IRI}/extensions/rubric-sha256"
EXT_CHAIN_HEAD: Final = f"{ENGINE_IRI}/extensions/chain-head"
#: The namespace of every UUID the engine derives for xAPI (statement ids, registrations).
UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, ENGINE_IRI)
_NOT_CONTENT: Final = frozenset({"id", "stored", "authority", "version"})
#: The longest session a statement reports (seconds, about 31 years): a session that closed
#: later than this (a close time of 1e308 s, say) is refused with a message, not formatted.
MAX_DURATION_S: Final = 1e9


class XapiError(AssessEngineError):
    """Statements cannot be made from what was given (e.g. a report that is not JSON-shaped)."""


@dataclass(frozen=True, slots=True)
class XapiConfig:
    """Where the engine's identities live.

    home_page:      the ``account.homePage`` of learners and assessors (the engine's URL)
    activity_base:  the prefix of activity ids (rubrics, scenarios)
    """

    home_page: str
    activity_base: str
    platform: str = "assessengine"
    language: str = "en-US"

    def __post_init__(self) -> None:
        for value, what in ((self.home_page, "home_page"), (self.activity_base, "activity_base")):
            if not value.startswith(("https://", "http://")):
                raise XapiError(f"{what} must be an http(s) URL, not {value!r}")


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the statements need beyond the report (from the stored session).

    ended_at:    when the session closed (timezone-aware)
    duration_s:  the session's length in seconds (its close time ``t``)
    assessor:    the field assessor's account name, when known
    reasons:     the outcome's reasons in words (`core.reasons`), when known
    """

    session: str
    learner: str
    source: Literal["simulator", "field"]
    ended_at: datetime
    duration_s: float
    assessor: str | None = None
    scenario: str | None = None
    rubric_title: str | None = None
    chain_head: str | None = None
    reasons: tuple[str, ...] = ()


def session_statements(
    report: Mapping[str, Any], facts: SessionFacts, config: XapiConfig
) -> list[dict[str, Any]]:
    """The statements of one scored session (the JSON of ``SessionReport.to_data()``)."""
    try:
        outcome = str(report["outcome"])
        criteria = [_criterion(c) for c in report["criteria"]]
        activity = _activity(report, facts, config)
        score = float(report["score"])
    except (KeyError, TypeError, ValueError) as error:
        raise XapiError(f"session {facts.session!r}: not a session report ({error!r})") from None
    if not 0.0 <= score <= 100.0 or math.isnan(score):
        raise XapiError(f"session {facts.session!r}: score {score!r} is outside 0..100")
    try:
        duration = iso_duration(facts.duration_s)
    except XapiError as error:
        raise XapiError(f"session {facts.session!r} closed at t = {facts.duration_s!r} s: "
                        f"{error}") from None  # fmt: skip
    extensions: dict[str, Any] = {EXT_CRITERIA: criteria}
    if facts.reasons:
        extensions[EXT_REASONS] = list(facts.reasons)
    completed: dict[str, Any] = {"completion": True, "duration": duration}
    if outcome not in ("pass", "fail"):
        completed["extensions"] = extensions
    statements = [_statement("completed", completed, activity, report, facts, config)]
    if outcome in ("pass", "fail"):
        judged = {
            "score": {"scaled": score / 100.0, "raw": score, "min": 0, "max": 100},
            "success": outcome == "pass",
            "completion": True,
            "duration": duration,
            "extensions": extensions,
        }
        verb = "passed" if outcome == "pass" else "failed"
        statements.append(_statement(verb, judged, activity, report, facts, config))
    return statements


def registration(session: str) -> str:
    """The ``context.registration`` of every statement of `session`."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"registration/{session}"))


def content_id(statement: Mapping[str, Any]) -> str:
    """The id of a statement with this content: uuid5 over its canonical JSON (keys sorted,
    no whitespace), leaving out what is not content: ``id`` and what an LRS adds (``stored``,
    ``authority``, ``version``). The statement's ``timestamp`` is when the session ended, not
    when it is sent, so it is content."""
    kept = {k: v for k, v in statement.items() if k not in _NOT_CONTENT}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip
    return str(uuid.uuid5(UUID_NAMESPACE, f"statement/{text}"))


def voiding_statement(statement_id: str, config: XapiConfig) -> dict[str, Any]:
    """The statement that voids `statement_id` (xAPI 1.0.3: verb ``voided``, a
    ``StatementRef`` object), made by the engine (an account named `config.platform` on its
    home page); its id derived from its content, like every statement's."""
    statement = {
        "actor": _agent(config.platform, config),
        "verb": {"id": VOIDED, "display": {config.language: "voided"}},
        "object": {"objectType": "StatementRef", "id": statement_id},
    }
    return {"id": content_id(statement), **statement}


def rubric_activity_id(config: XapiConfig, rubric: str, version: int) -> str:
    """The activity id of a rubric at a version."""
    return f"{config.activity_base.rstrip('/')}/rubrics/{quote(rubric, safe='')}/versions/{version}"


def iso_duration(seconds: float) -> str:
    """An ISO 8601 duration to the hundredth of a second: ``PT1H2M3.5S``, ``PT0S``. XapiError
    for a duration that is not a number of seconds from 0 to `MAX_DURATION_S`."""
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION_S:
        raise XapiError(f"a duration is a number of seconds from 0 to {MAX_DURATION_S:.0e} "
                        f"(about 31 years), not {seconds!r}")  # fmt: skip
    centi = round(seconds * 100)
    hours, rest = divmod(centi, 360_000)
    minutes, rest = divmod(rest, 6_000)
    whole, fraction = divmod(rest, 100)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if rest or text == "PT":
        text += f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") + "S"
    return text


def _statement(
    verb: str,
    result: dict[str, Any],
    activity: dict[str, Any],
    report: Mapping[str, Any],
    facts: SessionFacts,
    config: XapiConfig,
) -> dict[str, Any]:
    statement = {
        "actor": _agent(facts.learner, config),
        "verb": {"id": VERBS[verb], "display": {config.language: verb}},
        "object": activity,
        "result": result,
        "context": _context(report, facts, config),
        "timestamp": _timestamp(facts.ended_at),
    }
    return {"id": content_id(statement), **statement}


def _agent(name: str, config: XapiConfig) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": config.home_page, "name": name}}


def _activity(report: Mapping[str, Any], facts: SessionFacts, config: XapiConfig) -> dict[str, Any]:
    rubric, version = str(report["rubric"]), int(report["rubric_version"])
    title = facts.rubric_title or rubric
    return {
        "objectType": "Activity",
        "id": rubric_activity_id(config, rubric, version),
        "definition": {
            "type": ASSESSMENT_ACTIVITY,
            "name": {config.language: f"{title} (version {version})"},
        },
    }


def _context(report: Mapping[str, Any], facts: SessionFacts, config: XapiConfig) -> dict[str, Any]:
    extensions: dict[str, Any] = {EXT_SESSION: facts.session, EXT_SOURCE: facts.source}
    if isinstance(report.get("rubric_sha256"), str):
        extensions[EXT_RUBRIC_SHA256] = report["rubric_sha256"]
    if facts.chain_head is not None:
        extensions[EXT_CHAIN_HEAD] = facts.chain_head
    context: dict[str, Any] = {
        "registration": registration(facts.session),
        "platform": config.platform,
        "language": config.language,
        "extensions": extensions,
    }
    if facts.source == "field" and facts.assessor:
        context["instructor"] = _agent(facts.assessor, config)
    if facts.scenario:
        scenario_id = f"{config.activity_base.rstrip('/')}/scenarios/{quote(facts.scenario)}"
        context["contextActivities"] = {"grouping": [{"objectType": "Activity", "id": scenario_id}]}
    return context


def _criterion(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(item["id"]),
        "title": str(item["title"]),
        "verdict": str(item["verdict"]),
        "critical": bool(item.get("critical", False)),
        "points": float(item.get("points", 0.0)),
    }


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise XapiError("ended_at must be timezone-aware")
    return utc_text(moment, "milliseconds")
