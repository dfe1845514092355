"""Pure checks on an untrusted manifest: only paths the user's `collect.paths` named, in plain
form, landing under the outputs folder; and the words of the outputs line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.outputs import (
    ManifestAnswer,
    checked_files,
    files_phrase,
    local_path,
    refused_path,
    short_dest,
    short_of_space,
)

PATTERNS = ["ckpt/final", "*.json", "/workspace/out/*.pt"]
SHA = "a" * 64


@pytest.mark.parametrize(
    "path",
    ["ckpt/final/model.bin", "ckpt/final", "metrics.json", "/workspace/out/last.pt"],
)
def test_paths_at_or_under_a_named_pattern_are_taken(path: str) -> None:
    assert refused_path(path, PATTERNS) is None


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "ckpt/final/../../x",
        "/etc/passwd",  # absolute, but no absolute pattern names it
        "sub/metrics.json",  # `*` does not cross a `/`
        "ckpt/other/model.bin",
        "./metrics.json",
        "ckpt//final/x",
        "/workspace/out/sub/x.pt.d",
        "metrics.json\x00",
    ],
)
def test_anything_else_is_refused(path: str) -> None:
    assert refused_path(path, PATTERNS) is not None


def test_local_paths_stay_under_dest_and_clashing_entries_are_refused(tmp_path: Path) -> None:
    assert local_path(tmp_path, "ckpt/final/m.bin") == tmp_path / "ckpt/final/m.bin"
    assert local_path(tmp_path, "/workspace/out/a.pt") == tmp_path / "abs/workspace/out/a.pt"
    answer = ManifestAnswer(
        ok=True,
        files=[
            {"path": "ckpt/final", "size": 1, "sha256": SHA},
            {"path": "ckpt/final/m.bin", "size": 1, "sha256": SHA},
            {"path": "../x.json", "size": 1, "sha256": SHA},
        ],
    )
    files, refused = checked_files(answer, PATTERNS)
    assert [f.path for f in files] == ["ckpt/final"]
    assert refused == ["ckpt/final/m.bin: clashes with another file", "../x.json: not a plain path"]


def test_the_outputs_line_reads_like_a_person_wrote_it() -> None:
    assert files_phrase(3, 14_200_000_000) == "3 files, 14.2 GB"
    assert files_phrase(1, 512) == "1 file, 512 B"
    assert short_dest(Path("/home/me/.local/share/sleepwatch/outputs/llama-ft")) == (
        "…/outputs/llama-ft"
    )


def test_a_pull_that_cannot_fit_is_refused_before_a_byte_with_what_to_do() -> None:
    dest = Path("/data/outputs/llama-ft")
    assert short_of_space(14_200_000_000, 20_000_000_000, dest) is None
    said = short_of_space(14_200_000_000, 3_100_000_000, dest)
    assert said is not None
    assert said.startswith("14.2 GB still to pull but 3.1 GB free at /data/outputs/llama-ft")
    assert short_of_space(50_000_000, 120_000_000, dest) is not None  # the margin: 100 MB kept


@pytest.mark.parametrize(
    "files",
    [
        [{"path": "a", "size": 1, "sha256": "not-a-hash"}],
        [{"path": "a", "size": -1, "sha256": SHA}],
        [{"path": "a", "size": 10**20, "sha256": SHA}],
        [{"path": "x" * 600, "size": 1, "sha256": SHA}],
        [{"path": f"f{i}", "size": 1, "sha256": SHA} for i in range(2001)],
    ],
    ids=["bad-hash", "negative", "huge", "long-path", "too-many"],
)
def test_a_manifest_out_of_bounds_is_refused_whole(files: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        ManifestAnswer.model_validate({"ok": True, "files": files})
