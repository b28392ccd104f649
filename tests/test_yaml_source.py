"""YAML with positions: marks for keys, values and characters inside scalars; YAML problems."""

from __future__ import annotations

import pytest

from assessengine.adapters.yaml_source import MAX_DEPTH, Mark, load_yaml

BOTH_PARSERS = pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "python"])

NESTED = """\
rubric: r
criteria:
  - id: a
    never: speed > 8
  - id: b
    count: {event: horn, max: 2}
"""


@BOTH_PARSERS
def test_keys_and_values_have_their_own_marks(libyaml: bool) -> None:
    positions = load_yaml(NESTED, libyaml=libyaml).positions
    assert positions.key(("criteria", 0, "never")) == Mark(4, 5)
    assert positions.value(("criteria", 0, "never")) == Mark(4, 12)
    assert positions.key(("criteria", 1, "count", "max")) == Mark(6, 26)
    assert positions.value(("criteria", 1, "count", "max")) == Mark(6, 31)


def test_a_list_item_key_is_the_item_itself() -> None:
    positions = load_yaml(NESTED).positions
    assert positions.key(("criteria", 1)) == positions.value(("criteria", 1)) == Mark(5, 5)


def test_a_missing_path_resolves_to_the_nearest_enclosing_value() -> None:
    positions = load_yaml(NESTED).positions
    assert ("criteria", 1, "title") not in positions
    assert positions.value(("criteria", 1, "title")) == Mark(5, 5)
    assert positions.key(("nothing", "here")) == Mark(1, 1)


@BOTH_PARSERS
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("never: speed > 8 & x\n", Mark(1, 18)),
        ("never: 'it''s & x'\n", Mark(1, 15)),
        ('never: "a \\"b\\" & x"\n', Mark(1, 17)),
        ("never: |\n  speed > 8\n  and & x\n", Mark(3, 7)),
        ("never: >-\n    speed > 8\n    and & x\n", Mark(3, 9)),
        ("never: speed > 8\n  and & x\n", Mark(2, 7)),
        ("never: 'speed > 8\n   and & x'\n", Mark(2, 8)),
    ],
    ids=[
        "plain",
        "single-quoted",
        "double-quoted",
        "literal",
        "folded",
        "plain-2-lines",
        "quoted-2",
    ],
)
def test_a_character_inside_a_scalar_is_located(libyaml: bool, text: str, expected: Mark) -> None:
    doc = load_yaml(text, libyaml=libyaml)
    value = doc.data["never"]  # type: ignore[index]
    assert doc.positions.inside(("never",), value.index("&")) == expected


def test_the_end_of_a_quoted_scalar_is_just_after_its_last_character() -> None:
    doc = load_yaml('never: "speed >"\n')
    assert doc.positions.inside(("never",), len("speed >")) == Mark(1, 16)


def test_an_offset_in_a_number_scalar_counts_from_its_start() -> None:
    assert load_yaml("never: 5\n").positions.inside(("never",), 0) == Mark(1, 8)


@BOTH_PARSERS
def test_keys_are_text_as_written(libyaml: bool) -> None:
    data = load_yaml("on: a\n1: b\nnull: c\nyes: d\n", libyaml=libyaml).data
    assert data == {"on": "a", "1": "b", "null": "c", "yes": "d"}


@BOTH_PARSERS
def test_only_true_and_false_are_booleans(libyaml: bool) -> None:
    text = "a: yes\nb: off\nc: On\nd: true\ne: False\nf: 3\ng: 1.5\nh: ~\n"
    assert load_yaml(text, libyaml=libyaml).data == {
        "a": "yes",
        "b": "off",
        "c": "On",
        "d": True,
        "e": False,
        "f": 3,
        "g": 1.5,
        "h": None,
    }


