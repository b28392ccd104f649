"""Problems in a rubric or scenario, located by data path, and the translation of pydantic
validation errors into words a trainer can act on.

`problems_from_validation` turns the errors of ``Model.model_validate(data)`` into `Problem`s:
unknown key with "did you mean", wrong type, missing key, bad duration, bad condition (with the
offset inside its text), choices listed; pydantic's follow-on noise is dropped. Pure: no files,
no YAML; positions are the caller's business.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .model import ID_PATTERN, NAME_PATTERN
from .rubric import TEMPLATES

PathPart = str | int
DataPath = tuple[PathPart, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem at `path` in the rubric's data.

    `offset` is a 0-based offset inside the text at `path` (conditions); `at_key` asks to point
    at the key naming `path` rather than at its value; `first` is where a duplicated name was
    first written.
    """

    path: DataPath
    message: str
    offset: int | None = None
    at_key: bool = False
    first: DataPath | None = None


def problems_from_validation(error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Translate the errors of ``model.model_validate`` into trainer-friendly problems.

    Follow-on errors are dropped: a list's ``too_short`` when one of its items already failed
    (pydantic counts only the valid items).
    """
    errors = error.errors(include_url=False)
    return [_problem(e, model) for e in errors if not _follow_on(e, errors)]


def _subpath(ctx: Mapping[str, Any]) -> DataPath:
    """Where inside the value a custom validator found the fault: ``ctx["subpath"]``, a key
    or a tuple of keys and indexes (none: the value itself)."""
    sub = ctx.get("subpath", ())
    return tuple(sub) if isinstance(sub, tuple | list) else (sub,)


def _follow_on(error: ErrorDetails, errors: Sequence[ErrorDetails]) -> bool:
    loc = error["loc"]
    return error["type"] == "too_short" and any(
        len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors
    )


def _problem(error: ErrorDetails, model: type[BaseModel]) -> Problem:
    loc: DataPath = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        return Problem(loc, _unknown_key(str(loc[-1]), _keys_at(model, loc[:-1])), at_key=True)
    if loc and loc[-1] == "[key]":
        return Problem(loc[:-1], _message(kind, loc[-2], ctx, error["msg"]), at_key=True)
    if kind == "missing":
        return Problem(loc, f"missing required key '{loc[-1]}'")
    if kind == "misplaced_key":
        return Problem((*loc, ctx["key"]), error["msg"], at_key=True)
    if kind in ("condition", "expression", "row"):
        return Problem((*loc, *_subpath(ctx)), error["msg"], offset=ctx.get("offset"))
    if kind == "step" and isinstance(value, dict):
        return _bad_step(loc, value, error["msg"])
    if not loc and kind == "model_type":
        return Problem(loc, _not_a_mapping(value, model))
    empty = _empty_template(value) if kind == "value_error" else None
    if empty is not None:
        message = f"'{empty}' has no value; write its condition or settings"
        return Problem((*loc, empty), message, at_key=True)
    return Problem(loc, _message(kind, value, ctx, error["msg"]))


def _empty_template(criterion: object) -> str | None:
    """The template key written without a value (YAML reads it as absent), if that is why a
    criterion has no template."""
    if not isinstance(criterion, dict):
        return None
    written = [key for key in TEMPLATES if key in criterion]
    present = [key for key in written if criterion[key] is not None]
    empty = [key for key in written if criterion[key] is None]
    return empty[0] if empty and not present else None


def _bad_step(loc: DataPath, value: Mapping[Any, Any], fallback: str) -> Problem:
    extra = [key for key in value if key != "when"]
    if not extra:
        return Problem(loc, fallback)
    message = f"unknown key '{extra[0]}' in a step; a step is an event name or {{when: CONDITION}}"
    return Problem((*loc, str(extra[0])), message, at_key=True)


def _not_a_mapping(value: object, model: type[BaseModel]) -> str:
    """For a whole file that is empty or not a mapping: name the key a `model` file starts with."""
    what = model.__name__.lower()
    first = next(iter(model.model_fields))
    if value is None:
        return f"the file is empty; a {what} starts with '{first}: <id>'"
    return f"expected a mapping of keys to values ({first}: ...), got {_show(value)}"


_SIMPLE = {
    "int_parsing": "expected an integer, got {v}",
    "int_type": "expected an integer, got {v}",
    "int_from_float": "expected an integer, got {v}",
    "float_parsing": "expected a number, got {v}",
    "float_type": "expected a number, got {v}",
    "finite_number": "expected a finite number, got {v}",
    "bool_parsing": "expected true or false, got {v}",
    "bool_type": "expected true or false, got {v}",
    "string_too_short": "must not be empty",
    "dict_type": "expected a mapping (key: value), got {v}",
    "model_type": "expected a mapping (key: value), got {v}",
    "model_attributes_type": "expected a mapping (key: value), got {v}",
}


def _message(kind: str, value: object, ctx: Mapping[str, Any], fallback: str) -> str:
    if kind in _SIMPLE:
        return _SIMPLE[kind].format(v=_show(value))
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(value, ctx)
    if fallback.startswith("Value error, "):
        return fallback.removeprefix("Value error, ")
    return fallback[:1].lower() + fallback[1:]


def _string(value: object, ctx: Mapping[str, Any]) -> str:
    quote = " (put it in quotes)" if isinstance(value, int | float) else ""
    return f"expected text, got {_show(value)}{quote}"


def _pattern(value: object, ctx: Mapping[str, Any]) -> str:
    if ctx.get("pattern") == ID_PATTERN:
        return f"{_show(value)} is not a valid id: use lowercase letters, digits and '-'"
    if ctx.get("pattern") == NAME_PATTERN:
        rule = "letters, digits and '_', not starting with a digit"
        return f"{_show(value)} is not a valid name: use {rule}"
    return f"{_show(value)} does not have the expected form"


def _sequence(value: object, ctx: Mapping[str, Any]) -> str:
    hint = f" (for a list of one, write [{value}])" if isinstance(value, str) else ""
    return f"expected a list, got {_show(value)}{hint}"


def _too_short(value: object, ctx: Mapping[str, Any]) -> str:
    count = int(ctx.get("min_length", 1))
    return f"needs at least {count} item{'s' if count != 1 else ''}"


def _too_long(value: object, ctx: Mapping[str, Any]) -> str:
    count, actual = int(ctx.get("max_length", 0)), ctx.get("actual_length")
    got = f", got {int(actual):,}" if isinstance(actual, int) else ""
    return f"at most {count:,} item{'s' if count != 1 else ''}{got}"


def _text_too_long(value: object, ctx: Mapping[str, Any]) -> str:
    return f"at most {int(ctx.get('max_length', 0)):,} characters, got {len(str(value)):,}"


def _bound(word: str, key: str) -> Callable[[object, Mapping[str, Any]], str]:
    return lambda value, ctx: f"must be {word} {_number(ctx[key])}, got {_show(value)}"


def _literal(value: object, ctx: Mapping[str, Any]) -> str:
    choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    listed = " or ".join(choices) if len(choices) <= 2 else ", ".join(choices)
    lead = "expected" if len(choices) <= 2 else "expected one of"
    return f"{lead} {listed}, got {_show(value)}{did_you_mean(str(value), choices)}"


_SPECIAL: dict[str, Callable[[object, Mapping[str, Any]], str]] = {
    "string_type": _string,
    "string_pattern_mismatch": _pattern,
    "tuple_type": _sequence,
    "list_type": _sequence,
    "too_short": _too_short,
    "too_long": _too_long,
    "string_too_long": _text_too_long,
    "greater_than_equal": _bound("at least", "ge"),
    "greater_than": _bound("more than", "gt"),
    "less_than_equal": _bound("at most", "le"),
    "less_than": _bound("less than", "lt"),
    "literal_error": _literal,
}


def _show(value: object) -> str:
    """A value as a trainer wrote it in YAML."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    hint = did_you_mean(key, allowed)
    if not hint and 0 < len(allowed) <= 6:
        hint = f" (allowed: {', '.join(allowed)})"
    return f"unknown key '{key}'{hint}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the `closest` candidate, or an empty string."""
    match = closest(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a trainer most likely meant by `word`, if one is close enough.

    Close enough: the same up to case; or a similarity ratio of at least 0.75 (0.6 for words
    of up to 4 letters); or one contains the other (words of 3 letters or more).
    """
    options = [c for c in candidates if c != word]
    for option in options:
        if option.lower() == word.lower():
            return option
    ranked = sorted(options, key=lambda o: -difflib.SequenceMatcher(None, word, o).ratio())
    for option in ranked:
        ratio = difflib.SequenceMatcher(None, word, option).ratio()
        contains = min(len(word), len(option)) >= 3 and (word in option or option in word)
        if ratio >= 0.75 or (ratio >= 0.6 and len(word) <= 4) or contains:
            return option
    return None


def _keys_at(model: type[BaseModel], loc: DataPath) -> list[str]:
    """The keys (aliases) that the model found at `loc` accepts; [] if `loc` is not a model."""
    target: object = model
    for part in loc:
        target = _inner(_plain(target), part)
    target = _plain(target)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [info.alias or name for name, info in target.model_fields.items()]
    return []


def _plain(annotation: object) -> object:
    """Strip ``Annotated[...]`` and ``X | None`` down to X."""
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _inner(annotation: object, part: PathPart) -> object:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (tuple, list) and args and isinstance(part, int):
        return args[0] if origin is list or args[-1] is Ellipsis else args[min(part, len(args) - 1)]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
