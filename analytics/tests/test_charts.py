"""The server-side SVG charts: well-formed XML, escaped labels, true scaling, round ticks, no data."""

from __future__ import annotations

import itertools
import math
import random
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal

import pytest

from analytics.charts import MAX_DATE_LABELS, Series, bar_chart, daily_chart, nice_ticks, text

SVG = "{http://www.w3.org/2000/svg}"


def days(count: int, start: date = date(2025, 3, 1)) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, parsed to prove it is well-formed


def value_ticks(root: ET.Element) -> list[str]:
    return [t.text for t in root.find(f"{SVG}g[@class='y-axis']").iter(f"{SVG}text")]


def date_ticks(root: ET.Element) -> list[str]:
    return [t.text for t in root.find(f"{SVG}g[@class='x-axis']").iter(f"{SVG}text")]


def test_a_daily_chart_is_an_accessible_svg_image_with_a_legend():
    root = parse(
        daily_chart(days(3), [Series("Sent", [10, 20, 30]), Series("Opens", [1, 2, 3])], title="Sent and opens")
    )
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}title").text == "Sent and opens"
    desc = root.find(f"{SVG}desc")
    assert desc.get("id") == desc_id
    assert desc.text == "2025-03-01 to 2025-03-03, 3 days. Totals: Sent 60, Opens 6."
    legend = [t.text for t in root.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")]
    assert legend == ["Sent", "Opens"]
    assert date_ticks(root) == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert value_ticks(root) == ["0", "10", "20", "30"]
    axis_titles = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "axis-label"]
    assert axis_titles == ["Count", "Day"]


def test_points_are_scaled_to_the_value_axis():
    root = parse(daily_chart(days(4), [Series("Sent", [0, 50, 100, 25])], title="Sent"))
    grid = {
        t.text: float(t.get("y")) for t in root.find(f"{SVG}g[@class='y-axis']").iter(f"{SVG}text")
    }  # tick label -> its y
    polyline = root.find(f".//{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]
    ys = [y for _, y in points]
    assert ys[0] == pytest.approx(grid["0"], abs=0.1)
    assert ys[2] == pytest.approx(grid["100"], abs=0.1)
    assert ys[1] == pytest.approx((grid["0"] + grid["100"]) / 2, abs=0.1)
    assert ys[3] == pytest.approx(grid["0"] + (grid["100"] - grid["0"]) / 4, abs=0.1)
    xs = [x for x, _ in points]
    gaps = {round(b - a, 1) for a, b in itertools.pairwise(xs)}
    assert len(gaps) == 1  # days are evenly spaced
    # Each point has a tooltip naming its day, value and series.
    tips = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]
    assert tips == ["2025-03-01: 0 Sent", "2025-03-02: 50 Sent", "2025-03-03: 100 Sent", "2025-03-04: 25 Sent"]


def test_bars_reach_their_value_from_the_baseline():
    root = parse(daily_chart(days(2), [Series("Sent", [40, 10]), Series("Clicks", [0, 20])], title="t", kind="bar"))
    grid = {t.text: float(t.get("y")) for t in root.find(f"{SVG}g[@class='y-axis']").iter(f"{SVG}text")}
    assert list(grid) == ["0", "10", "20", "30", "40"]
    rects = [r for g in root.iter(f"{SVG}g") if g.get("class") == "series" for r in g.iter(f"{SVG}rect")]
    heights = [float(r.get("height")) for r in rects]
    per_ten = grid["0"] - grid["10"]
    assert heights == pytest.approx([4 * per_ten, 1 * per_ten, 0, 2 * per_ten], abs=0.2)
    for rect in rects:
        assert float(rect.get("y")) + float(rect.get("height")) == pytest.approx(grid["0"], abs=0.1)


def test_every_label_is_escaped():
    evil = "<script>alert(\"x\")</script> & 'quote'\x00\x07"
    svg = daily_chart(days(2), [Series(evil, [1, 2])], title=evil, value_label=evil, date_label=evil)
    root = parse(svg)  # still well-formed XML
    assert "<script>" not in svg
    assert "\x00" not in svg
    assert "\x07" not in svg
    assert root.find(f"{SVG}title").text == "<script>alert(\"x\")</script> & 'quote'"
    assert not list(root.iter(f"{SVG}script"))
    bars = bar_chart([(evil, 3), ("ok", 1)], title=evil)
    root = parse(bars)
    assert "<script>" not in bars
    assert not list(root.iter(f"{SVG}script"))
    labels = [g.find(f"{SVG}title").text for g in root.find(f"{SVG}g[@class='bars']")]
    assert labels[0] == "<script>alert(\"x\")</script> & 'quote': 3"


def test_text_escapes_markup_and_drops_characters_xml_cannot_carry():
    assert text('a<b>&"c"\'\x01') == "a&lt;b&gt;&amp;&quot;c&quot;&#x27;"


