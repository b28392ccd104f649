"""The SVG charts of the web pages (`assessengine.api.timeline`): pure functions, checked on the
SVG they return (parsed as XML)."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from assessengine.api import timeline as tl

NS = {"svg": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"


def _lane(name: str = "speed", n: int = 10, t_to: float = 100.0) -> tl.Lane:
    width = t_to / n
    starts = [k * width for k in range(n)]
    values: list[float | None] = [float(k % 3) for k in range(n)]
    return tl.Lane(name, "km/h", starts, [s + width for s in starts], values, values)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _violations(root: ET.Element) -> dict[str, ET.Element]:
    return {r.attrib["data-criterion"]: r for r in root.iterfind(".//svg:rect[@class='violation']",
                                                                 NS)}  # fmt: skip


def test_violation_rect_spans_the_evidence_interval_on_the_time_scale() -> None:
    svg = tl.timeline_svg([_lane()], t_from=0.0, t_to=100.0,
                          intervals=[tl.Interval("loaded_speed", "Loaded speed", 20.5, 31.25)])
    rect = _violations(_parse(svg))["loaded_speed"]
    scale = tl.time_scale(0.0, 100.0)
    assert float(rect.attrib["x"]) == pytest.approx(scale.x(20.5), abs=0.01)
    assert float(rect.attrib["width"]) == pytest.approx(scale.x(31.25) - scale.x(20.5), abs=0.01)
    assert rect.attrib["data-t-start"] == "20.5"
    assert rect.attrib["data-t-end"] == "31.25"


def test_data_times_round_trip_exactly() -> None:
    t_start, t_end = 149.60000000000002, 150.6
    svg = tl.timeline_svg([], t_from=0.0, t_to=322.077,
                          intervals=[tl.Interval("c", "C", t_start, t_end)])
    rect = _violations(_parse(svg))["c"]
    assert float(rect.attrib["data-t-start"]) == t_start
    assert float(rect.attrib["data-t-end"]) == t_end


def test_each_violation_also_shades_the_signal_lanes_over_the_same_span() -> None:
    svg = tl.timeline_svg([_lane(), _lane("load")], t_from=0.0, t_to=100.0,
                          intervals=[tl.Interval("a", "A", 10.0, 40.0)])
    root = _parse(svg)
    bar = _violations(root)["a"]
    (shade,) = root.iterfind(".//svg:rect[@class='violation-shade']", NS)
    assert shade.attrib["x"] == bar.attrib["x"]
    assert shade.attrib["width"] == bar.attrib["width"]
    lanes = list(root.iterfind(".//svg:g[@class='lane']", NS))
    assert len(lanes) == 2
    top = min(float(next(g.iter(f"{SVG}rect")).attrib["y"]) for g in lanes)
    assert float(shade.attrib["y"]) <= top
    assert float(shade.attrib["y"]) + float(shade.attrib["height"]) >= top + 2 * tl.LANE_HEIGHT


def test_an_instant_violation_is_still_visible_at_its_time() -> None:
    svg = tl.timeline_svg([], t_from=0.0, t_to=100.0,
                          intervals=[tl.Interval("horn", "Horn", 42.0, 42.0)])
    rect = _violations(_parse(svg))["horn"]
    assert float(rect.attrib["x"]) == pytest.approx(tl.time_scale(0.0, 100.0).x(42.0), abs=0.01)
    assert float(rect.attrib["width"]) == tl.MIN_RECT_PX


def test_times_outside_the_plotted_range_are_clamped_to_its_edges() -> None:
    scale = tl.time_scale(10.0, 20.0)
    assert scale.x(0.0) == scale.x_left
    assert scale.x(99.0) == scale.x_right
    assert scale.x(15.0) == pytest.approx((scale.x_left + scale.x_right) / 2)


def test_each_decision_gets_a_marker_with_a_title_at_its_time() -> None:
    decisions = [tl.Decision("a", "Alpha", "pass", 12.0, 5), tl.Decision("b", "Beta", "fail",
                                                                         80.0, 40)]  # fmt: skip
    root = _parse(tl.timeline_svg([_lane()], t_from=0.0, t_to=100.0, decisions=decisions))
    marks = {g.attrib["data-criterion"]: g for g in root.iterfind(".//svg:g[@class='decision']",
                                                                    NS)}  # fmt: skip
    assert set(marks) == {"a", "b"}
    assert marks["b"].attrib["data-verdict"] == "fail"
    assert float(marks["b"].attrib["data-t"]) == 80.0
    title = marks["b"].find("svg:title", NS)
    assert title is not None
    assert title.text is not None
    assert "b: fail at 1:20.0" in title.text
    assert "seq 40" in title.text
    # the marker sits at the decision's x
    x = tl.time_scale(0.0, 100.0).x(80.0)
    path = marks["b"].find("svg:path", NS)
    assert path is not None
    xs = [float(v) for v in re.findall(r"[ML]([-\d.]+),", path.attrib["d"])]
    assert min(xs) < x < max(xs)
    assert sum(xs) / len(xs) == pytest.approx(x, abs=0.01)


def test_decisions_at_the_same_time_do_not_overlap() -> None:
    decisions = [tl.Decision(f"c{k}", "C", "pass", 100.0) for k in range(3)]
    root = _parse(tl.timeline_svg([], t_from=0.0, t_to=100.0, decisions=decisions))
    ys = {c.attrib["cy"] for c in root.iterfind(".//svg:g[@class='decision']/svg:circle", NS)}
    assert len(ys) == 3


def test_a_one_bucket_spike_survives_in_the_envelope() -> None:
    lane = _lane(n=50)
    lo = [0.0] * 50
    hi: list[float | None] = [0.0] * 50
    hi[17] = 9.0
    spiky = tl.Lane(lane.name, lane.unit, lane.t_start, lane.t_end, list(lo), hi)
    root = _parse(tl.timeline_svg([spiky], t_from=0.0, t_to=100.0))
    path = root.find(".//svg:path[@class='signal']", NS)
    assert path is not None
    points = [(float(x), float(y)) for x, y in re.findall(r"([-\d.]+),([-\d.]+)",
                                                           path.attrib["d"])]  # fmt: skip
    top_y = min(y for _, y in points)
    spike = sorted({x for x, y in points if y == top_y})
    scale = tl.time_scale(0.0, 100.0)
    assert spike == pytest.approx([scale.x(34.0), scale.x(36.0)], abs=0.01)  # the bucket's span


def test_buckets_without_a_sample_break_the_line() -> None:
    lane = _lane(n=10)
    values: list[float | None] = [1.0, 2.0, None, None, 3.0, 4.0, 5.0, None, 6.0, 7.0]
    gappy = tl.Lane(lane.name, lane.unit, lane.t_start, lane.t_end, values, values)
    path = _parse(tl.timeline_svg([gappy], t_from=0.0, t_to=100.0)).find(
        ".//svg:path[@class='signal']", NS)  # fmt: skip
    assert path is not None
    assert path.attrib["d"].count("M") == 3


def test_a_lane_without_samples_says_so() -> None:
    empty = tl.Lane("load", "kg", [0.0], [1.0], [None], [None])
    svg = tl.timeline_svg([empty], t_from=0.0, t_to=1.0)
    assert "no samples" in svg
    assert 'class="signal"' not in svg


def test_one_bucket_per_plot_pixel() -> None:
    scale = tl.time_scale(0.0, 1.0)
    assert tl.plot_buckets() == round(scale.x_right - scale.x_left)


def test_text_is_escaped_and_the_svg_is_well_formed() -> None:
    nasty = '<script>alert("x")</script> & "quotes"'
    svg = tl.timeline_svg(
        [tl.Lane(nasty, nasty, [0.0], [1.0], [0.0], [1.0])], t_from=0.0, t_to=1.0,
        intervals=[tl.Interval(nasty, nasty, 0.1, 0.2)],
        decisions=[tl.Decision(nasty, nasty, nasty, 0.5)],
        events=[tl.Mark(nasty, 0.3, 7)], label=nasty,
    )  # fmt: skip
    assert "<script" not in svg
    root = _parse(svg)  # raises if the escaping broke the XML
    assert root.attrib["aria-label"] == nasty
    assert _violations(root)[nasty].attrib["data-t-start"] == "0.1"


@pytest.mark.parametrize(
    ("t_from", "t_to", "step"),
    [(0.0, 322.077, 60.0), (0.0, 12.3, 2.0), (0.0, 0.5, 0.1), (0.0, 20000.0, 3600.0),
     (15.0, 95.0, 10.0)],
)  # fmt: skip
def test_time_ticks_are_round_inside_the_range_and_few(t_from: float, t_to: float,
                                                        step: float) -> None:  # fmt: skip
    ticks = tl.time_ticks(t_from, t_to)
    assert 2 <= len(ticks) <= 10
    assert all(t_from <= t <= t_to for t in ticks)
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert gaps == {step}


def test_axis_labels_read_as_minutes_and_seconds() -> None:
    root = _parse(tl.timeline_svg([_lane(t_to=322.0)], t_from=0.0, t_to=322.0))
    labels = [t.text for t in root.iterfind(".//svg:g[@class='tick']/svg:text", NS)]
    assert labels == ["0:00", "1:00", "2:00", "3:00", "4:00", "5:00"]


def test_format_t() -> None:
    assert tl.format_t(149.6) == "2:29.6"
    assert tl.format_t(59.96) == "1:00.0"
    assert tl.format_t(3725.0) == "1:02:05.0"
    assert tl.format_t(120.0, 322.0) == "2:00"
    assert tl.format_t(12.5, 40.0) == "12.5 s"


# ==================================================================================== attempts


def _points() -> list[tl.AttemptPoint]:
    return [
        tl.AttemptPoint("s1", "Attempt 1", 60.0, "fail", "/sessions/s1"),
        tl.AttemptPoint("s2", "Attempt 2", 75.0, "incomplete", "/sessions/s2"),
        tl.AttemptPoint("s3", "Attempt 3", 90.0, "pass", "/sessions/s3?a=1&b=2"),
        tl.AttemptPoint("s4", "Attempt 4", None, None, "/sessions/s4"),
    ]


def test_attempts_chart_has_one_linked_mark_per_attempt_in_order() -> None:
    root = _parse(tl.attempts_svg(_points(), min_score=80.0))
    marks = list(root.iterfind(".//svg:a[@class='attempt']", NS))
    assert [m.attrib["data-session"] for m in marks] == ["s1", "s2", "s3", "s4"]
    assert [m.attrib["data-outcome"] for m in marks] == ["fail", "incomplete", "pass", ""]
    assert marks[2].attrib["href"] == "/sessions/s3?a=1&b=2"  # escaped in the text, intact here
    assert marks[0].find("svg:path", NS) is not None  # fail: a cross
    assert marks[2].find("svg:circle", NS) is not None  # pass: a disc


def test_higher_scores_are_drawn_higher_and_the_pass_mark_between() -> None:
    root = _parse(tl.attempts_svg(_points(), min_score=80.0))
    marks = list(root.iterfind(".//svg:a[@class='attempt']", NS))
    pass_y = float(marks[2].find("svg:circle", NS).attrib["cy"])  # type: ignore[union-attr]
    incomplete_y = float(marks[1].find("svg:circle", NS).attrib["cy"])  # type: ignore[union-attr]
    line = root.find(".//svg:line[@class='pass-mark']", NS)
    assert line is not None
    assert pass_y < float(line.attrib["y1"]) < incomplete_y


def test_a_lane_is_its_maxima_left_to_right_then_its_minima_right_to_left() -> None:
    lane = tl.Lane("speed", "km/h", [0.0, 50.0], [50.0, 100.0], [1.0, 2.0], [5.0, 6.0])
    path = _parse(tl.timeline_svg([lane], t_from=0.0, t_to=100.0)).find(
        ".//svg:path[@class='signal']", NS)  # fmt: skip
    assert path is not None
    xs = [float(x) for x in re.findall(r"([-\d.]+),[-\d.]+", path.attrib["d"])]
    scale = tl.time_scale(0.0, 100.0)
    left, middle, right = scale.x(0.0), scale.x(50.0), scale.x(100.0)
    # upper: 0-50 at max 5, 50-100 at max 6; lower back: 100-50 at min 2, 50-0 at min 1
    assert xs == pytest.approx([left, middle, middle, right, right, middle, middle, left])


def test_a_held_value_is_one_flat_step_without_middle_points() -> None:
    n = 20
    starts = [5.0 * k for k in range(n)]
    held: list[float | None] = [3.0] * n
    lane = tl.Lane("speed", "km/h", starts, [s + 5.0 for s in starts], held, held)
    path = _parse(tl.timeline_svg([lane], t_from=0.0, t_to=100.0)).find(
        ".//svg:path[@class='signal']", NS)  # fmt: skip
    assert path is not None
    assert len(re.findall(r"[-\d.]+,[-\d.]+", path.attrib["d"])) == 4  # a rectangle


# ============================================================================ accessibility


def test_charts_holding_links_are_named_groups_not_images() -> None:
    """An ``img`` may hold nothing interactive (axe: nested-interactive); both charts link."""
    timeline = _parse(tl.timeline_svg(
        [_lane()], t_from=0.0, t_to=100.0, label="Timeline of s1",
        intervals=[tl.Interval("c1", "Speed", 10.0, 20.0, href="/sessions/s1?zoom=c1")]))
    attempts = _parse(tl.attempts_svg(_points(), label="Score per attempt"))
    for root, label in ((timeline, "Timeline of s1"), (attempts, "Score per attempt")):
        assert root.attrib["role"] == "group"
        assert root.attrib["aria-label"] == label
        links = list(root.iterfind(".//svg:a", NS))
        assert links
        assert all(a.find("svg:rect[@class='hit']", NS) is not None for a in links)


def test_no_chart_text_is_smaller_than_the_minimum() -> None:
    svg = tl.timeline_svg(
        [_threshold_lane([1.0])], t_from=0.0, t_to=100.0,
        decisions=[tl.Decision("c1", "Speed", "fail", 50.0, 7, 3)],
        events=[tl.Mark("horn", 5.0, 1)],
    ) + tl.attempts_svg(_points(), min_score=80.0)
    sizes = [float(v) for v in re.findall(r'font-size="([\d.]+)"', svg)]
    assert sizes
    assert min(sizes) >= tl.SMALL_TEXT


def _threshold_lane(values: list[float]) -> tl.Lane:
    lane = _lane()
    return tl.Lane(lane.name, lane.unit, lane.t_start, lane.t_end, lane.lo, lane.hi,
                   thresholds=[(v, f"#{k + 1}") for k, v in enumerate(values)])  # fmt: skip


def test_close_thresholds_share_one_label_and_labels_never_overlap() -> None:
    # 0.5 and 1 km/h lie about 2 px apart on a 0-12 lane: one label for both
    root = _parse(tl.timeline_svg([_threshold_lane([0.5, 1.0, 3.0, 8.0, 12.0])], t_from=0.0,
                                  t_to=100.0))  # fmt: skip
    lines = root.findall(".//svg:line[@class='threshold']", NS)
    assert sorted(float(line.attrib["data-value"]) for line in lines) == [0.5, 1, 3, 8, 12]
    labels = root.findall(".//svg:text[@class='threshold-label']", NS)
    texts = [label.text for label in labels]
    assert any("1 km/h (#2) \u00b7 0.5 km/h (#1)" in t for t in texts if t)
    baselines = sorted(float(label.attrib["y"]) for label in labels)
    assert all(b - a >= tl.THRESHOLD_LABEL_GAP for a, b in itertools.pairwise(baselines))
    labelled = sorted(float(v) for label in labels for v in label.attrib["data-values"].split())
    assert labelled == [0.5, 1, 3, 8, 12]  # every line has its value in a label


def test_event_keys_are_letters_in_order_of_first_appearance() -> None:
    names = ["horn", "pallet_picked", "horn", *(f"e{k}" for k in range(30))]
    keys = tl.event_keys(names)
    assert list(keys)[:3] == ["horn", "pallet_picked", "e0"]
    assert [keys["horn"], keys["pallet_picked"], keys["e0"]] == ["A", "B", "C"]
    assert keys["e23"] == "Z"
    assert keys["e24"] == "A2"
    assert len(set(keys.values())) == len(keys)


def test_every_event_is_labelled_by_name_or_letter_without_overlap() -> None:
    # a burst of events a second (9 px) apart: names do not fit, letters do, on two rows
    events = [tl.Mark("pallet_picked" if k % 2 else "horn", 40.0 + 1.0 * k, k) for k in range(9)]
    events.append(tl.Mark("pallet_placed", 90.0, 20))
    root = _parse(tl.timeline_svg([_lane()], t_from=0.0, t_to=100.0, events=events))
    labels = root.findall(".//svg:text[@class='event-label']", NS)
    assert len(labels) == len(events)
    keys = tl.event_keys([e.name for e in events])
    for label in labels:
        assert label.text in (label.attrib["data-event"], keys[label.attrib["data-event"]])
    assert {label.text for label in labels} >= {"horn", "B", "pallet_placed"}
    assert len({label.attrib["y"] for label in labels}) >= 2  # letters on more rows
    rows: dict[str, list[tuple[float, float]]] = {}
    for label in labels:  # left edge and estimated width, per row (baseline)
        text = label.text or ""
        rows.setdefault(label.attrib["y"], []).append(
            (float(label.attrib["x"]), tl.CHAR_PX * len(text)))
    for spans in rows.values():
        spans.sort()
        assert all(a + w <= b for (a, w), (b, _) in itertools.pairwise(spans))


def test_markers_stacked_on_the_last_row_list_every_number_once_without_overlap() -> None:
    # six criteria decided at the session's close (as a rubric's totals are): four rows, the
    # last one shared; near the right edge, the shared label goes to the marker's left
    decisions = [tl.Decision(f"c{k}", "C", "pass", 100.0, number=k + 1) for k in range(6)]
    root = _parse(tl.timeline_svg([_lane()], t_from=0.0, t_to=100.0, decisions=decisions))
    texts = root.findall(".//svg:text[@class='marker-number']", NS)
    shown = [n for t in texts for n in (t.text or "").split()]
    assert sorted(shown, key=int) == ["1", "2", "3", "4", "5", "6"]
    spots = [(t.attrib["x"], t.attrib["y"]) for t in texts]
    assert len(set(spots)) == len(spots)
    assert "4 5 6" in [t.text for t in texts]
    last = next(t for t in texts if t.text == "4 5 6")
    assert last.attrib["text-anchor"] == "end"
    assert float(last.attrib["x"]) < tl.time_scale(0.0, 100.0).x(100.0)


def test_a_marker_never_shares_a_row_with_one_closer_than_the_gap_drawn_earlier() -> None:
    # fails first: 3 at 50 s, 4 at 100 s on row 0; passes later: 1 at 10 s, then 9 at 99 s,
    # which must not land on row 0 beside 4 (only the latest marker of a row used to count)
    decisions = [tl.Decision("c3", "C", "fail", 50.0, number=3),
                 tl.Decision("c4", "C", "fail", 100.0, number=4),
                 tl.Decision("c1", "C", "pass", 10.0, number=1),
                 tl.Decision("c9", "C", "pass", 99.0, number=9)]  # fmt: skip
    root = _parse(tl.timeline_svg([_lane()], t_from=0.0, t_to=100.0, decisions=decisions))
    marks = {g.attrib["data-criterion"]: g for g in root.iterfind(".//svg:g[@class='decision']",
                                                                    NS)}  # fmt: skip
    y = {k: (g.find("svg:text", NS).attrib["y"]) for k, g in marks.items()}  # type: ignore[union-attr]
    assert y["c4"] == y["c3"] == y["c1"]
    assert y["c9"] != y["c4"]