@BOTH_PARSERS
def test_a_duplicate_key_is_reported_at_the_repeat_and_the_first_value_kept(libyaml: bool) -> None:
    doc = load_yaml("a:\n  x: 1\n  y: 2\n  x: 3\n", libyaml=libyaml)
    assert doc.data == {"a": {"x": 1, "y": 2}}
    assert [(p.mark, p.message) for p in doc.problems] == [
        (Mark(4, 3), "duplicate key 'x' (first at line 2)")
    ]


ALIAS_REFUSED = (
    "aliases and anchors ('*name', '&name') are not allowed; write the value out in full"
)


@BOTH_PARSERS
@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("a: &c speed > 8\nb: *c\n", Mark(1, 4)),
        ("base: {x: 1}\nm:\n  <<: *b\n", Mark(3, 7)),
        ("x: *nope\n", Mark(1, 4)),
        ("a: &x [1, *x]\n", Mark(1, 4)),
    ],
    ids=["anchor", "merge-alias", "undefined-alias", "recursive"],
)
def test_anchors_and_aliases_are_refused_where_first_written(
    libyaml: bool, text: str, mark: Mark
) -> None:
    doc = load_yaml(text, libyaml=libyaml)
    assert doc.data is None
    assert [(p.mark, p.message) for p in doc.problems] == [(mark, ALIAS_REFUSED)]


