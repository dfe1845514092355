"""The metric history behind the run's chart: read from recorded trainer logs, bounded however
long the run, kept across attempts, and answered by a real `supervisor probe --metrics`."""

from __future__ import annotations

import json
import math
from pathlib import Path

from core.chart import render_png
from core.protocol import parse_probe
from supervisor.metrics import LINES_PER_FEED, METRICS_FILE, MetricHistory, Series
from supervisor.progress import ProgressTracker
from tests.supervisor.conftest import Run, cli

LOGS = Path(__file__).parent / "corpus" / "logs"


def replay(name: str, tmp_path: Path, chunk: int = 512) -> MetricHistory:
    """Feed a recorded log as the supervisor does: progress first, in chunks as it grew."""
    data = (LOGS / f"{name}.log").read_bytes()
    history, progress = MetricHistory(str(tmp_path)), ProgressTracker()
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        step_before = progress.step
        progress.feed(piece, start / 1000)
        history.feed(piece, step_before)
    return history


def test_a_recorded_hf_trainer_log_gives_loss_lr_and_eval_loss_at_their_steps(tmp_path):
    # transformers' Trainer (logging_steps=5, eval every 10) as recorded by corpus/record.py
    history = replay("pg_hf_trainer_complete", tmp_path)
    assert history.eval_key == "eval_loss"
    loss_steps = [x for x, _ in history.series["loss"].points]
    assert loss_steps == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
    assert history.series["eval"].points[0] == (10.0, 0.69)
    assert [x for x, _ in history.series["eval"].points] == [10.0, 20.0, 30.0, 40.0]
    assert history.series["lr"].points[0] == (5.0, 0.0009)
    # the eval dict's runtime and per-second keys are not a second eval curve
    assert all(v < 1.0 for _, v in history.series["eval"].points)


def test_a_plain_loop_log_places_each_loss_at_the_step_its_line_names(tmp_path):
    history = replay("pg_plain_steps", tmp_path, chunk=97)
    lines = [
        line.split()
        for line in (LOGS / "pg_plain_steps.log").read_text().splitlines()
        if line.startswith("step ") and "loss=" in line
    ]
    expected = {float(w[1].split("/")[0]): float(w[2].split("=")[1]) for w in lines}
    assert history.series["loss"].points, "no loss read"
    for x, y in history.series["loss"].points:
        assert expected[x] == y


def test_a_keras_log_with_inf_and_nan_losses_keeps_only_finite_points(tmp_path):
    history = replay("pg_keras_complete", tmp_path)
    values = [y for _, y in history.series["loss"].points]
    assert values and all(math.isfinite(v) for v in values)


def test_a_recorded_flood_read_in_big_reads_keeps_a_few_true_points_and_the_newest(tmp_path):
    # a plain loop printing every step as fast as it can (corpus/record.py), read 16 KiB at a
    # time as the supervisor reads a trainer that prints faster than its tick
    history = replay("pg_plain_flood", tmp_path, chunk=16384)
    printed = {
        float(w[1].split("/")[0]): float(w[2].split("=")[1])
        for w in (line.split() for line in (LOGS / "pg_plain_flood.log").read_text().splitlines())
        if len(w) == 3 and w[0] == "step"
    }
    loss = history.series["loss"].points
    reads = -(-(LOGS / "pg_plain_flood.log").stat().st_size // 16384)
    assert len(printed) > 1000 and 1 < len(loss) <= reads * (LINES_PER_FEED + 1)
    assert all(printed[x] == y for x, y in loss)  # each at the step its own line names
    assert loss[-1] == (5000.0, printed[5000.0])  # the chart ends where the run is


def test_a_flood_is_read_in_a_few_evenly_spaced_points_and_every_eval_line(tmp_path):
    # 1,000 lines of one read (a trainer printing every step): a chart needs a few of them
    lines = [f"step {i}/5000 loss={1 / i:.6f} lr=1e-05" for i in range(1, 1001)]
    lines.insert(500, "{'eval_loss': 0.42, 'eval_runtime': 3.1, 'epoch': 1.0}")
    history = MetricHistory(str(tmp_path))
    history.feed(("\n".join(lines) + "\n").encode(), None)
    loss = history.series["loss"].points
    assert LINES_PER_FEED <= len(loss) <= LINES_PER_FEED + 2
    assert loss[0] == (1.0, 1.0) and loss[-1] == (1000.0, 0.001)  # the first and the newest
    assert all(y == round(1 / x, 6) for x, y in loss)  # each at the step its own line names
    assert history.series["eval"].points == [(500.0, 0.42)]  # at the step printed before it


def test_a_week_long_series_stays_bounded_keeps_its_shape_and_ends_at_the_newest_point():
    series = Series(limit=300)
    for step in range(1, 200_001):
        series.add(float(step), 1.0 / step)
    assert 150 <= len(series.points) <= 300
    xs = [x for x, _ in series.points]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert xs[0] == 1.0 and series.points[-1] == (200_000.0, 1.0 / 200_000)
    gaps = [b - a for a, b in zip(xs, xs[1:-1], strict=False)]
    assert max(gaps) <= 2 * min(gaps)  # evenly spread, not all at one end


def test_the_history_survives_a_restart_and_a_broken_file_starts_a_fresh_one(tmp_path):
    history = MetricHistory(str(tmp_path))
    history.attempt_started(1, None)
    history.feed(b"step 3/9 loss=0.5\n", None)
    history.save(now=0.0)
    again = MetricHistory.load(str(tmp_path))
    assert again.series["loss"].points == [(3.0, 0.5)] and again.attempts == [(1, 0.0)]
    for broken in ('{"metrics": 1, "loss": {"points": [[1, "x"], [2]]', "[]", '{"metrics": 99}'):
        (tmp_path / METRICS_FILE).write_text(broken)
        assert MetricHistory.load(str(tmp_path)).series["loss"].points == []


RETRIED = r"""
import os, sys
attempt = int(os.environ["SLEEPWATCH_ATTEMPT"])
last = 10 if attempt == 1 else 20
for step in range(1, last + 1):
    print("step %d/20 loss=%.3f lr=0.001" % (step, 2.0 / step), flush=True)
if attempt == 1:
    raise RuntimeError("the data loader died")
"""


def test_a_real_run_answers_its_history_across_attempts_and_core_draws_it(run: Run) -> None:
    run.configure(RETRIED, max_attempts=2)
    assert run.run().returncode == 0
    plain = json.loads(cli("probe", "--run-dir", str(run.run_dir)).stdout)
    assert "metrics" not in plain  # every check stays small; the chart asks for it
    probe = cli("probe", "--run-dir", str(run.run_dir), "--metrics")
    snapshot = parse_probe(probe.stdout)
    assert snapshot.metrics is not None
    assert [a for a, _ in snapshot.metrics.attempts] == [1, 2]
    assert snapshot.metrics.loss[-1] == (20.0, 0.1)
    assert snapshot.metrics.lr[-1] == (20.0, 0.001)
    png = render_png(snapshot.metrics, "t")
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
