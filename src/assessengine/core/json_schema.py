"""JSON Schemas of the trainers' files, generated from the models that read them.

`file_schema("rubric")` is the JSON Schema (draft 2020-12) of a rubric file, built from
`core.rubric.Rubric` itself, so the schema cannot drift from what the engine accepts. Editors
with a YAML language server use it for completion, hover text and red squiggles; the checker
(`assessengine rubric check`) stays the authority.

What a schema can say is the file's shape: keys, types, patterns of ids and names, ranges,
enumerations, one template per criterion, the options each template takes. What it cannot
say: whether a signal or event exists in the scenario, whether a condition parses, whether a
machine's states are reachable, duplicate ids or keys. Two readings are deliberately stricter
than the checker, so that an editor nudges towards the documented forms: a key written with
no value (``points:``) is refused where the checker reads "not given", and numbers must be
written as numbers (``version: 3``, not ``version: "3"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .policy import Policy
from .rubric import Rubric
from .scenario import Scenario

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


class _FileSchema(GenerateJsonSchema):
    """Pydantic's generator, reading models as the YAML files are written."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        # an optional key is left out, never written without a value
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default", 0) is None:
            del generated["default"]
        return generated

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # a mapping with constrained keys: every key must match (pydantic's patternProperties
        # would let a key that does not match through, unchecked)
        generated = super().dict_schema(schema)
        patterns = generated.pop("patternProperties", None)
        if patterns is not None and len(patterns) == 1:
            ((pattern, values),) = patterns.items()
            generated["propertyNames"] = {"pattern": pattern}
            generated["additionalProperties"] = values
        elif patterns is not None:
            generated["patternProperties"] = patterns
        return generated

    def bool_schema(self, schema: core_schema.BoolSchema) -> JsonSchemaValue:
        # the files' YAML reads only true/false as booleans; the models also take yes/no
        return {"anyOf": [{"type": "boolean"}, {"enum": ["yes", "no"]}]}


def _tests_model() -> type[BaseModel]:
    from .rubric_tests import RubricTests  # noqa: PLC0415  # lands beside; optional until then

    return RubricTests


_MODELS: Final[dict[str, Callable[[], type[BaseModel]]]] = {
    "rubric": lambda: Rubric,
    "scenario": lambda: Scenario,
    "policy": lambda: Policy,
}
_TITLES: Final = {
    "rubric": "assessengine rubric file (rubrics/<id>.yaml)",
    "scenario": "assessengine scenario file (scenarios/<id>.yaml)",
    "policy": "assessengine credential policy file (credentials/<id>.yaml)",
    "tests": "assessengine rubric test file (rubrics/<id>.tests.yaml)",
}


def kinds() -> tuple[str, ...]:
    """The file kinds that have a schema: rubric, scenario, policy (and tests, once the rubric
    test model is part of the package)."""
    try:
        _tests_model()
    except ImportError:
        return tuple(_MODELS)
    return (*_MODELS, "tests")


def file_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a `kind` file (one of `kinds()`); KeyError for another kind."""
    if kind not in kinds():
        raise KeyError(kind)
    model = _tests_model() if kind == "tests" else _MODELS[kind]()
    body = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FileSchema)
    return {"$schema": DIALECT, **body, "title": _TITLES[kind]}


def schema_text(kind: str) -> str:
    """`file_schema(kind)` as the shipped file holds it: JSON, 2-space indent, keys sorted,
    newline at the end."""
    return json.dumps(file_schema(kind), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_filename(kind: str) -> str:
    """The shipped file's name: ``rubric.schema.json``."""
    return f"{kind}.schema.json"
