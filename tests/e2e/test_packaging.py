"""The newcomer's path, checked without Docker or systemd: the Dockerfile, the unit file, the
example config, the README, the `sleepwatch` entry point, and a wheel built from the Docker
build context that runs the demo from outside the source tree."""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.commands import COMMANDS
from core.cli_args import build_parser
from core.config import Secrets, load_config, parse_config
from core.launch import run_json
from core.migrate import MIGRATIONS_DIR
from supervisor.config import parse_config as parse_run_json

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UNIT = ROOT / "deploy" / "sleepwatch.service"
EXAMPLE = ROOT / "sleepwatch.example.toml"
README = ROOT / "README.md"
STATUS_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [a-z_]+ (\d+/\d+|-) (\d+/\d+|\d+|-) (\d+%|-) "
    r"(\d+\.\d/\d+\.\dG|-) ([a-z_]+|-) [A-Za-z0-9][A-Za-z0-9._-]*$"
)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore's matching for our file: a pattern matches the path or one of
    its leading folders; `**/` matches any depth."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# --- Dockerfile -------------------------------------------------------------------------


def test_the_image_is_slim_python_311_and_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    bases = [args for kw, args in instructions if kw == "FROM"]
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", bases[0])
    users = [args for kw, args in instructions if kw == "USER"]
    assert users, "no USER: the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_the_image_installs_the_package_and_keeps_the_store_on_a_volume() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert re.search(r"pip install (\S+ )*\.( |$)", runs)
    volumes = [args for kw, args in instructions if kw == "VOLUME"]
    assert volumes and "/data" in exec_form(volumes[0])


def test_the_image_serves_and_its_healthcheck_runs_sleepwatch_health() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    (entrypoint,) = (exec_form(args) for kw, args in instructions if kw == "ENTRYPOINT")
    (cmd,) = (exec_form(args) for kw, args in instructions if kw == "CMD")
    assert entrypoint[:2] == ["sleepwatch", "--config"]
    assert cmd == ["serve"]
    (health,) = (args for kw, args in instructions if kw == "HEALTHCHECK")
    assert health.split("CMD", 1)[1].strip() and "--interval=" in health
    probe = exec_form(health.split("CMD", 1)[1].strip())
    assert probe == [*entrypoint, "health"]  # the same config as the service it checks


def test_the_build_context_has_the_package_and_never_a_real_config() -> None:
    patterns = dockerignore_patterns()
    for needed in (
        "pyproject.toml",
        "README.md",
        "core/cli.py",
        "bot/app.py",
        "supervisor/probe.py",
    ):
        assert not dockerignored(needed, patterns), needed
    for migration in MIGRATIONS_DIR.glob("*.sql"):
        assert not dockerignored(migration.relative_to(ROOT).as_posix(), patterns)
    for secret in ("sleepwatch.toml", ".env", "state/sleepwatch.sqlite3", ".git/config"):
        assert dockerignored(secret, patterns), secret


# --- entry point and health ---------------------------------------------------------------


def test_the_sleepwatch_script_resolves_to_a_callable() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"]["sleepwatch"]
    module_name, _, attribute = target.partition(":")
    assert module_name == "bot.start"  # checks the packages are ours, then runs bot.app
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_every_command_the_packaging_uses_exists_in_the_cli() -> None:
    parser = build_parser()
    for argv in (["serve"], ["health"], ["demo", "--scenario", "healthy"], ["launch", "r"]):
        assert parser.parse_args(["--config", "/config/sleepwatch.toml", *argv]).command == argv[0]


def sleepwatch_argv() -> list[str]:
    script = Path(sys.executable).with_name("sleepwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.app"]