@pytest.mark.parametrize("values", [[], [0, 0, 0]])
def test_no_data_draws_an_empty_frame_that_says_so(values):
    dates = days(len(values))
    root = parse(daily_chart(dates, [Series("Sent", values)], title="Nothing"))
    [empty] = [t for t in root.iter(f"{SVG}text") if t.get("class") == "empty"]
    assert empty.text == "No data for this period"
    assert value_ticks(root) == ["0", "1"]
    if not values:
        assert root.find(f"{SVG}desc").text == "No data for this period."
        assert root.find(f".//{SVG}polyline") is None
    root = parse(bar_chart([], title="Nothing"))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"] == ["No data for this period"]


def test_one_day_sits_in_the_middle_and_says_so():
    root = parse(daily_chart(days(1), [Series("Sent", [7])], title="One day"))
    assert date_ticks(root) == ["2025-03-01"]
    assert root.find(f"{SVG}desc").text == "2025-03-01, 1 day. Totals: Sent 7."
    [circle] = root.iter(f"{SVG}circle")
    width = float(root.get("width"))
    assert 0.3 * width < float(circle.get("cx")) < 0.7 * width
    assert value_ticks(root) == ["0", "2", "4", "6", "8"]


def test_a_year_of_days_keeps_labels_few_and_drops_per_point_markers():
    rng = random.Random(15)
    dates = days(366, date(2024, 1, 1))
    sent = [rng.randint(0, 5000) for _ in dates]
    root = parse(daily_chart(dates, [Series("Sent", sent), Series("Opens", [v // 3 for v in sent])], title="Year"))
    labels = date_ticks(root)
    assert len(labels) == MAX_DATE_LABELS
    assert labels[0] == "2024-01-01"
    assert labels[-1] == "2024-12-31"
    assert not list(root.iter(f"{SVG}circle"))
    [sent_line, _opens_line] = root.iter(f"{SVG}polyline")
    assert len(sent_line.get("points").split()) == 366
    xs = [float(p.split(",")[0]) for p in sent_line.get("points").split()]
    assert min(xs) >= 0
    assert max(xs) <= float(root.get("width"))
    assert float(value_ticks(root)[-1].replace(",", "")) >= max(sent)


def test_fractional_and_decimal_values_get_decimal_ticks():
    root = parse(daily_chart(days(2), [Series("Revenue", [Decimal("0.25"), Decimal("0.37")])], title="Revenue"))
    assert value_ticks(root) == ["0.0", "0.1", "0.2", "0.3", "0.4"]


@pytest.mark.parametrize(
    ("maximum", "integer", "expected"),
    [
        (0, True, [0, 1]),
        (1, True, [0, 1]),
        (3, True, [0, 1, 2, 3]),
        (7, True, [0, 2, 4, 6, 8]),
        (10, True, [0, 2, 4, 6, 8, 10]),
        (1234, True, [0, 500, 1000, 1500]),
        (0.37, False, [0, 0.1, 0.2, 0.3, 0.4]),
        (98_765, True, [0, 20_000, 40_000, 60_000, 80_000, 100_000]),
    ],
)
def test_ticks_are_round_and_cover_the_maximum(maximum, integer, expected):
    assert nice_ticks(maximum, integer=integer) == pytest.approx(expected)


def test_ticks_property_round_steps_covering_any_maximum():
    rng = random.Random(7)
    for _ in range(500):
        maximum = rng.choice([rng.randint(1, 10**7), rng.random() * 10 ** rng.randint(-2, 6)])
        ticks = nice_ticks(maximum, integer=False)
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
        assert round(mantissa, 6) in (1, 2, 5, 10)
        assert ticks[0] == 0
        assert ticks[-1] >= maximum * (1 - 1e-9)
        assert ticks[-2] < maximum  # no empty step on top
        assert 2 <= len(ticks) <= 12


def test_bar_chart_scales_bars_and_shortens_long_labels_keeping_the_full_one_in_the_tooltip():
    long_name = "The very long name of a spring campaign for the northern region"
    root = parse(bar_chart([(long_name, 300), ("Welcome", 150)], title="Sent by campaign"))
    groups = list(root.find(f"{SVG}g[@class='bars']"))
    widths = [float(g.find(f"{SVG}rect").get("width")) for g in groups]
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.2)
    shown = groups[0].find(f"{SVG}text").text
    assert shown.endswith("…")
    assert len(shown) <= 28
    assert groups[0].find(f"{SVG}title").text == f"{long_name}: 300"
    assert root.find(f"{SVG}desc").text == f"{long_name}: 300; Welcome: 150."


def test_series_lengths_must_match_the_dates():
    with pytest.raises(ValueError, match="2 values for 3 dates"):
        daily_chart(days(3), [Series("Sent", [1, 2])], title="t")
    with pytest.raises(ValueError, match="kind"):
        daily_chart(days(1), [Series("Sent", [1])], title="t", kind="pie")


def test_two_charts_on_one_page_do_not_share_ids():
    first = parse(daily_chart(days(2), [Series("Sent", [1, 2])], title="A"))
    second = parse(daily_chart(days(2), [Series("Sent", [1, 3])], title="A"))
    assert first.find(f"{SVG}title").get("id") != second.find(f"{SVG}title").get("id")
    assert re.fullmatch(r"chart-[0-9a-f]{10}-title", first.find(f"{SVG}title").get("id"))
