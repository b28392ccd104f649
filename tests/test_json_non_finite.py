"""Numbers that are not finite (a metric's sum past the float range is Infinity) leave the
engine as JSON null wherever results are written as JSON: `score --json`, `rescore --json`,
`audit` comparing a stored report (the store writes null) with a recomputed one, the
stored audit and rescore details. Strict JSON (RFC 8259) throughout: no NaN or Infinity
tokens, which other tools (and PostgreSQL's jsonb) refuse."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.cli.audit_cmd import _walk
from assessengine.core.jsontext import dumps, finite_only

DATA = Path(__file__).parent / "data" / "non_finite"
RUBRIC = DATA / "rubrics" / "overflow.yaml"
EVENTS = [
    {"session": "S1", "open": {"learner": "L1", "scenario": "overflow"}},
    {"session": "S1", "seq": 0, "t": 0.0, "event": "sample", "signals": {"v": 1.5e308}},
    {"session": "S1", "seq": 1, "t": 1.0, "event": "sample", "signals": {"v": 1.5e308}},
    {"session": "S1", "close": {"t": 2.0}},
]


def _strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("engine", [[], ["--reference"]], ids=["kernel", "reference"])
def test_score_json_writes_an_overflowed_sum_as_null(tmp_path: Path, engine: list[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    result = CliRunner().invoke(main, ["score", "--rubric", str(RUBRIC), "--json", *engine,
                                       str(events)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (report,) = _strict(result.stdout)["sessions"]
    (total,) = report["criteria"]
    assert total["verdict"] == "fail"
    assert total["evidence"]["measured"] is None


def test_dumps_writes_every_non_finite_number_as_null_at_any_depth() -> None:
    data = {"a": math.inf, "b": [1.5, -math.inf, {"c": math.nan}], "d": (math.nan, 2)}
    assert _strict(dumps(data)) == {"a": None, "b": [1.5, None, {"c": None}], "d": [None, 2]}
    assert finite_only({"x": [math.inf]}) == {"x": [None]}
    kept = {"ok": 1.0, "n": None, "s": "Infinity"}
    assert dumps(kept) == '{"ok": 1.0, "n": null, "s": "Infinity"}'


def test_audit_sees_a_stored_null_and_a_recomputed_infinity_as_the_same_report() -> None:
    out: list[str] = []
    _walk({"measured": None}, {"measured": math.inf}, "report", out)
    assert out == []
