"""`supervisor manifest`: the files `collect.paths` name, with size and SHA-256, bounded and kept
inside what was named (symlinks skipped, no escape through a symlinked folder, no `..`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import ANSWER_MARK, manifest
from supervisor.manifest import build_manifest


def tree(root: Path) -> Path:
    run = root / "run"
    (run / "ckpt" / "sub").mkdir(parents=True)
    (run / "ckpt" / "model.bin").write_bytes(b"w" * 3000)
    (run / "ckpt" / "sub" / "opt.bin").write_bytes(b"o" * 10)
    (run / "metrics.json").write_text("{}")
    (run / "state.json").write_text("{}")  # the supervisor's own: never an output
    (run / "metric_history.json").write_text("[]")  # its own too, unless named exactly
    (root / "secret").write_text("not yours")
    (run / "ckpt" / "link").symlink_to(root / "secret")
    (run / "escape").symlink_to(root)
    return run


def test_it_lists_named_files_with_size_and_sha256_and_skips_symlinks(tmp_path: Path) -> None:
    run = tree(tmp_path)
    doc = build_manifest(str(run), ["ckpt", "*.json", "escape/secret", "nothing/*"])
    assert doc["ok"] is True
    files = {f["path"]: (f["size"], f["sha256"]) for f in doc["files"]}
    assert files == {
        "ckpt/model.bin": (3000, hashlib.sha256(b"w" * 3000).hexdigest()),
        "ckpt/sub/opt.bin": (10, hashlib.sha256(b"o" * 10).hexdigest()),
        "metrics.json": (2, hashlib.sha256(b"{}").hexdigest()),
    }
    skipped = {s["path"]: s["why"] for s in doc["skipped"]}
    assert skipped == {"ckpt/link": "symlink", "escape/secret": "outside its base folder"}
    assert doc["missing"] == ["escape/secret", "nothing/*"]


def test_the_metric_history_is_an_output_only_when_named_exactly(tmp_path: Path) -> None:
    run = tree(tmp_path)
    doc = build_manifest(str(run), ["attempts", "metric_history.json", "state.json"])
    assert [f["path"] for f in doc["files"]] == ["metric_history.json"]
    assert doc["missing"] == ["attempts", "state.json"]


def test_it_refuses_dotdot_and_bounds_the_count(tmp_path: Path) -> None:
    run = tree(tmp_path)
    assert build_manifest(str(run), ["../secret"])["ok"] is False
    assert build_manifest(str(run), [])["ok"] is False
    doc = build_manifest(str(run), ["ckpt"], max_files=1)
    assert len(doc["files"]) == 1 and doc["truncated"] is True


def test_a_folder_of_countless_entries_stops_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tree(tmp_path)
    monkeypatch.setattr(manifest, "MAX_VISITS", 2)
    doc = build_manifest(str(run), ["ckpt"])
    assert doc["truncated"] is True and len(doc["files"]) <= 2


def test_a_changed_file_is_hashed_again_despite_the_cache(tmp_path: Path) -> None:
    run = tree(tmp_path)
    build_manifest(str(run), ["metrics.json"])
    (run / "metrics.json").write_text('{"loss": 1}')
    [entry] = build_manifest(str(run), ["metrics.json"])["files"]
    assert entry["sha256"] == hashlib.sha256(b'{"loss": 1}').hexdigest()


def test_the_cli_answers_framed(tmp_path: Path) -> None:
    run = tree(tmp_path)
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "supervisor", "--framed", "manifest", "--run-dir", str(run)]
    out = subprocess.run(  # noqa: S603
        [*argv, "--path", "metrics.json"], capture_output=True, cwd=root, check=True, timeout=30
    ).stdout.decode()
    mark, answer = out.strip().splitlines()
    assert mark == ANSWER_MARK
    assert [f["path"] for f in json.loads(answer)["files"]] == ["metrics.json"]