def health_exit(config: Path, cwd: Path) -> int:
    result = subprocess.run(
        [*sleepwatch_argv(), "--config", str(config), "health"],
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.returncode


def test_health_passes_only_while_the_heartbeat_is_fresh(tmp_path: Path) -> None:
    state = tmp_path / "data"
    state.mkdir()
    config = tmp_path / "sleepwatch.toml"
    config.write_text(f'[watcher]\nstate_dir = "{state}"\n')
    assert health_exit(config, tmp_path) == 1  # no heartbeat yet
    beat = state / "service.heartbeat"
    now = datetime.now(UTC)
    beat.write_text(now.isoformat())
    assert health_exit(config, tmp_path) == 0
    beat.write_text((now - timedelta(minutes=10)).isoformat())
    assert health_exit(config, tmp_path) == 1


# --- example config ------------------------------------------------------------------------


def test_the_example_config_parses_and_shows_every_section() -> None:
    config = load_config(EXAMPLE)
    doc = tomllib.loads(EXAMPLE.read_text())
    assert set(doc) == {"watcher", "telegram", "vast", "ssh", "cadence", "thresholds", "runs"}
    run = config.runs[0]
    assert run.instance_id and run.key and run.max_hours and run.gate and run.knobs
    assert run.destroy_on_done and run.destroy_on_fail
    supervisor = parse_run_json(run_json(run))  # the supervisor accepts what launch sends
    assert supervisor.deadman.enabled
    assert supervisor.deadman.ack_timeout_s == 900
    assert supervisor.deadman.watcher_silence_s == 21600


def walk_keys(value: object, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in [prefix + key, *walk_keys(v, key + ".")]]
    if isinstance(value, list):
        return [k for item in value for k in walk_keys(item, prefix)]
    return []


def test_the_example_config_holds_no_secrets_and_no_real_addresses() -> None:
    text = EXAMPLE.read_text()
    keys = walk_keys(tomllib.loads(text))
    assert not [k for k in keys if re.search(r"token|secret|password|api_key|apikey", k, re.I)]
    assert not re.search(r"\d{8,10}:[A-Za-z0-9_-]{30,}", text)  # a Telegram bot token
    assert not re.search(r"[0-9a-f]{40,}", text)  # a hex API key
    for address in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text):
        assert address.startswith(("203.0.113.", "192.0.2.", "198.51.100.")), address
    for alias in ("SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY", "SLEEPWATCH_PING_URL"):
        assert all(alias not in line.split("#")[0] for line in text.splitlines())
    assert set(Secrets.model_fields) == {"telegram_token", "vast_api_key", "ping_url"}


# --- systemd unit --------------------------------------------------------------------------


def test_the_unit_serves_as_a_plain_user_with_secrets_as_credentials() -> None:
    sections = unit_sections(UNIT.read_text())
    service = sections["Service"]
    (exec_start,) = service["ExecStart"]
    argv = exec_start.split()
    assert Path(argv[0]).name == "sleepwatch" and argv[-1] == "serve"
    assert "--config" in argv
    assert service["User"] != ["root"] and service["User"]
    # each secret is a credential named like the variable core.config.Secrets reads
    loaded = {entry.split(":", 1)[0] for entry in service["LoadCredential"]}
    assert {"SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY", "SLEEPWATCH_PING_URL"} <= loaded
    assert "EnvironmentFile" not in service
    assert service["Restart"] == ["always"]
    assert sections["Install"]["WantedBy"]


def test_the_unit_is_watched_by_systemd_and_hardened() -> None:
    service = unit_sections(UNIT.read_text())["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    # [watcher] heartbeat is at most 60 s: the watchdog leaves room for two missed beats
    assert int(service["WatchdogSec"][0]) >= 3 * 60
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    assert "@system-service" in service["SystemCallFilter"]
    assert set(service["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_rates_the_unit_exposure_under_two() -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match is not None, out.stdout[-500:] + out.stderr[-500:]
    assert float(match.group(1)) < 2.0, out.stdout


# --- README --------------------------------------------------------------------------------


def test_the_readme_leads_with_the_two_commands_and_lists_every_command() -> None:
    text = README.read_text()
    first_block = text.split("```", 2)[1]
    assert "make demo" in first_block and "make test" in first_block
    for usage, _ in COMMANDS.values():
        assert usage in text, usage
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in subparsers.choices:
        assert f"`{name}" in text, name
    for needed in ("make lint", "make bench", "## Benchmarks", "## What it survives"):
        assert needed in text, needed
    for alias in ("SLEEPWATCH_TELEGRAM_TOKEN", "VAST_API_KEY"):
        assert alias in text


def test_the_readme_config_snippet_parses() -> None:
    snippet = README.read_text().split("```toml", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(snippet), source="README.md")
    assert config.runs[0].instance_id and config.telegram.chat_ids


def test_the_readme_status_lines_keep_to_the_contract() -> None:
    text = README.read_text()
    lines = [line for line in text.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert len(lines) >= 3
    for line in lines:
        assert STATUS_LINE.match(line), line
    contract = "2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft"
    assert contract in text.split("## The status line", 1)[1]


# --- the wheel that `pip install .` builds ---------------------------------------------------


def copy_build_context(destination: Path) -> Path:
    patterns = dockerignore_patterns()
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_dir() or dockerignored(relative, patterns) or ".venv" in path.parts:
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return destination


@pytest.mark.slow
def test_a_wheel_of_the_build_context_runs_the_demo_outside_the_tree(tmp_path: Path) -> None:
    source = copy_build_context(tmp_path / "context")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = wheels.glob("sleepwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("supervisor/__main__.py", "core/demo_assets/trainer.py", "bot/app.py"):
        assert needed in names, needed
    shipped_sql = {Path(n).name for n in names if n.endswith(".sql")}
    assert {p.name for p in MIGRATIONS_DIR.glob("*.sql")} <= shipped_sql
    info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
    assert f"{info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.11" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "sleepwatch = bot.start:main" in entry_points
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import sys, core; "
        f"assert core.__file__.startswith({str(site)!r}), core.__file__; "
        "from bot.start import main; sys.exit(main(['demo', '--scenario', 'healthy']))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo-healthy: done" in result.stdout
