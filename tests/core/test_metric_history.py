"""The metric history as the watcher reads it: hostile answers cost the chart, never the probe;
the sparkline and the PNG show what the series hold."""

from __future__ import annotations

import io
import json

from matplotlib.image import imread

from core.chart import DPI, HEIGHT_IN, WIDTH_IN, render_png
from core.metric_history import MAX_POINTS, MetricHistory, history_from_doc, sparkline
from core.protocol import parse_probe

PROBE = {
    "probe": 1,
    "at": "2026-11-30T03:00:00Z",
    "state": None,
    "state_error": "state.json missing",
    "tail": [],
    "gpus": [],
}


def probe_with(metrics: object) -> str:
    return json.dumps({**PROBE, "metrics": metrics})


def test_hostile_metric_histories_cost_the_chart_never_the_probe() -> None:
    huge = {"points": [[i, i] for i in range(50_000)]}
    cases = [
        "not an object",
        {"loss": {"points": [[1, 1e999], [2, "x"], [True, 1], [1], [3, 0.5]]}},
        {"loss": huge, "eval_key": "<b>" + "k" * 500, "attempts": [[0, 1], [2, 5], "x"]},
        {"loss": {"points": [[10**400, 1]]}},
        {"attempts": {"nested": [[[[1]]]]}},
    ]
    for metrics in cases:
        snapshot = parse_probe(probe_with(metrics))
        assert snapshot.state_error == "state.json missing"
        history = snapshot.metrics
        assert history is None or len(history.loss) <= MAX_POINTS
    second = parse_probe(probe_with(cases[1])).metrics
    assert second is not None and second.loss == ((3.0, 0.5),)
    third = parse_probe(probe_with(cases[2])).metrics
    assert third is not None and third.eval_key == "b" + "k" * 37
    assert third.attempts == ((2, 5.0),) and third.loss[-1] == (49_999.0, 49_999.0)


def test_a_probe_without_metrics_has_none() -> None:
    assert parse_probe(json.dumps(PROBE)).metrics is None


def test_the_sparkline_follows_the_values_and_stays_within_its_width() -> None:
    assert sparkline([]) == ""
    assert sparkline([3.0, 2.0, 1.0, 0.0]) == "█▆▃▁"
    assert sparkline([1.0, 1.0]) == "▄▄"
    assert sparkline([-1.7e308, 0.0, 1.7e308]) == "▁▅█"  # finite, but their span is not
    long = sparkline([float(i) for i in range(1000)], width=24)
    assert len(long) == 24 and long[0] == "▁" and long[-1] == "█"


def test_the_chart_is_a_png_of_the_promised_size_and_none_without_points() -> None:
    history = history_from_doc(
        {
            "loss": {"points": [[s, 2.0 / s] for s in range(1, 200)]},
            "eval": {"points": [[s, 1.5 / s] for s in range(10, 200, 10)]},
            "throughput": {"points": [[s, 3.0] for s in range(1, 200)]},
            "eval_key": "eval_loss",
            "attempts": [[1, 0], [2, 120]],
        }
    )
    assert history is not None
    png = render_png(history, "llama-ft")
    assert png is not None
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (int(HEIGHT_IN * DPI), int(WIDTH_IN * DPI))
    assert render_png(MetricHistory(), "empty") is None
    # a fix's name comes from the instance: drawn as plain text, never parsed as math
    assert render_png(history, "llama-ft", {2: "$\\frac{oom$"}) is not None
    diverged = history_from_doc({"loss": {"points": [[1, 2.0], [2, -1.7e308], [3, 1.7e308]]}})
    assert diverged is not None and render_png(diverged, "diverged") is not None
