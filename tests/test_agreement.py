"""`core.agreement`: hand-worked examples, scipy.stats for the correlations, and properties of
Cohen's kappa (identical labellings give 1, symmetric, within [-1, 1])."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from assessengine.core.agreement import (
    cohen_kappa,
    confusion,
    pearson,
    percent_agreement,
    point_biserial,
    ranks,
    spearman,
)


def _labels(yes_yes: int, yes_no: int, no_yes: int, no_no: int) -> tuple[list[str], list[str]]:
    a = ["y"] * (yes_yes + yes_no) + ["n"] * (no_yes + no_no)
    b = ["y"] * yes_yes + ["n"] * yes_no + ["y"] * no_yes + ["n"] * no_no
    return a, b


def test_kappa_of_the_textbook_example() -> None:
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # po = 35/50 = 0.7; pe = (25/50)(30/50) + (25/50)(20/50) = 0.3 + 0.2 = 0.5; kappa = 0.4.
    a, b = _labels(20, 5, 10, 15)
    assert percent_agreement(a, b) == pytest.approx(0.7)
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert confusion(a, b, ["y", "n"]) == [[20, 5], [10, 15]]


def test_kappa_with_three_categories_by_hand() -> None:
    # pairs: (p,p) x4, (f,f) x2, (n,n) x1, (p,f) x1, (f,p) x1, (p,n) x1  -> n = 10, po = 0.7
    # A: p 6, f 3, n 1;  B: p 5, f 3, n 2;  pe = (30 + 9 + 2) / 100 = 0.41
    # kappa = (0.7 - 0.41) / 0.59 = 0.29 / 0.59
    pairs = ([("pass", "pass")] * 4 + [("fail", "fail")] * 2 + [("n/a", "n/a")]
             + [("pass", "fail"), ("fail", "pass"), ("pass", "n/a")])  # fmt: skip
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    assert cohen_kappa(a, b) == pytest.approx(0.29 / 0.59)


def test_undefined_statistics_are_none() -> None:
    assert cohen_kappa([], []) is None
    assert percent_agreement([], []) is None
    assert cohen_kappa(["pass"] * 5, ["pass"] * 5) is None   # chance agreement is 1
    assert cohen_kappa(["pass"] * 5, ["fail"] * 5) == 0.0    # po 0, pe 0
    assert pearson([1.0], [2.0]) is None
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert point_biserial([50.0, 70.0, 90.0], [True, True, True]) is None
    with pytest.raises(ValueError, match="differ in length"):
        cohen_kappa(["a"], [])


def test_complete_disagreement_on_two_balanced_labels_is_minus_one() -> None:
    assert cohen_kappa(["p", "f", "p", "f"], ["f", "p", "f", "p"]) == pytest.approx(-1.0)


def test_ranks_average_ties_like_scipy() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0]
    assert ranks(values) == list(sp.rankdata(values))


def test_point_biserial_and_spearman_equal_scipy() -> None:
    scores = [55.0, 62.5, 70.0, 71.0, 80.0, 85.0, 85.0, 90.0, 95.0, 40.0, 66.0, 77.0]
    passed = [False, False, True, False, True, True, False, True, True, False, True, True]
    field = [50.0, 60.0, 75.0, 65.0, 82.0, 88.0, 60.0, 91.0, 97.0, 35.0, 70.0, 70.0]
    expected_pb = sp.pointbiserialr(passed, scores).statistic
    assert point_biserial(scores, passed) == pytest.approx(expected_pb, abs=1e-12)
    assert spearman(scores, field) == pytest.approx(sp.spearmanr(scores, field).statistic,
                                                    abs=1e-12)  # fmt: skip
    assert pearson(scores, field) == pytest.approx(sp.pearsonr(scores, field).statistic,
                                                   abs=1e-12)  # fmt: skip


LABELS = st.lists(st.sampled_from(["pass", "fail", "not_applicable"]), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(a=LABELS)
def test_kappa_of_identical_labellings_is_one_unless_degenerate(a: list[str]) -> None:
    k = cohen_kappa(a, a)
    if len(set(a)) == 1:
        assert k is None
    else:
        assert k == pytest.approx(1.0)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), a=LABELS)
def test_kappa_is_symmetric_and_bounded(data: st.DataObject, a: list[str]) -> None:
    b = data.draw(st.lists(st.sampled_from(["pass", "fail", "not_applicable"]),
                           min_size=len(a), max_size=len(a)))  # fmt: skip
    k = cohen_kappa(a, b)
    assert k == cohen_kappa(b, a)
    if k is not None:
        assert -1.0 <= k <= 1.0
    agreement = percent_agreement(a, b)
    assert agreement is not None
    assert 0.0 <= agreement <= 1.0
    table = confusion(a, b, ["pass", "fail", "not_applicable"])
    assert sum(map(sum, table)) == len(a)
    assert sum(table[i][i] for i in range(3)) == round(agreement * len(a))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=3,
                max_size=30))  # fmt: skip
def test_spearman_equals_scipy(pairs: list[tuple[float, float]]) -> None:
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    mine = spearman(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert mine is None
        return
    expected = sp.spearmanr(x, y).statistic
    assert mine is not None
    assert math.isfinite(mine)
    assert mine == pytest.approx(expected, abs=1e-9)
