"""Report values: the JSON shape of evidence, built once per Evidence."""

from __future__ import annotations

import dataclasses
import pickle

from assessengine.core.report import PENDING, Evidence


def _evidence() -> Evidence:
    values = {"speed": 3.5, "load": {"min": 0.0, "max": 900.0}, "fork_height": None}
    return Evidence(12, 4.5, 1.0, 4.5, 3, 12, values, 7.25)


def test_evidence_data_has_sorted_values_and_measured_only_when_set() -> None:
    data = _evidence().to_data()
    assert list(data) == [
        "seq", "t", "t_start", "t_end", "seq_start", "seq_end", "values", "measured"
    ]  # fmt: skip
    assert list(data["values"]) == ["fork_height", "load", "speed"]
    assert data["values"]["load"] == {"min": 0.0, "max": 900.0}
    assert data["measured"] == 7.25
    assert "measured" not in Evidence(1, 2.0, values={}).to_data()
    assert PENDING.to_data()["values"] == {}


def test_evidence_data_is_built_once_and_not_part_of_the_value() -> None:
    first = _evidence()
    data = first.to_data()
    assert first.to_data() is data  # the live engine writes each evidence twice
    assert first == _evidence()  # the cache takes no part in equality
    assert "_data" not in repr(first)
    moved = dataclasses.replace(first, seq=13, seq_end=13)
    assert moved.to_data()["seq"] == 13
    assert moved.to_data()["seq_end"] == 13
    assert data["seq"] == 12  # the original's data is untouched
    copied = pickle.loads(pickle.dumps(first))
    assert copied == first
    assert copied.to_data() == data
