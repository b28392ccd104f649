"""YAML text with positions kept: plain data plus a map from data paths to line and column.

`load_yaml(text)` never raises on bad input. It returns a `YamlDocument` whose `data` is plain
Python (dicts, lists, str, int, float, bool, None), whose `positions` maps a path such as
``("criteria", 2, "never")`` to 1-based line/column marks, and whose `problems` lists syntax
errors, duplicate keys and other YAML-level faults with their marks.

Two readings differ from PyYAML's defaults, on purpose (see docs/rubrics.md):

- Mapping keys are always text, as written: ``on:`` is the key ``"on"`` (YAML 1.1 would read it
  as ``True``), ``1:`` is ``"1"``.
- Only ``true``/``false`` (any case style YAML allows) are booleans; ``yes``, ``no``, ``on``,
  ``off`` are text, as in YAML 1.2. So ``to: off`` names a state ``off``.

Limits (docs/operations.md, "Limits"), each a located problem:

- anchors (``&name``) and aliases (``*name``) are refused: an alias is a pointer, and a few
  hundred bytes of nested aliases expand to gigabytes (the "billion laughs"); and lists and
  mappings nest at most `MAX_DEPTH` deep. Both are found while the text is read event by
  event, before any tree is built, and give no data;
- a scalar with an explicit tag that PyYAML cannot read, or reads as anything but plain data
  (``!!binary``, ``!!timestamp``), is a problem and reads as None;
- a number must be finite (no ``.inf``, ``.nan``) and an integer within the int64 range;
  such a number is a problem at its place and stays in `data` as its text, so that checks of
  the data that follow find their own problem, if any, at that same place (callers report
  only the YAML one there: `adapters.library.locate_all`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
DataPath = tuple[PathPart, ...]

MAX_DEPTH = 50
"""How deep lists and mappings may nest (a rubric needs about 8 levels)."""
INT64_MAX = 2**63 - 1

_BOOL = "tag:yaml.org,2002:bool"
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]  # CSafeLoader is untyped
    """The C loader when available, with YAML 1.2 booleans."""


class _PyLoader(yaml.SafeLoader):
    """The pure-Python loader, with YAML 1.2 booleans."""


def _yaml12_booleans(loader: type[yaml.SafeLoader]) -> None:
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )


_yaml12_booleans(_Loader)
_yaml12_booleans(_PyLoader)


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """A YAML-level problem (syntax, duplicate key, unknown tag) at `mark`."""

    mark: Mark
    message: str


@dataclass(frozen=True, slots=True)
class _Entry:
    key: Mark | None  # the key's mark for mapping values; None for list items and the root
    node: Node


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each value (and the key naming it) of a loaded document is written.

    Every lookup accepts any path: a path that is not in the document resolves to its longest
    prefix that is (ultimately the document's start, 1:1), so a "missing key" points at the
    mapping that lacks it.
    """

    lines: tuple[str, ...] = ()
    entries: dict[DataPath, _Entry] = field(default_factory=dict)

    def __contains__(self, path: DataPath) -> bool:
        return path in self.entries

    def value(self, path: DataPath) -> Mark:
        """The start of the value at `path` (of the nearest enclosing value if absent)."""
        entry = self._nearest(path)
        return _content_mark(self.lines, entry.node) if entry else Mark(1, 1)

    def key(self, path: DataPath) -> Mark:
        """The start of the key naming `path`; for list items and the root, the value's start."""
        if path in self.entries:
            entry = self.entries[path]
            return entry.key or _content_mark(self.lines, entry.node)
        return self.value(path)

    def inside(self, path: DataPath, offset: int) -> Mark:
        """The mark of character `offset` of the text scalar at `path`.

        Exact for plain and quoted scalars written on one line; for multi-line and block
        scalars the value's characters are aligned with the source, which is right whenever
        `offset` points at a non-blank character (as condition errors do).
        """
        entry = self.entries.get(path)
        if entry is None or not isinstance(entry.node, ScalarNode):
            return self.value(path)
        return _inside(self.lines, entry.node, offset)

    def _nearest(self, path: DataPath) -> _Entry | None:
        for end in range(len(path), -1, -1):
            entry = self.entries.get(path[:end])
            if entry is not None:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A loaded document. `data` is None when the text could not be read (see `problems`)."""

    data: object
    positions: SourceMap
    problems: tuple[YamlProblem, ...]


def load_yaml(text: str, *, libyaml: bool = True) -> YamlDocument:
    """Read one YAML document from `text`, keeping positions; never raises for bad YAML.

    Duplicate keys are reported (at the repeated key) and the first value is kept. An empty
    text gives ``data=None`` and no problem; the caller decides whether that is an error.
    ``libyaml=False`` forces the pure-Python parser (the C one is used when installed).
    """
    lines = tuple(text.splitlines())
    loader = _Loader if libyaml else _PyLoader
    try:
        refused = _screen(text, loader)
        if refused is not None:
            return YamlDocument(None, SourceMap(lines), (refused,))
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        return YamlDocument(None, SourceMap(lines), (_syntax_problem(exc, lines),))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (no mark)
        return YamlDocument(None, SourceMap(lines), (_reader_problem(exc, text),))
    if root is None:
        return YamlDocument(None, SourceMap(lines), ())
    builder = _Builder()
    data = builder.build(root, (), None)
    return YamlDocument(data, SourceMap(lines, builder.entries), tuple(builder.problems))


def _screen(text: str, loader: type[yaml.SafeLoader]) -> YamlProblem | None:
    """The first anchor, alias or too deep nesting in `text`, read as a stream of events (no
    tree is built, so nothing can expand or recurse); None when there is none. Raises the
    parser's errors for bad syntax."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            return YamlProblem(_event_mark(event), "aliases and anchors ('*name', '&name') "
                               "are not allowed; write the value out in full")  # fmt: skip
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return YamlProblem(_event_mark(event), f"lists and mappings nest more "
                                   f"than {MAX_DEPTH} deep here; flatten the file")  # fmt: skip
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


