"""The command line as a user meets it (core/cli_args.py): `--config` before or after the verb,
SLEEPWATCH_CONFIG, the XDG default path, `--version`, and help written for users. Pure: no
engine is opened."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import core
from core.cli_args import CONFIG_ENV, build_parser, choose_config, parse_args, version

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "--config", "x.toml"],
        ["--config", "x.toml", "runs"],
        ["--config", "other.toml", "runs", "--config", "x.toml"],  # the last one said wins
        ["mute", "llama", "90", "--config", "x.toml"],
    ],
)
def test_config_is_accepted_before_and_after_the_verb(argv: list[str]) -> None:
    args = parse_args(argv, environ={CONFIG_ENV: "from-env.toml"})
    assert args.config == Path("x.toml") and args.config_why == "--config"


def test_the_environment_names_the_config_when_no_flag_does() -> None:
    args = parse_args(["runs"], environ={CONFIG_ENV: "/etc/sw.toml"})
    assert args.config == Path("/etc/sw.toml") and args.verbose is False


def test_the_config_in_this_folder_comes_first_then_the_xdg_path(tmp_path: Path) -> None:
    home, cwd, xdg = tmp_path / "home", tmp_path / "work", tmp_path / "xdg"
    cwd.mkdir()
    no_xdg = choose_config(None, {}, cwd, home)
    assert no_xdg.path == home / ".config" / "sleepwatch" / "sleepwatch.toml"
    with_xdg = choose_config(None, {"XDG_CONFIG_HOME": str(xdg)}, cwd, home)
    assert with_xdg.path == xdg / "sleepwatch" / "sleepwatch.toml"
    relative = choose_config(None, {"XDG_CONFIG_HOME": "rel"}, cwd, home)  # invalid: ignored
    assert relative.path == no_xdg.path
    (cwd / "sleepwatch.toml").write_text("")
    here = choose_config(None, {"XDG_CONFIG_HOME": str(xdg)}, cwd, home)
    assert here.path == Path("sleepwatch.toml") and "current folder" in here.why


def test_version_is_the_distributions_and_the_package_agrees_with_pyproject(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert core.__version__ == pyproject["project"]["version"] == version()
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--version"], environ={})
    assert exit_.value.code == 0 and capsys.readouterr().out == f"sleepwatch {version()}\n"


def test_help_is_written_for_users_and_says_which_config_file_is_used() -> None:
    choice = choose_config(None, {}, Path("/nonexistent/work"), Path("/nonexistent/home"))
    text = build_parser(choice).format_help()
    assert "composition root" not in text and "`sleepwatch init`" in text
    assert f"Config file: {choice.path} (the default)" in " ".join(text.split())
    for verb in ("init", "status", "mute", "keep", "collect", "extend", "runs"):
        assert f"    {verb} " in text, verb
