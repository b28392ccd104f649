"""The condition language: parse, type-check, print canonically, evaluate on numpy columns.

Grammar (lowest precedence first)::

    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | NAME | FUNC "(" args ")" | "(" or_expr ")"
    FUNC       := abs(x) | min(a, b) | max(a, b) | between(x, lo, hi)

Limits, each an `ExprError` at the place it is passed (docs/operations.md, "Limits"): a text
of at most `MAX_LENGTH` characters, nesting at most `MAX_DEPTH` deep. Depth counts both the
parser's nesting (parentheses, function calls, ``not``, unary ``-``) and the tree's (each
operator of a chain such as ``a and b and c`` is a level), so every recursive walk of a parsed
tree (printing, evaluation, compilation) stays far inside Python's recursion limit.

Every expression has a kind: ``num`` (a number, possibly missing) or ``bool`` (three-valued:
false, unknown, true). Nothing is ever evaluated as Python.

Vectorised evaluation encodes numbers as float64 with NaN for missing, and truth values as int8
``FALSE = 0 < UNKNOWN = 1 < TRUE = 2`` so that Kleene ``and`` is ``minimum``, ``or`` is
``maximum`` and ``not`` is ``2 - x``. Division by zero gives a missing value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Kind = Literal["num", "bool"]

FALSE: int = 0
UNKNOWN: int = 1
TRUE: int = 2

KEYWORDS = frozenset({"and", "or", "not"})
FUNCTIONS: Mapping[str, int] = {"abs": 1, "min": 2, "max": 2, "between": 3}
RESERVED = KEYWORDS | frozenset(FUNCTIONS)
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
MAX_LENGTH = 4096
"""The longest condition or expression text, in characters."""
MAX_DEPTH = 50
"""How deep a condition may nest (see the module's docstring)."""


class ExprError(ValueError):
    """A condition could not be parsed or type-checked; `offset` is 0-based within the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Arith:
    op: Literal["+", "-", "*", "/"]
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Logic:
    op: Literal["and", "or"]
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    fn: Literal["abs", "min", "max", "between"]
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node = Num | Name | Neg | Not | Arith | Compare | Logic | Call


def kind_of(node: Node) -> Kind:
    """Return ``bool`` for conditions, ``num`` for numeric expressions."""
    if isinstance(node, Not | Compare | Logic):
        return "bool"
    if isinstance(node, Call) and node.fn == "between":
        return "bool"
    return "num"


def names_of(node: Node) -> frozenset[str]:
    """The signal names an expression reads."""
    if isinstance(node, Name):
        return frozenset({node.name})
    if isinstance(node, Num):
        return frozenset()
    if isinstance(node, Neg | Not):
        return names_of(node.operand)
    if isinstance(node, Call):
        return frozenset().union(*(names_of(a) for a in node.args))
    return names_of(node.left) | names_of(node.right)


def name_positions(node: Node) -> list[Name]:
    """Every name occurrence, in source order (for precise 'unknown signal' errors)."""
    if isinstance(node, Name):
        return [node]
    if isinstance(node, Num):
        return []
    if isinstance(node, Neg | Not):
        return name_positions(node.operand)
    if isinstance(node, Call):
        return [n for a in node.args for n in name_positions(a)]
    return name_positions(node.left) + name_positions(node.right)


# ------------------------------------------------------------------------------------ printing

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _prec(node: Node) -> int:
    if isinstance(node, Logic | Arith):
        return _PRECEDENCE[node.op]
    if isinstance(node, Not):
        return _PRECEDENCE["not"]
    if isinstance(node, Compare):
        return _PRECEDENCE["cmp"]
    if isinstance(node, Neg):
        return _PRECEDENCE["neg"]
    return 99


def unparse(node: Node) -> str:
    """Canonical text: one space around binary operators, parentheses only where needed."""
    if isinstance(node, Num):
        return _format_number(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Neg | Not):
        inner = unparse(node.operand)
        if _prec(node.operand) < _prec(node):
            inner = f"({inner})"
        return f"-{inner}" if isinstance(node, Neg) else f"not {inner}"
    mine = _prec(node)
    left, right = unparse(node.left), unparse(node.right)
    if _prec(node.left) < mine or (isinstance(node, Compare) and _prec(node.left) == mine):
        left = f"({left})"
    if _prec(node.right) <= mine:
        right = f"({right})"
    return f"{left} {node.op} {right}"


# ------------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,))"
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["num", "name", "op", "end"]
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            tokens.append(_Token("end", "", pos))
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            char = text[pos]
            hint = " (use 'and', 'or', 'not')" if char in "&|!" else ""
            if char == "=":
                hint = " (use '==' to compare)"
            raise ExprError(f"unexpected character {char!r}{hint}", pos)
        kind = match.lastgroup
        start = match.start(kind)
        tokens.append(_Token(kind, match.group(kind), start))  # type: ignore[arg-type]
        pos = match.end()


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise ExprError(f"the condition is longer than {MAX_LENGTH} characters", MAX_LENGTH)
        self.tokens = _tokenize(text)
        self.i = 0
        self.nesting = 0  # parentheses, calls, `not` and unary `-` being parsed
        self.depths: dict[int, tuple[Node, int]] = {}  # id -> (node, kept so the id stays its
        # own, depth) of each composite node

    def enter(self, tok: _Token) -> None:
        """One level deeper into the text at `tok`; refused past MAX_DEPTH."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExprError(_too_deep(), tok.pos)

    def made(self, node: Node, *children: Node) -> Node:
        """`node`, built from `children`; refused when the tree gets deeper than MAX_DEPTH."""
        depth = 1 + max(self.depth(child) for child in children)
        if depth > MAX_DEPTH:
            raise ExprError(_too_deep(), node.pos)
        self.depths[id(node)] = (node, depth)
        return node

    def depth(self, node: Node) -> int:
        entry = self.depths.get(id(node))
        return 1 if entry is None else entry[1]

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text in texts

    def expect(self, text: str, what: str) -> _Token:
        if not self.at(text):
            raise ExprError(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("the condition is empty", 0)
        node = self.or_expr()
        rest = self.tokens[self.i]
        if rest.kind != "end":
            raise ExprError(
                f"expected an operator or the end of the condition, found {_describe(rest)}",
                self.tok.pos,
            )
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("or"):
            tok = self.advance()
            right = self.and_expr()
            node = self.made(Logic("or", _need(node, "bool", "or"), _need(right, "bool", "or"),
                                   tok.pos), node, right)  # fmt: skip
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("and"):
            tok = self.advance()
            right = self.not_expr()
            node = self.made(Logic("and", _need(node, "bool", "and"),
                                   _need(right, "bool", "and"), tok.pos), node, right)  # fmt: skip
        return node

    def not_expr(self) -> Node:
        if self.at("not"):
            tok = self.advance()
            self.enter(tok)
            operand = self.not_expr()
            self.nesting -= 1
            return self.made(Not(_need(operand, "bool", "not"), tok.pos), operand)
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            tok = self.advance()
            right = self.sum()
            node = self.made(Compare(
                tok.text,  # type: ignore[arg-type]
                _need(node, "num", tok.text),
                _need(right, "num", tok.text),
                tok.pos,
            ), node, right)  # fmt: skip
            if self.tok.kind == "op" and self.tok.text in COMPARISONS:
                raise ExprError(
                    "comparisons cannot be chained; use between(x, lo, hi) or 'and'",
                    self.tok.pos,
                )
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            tok = self.advance()
            right = self.product()
            node = self.made(Arith(
                tok.text,  # type: ignore[arg-type]
                _need(node, "num", tok.text),
                _need(right, "num", tok.text),
                tok.pos,
            ), node, right)  # fmt: skip
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/"):
            tok = self.advance()
            right = self.unary()
            node = self.made(Arith(
                tok.text,  # type: ignore[arg-type]
                _need(node, "num", tok.text),
                _need(right, "num", tok.text),
                tok.pos,
            ), node, right)  # fmt: skip
        return node

    def unary(self) -> Node:
        if self.at("-"):
            tok = self.advance()
            self.enter(tok)
            operand = self.unary()
            self.nesting -= 1
            if isinstance(operand, Num):
                return Num(-operand.value, tok.pos)
            return self.made(Neg(_need(operand, "num", "-"), tok.pos), operand)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.advance()
            value = float(tok.text)
            if not math.isfinite(value):
                raise ExprError(f"number {tok.text} is too large", tok.pos)
            return Num(value, tok.pos)
        if tok.kind == "name":
            if tok.text in KEYWORDS:
                raise ExprError(f"expected a value, found '{tok.text}'", tok.pos)
            self.advance()
            if tok.text in FUNCTIONS:
                return self.call(tok)
            if self.at("("):
                known = ", ".join(sorted(FUNCTIONS))
                raise ExprError(f"unknown function '{tok.text}' (known: {known})", tok.pos)
            return Name(tok.text, tok.pos)
        if self.at("("):
            self.enter(self.advance())
            node = self.or_expr()
            self.expect(")", "')'")
            self.nesting -= 1
            return node
        raise ExprError(f"expected a value, found {_describe(tok)}", tok.pos)

    def call(self, name: _Token) -> Node:
        self.enter(self.expect("(", f"'(' after {name.text}"))
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.or_expr())
            while self.at(","):
                self.advance()
                args.append(self.or_expr())
        close = self.expect(")", "',' or ')'")
        arity = FUNCTIONS[name.text]
        if len(args) != arity:
            raise ExprError(
                f"{name.text}() takes {arity} argument{'s' if arity > 1 else ''}, got {len(args)}",
                close.pos,
            )
        self.nesting -= 1
        checked = tuple(_need(a, "num", f"{name.text}()") for a in args)
        return self.made(Call(name.text, checked, name.pos), *args)  # type: ignore[arg-type]


def _too_deep() -> str:
    return (f"the condition nests more than {MAX_DEPTH} levels deep here (parentheses, "
            "functions, 'not', or a long chain of operators); split it or simplify it")  # fmt: skip


def _describe(tok: _Token) -> str:
    return "the end of the condition" if tok.kind == "end" else f"'{tok.text}'"


def _need(node: Node, kind: Kind, context: str) -> Node:
    if kind_of(node) != kind:
        wanted = "a condition" if kind == "bool" else "a number"
        got = "a condition" if kind == "num" else "a number"
        raise ExprError(f"'{context}' needs {wanted} here, got {got}", _start(node))
    return node


def _start(node: Node) -> int:
    if isinstance(node, Arith | Compare | Logic):
        return _start(node.left)
    return node.pos


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression with its source text. Equality is by canonical text."""

    source: str = field(compare=False)
    root: Node

    @property
    def kind(self) -> Kind:
        return kind_of(self.root)

    @property
    def names(self) -> frozenset[str]:
        return names_of(self.root)

    @property
    def text(self) -> str:
        return unparse(self.root)

    def __str__(self) -> str:
        return self.text


def parse(text: str, *, kind: Kind | None = None) -> Expr:
    """Parse `text`; if `kind` is given, require it. Raises ExprError with a 0-based offset."""
    root = _Parser(text).parse()
    if kind is not None and kind_of(root) != kind:
        if kind == "bool":
            raise ExprError(
                "expected a condition such as 'speed > 8', got a number expression", 0
            )
        raise ExprError("expected a number expression, got a condition", 0)
    return Expr(text, root)


# ---------------------------------------------------------------------- vectorised evaluation

FloatArray = NDArray[np.float64]
TruthArray = NDArray[np.int8]


def evaluate(node: Node, columns: Mapping[str, FloatArray], n: int) -> FloatArray | TruthArray:
    """Evaluate over `n` events. `columns[name]` holds each signal's held value (NaN = missing).

    Returns float64 (NaN = missing) for numeric nodes, int8 truth codes for conditions.
    """
    if isinstance(node, Num):
        return np.full(n, node.value, dtype=np.float64)
    if isinstance(node, Name):
        return columns[node.name]
    if isinstance(node, Neg):
        return -_num(node.operand, columns, n)
    if isinstance(node, Not):
        return (TRUE - _truth(node.operand, columns, n)).astype(np.int8)
    if isinstance(node, Logic):
        left, right = _truth(node.left, columns, n), _truth(node.right, columns, n)
        return np.minimum(left, right) if node.op == "and" else np.maximum(left, right)
    if isinstance(node, Compare):
        return _compare(node.op, _num(node.left, columns, n), _num(node.right, columns, n))
    if isinstance(node, Arith):
        return _arith(node.op, _num(node.left, columns, n), _num(node.right, columns, n))
    return _call(node, [_num(a, columns, n) for a in node.args])


def _num(node: Node, columns: Mapping[str, FloatArray], n: int) -> FloatArray:
    return evaluate(node, columns, n)  # type: ignore[return-value]


def _truth(node: Node, columns: Mapping[str, FloatArray], n: int) -> TruthArray:
    return evaluate(node, columns, n)  # type: ignore[return-value]


_CMP = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _compare(op: str, left: FloatArray, right: FloatArray) -> TruthArray:
    with np.errstate(invalid="ignore"):
        result = np.where(_CMP[op](left, right), TRUE, FALSE).astype(np.int8)
    result[np.isnan(left) | np.isnan(right)] = UNKNOWN
    return result


def _arith(op: str, left: FloatArray, right: FloatArray) -> FloatArray:
    with np.errstate(all="ignore"):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        out = left / right
        out[right == 0] = np.nan
        return out


def _call(node: Call, args: list[FloatArray]) -> FloatArray | TruthArray:
    if node.fn == "abs":
        return np.abs(args[0])
    if node.fn in ("min", "max"):
        pick = np.fmin if node.fn == "min" else np.fmax
        out = pick(args[0], args[1])
        out[np.isnan(args[0]) | np.isnan(args[1])] = np.nan
        return out
    low = _compare(">=", args[0], args[1])
    high = _compare("<=", args[0], args[2])
    return np.minimum(low, high)
