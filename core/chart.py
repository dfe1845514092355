"""A picture of the run: the metric history drawn as a PNG (loss and the eval metric against
the step above, throughput below, each attempt's start marked), with matplotlib's Agg canvas.

Called through `render_png_async` (a worker thread, so a slow draw never stalls the watcher's
loop) by core/run_chart.py, which keeps the PNG in the state dir for the notifiers: bot/notifier.py
sends it as a photo, the console prints its path; /status draws a live run's afresh. Input is
core/metric_history.py's model, already bounded and finite.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.metric_history import MetricHistory, Point

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 100
OFF_CHART = 1e15


def render_png(
    history: MetricHistory, title: str, marks: Mapping[int, str] | None = None
) -> bytes | None:
    """The chart as PNG bytes, or None when there is nothing to draw. Each retry's start is a
    dashed line, labelled with its attempt and the fix it started with (`marks`)."""
    if not history.has_points():
        return None
    # imported here, not at the top: matplotlib is ~0.8 s of every start-up (serve, each CLI
    # verb), and most processes never draw
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _draw_metrics(top, history)
    _draw(bottom, history.throughput, "throughput (steps/s)", "tab:green")
    for ax in (top, bottom):
        for attempt, step in history.attempts:
            if attempt > 1:
                ax.axvline(step, color="tab:red", linestyle="--", linewidth=1)
    for attempt, step in history.attempts:
        if attempt > 1:
            label = f"#{attempt} {(marks or {}).get(attempt, 'retry')}"[:40]
            top.annotate(
                label,
                (step, 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="tab:red",
                parse_math=False,
            )
    if any(attempt > 1 for attempt, _ in history.attempts):
        top.plot([], [], color="tab:red", linestyle="--", label="retry (attempt starts)")
    top.set_title(title[:80])
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="best", fontsize="small")
    bottom.set_xlabel("step")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


async def render_png_async(
    history: MetricHistory, title: str, marks: Mapping[int, str] | None = None
) -> bytes | None:
    return await asyncio.to_thread(render_png, history, title, marks)


def _draw_metrics(ax: Axes, history: MetricHistory) -> None:
    _draw(ax, history.loss, "training loss", "tab:blue")
    _draw(ax, history.eval, history.eval_key or "eval", "tab:orange", marker="o")
    ax.set_ylabel("loss / metric")
    ax.grid(alpha=0.3)


def _draw(
    ax: Axes, points: tuple[Point, ...], label: str, color: str, marker: str | None = None
) -> None:
    # a diverged run's 1e300 would overflow the axes' arithmetic: it is off the chart
    points = tuple(p for p in points if abs(p[1]) <= OFF_CHART and abs(p[0]) <= OFF_CHART)
    if not points:
        return
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, label=label, color=color, marker=marker, markersize=3)
    if ax.get_ylabel() == "":
        ax.set_ylabel(label)
