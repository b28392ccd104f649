"""The condition language: precedence, canonical printing, located errors, three-valued logic."""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

from assessengine.core.expr import (
    FALSE,
    MAX_DEPTH,
    MAX_LENGTH,
    TRUE,
    UNKNOWN,
    Arith,
    Call,
    Compare,
    ExprError,
    Logic,
    Name,
    Neg,
    Not,
    Num,
    evaluate,
    name_positions,
    parse,
)
from assessengine.core.masks import compile_masks

NAN = float("nan")

# ---------------------------------------------------------------------------- precedence


def test_multiplication_binds_tighter_than_addition() -> None:
    assert parse("a + b * c").root == Arith("+", Name("a"), Arith("*", Name("b"), Name("c")))


def test_subtraction_is_left_associative() -> None:
    assert parse("a - b - c").root == Arith("-", Arith("-", Name("a"), Name("b")), Name("c"))


def test_and_binds_tighter_than_or() -> None:
    root = parse("a > 1 or b > 2 and c > 3").root
    assert isinstance(root, Logic)
    assert root.op == "or"
    assert isinstance(root.right, Logic)
    assert root.right.op == "and"


def test_not_applies_to_the_whole_comparison() -> None:
    assert parse("not a > 1").root == Not(Compare(">", Name("a"), Num(1.0)))


def test_not_binds_tighter_than_and() -> None:
    root = parse("not a > 1 and b > 2").root
    assert root == Logic(
        "and", Not(Compare(">", Name("a"), Num(1.0))), Compare(">", Name("b"), Num(2.0))
    )


def test_arithmetic_binds_tighter_than_comparison() -> None:
    root = parse("a + 1 > b * 2").root
    assert root == Compare(">", Arith("+", Name("a"), Num(1.0)), Arith("*", Name("b"), Num(2.0)))


def test_unary_minus_of_a_literal_is_a_negative_number() -> None:
    assert parse("-3").root == Num(-3.0)


def test_unary_minus_of_a_name_is_a_negation() -> None:
    assert parse("-a * 2").root == Arith("*", Neg(Name("a")), Num(2.0))


def test_functions_take_expressions_as_arguments() -> None:
    root = parse("between(abs(a - b), 0, max(c, 1))").root
    assert isinstance(root, Call)
    assert root.fn == "between"
    assert root.args[0] == Call("abs", (Arith("-", Name("a"), Name("b")),))


# ---------------------------------------------------------------------- canonical printing


