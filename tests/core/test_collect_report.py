"""What a collection says, pure: the outputs line in the terminal message, the one alert of a
collection that failed (keep or destroy, said plainly), and /runs' reading of the stored memo."""

from __future__ import annotations

import json
from pathlib import Path

from core.collect_report import (
    outputs_line,
    pull_result,
    uncollected_alert,
    uncollected_fate,
    with_outputs,
)
from core.models import MessageKind, OutboundMessage
from core.outputs import Collected, ManifestFile

SHA = "b" * 64
DEST = Path("/home/me/.local/share/sleepwatch/outputs/llama-ft")


def files(*sizes: int) -> list[ManifestFile]:
    return [ManifestFile(path=f"ckpt/{i}.bin", size=s, sha256=SHA) for i, s in enumerate(sizes)]


def test_all_verified_reads_files_size_where_and_verified() -> None:
    got = files(7_000_000_000, 7_000_000_000, 200_000_000)
    result = pull_result(got, {f.path: SHA for f in got}, [], ["*.json"], DEST)
    assert result.state is Collected.VERIFIED
    assert result.line == (
        "3 files, 14.2 GB in …/outputs/llama-ft, verified; nothing matched *.json"
    )


def test_a_file_not_verified_fails_and_says_what_was_and_was_not_collected() -> None:
    got = files(1000, 2000)
    result = pull_result(got, {got[0].path: SHA}, ["ckpt/1.bin: changed"], [], DEST)
    assert result.state is Collected.FAILED
    assert result.line == "NOT all collected: 1 file, 1.0 KB verified in …/outputs/llama-ft, 1 not"
    assert result.reasons == (
        f"collected and verified: 1 file, 1.0 KB in {DEST}",
        "ckpt/1.bin: changed",
    )


def test_the_fate_of_an_uncollected_instance_is_said_plainly() -> None:
    keep, kept = uncollected_fate("llama-ft", "4242", destroy=False, dph_total=0.41)
    assert not keep and "KEPT so nothing is lost" in kept and "$0.41/h" in kept
    assert "/teardown llama-ft" in kept
    destroy, gone = uncollected_fate("llama-ft", "4242", destroy=True, dph_total=None)
    assert destroy and "destroyed anyway (destroy_when_uncollected = true)" in gone
    assert uncollected_fate("demo", None, destroy=False, dph_total=None)[0] is False


def test_the_alert_carries_the_result_the_reasons_and_the_fate() -> None:
    got = files(1000, 2000)
    result = pull_result(got, {}, ["ckpt/0.bin: x", "ckpt/1.bin: y"], [], DEST)
    alert = uncollected_alert("llama-ft", result, "instance 4242 is KEPT")
    assert alert.kind is MessageKind.ALERT and alert.loud
    assert alert.reasons[0] == result.line and alert.reasons[-1] == "instance 4242 is KEPT"


def test_the_outputs_line_goes_just_before_the_instance_line_once() -> None:
    message = OutboundMessage(
        kind=MessageKind.TERMINAL, title="t", summary=(("cost", "$1"), ("instance", "(pending)"))
    )
    once = with_outputs(message, "2 files")
    assert with_outputs(once, "3 files").summary == (
        ("cost", "$1"), ("outputs", "3 files"), ("instance", "(pending)"),
    )  # fmt: skip


def test_runs_reads_the_result_else_the_progress_else_nothing() -> None:
    assert outputs_line(json.dumps({"result": {"line": "1 file, verified"}})) == "1 file, verified"
    assert outputs_line(json.dumps({"progress": "collecting 0/1 files"})) == "collecting 0/1 files"
    assert outputs_line(None) is None
    assert outputs_line("not json") is None
    assert outputs_line("[1, 2]") is None
