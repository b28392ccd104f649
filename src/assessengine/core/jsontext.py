"""Strict JSON text (RFC 8259) of results: what the engine writes wherever a report, a decision
or a detail leaves it as JSON (the CLI's ``--json``, archives, the HTTP API, stored details).

Python's `json.dumps` writes a float that is not finite as ``NaN``, ``Infinity`` or
``-Infinity``: tokens JSON does not have, which other tools and PostgreSQL's ``jsonb`` refuse.
A metric's sum past the float range is such a number. Here every one becomes ``null``, as
the store writes it (`storage._common.to_json`), so what is printed, stored and compared
agrees; `core.report.finite` reads such a value back as None.

    dumps({"measured": math.inf})      # '{"measured": null}'
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_only(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None, at any depth (dicts,
    lists and tuples are copied as dicts and lists; everything else is returned as is)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_only(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """`json.dumps(value, **options)` as strict JSON: non-finite numbers written as null
    (`finite_only`); never a NaN or Infinity token."""
    return json.dumps(finite_only(value), allow_nan=False, **options)