# ------------------------------------------------------------------------------ construction


_PLAIN = (str, int, float, bool, type(None))
_UNREADABLE = object()


class _Builder:
    """Walks a composed node tree into plain data, recording each path's entry."""

    def __init__(self) -> None:
        self.entries: dict[DataPath, _Entry] = {}
        self.problems: list[YamlProblem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: Node, path: DataPath, key: Mark | None) -> object:
        """Plain data of `node` (a tree: `_screen` refused aliases, so no node is shared)."""
        self.entries[path] = _Entry(key, node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: Node) -> object:
        try:
            value = self._constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML's constructors fail in many ways on odd text
            # (``!!int`` with no digits raises IndexError, ``!!bool`` KeyError ...)
            if str(node.value).lstrip("+-").isdigit():  # more digits than Python reads
                self._problem(node, f"the integer is too large (at most {INT64_MAX})")
                return str(node.value)
            value = _UNREADABLE
        if not isinstance(value, _PLAIN):  # also ``!!binary`` bytes, ``!!timestamp`` dates
            self._problem(node, f"cannot read this value as '{node.tag}'; remove the tag")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._problem(node, f"{node.value!r} is not a finite number; write a number such as "
                          "100, or put text in quotes")  # fmt: skip
            return str(node.value)
        if isinstance(value, int) and not -INT64_MAX <= value <= INT64_MAX:
            self._problem(node, f"the integer is too large (at most {INT64_MAX})")
            return str(node.value)
        return value

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[str, object]:
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = self._key_text(key_node)
            if name is None:
                continue
            key_mark = _mark(key_node.start_mark)
            if name in first_line:
                self._problem(
                    key_node, f"duplicate key '{name}' (first at line {first_line[name]})"
                )
                continue
            first_line[name] = key_mark.line
            result[name] = self.build(value_node, (*path, name), key_mark)
        return result

    def _key_text(self, node: Node) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        self._problem(node, "a key must be a plain name, not a list or a mapping")
        return None

    def _problem(self, node: Node, message: str) -> None:
        self.problems.append(YamlProblem(_mark(node.start_mark), message))


