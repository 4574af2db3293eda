"""Server-side SVG charts: round ticks, one line per series, escaped text."""

from __future__ import annotations

from modelrail.ui.charts import MAX_POINTS, Series, colour, line_chart, nice_ticks


def test_ticks_are_round_numbers_covering_the_range() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3.0, 3.0) == [3.0]
    assert nice_ticks(-7.0, 42.0) == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_each_series_is_one_polyline_with_a_legend_entry() -> None:
    chart = line_chart(
        "loss",
        [
            Series("run a", [(0, 1.0), (1, 0.5), (2, 0.25)], colour(0)),
            Series("run b", [(0, 0.9), (1, 0.6)], colour(1)),
            Series("run c", [], colour(2)),  # no points: left out
        ],
    )
    assert chart.count("<polyline") == 2
    assert chart.count('data-testid="chart-legend-item"') == 2
    assert 'data-metric="loss"' in chart and ">step<" in chart


def test_text_is_escaped_and_long_series_are_thinned() -> None:
    points = [(float(i), float(i % 7)) for i in range(MAX_POINTS * 3)]
    chart = line_chart('<script>alert("x")</script>', [Series("<b>", points, colour(0))])
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert "<b>" not in chart
    coordinates = chart.split('points="', 1)[1].split('"', 1)[0].split()
    assert len(coordinates) == MAX_POINTS


def test_a_single_point_still_draws() -> None:
    chart = line_chart("accuracy", [Series("run", [(3, 0.5)], colour(0))])
    assert "<circle" in chart and "NaN" not in chart and "nan" not in chart
