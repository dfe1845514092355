"""RUN.json validation, bounded log reads, disk cleanup, and the supervisor's own source rules."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

from supervisor.classify import classify
from supervisor.config import ConfigError, parse_config
from supervisor.fixes import apply_fix, plan_fix
from supervisor.logread import read_chunk, tail_lines
from tests.supervisor.conftest import ROOT, cli

SUPERVISOR = ROOT / "supervisor"
BASE = {"run": "r", "run_dir": "/tmp/r", "command": "true"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"colour": "red"}, "colour"),
        ({"knobs": {"eval_batch_size": {"value": 8, "min": 16}}}, "knobs.eval_batch_size.min"),
        ({"fixes": ["reboot"]}, "fixes"),
        ({"deadman": {"enabled": "yes"}}, "deadman.enabled"),
        ({"early_stop": {"metric_regex": "(", "mode": "min"}}, "early_stop.metric_regex"),
        ({"pip": {"command": []}}, "pip.command"),
        ({"cleanup": {"paths": ["/"]}}, "cleanup.paths"),
        ({"run_dir": "relative"}, "run_dir"),
    ],
)
def test_a_bad_config_names_its_field(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **change})
    assert caught.value.field == field and field in str(caught.value)


def test_a_corrupt_or_truncated_run_json_exits_2_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "RUN.json"
    path.write_text('{"run": "r", "run_dir": "/tmp/r", "comm')
    done = cli("run", "--config", str(path))
    assert done.returncode == 2 and b"not valid JSON" in done.stderr
    path.write_text(json.dumps({**BASE, "max_attempts": "3", "bogus": 1}))
    done = cli("start", "--config", str(path))
    assert done.returncode == 2 and b"bogus" in done.stderr


def test_a_chunk_is_bounded_skips_ahead_and_holds_back_half_a_character(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    log.write_bytes(b"a" * 100 + "é".encode()[:1])
    chunk = read_chunk(str(log), 1, 10, 50)
    assert (chunk["skipped"], chunk["next_offset"], chunk["size"]) == (41, 100, 101)
    assert chunk["text"] == "a" * 49
    assert read_chunk(str(log), 1, 10_000, 50)["offset"] == 0  # offset past the end: restart


def test_the_tail_collapses_redraws_strips_escapes_and_bounds_lines(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    log.write_bytes(b"old\n\x1b[31mred\x1b[0m\x00\n\r 1/3 [\r 2/3 [\r 3/3 [done\n" + b"y" * 900)
    assert tail_lines(str(log), 3) == ["red", " 3/3 [done", "y" * 500]


def test_the_tail_of_a_huge_single_line_reads_at_most_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "1.log"
    with open(log, "wb") as fh:
        fh.truncate(200 * 2**20)  # sparse: 200 MB of NULs without a newline
        fh.seek(0, os.SEEK_END)
        fh.write(b"tail of the long line\nlast line\n")
    real_pread, read = os.pread, []

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        read.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    lines = tail_lines(str(log), 5, cap=2**20)
    assert lines[-1] == "last line" and lines[0].endswith("tail of the long line")
    assert sum(read) <= 2**20


def test_disk_cleanup_only_touches_configured_paths(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "ckpt").mkdir(parents=True)
    for n in range(4):
        step = run_dir / "ckpt" / f"checkpoint-{n}"
        step.mkdir()
        os.utime(step, (n, n))
    (run_dir / "tmp.bin").write_bytes(b"x")
    (run_dir / "keep.bin").write_bytes(b"x")
    cfg = parse_config(
        {
            **BASE,
            "run_dir": str(run_dir),
            "pip": {"command": ["true"]},
            "cleanup": {
                "paths": ["tmp.*"],
                "checkpoint_glob": "ckpt/checkpoint-*",
                "keep_checkpoints": 2,
            },
        }
    )
    plan = plan_fix(
        classify(1, ["[Errno 28] No space left on device"]), cfg, set(), {}, False, False
    )
    assert plan is not None
    assert apply_fix(plan, dict(os.environ), str(run_dir), lambda _m: None)
    assert sorted(p.name for p in (run_dir / "ckpt").iterdir()) == ["checkpoint-2", "checkpoint-3"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["ckpt", "keep.bin"]


def test_every_supervisor_file_parses_as_python_3_9() -> None:
    for path in SUPERVISOR.glob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_the_supervisor_imports_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"pynvml"}
    for path in SUPERVISOR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
