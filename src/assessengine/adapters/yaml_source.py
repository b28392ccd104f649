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
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathPart = str | int
DataPath = tuple[PathPart, ...]

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
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
    try:
        root = yaml.compose(text, Loader=_Loader if libyaml else _PyLoader)
    except yaml.MarkedYAMLError as exc:
        return YamlDocument(None, SourceMap(lines), (_syntax_problem(exc, lines),))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (no mark)
        return YamlDocument(None, SourceMap(lines), (_reader_problem(exc, text),))
    if root is None:
        return YamlDocument(None, SourceMap(lines), ())
    builder = _Builder()
    data = builder.build(root, (), None)
    return YamlDocument(data, SourceMap(lines, builder.entries), tuple(builder.problems))


# ------------------------------------------------------------------------------ construction


class _Builder:
    """Walks a composed node tree into plain data, recording each path's entry."""

    def __init__(self) -> None:
        self.entries: dict[DataPath, _Entry] = {}
        self.problems: list[YamlProblem] = []
        self._open: set[int] = set()
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: Node, path: DataPath, key: Mark | None) -> object:
        self.entries[path] = _Entry(key, node)
        if id(node) in self._open:
            self._problem(node, "an alias refers to a value that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: Node) -> object:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError):
            self._problem(node, f"cannot read this value as '{node.tag}'; remove the tag")
            return None

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[str, object]:
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node))
                continue
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
        for key_node, value_node in merged:
            name = self._key_text(key_node)
            if name is not None and name not in result:
                result[name] = self.build(value_node, (*path, name), _mark(key_node.start_mark))
        return result

    def _merge_sources(self, node: Node) -> Iterator[tuple[Node, Node]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if isinstance(source, MappingNode):
                yield from source.value
            else:
                self._problem(source, "'<<' (merge) needs a mapping or a list of mappings")

    def _key_text(self, node: Node) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        self._problem(node, "a key must be a plain name, not a list or a mapping")
        return None

    def _problem(self, node: Node, message: str) -> None:
        self.problems.append(YamlProblem(_mark(node.start_mark), message))


def _mark(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


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
