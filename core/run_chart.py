"""The terminal message's picture and links: the tracker links its log printed (core/links.py);
read the run's metric history from its supervisor once, draw
it (core/chart.py), keep the PNG in `<state_dir>/charts/<run>.png` and add a sparkline of the
training loss to the message's summary.

Called by core/exits.py when it builds a run's terminal message (the instance is still there:
outputs and teardown come after). Best effort by design: no history, an old supervisor, a
dropped connection or a failed draw leave the message as it was, within `CHART_TIMEOUT_S`; the
ending never waits on a picture.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path

from core.chart import render_png_async
from core.config import Config
from core.errors import SleepwatchError
from core.links import links_in
from core.metric_history import MetricHistory, sparkline
from core.models import OutboundMessage, RunRecord
from core.ports import Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.supervisor_client import SupervisorClient, client_for

log = logging.getLogger(__name__)
CHART_TIMEOUT_S = 30.0


def with_links(message: OutboundMessage, probe: ProbeSnapshot | None) -> OutboundMessage:
    return replace(message, links=links_in(probe.tail)) if probe else message


def chart_path(config: Config, run: str) -> Path:
    return config.watcher.resolved_state_dir() / "charts" / f"{run}.png"


def fix_marks(state: SupervisorState | None) -> dict[int, str]:
    """{attempt: the fix it started with}: a fix applied after attempt N is attempt N+1's."""
    return {fix.attempt + 1: fix.kind for fix in state.fixes} if state else {}


async def fresh_chart(
    client: SupervisorClient,
    config: Config,
    name: str,
    run_dir: str,
    marks: dict[int, str] | None = None,
) -> tuple[MetricHistory | None, Path | None]:
    """The run's history as its supervisor answers it now, and its chart drawn into
    `chart_path` (None where there is nothing to draw or the draw failed)."""
    try:
        async with asyncio.timeout(CHART_TIMEOUT_S):
            history = await client.metrics(run_dir, timeout_s=CHART_TIMEOUT_S)
    except (SleepwatchError, TimeoutError, OSError) as exc:
        log.info("%s: no metric history (%s)", name, exc)
        return None, None
    if history is None or not history.has_points():
        return history, None
    try:
        png = await render_png_async(history, name, marks or {})
    except Exception as exc:  # noqa: BLE001 - a picture is never worth an ending or an answer
        log.warning("%s: chart not drawn: %s", name, exc)
        return history, None
    if png is None:
        return history, None
    path = chart_path(config, name)
    try:
        await asyncio.to_thread(_write_private, path, png)
    except OSError as exc:
        log.warning("%s: chart not written to %s: %s", name, path, exc)
        return history, None
    return history, path


async def pictured(
    message: OutboundMessage,
    probe: ProbeSnapshot | None,
    state: SupervisorState | None,
    config: Config,
    record: RunRecord,
    transport: Transport,
) -> OutboundMessage:
    """The terminal message with its links and its chart (each retry marked with its fix)."""
    return await with_chart(with_links(message, probe), config, record, transport, state)


async def with_chart(
    message: OutboundMessage,
    config: Config,
    record: RunRecord,
    transport: Transport,
    state: SupervisorState | None = None,
) -> OutboundMessage:
    client = client_for(config, record.name, transport)
    marks = fix_marks(state)
    history, path = await fresh_chart(client, config, record.name, record.run_dir, marks)
    if history is None:
        return message
    summary = message.summary + loss_line(history)
    return replace(message, summary=summary, chart=str(path) if path else None)


def loss_line(history: MetricHistory) -> tuple[tuple[str, str], ...]:
    """("loss", "▇▅▃▂▁ 2.31 → 0.42") from the training loss (else the eval metric)."""
    name, points = ("loss", history.loss) if history.loss else ("eval", history.eval)
    if not points:
        return ()
    values = [y for _, y in points]
    label = history.eval_key or name if name == "eval" else name
    return ((label, f"{sparkline(values)} {values[0]:.4g} → {values[-1]:.4g}"),)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
