"""`sleepwatch.toml`: strict keys, one clear message naming the key, secrets only from the env."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.config import ENV_FILE_NAME, Config, Secrets, load_config, parse_config
from core.errors import ConfigError
from core.run_settings import policy_for

ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = """
[watcher]
state_dir = "~/.local/share/sleepwatch"
python = "python3"

[cadence]
early = ["1m", "2m", "4m", "8m"]
cruise = "30m"
alert = "3m"

[thresholds]
stall_after = "10m"
gpu_low_pct = 10
resend_after = "4h"
unreachable_checks = 3

[ssh]
connect_timeout = 15
keepalive = "30s"

[telegram]
chat_ids = [123456789]
summary_time = "08:00"
timezone = "Europe/Berlin"

[[runs]]
name = "llama-ft"
instance_id = "12345678"
host = "ssh4.vast.ai"
port = 41022
key = "~/.ssh/id_ed25519"
run_dir = "/workspace/runs/llama-ft"
command = "python train.py --eval-batch-size {eval_batch_size}"
max_attempts = 3
fixes = ["missing_module", "oom"]
max_hours = 12
destroy_on_done = true
destroy_on_fail = true
knobs = { eval_batch_size = { value = 64, min = 4, factor = 0.5 } }

[runs.thresholds]
stall_after = "30m"