@pytest.mark.parametrize(
    ("source", "canonical"),
    [
        ("a+b*c", "a + b * c"),
        ("(a+b)*c", "(a + b) * c"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a/(b*c)", "a / (b * c)"),
        ("((speed))>8.0", "speed > 8"),
        ("not(a>1 and b<2)", "not (a > 1 and b < 2)"),
        ("(a > 1 or b > 1) and c > 1", "(a > 1 or b > 1) and c > 1"),
        ("a > 1 or (b > 1 and c > 1)", "a > 1 or b > 1 and c > 1"),
        ("-(a+b)", "-(a + b)"),
        ("between(x,1,2)", "between(x, 1, 2)"),
        ("speed >= 0.5", "speed >= 0.5"),
        ("x > 1e3", "x > 1000"),
    ],
)
def test_canonical_text(source: str, canonical: str) -> None:
    assert parse(source).text == canonical


@pytest.mark.parametrize(
    "source",
    ["a - (b - c) * -d", "not (a > 1 or not b < 2) and c != 3", "min(a, b) / (c + 1) <= 2"],
)
def test_canonical_text_parses_back_to_the_same_tree(source: str) -> None:
    once = parse(source)
    assert parse(once.text) == once
    assert parse(once.text).text == once.text


def test_expressions_written_differently_are_equal_when_canonically_equal() -> None:
    assert parse("speed>8") == parse("( speed ) > 8.0")


def test_name_positions_are_offsets_in_the_source() -> None:
    names = name_positions(parse("speed > 8 and  load > 0").root)
    assert [(n.name, n.pos) for n in names] == [("speed", 0), ("load", 15)]


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("source", "offset", "message"),
    [
        ("speed > 8 && load > 0", 10, "unexpected character '&' (use 'and', 'or', 'not')"),
        ("speed = 3", 6, "unexpected character '=' (use '==' to compare)"),
        ("speed > ", 8, "expected a value, found the end of the condition"),
        ("(speed > 1", 10, "expected ')', found the end of the condition"),
        ("1 < speed < 3", 10, "comparisons cannot be chained; use between(x, lo, hi) or 'and'"),
        ("sqrt(speed) > 1", 0, "unknown function 'sqrt' (known: abs, between, max, min)"),
        ("abs(a, b) > 1", 8, "abs() takes 1 argument, got 2"),
        ("speed and load > 1", 0, "'and' needs a condition here, got a number"),
        ("speed > 1 load", 10, "expected an operator or the end of the condition, found 'load'"),
        ("", 0, "the condition is empty"),
        ("a > > 1", 4, "expected a value, found '>'"),
    ],
)
def test_parse_errors_carry_message_and_offset(source: str, offset: int, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse(source, kind="bool")
    assert (caught.value.offset, caught.value.message) == (offset, message)


def test_a_number_expression_is_not_a_condition() -> None:
    with pytest.raises(ExprError, match="expected a condition such as 'speed > 8'"):
        parse("speed + 1", kind="bool")


def test_a_condition_is_not_a_number_expression() -> None:
    with pytest.raises(ExprError, match="expected a number expression, got a condition"):
        parse("speed > 1", kind="num")


def test_without_a_kind_either_is_accepted() -> None:
    assert parse("speed").kind == "num"
    assert parse("speed > 1").kind == "bool"


# ------------------------------------------------------------------ three-valued evaluation


def _columns(**values: list[float]) -> dict[str, np.ndarray]:
    return {name: np.array(column, dtype=np.float64) for name, column in values.items()}


def _truth(source: str, **values: list[float]) -> list[int]:
    n = len(next(iter(values.values())))
    return [int(v) for v in evaluate(parse(source).root, _columns(**values), n)]


def test_comparison_with_a_missing_value_is_unknown() -> None:
    assert _truth("a > 1", a=[2.0, 0.0, NAN]) == [TRUE, FALSE, UNKNOWN]


def test_not_unknown_is_unknown() -> None:
    assert _truth("not a > 1", a=[2.0, 0.0, NAN]) == [FALSE, TRUE, UNKNOWN]


def test_false_and_unknown_is_false_and_true_and_unknown_is_unknown() -> None:
    assert _truth("a > 1 and b > 1", a=[0.0, 2.0, NAN], b=[NAN, NAN, NAN]) == [
        FALSE,
        UNKNOWN,
        UNKNOWN,
    ]


def test_true_or_unknown_is_true_and_false_or_unknown_is_unknown() -> None:
    assert _truth("a > 1 or b > 1", a=[2.0, 0.0, NAN], b=[NAN, NAN, NAN]) == [
        TRUE,
        UNKNOWN,
        UNKNOWN,
    ]


def test_arithmetic_on_a_missing_value_is_missing() -> None:
    result = evaluate(parse("a + 1").root, _columns(a=[1.0, NAN]), 2)
    assert result[0] == 2.0
    assert np.isnan(result[1])


def test_division_by_zero_is_missing_so_the_comparison_is_unknown() -> None:
    assert _truth("a / b > 1", a=[4.0, 4.0], b=[2.0, 0.0]) == [TRUE, UNKNOWN]


def test_min_and_max_of_a_missing_value_are_missing() -> None:
    assert _truth("min(a, b) > 1", a=[2.0, NAN], b=[3.0, 3.0]) == [TRUE, UNKNOWN]
    assert _truth("max(a, b) > 1", a=[2.0, 5.0], b=[NAN, 0.0]) == [UNKNOWN, TRUE]


def test_between_is_inclusive_at_both_bounds() -> None:
    assert _truth("between(a, 1, 2)", a=[0.5, 1.0, 2.0, 2.5, NAN]) == [
        FALSE,
        TRUE,
        TRUE,
        FALSE,
        UNKNOWN,
    ]


def test_abs_and_negation() -> None:
    assert _truth("abs(a) > 1 and -a < 0", a=[-2.0, 2.0, 0.5]) == [FALSE, TRUE, FALSE]


def test_unknown_does_not_hold_as_a_guard() -> None:
    program = compile_masks(("a",), [parse("a < 10").root], [])
    masks = np.empty((program.n_masks, 3), np.bool_)
    program.run(np.array([[5.0, NAN, 20.0]]), masks)
    assert masks[0].tolist() == [True, False, False]


def test_truth_codes_are_int8() -> None:
    result = evaluate(parse("a > 1 or not a > 1").root, _columns(a=[1.0, NAN]), 2)
    assert result.dtype == np.int8


# -------------------------------------------------------------------------------- limits

TOO_DEEP = (
    f"the condition nests more than {MAX_DEPTH} levels deep here (parentheses, functions, "
    "'not', or a long chain of operators); split it or simplify it"
)


def _chain(op: str, terms: int) -> str:
    """`terms` operands joined by `op`: a tree `terms` levels deep (as a condition)."""
    operand = "x > 1" if op in ("and", "or") else "x"
    text = f" {op} ".join([operand] * terms)
    return text if op in ("and", "or") else f"{text} > 1"


def _deepest(shape: str, depth: int) -> str:
    """A condition whose nesting (of the given shape) is `depth` levels."""
    if shape == "parentheses":
        return "(" * depth + "x > 1" + ")" * depth
    if shape == "not":
        return "not " * (depth - 2) + "x > 1"
    if shape == "minus":
        return "-" * (depth - 2) + "x > 1"
    if shape == "abs":
        return "abs(" * (depth - 2) + "x" + ")" * (depth - 2) + " > 1"
    return _chain(shape, depth - 1)  # and, or: over comparisons; + - * /: under one


SHAPES = ["parentheses", "not", "minus", "abs", "and", "or", "+", "-", "*", "/"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_condition_nested_past_the_limit_is_a_located_error(shape: str) -> None:
    text = _deepest(shape, MAX_DEPTH + 1)
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert caught.value.message == TOO_DEEP
    assert 0 <= caught.value.offset < len(text)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_condition_at_the_depth_limit_prints_evaluates_and_compiles(shape: str) -> None:
    """Every recursive walk of the deepest accepted trees stays inside the recursion limit,
    with room to spare: they run here under a limit of 600 frames above this test's own (the
    parser takes 9 frames a level of parentheses or calls)."""
    expr_ = parse(_deepest(shape, MAX_DEPTH))
    columns = {"x": np.array([0.5, 2.0, NAN])}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 600)
    try:
        assert parse(expr_.text) == expr_
        evaluate(expr_.root, columns, 3)
        program = compile_masks(["x"], [expr_.root], [expr_.root])
        program.run(np.vstack([columns["x"], np.zeros(3)]), np.zeros((1 + program.n_work, 3), bool))
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("text", [
    "(" * 5000 + "x > 1" + ")" * 5000,
    "not " * 1000 + "x > 1",
    "-" * 4000 + "x > 1",
    " and ".join(["x > 1"] * 600),
    " + ".join(["x"] * 1300) + " > 1",
])  # fmt: skip
def test_no_condition_text_can_exhaust_the_parser_s_recursion(text: str) -> None:
    with pytest.raises(ExprError):
        parse(text)


def test_a_condition_longer_than_the_limit_is_an_error_at_the_limit() -> None:
    text = "x > 1" + " " * MAX_LENGTH
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert (caught.value.message, caught.value.offset) == (
        f"the condition is longer than {MAX_LENGTH} characters", MAX_LENGTH)  # fmt: skip
    assert parse(text[:MAX_LENGTH]).text == "x > 1"