def _alias_bomb(levels: int) -> str:
    """Each level a list of nine aliases of the one before: 9**levels strings once expanded."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@BOTH_PARSERS
def test_an_alias_bomb_is_refused_at_its_first_anchor_without_expanding(libyaml: bool) -> None:
    doc = load_yaml(_alias_bomb(5), libyaml=libyaml)  # 59,049 strings once expanded
    assert doc.data is None
    assert [(p.mark, p.message) for p in doc.problems] == [(Mark(1, 5), ALIAS_REFUSED)]


@BOTH_PARSERS
@pytest.mark.parametrize("shape", ["flow", "block"])
def test_nesting_deeper_than_the_limit_is_a_located_problem(libyaml: bool, shape: str) -> None:
    depth = 500
    if shape == "flow":
        text = "a: " + "[" * depth + "]" * depth + "\n"
        mark = Mark(1, 3 + MAX_DEPTH)  # the first list past the limit (the root mapping is 1)
    else:
        text = "a:\n" + "".join("  " * i + "- \n" for i in range(depth))
        mark = Mark(MAX_DEPTH + 1, 2 * MAX_DEPTH - 1)
    doc = load_yaml(text, libyaml=libyaml)
    assert doc.data is None
    assert [(p.mark, p.message) for p in doc.problems] == [
        (mark, f"lists and mappings nest more than {MAX_DEPTH} deep here; flatten the file")
    ]


@BOTH_PARSERS
def test_nesting_up_to_the_limit_is_read(libyaml: bool) -> None:
    depth = MAX_DEPTH - 1  # under the root mapping
    doc = load_yaml("a: " + "[" * depth + "1" + "]" * depth + "\n", libyaml=libyaml)
    assert doc.problems == ()
    value = doc.data["a"]  # type: ignore[index]
    for _ in range(depth):
        (value,) = value
    assert value == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: .inf\n", "'.inf' is not a finite number; write a number such as 100, or put text "
         "in quotes"),
        ("a: -.Inf\n", "'-.Inf' is not a finite number; write a number such as 100, or put text "
         "in quotes"),
        ("a: .nan\n", "'.nan' is not a finite number; write a number such as 100, or put text "
         "in quotes"),
        ("a: 1.0e+400\n", "'1.0e+400' is not a finite number; write a number such as 100, or "
         "put text in quotes"),
        ("a: 9223372036854775808\n", "the integer is too large (at most 9223372036854775807)"),
        ("a: -9223372036854775808\n", "the integer is too large (at most 9223372036854775807)"),
        ("a: " + "9" * 5000 + "\n", "the integer is too large (at most 9223372036854775807)"),
    ],
    ids=["inf", "minus-inf", "nan", "overflow", "int64-plus-1", "int64-min", "5000-digits"],
)
def test_a_number_that_is_not_finite_or_beyond_int64_is_a_located_problem(
    text: str, message: str
) -> None:
    doc = load_yaml("x: 1\n" + text)
    assert [(p.mark, p.message) for p in doc.problems] == [(Mark(2, 4), message)]
    assert doc.data == {"x": 1, "a": text[3:-1]}  # as written


def test_the_largest_int64_and_quoted_infinities_are_read() -> None:
    doc = load_yaml("a: 9223372036854775807\nb: '.inf'\n")
    assert (doc.data, doc.problems) == ({"a": 2**63 - 1, "b": ".inf"}, ())


def test_an_empty_text_has_no_data_and_no_problem() -> None:
    doc = load_yaml("# only a comment\n")
    assert (doc.data, doc.problems) == (None, ())


@BOTH_PARSERS
@pytest.mark.parametrize(
    ("text", "mark", "message"),
    [
        ("a: 'x\nb: 1\n", Mark(3, 1), "the quote opened at line 1 is never closed"),
        ("a:\n\tb: 1\n", Mark(2, 1), "a tab character; indent with spaces, not tabs"),
        (
            "a: [1, 2\nb: 3\n",
            Mark(2, 2),
            "the '[' list opened at line 1 needs ',' between items and a closing ']'",
        ),
        ("a: 1\n---\nb: 2\n", Mark(2, 1), "a second document ('---'); a file holds one document"),
        ("a: @x\n", Mark(1, 4), "text cannot start with '@'; put it in quotes"),
    ],
    ids=["unclosed-quote", "tab", "flow-list", "two-documents", "reserved-char"],
)
def test_syntax_errors_read_the_same_with_either_parser(
    libyaml: bool, text: str, mark: Mark, message: str
) -> None:
    doc = load_yaml(text, libyaml=libyaml)
    assert doc.data is None
    assert [(p.mark, p.message) for p in doc.problems] == [(mark, f"YAML syntax error: {message}")]


def test_an_unknown_tag_is_a_located_problem() -> None:
    doc = load_yaml("a: 1\nb: !python/object x\n")
    assert [(p.mark, p.message) for p in doc.problems] == [
        (
            Mark(2, 4),
            "cannot read this value as '!python/object'; remove the tag",
        )
    ]


@pytest.mark.parametrize(
    "text",
    ["a: !!int\n", "a: !!float\n", "a: !!bool\n", "a: !!timestamp\n", "a: !!binary aGk=\n",
     "a: !!timestamp 2026-12-06\n"],
)  # fmt: skip
def test_an_explicit_tag_with_an_empty_or_unplain_value_is_a_located_problem(text: str) -> None:
    doc = load_yaml(text)
    tag = "tag:yaml.org,2002:" + text.split("!!")[1].split(maxsplit=1)[0]
    assert [(p.mark, p.message) for p in doc.problems] == [
        (Mark(1, 4), f"cannot read this value as '{tag}'; remove the tag")
    ]
    assert doc.data == {"a": None}


def test_a_bad_value_for_an_explicit_tag_is_a_located_problem() -> None:
    doc = load_yaml("a: !!int abc\n")
    assert [(p.mark, p.message) for p in doc.problems] == [
        (Mark(1, 4), "cannot read this value as 'tag:yaml.org,2002:int'; remove the tag")
    ]


def test_a_condition_after_a_tag_is_located_inside_its_text() -> None:
    doc = load_yaml("never: !!str speed > 8 & x\n")
    assert doc.positions.value(("never",)) == Mark(1, 14)
    assert doc.positions.inside(("never",), 10) == Mark(1, 24)


def test_a_key_that_is_a_list_is_a_located_problem() -> None:
    doc = load_yaml("? [a, b]\n: 1\nc: 2\n")
    assert doc.data == {"c": 2}
    assert [(p.mark, p.message) for p in doc.problems] == [
        (Mark(1, 3), "a key must be a plain name, not a list or a mapping")
    ]