[[runs]]
name = "demo"
local = true
run_dir = "/tmp/sleepwatch-demo"
command = "python -m trainer"
"""


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE)


def error_of(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    return str(caught.value)


def shipped_examples() -> list[Path]:
    return sorted(p for p in ROOT.glob("*.toml*") if "example" in p.name) + sorted(
        (ROOT / "examples").glob("*.toml")
    )


def test_a_good_config_parses_with_durations_in_words() -> None:
    config = parse_config(example())
    assert config.cadence.cruise == 1800
    assert config.cadence.early == [60, 120, 240, 480]
    run = config.run("llama-ft")
    assert run.port == 41022 and run.max_hours == 12
    assert run.knobs["eval_batch_size"].min == 4
    policy = policy_for(config, run)
    assert policy.thresholds.stall_after_s == 1800  # the run's own thresholds win
    assert policy_for(config, config.run("demo")).thresholds.stall_after_s == 600
    assert policy_for(config, config.run("demo")).thresholds.unreachable_checks == 3
    assert policy.cadence.cruise_s == 1800


def test_defaults_tear_down_on_done_and_on_fail() -> None:
    run = parse_config(example()).run("demo")
    assert run.destroy_on_done and run.destroy_on_fail


@pytest.mark.parametrize("path", shipped_examples(), ids=lambda p: p.name)
def test_the_example_config_shipped_in_the_repo_parses(path: Path) -> None:
    assert load_config(path).runs


def test_an_empty_file_is_a_valid_config_with_no_runs() -> None:
    assert parse_config({}).runs == []


def test_a_missing_key_is_named() -> None:
    doc = example()
    del doc["runs"][0]["run_dir"]
    assert "sleepwatch.toml: runs[0].run_dir: Field required" in error_of(doc)


def test_a_wrong_type_is_named() -> None:
    doc = example()
    doc["runs"][1]["max_attempts"] = "three"
    assert "runs[1].max_attempts" in error_of(doc)
    doc = example()
    doc["cadence"]["scale"] = 0
    assert "cadence.scale" in error_of(doc)


def test_a_bad_duration_is_named() -> None:
    doc = example()
    doc["thresholds"]["stall_after"] = "soon"
    message = error_of(doc)
    assert "thresholds.stall_after" in message and "90m" in message


def test_a_quoted_bare_number_is_refused_as_ambiguous_and_a_bare_one_is_seconds() -> None:
    # chat and the CLI read "90" as minutes; a TOML number is the key's seconds: neither
    # reading of a quoted "600" may be a silent guess
    doc = example()
    doc["thresholds"]["stall_after"] = "600"
    message = error_of(doc)
    assert "thresholds.stall_after" in message and "has no unit" in message
    doc["thresholds"]["stall_after"] = 600
    assert parse_config(doc).thresholds.stall_after == 600


@pytest.mark.parametrize(
    ("section", "key", "where"),
    [
        ("watcher", "colour", "watcher.colour"),
        ("thresholds", "stall_afer", "thresholds.stall_afer"),  # a typo is not silently ignored
        (None, "verbose", "verbose"),
    ],
)
def test_unknown_keys_are_refused_by_name(section: str | None, key: str, where: str) -> None:
    doc = example()
    (doc[section] if section else doc)[key] = 1
    message = error_of(doc)
    assert where in message
    assert "Extra inputs are not permitted" in message


def test_a_key_in_the_wrong_place_is_refused() -> None:
    doc = example()
    doc["runs"][0]["chat_ids"] = [1]
    assert "runs[0].chat_ids" in error_of(doc)


@pytest.mark.parametrize(
    ("section", "key"),
    [("telegram", "token"), (None, "telegram_token"), ("vast", "api_key"), (None, "vast_api_key")],
)
def test_a_secret_in_the_file_is_refused_and_not_echoed(section: str | None, key: str) -> None:
    doc = example()
    doc.setdefault(section, {}) if section else None
    (doc[section] if section else doc)[key] = "123456:SECRET-token-value"
    message = error_of(doc)
    assert key in message
    assert "SECRET" not in message


def test_a_bad_timezone_is_named() -> None:
    doc = example()
    doc["telegram"]["timezone"] = "Mars/Olympus"
    message = error_of(doc)
    assert "telegram.timezone" in message and "unknown time zone 'Mars/Olympus'" in message


def test_a_bad_summary_time_is_named() -> None:
    doc = example()
    doc["telegram"]["summary_time"] = "25:00"
    assert "telegram.summary_time" in error_of(doc)


def test_duplicate_run_names_are_refused() -> None:
    doc = example()
    doc["runs"][1]["name"] = "llama-ft"
    assert "duplicate run names: llama-ft" in error_of(doc)


def test_a_run_needs_a_place_to_run() -> None:
    doc = example()
    del doc["runs"][1]["local"]
    assert "runs[1]" in error_of(doc) and "local = true" in error_of(doc)


def test_a_run_name_that_could_break_the_status_line_is_refused() -> None:
    doc = example()
    doc["runs"][1]["name"] = "my run"
    assert "runs[1].name" in error_of(doc)


def test_an_unknown_fix_is_refused() -> None:
    doc = example()
    doc["runs"][0]["fixes"] = ["rm_rf"]
    assert "runs[0].fixes[0]" in error_of(doc)


def test_at_most_five_errors_are_listed() -> None:
    doc = example()
    for index in range(10):
        doc["watcher"][f"junk{index}"] = 1
    assert len(error_of(doc).splitlines()) == 5


def test_an_unknown_run_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no \\[\\[runs\\]\\] entry named 'nope'"):
        parse_config(example()).run("nope")


# -- load_config --------------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sleepwatch.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert [r.name for r in load_config(path).runs] == ["llama-ft", "demo"]


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[watcher]\ncolour = "red"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mine\.toml: watcher\.colour"):
        load_config(path)


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[runs\nname = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_a_binary_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="binary.toml"):
        load_config(path)


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_and_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPWATCH_TELEGRAM_TOKEN", "123456:SECRET-telegram")
    monkeypatch.setenv("VAST_API_KEY", "SECRET-vast")
    secrets = Secrets()
    assert secrets.telegram_token is not None and secrets.vast_api_key is not None
    assert secrets.telegram_token.get_secret_value() == "123456:SECRET-telegram"
    assert secrets.vast_api_key.get_secret_value() == "SECRET-vast"
    for shown in (repr(secrets), str(secrets), secrets.model_dump_json()):
        assert "SECRET" not in shown


def test_no_secrets_set_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLEEPWATCH_TELEGRAM_TOKEN", raising=False)
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    secrets = Secrets()
    assert secrets.telegram_token is None and secrets.vast_api_key is None


def test_secrets_come_from_systemd_credentials_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY", "SLEEPWATCH_PING_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "SLEEPWATCH_TELEGRAM_TOKEN").write_text("123456:SECRET-file\n")
    (tmp_path / "SLEEPWATCH_PING_URL").write_text("https://hc-ping.com/SECRET-uuid")
    secrets = Secrets.load({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert secrets.telegram_token is not None and secrets.ping_url is not None
    assert secrets.telegram_token.get_secret_value() == "123456:SECRET-file"
    assert secrets.ping_url.get_secret_value() == "https://hc-ping.com/SECRET-uuid"
    assert secrets.vast_api_key is None
    assert "SECRET" not in repr(secrets)
    monkeypatch.setenv("SLEEPWATCH_TELEGRAM_TOKEN", "123456:SECRET-env")
    secrets = Secrets.load({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert secrets.telegram_token is not None
    assert secrets.telegram_token.get_secret_value() == "123456:SECRET-env"
    # no such folder (not under systemd): the environment alone, no warning
    assert Secrets.load({"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}).ping_url is None


def test_secrets_come_from_the_env_file_beside_the_config_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY", "SLEEPWATCH_PING_URL"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ENV_FILE_NAME
    token = "SLEEPWATCH_TELEGRAM_TOKEN=123456:SECRET-file\n"
    env_file.write_text("# written by sleepwatch init\n" + token + "VAST_API_KEY=SECRET-vast\n")
    env_file.chmod(0o600)
    secrets = Secrets.load({}, env_file)
    assert secrets.telegram_token is not None and secrets.vast_api_key is not None
    assert secrets.telegram_token.get_secret_value() == "123456:SECRET-file"
    assert secrets.vast_api_key.get_secret_value() == "SECRET-vast"
    monkeypatch.setenv("SLEEPWATCH_TELEGRAM_TOKEN", "123456:SECRET-env")
    secrets = Secrets.load({}, env_file)
    assert secrets.telegram_token is not None
    assert secrets.telegram_token.get_secret_value() == "123456:SECRET-env"
    assert Secrets.load({}, tmp_path / "none.env").vast_api_key is None  # no file: no error


def test_an_env_file_others_can_read_is_refused_without_its_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SLEEPWATCH_TELEGRAM_TOKEN", raising=False)
    env_file = tmp_path / ENV_FILE_NAME
    env_file.write_text("SLEEPWATCH_TELEGRAM_TOKEN=123456:SECRET-file\n")
    env_file.chmod(0o644)
    with pytest.raises(ConfigError, match="others can read: chmod 600") as caught:
        Secrets.load({}, env_file)
    assert "SECRET" not in str(caught.value)


def test_a_ping_url_that_is_not_http_is_refused_by_name_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLEEPWATCH_PING_URL", "ftp://SECRET-uuid")
    with pytest.raises(ConfigError, match="SLEEPWATCH_PING_URL must be an http") as caught:
        Secrets.load({})
    assert "SECRET" not in str(caught.value)


def test_the_config_model_has_no_secret_fields() -> None:
    assert "token" not in str(Config.model_json_schema()).lower()
