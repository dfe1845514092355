"""Bad configs through the real command line (`sleepwatch --config bad.toml runs`, a
subprocess): exit code 2, one clear message that names the key, no traceback, and a secret
put in the file is refused without being echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "7654321:AAHsecretsecretsecretsecret"
GOOD_RUN = (
    '[[runs]]\nname = "llama-ft"\nlocal = true\nrun_dir = "/tmp/r"\ncommand = "python t.py"\n'
)

CASES = [
    ("missing_key", '[[runs]]\nname = "x"\nlocal = true\ncommand = "c"\n', "runs[0].run_dir"),
    ("wrong_type_int", GOOD_RUN + 'max_attempts = "three"\n', "runs[0].max_attempts"),
    ("wrong_type_list", '[telegram]\nchat_ids = "1001"\n', "telegram.chat_ids"),
    ("wrong_type_table", 'watcher = "fast"\n', "watcher"),
    ("bad_duration", '[cadence]\ncruise = "soon"\n', "cadence.cruise"),
    ("unknown_top", "verbose = true\n", "verbose"),
    ("unknown_typo", "[telegram]\nchat_id = [1001]\n", "telegram.chat_id"),
    ("unknown_in_run", GOOD_RUN + "retries = 3\n", "runs[0].retries"),
    ("wrong_place_section", "[watcher]\nchat_ids = [1001]\n", "watcher.chat_ids"),
    ("wrong_place_top", "max_attempts = 3\n", "max_attempts"),
    ("wrong_place_run_key", "[thresholds]\ndestroy_on_done = 1\n", "thresholds.destroy_on_done"),
    ("runs_not_an_array", '[runs]\nname = "x"\n', "runs"),
    ("path_like_name", GOOD_RUN.replace('"llama-ft"', '"../../etc/passwd"'), "runs[0].name"),
    ("secret_in_file", f'[telegram]\ntoken = "{SECRET}"\n', "telegram.token"),
    ("secret_at_top", f'vast_api_key = "{SECRET}"\n', "vast_api_key"),
]  # fmt: skip


def sleepwatch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY")
    }
    env["HOME"] = str(config.parent)  # the default state_dir lands here, if anywhere
    return subprocess.run(
        [sys.executable, "-m", "bot.app", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(("case", "toml", "key"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_is_one_clear_error_naming_the_key(
    tmp_path: Path, case: str, toml: str, key: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)

    done = sleepwatch(config, "runs")

    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"sleepwatch: {config}: {key}: "), lines[0]
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr
    assert not (tmp_path / ".local").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[watcher\nstate_dir = 1\n", "not valid TOML"),
        (b"\xff\xfe[watcher]\n", "not UTF-8"),
        (None, "cannot read"),
    ],
)
def test_an_unreadable_config_is_one_clear_error(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    if content is not None:
        config.write_bytes(content)
    done = sleepwatch(config, "runs")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
