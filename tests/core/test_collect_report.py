"""What a collection says, pure: the outputs line in the terminal message, what a collection
that failed adds to it (keep or destroy, said plainly), the logs-only line of a run with no
`collect`, and the readings of the stored memo (/runs, the kept-instance reminder)."""

from __future__ import annotations

import json
from pathlib import Path

from core.collect_report import (
    kept_uncollected,
    logs_only,
    outputs_line,
    pending,
    pull_result,
    result_doc,
    uncollected_fate,
    with_outputs,
    with_uncollected,
)
from core.models import MessageKind, OutboundMessage
from core.outputs import Collected, CollectResult, ManifestFile

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


def test_a_failed_collection_is_told_in_the_terminal_message_not_an_alert() -> None:
    got = files(1000, 2000)
    result = pull_result(got, {}, ["ckpt/0.bin: x", "ckpt/1.bin: y"], [], DEST)
    terminal = OutboundMessage(kind=MessageKind.TERMINAL, title="t", reasons=("exit 1",))
    told = with_uncollected(terminal, result, "instance 4242 is KEPT")
    assert told.kind is MessageKind.TERMINAL
    assert told.reasons[:2] == ("exit 1", f"outputs NOT all collected: {result.line}")
    assert "ckpt/1.bin: y" in told.reasons and told.reasons[-1] == "instance 4242 is KEPT"


def test_logs_only_says_so_and_how_to_keep_checkpoints() -> None:
    got = files(1000, 40_000)
    logs = pull_result(got, {f.path: SHA for f in got}, [], [], DEST)
    assert logs_only(logs, 1.0).logs_only
    assert logs_only(logs, 1.0).line.startswith("logs only (2 files, 41.0 KB in …/outputs/llama")
    assert logs_only(logs, 1.0).line.endswith(") — set [runs.collect] paths to keep checkpoints")
    paused = CollectResult(Collected.PENDING, "collecting 1/2 files", 1.0)
    assert logs_only(paused, 1.0) == paused  # a long pull goes on in its next slice
    unreachable = logs_only(pending("listing the outputs failed (refused)", 10.0), 1.0)
    assert unreachable.state is Collected.FAILED and unreachable.logs_only  # not waited for
    assert unreachable.line.startswith("logs only (NOT collected: listing the outputs failed")


def test_only_a_failed_collection_of_configured_outputs_kept_the_instance() -> None:
    failed = CollectResult(Collected.FAILED, "NOT collected")
    memo = json.dumps({"result": result_doc(failed)})
    assert kept_uncollected(memo)
    logs = json.dumps({"result": result_doc(logs_only(failed, 1.0))})
    assert not kept_uncollected(logs)  # a run with no `collect` keeps nothing for its logs
    ok = json.dumps({"result": result_doc(CollectResult(Collected.VERIFIED, "1 file"))})
    assert not kept_uncollected(ok)
    assert not kept_uncollected(None) and not kept_uncollected("{bad")


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