def _mark(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


def _event_mark(event: yaml.Event) -> Mark:
    start = event.start_mark
    return Mark(start.line + 1, start.column + 1) if start is not None else Mark(1, 1)


# ------------------------------------------------------------------------------ syntax errors


def _reader_problem(exc: yaml.reader.ReaderError, text: str) -> YamlProblem:
    """The place and code of a character YAML refuses (control characters, say)."""
    before = text[: exc.position]
    where = Mark(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return YamlProblem(where, f"YAML syntax error: character #x{code:04x} is not allowed in YAML "
                       "(a control character?); remove it")  # fmt: skip


def _syntax_problem(exc: yaml.MarkedYAMLError, lines: tuple[str, ...]) -> YamlProblem:
    """One located message for a syntax error, worded the same for the C and Python parsers."""
    mark = exc.problem_mark or exc.context_mark
    where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
    found = _char_at(lines, where)
    opened = exc.context_mark.line + 1 if exc.context_mark else where.line
    return YamlProblem(where, "YAML syntax error: " + _explain(exc, found, opened))


def _explain(exc: yaml.MarkedYAMLError, found: str, opened: int) -> str:
    problem, context = (exc.problem or "").strip(), (exc.context or "").strip()
    if problem.startswith("mapping values are not allowed"):
        return "a ': ' is not allowed here; check the indentation, or quote text containing ': '"
    if found == "\t" or "tab character" in problem:
        return "a tab character; indent with spaces, not tabs"
    if "cannot start any token" in problem:
        return f"text cannot start with {found!r}; put it in quotes"
    if "quoted scalar" in context and "end of stream" in problem:
        return f"the quote opened at line {opened} is never closed"
    if "single document" in context:
        return "a second document ('---'); a file holds one document"
    if "flow sequence" in context:
        return f"the '[' list opened at line {opened} needs ',' between items and a closing ']'"
    if "flow mapping" in context:
        return (
            f"the '{{' mapping opened at line {opened} needs ',' between items and a closing '}}'"
        )
    if "undefined alias" in problem:
        return "an alias ('*name') refers to no anchor ('&name') above it"
    if "escape" in problem:
        return "unknown escape in double quotes; use single quotes for text with backslashes"
    if "block mapping" in context or "block collection" in context:
        return f"this line does not line up with the block that starts at line {opened}"
    suffix = f" ({context} at line {opened})" if context else ""
    return f"{problem or 'unreadable text'}{suffix}"


def _char_at(lines: tuple[str, ...], mark: Mark) -> str:
    if mark.line <= len(lines) and mark.column <= len(lines[mark.line - 1]):
        return lines[mark.line - 1][mark.column - 1]
    return ""


# ---------------------------------------------------------------- positions inside a scalar


def _content_mark(lines: tuple[str, ...], node: Node) -> Mark:
    """Where a node's content starts: after its anchor (``&a``) and tag (``!t``), if any."""
    line, column = node.start_mark.line, node.start_mark.column
    text = lines[line] if line < len(lines) else ""
    skipped = column
    while skipped < len(text) and text[skipped] in "&!":
        while skipped < len(text) and not text[skipped].isspace():
            skipped += 1
        while skipped < len(text) and text[skipped] in " \t":
            skipped += 1
    if skipped > column and skipped < len(text) and text[skipped] != "#":
        column = skipped
    return Mark(line + 1, column + 1)


def _inside(lines: tuple[str, ...], node: ScalarNode, offset: int) -> Mark:
    start = _content_mark(lines, node)
    if node.style is None and start.line - 1 == node.end_mark.line:
        return Mark(start.line, start.column + offset)
    if node.style in ("|", ">"):
        origin = (start.line, 0)
    else:
        origin = (start.line - 1, start.column - 1 + (1 if node.style in ("'", '"') else 0))
    end = (node.end_mark.line, node.end_mark.column)
    return _align(lines, origin, end, str(node.value), offset) or start


def _align(
    lines: tuple[str, ...], origin: tuple[int, int], end: tuple[int, int], value: str, offset: int
) -> Mark | None:
    """Match the value's non-blank characters, in order, with the source's; return where
    character `offset` falls (just after the previous match for a blank or the end)."""
    chars = _source_chars(lines, origin, end)
    after: Mark | None = None
    for index, char in enumerate(value[: offset + 1]):
        if char.isspace():
            continue
        for line, column, source in chars:
            if source == char:
                if index == offset:
                    return Mark(line + 1, column + 1)
                after = Mark(line + 1, column + 2)
                break
        else:
            return None
    if after is None:
        return Mark(origin[0] + 1, origin[1] + 1)
    return after


def _source_chars(
    lines: tuple[str, ...], origin: tuple[int, int], end: tuple[int, int]
) -> Iterator[tuple[int, int, str]]:
    line, column = origin
    while (line, column) < end and line < len(lines):
        text = lines[line]
        if column < len(text):
            yield line, column, text[column]
            column += 1
        else:
            line, column = line + 1, 0
