"""A property-based run of the API against its own OpenAPI schema (schemathesis): valid and
invalid requests, a bounded number of each per operation, with an admin token. No answer may
be a 5xx, and every answer must match the schema: documented status, content type
(`application/problem+json` for errors) and body.

Two of schemathesis's checks are left out, on purpose:
- positive_data_acceptance: a schema-valid request may still be refused with 422 (a criterion
  the rubric does not have, a cursor this API did not give, rubric text with problems);
- negative_data_rejection: unknown query parameters and headers are ignored, as HTTP APIs do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from assessengine.api.app import create_app

from .test_api_support import copy_template, make_tokens

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 12}
EXCLUDED = [checks.positive_data_acceptance, checks.negative_data_rejection]


@pytest.mark.slow
def test_no_request_the_schema_allows_or_forbids_gets_a_5xx_or_an_undocumented_answer(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, _ = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db, web=False)
    headers = {"Authorization": f"Bearer {make_tokens(app.state.service)['admin']}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    try:
        for mode, examples in EXAMPLES.items():
            for operation in operations:

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))  # fmt: skip
                def run(case: schemathesis.Case) -> None:
                    case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)

                try:
                    run()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to break in /health
                except Exception as exc:  # collect every operation's findings
                    failures.append(f"{mode.value} {operation.label}: {exc}")
    finally:
        app.state.service.close()
    assert not failures, "\n\n".join(failures)
