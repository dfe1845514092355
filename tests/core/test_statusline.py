"""The status line contract: `ts status attempt step gpu mem fix run`, one line, eight fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from core.protocol import GpuReading
from core.statusline import format_mem, format_step, status_line
from tests.core.builders import RUN, fix, gpu, make_state

NOW = datetime(2026, 11, 28, 3, 12, 9, tzinfo=UTC)


def test_it_matches_the_contract_example() -> None:
    state = make_state(
        attempt=2,
        step=41200,
        total_steps=90000,
        fixes=[fix(1, "oom", "eval_batch_size 64 -> 32")],
    )
    readings = (GpuReading(index=0, util_pct=97, mem_used_mb=71.3 * 1024, mem_total_mb=80 * 1024),)
    line = status_line(now=NOW, run=RUN, state=state, gpus=readings)
    assert line == "2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft"


def test_unknown_fields_are_dashes_and_there_are_always_eight() -> None:
    line = status_line(now=NOW, run=RUN, state=make_state(status="starting"))
    assert line == "2026-11-28T03:12:09Z starting 1/3 - - - - llama-ft"
    assert len(line.split(" ")) == 8


def test_step_without_a_total_is_the_bare_step() -> None:
    assert format_step(41200, None) == "41200"
    assert format_step(0, None) == "0"
    assert format_step(None, 90000) == "-"
    line = status_line(now=NOW, run=RUN, state=make_state(step=12))
    assert line.split(" ")[3] == "12"


def test_multi_gpu_shows_mean_util_and_summed_memory() -> None:
    readings = tuple(
        GpuReading.model_validate(g)
        for g in (gpu(90, 40960, 81920, 0), gpu(70, 20480, 81920, 1), gpu(None, None, None, 2))
    )
    line = status_line(now=NOW, run=RUN, state=make_state(), gpus=readings)
    fields = line.split(" ")
    assert fields[4] == "80%"  # the unreadable third GPU does not drag the mean down
    assert fields[5] == "60.0/160.0G"


def test_probe_readings_win_over_the_state_ones() -> None:
    state = make_state(gpus=[gpu(5, 1024, 81920)])
    live = (GpuReading(index=0, util_pct=99, mem_used_mb=2048, mem_total_mb=81920),)
    assert status_line(now=NOW, run=RUN, state=state).split(" ")[4] == "5%"
    assert status_line(now=NOW, run=RUN, state=state, gpus=live).split(" ")[4:6] == [
        "99%",
        "2.0/80.0G",
    ]


def test_memory_needs_both_used_and_total() -> None:
    assert format_mem((GpuReading(index=0, util_pct=50, mem_used_mb=100),)) == "-"
    assert format_mem(()) == "-"


def test_unreachable_overrides_the_status_with_no_state() -> None:
    line = status_line(now=NOW, run=RUN, state=None, status="unreachable")
    assert line == "2026-11-28T03:12:09Z unreachable - - - - - llama-ft"


def test_invalid_state_line_keeps_live_gpu_readings() -> None:
    live = (GpuReading(index=0, util_pct=3, mem_used_mb=512, mem_total_mb=81920),)
    line = status_line(now=NOW, run=RUN, state=None, gpus=live, status="invalid")
    assert line == "2026-11-28T03:12:09Z invalid - - 3% 0.5/80.0G - llama-ft"


def test_timestamp_is_utc_seconds_with_z_whatever_the_input_zone() -> None:
    berlin = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 28, 4, 12, 9, 987654, tzinfo=berlin)
    line = status_line(now=local, run=RUN, state=None, status="unreachable")
    assert line.startswith("2026-11-28T03:12:09Z ")


def test_the_last_fix_is_shown() -> None:
    state = make_state(
        attempt=3, fixes=[fix(1, "missing_module", "pip install x"), fix(2, "oom", "halve")]
    )
    assert status_line(now=NOW, run=RUN, state=state).split(" ")[6] == "oom"
