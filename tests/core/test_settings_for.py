"""A run's settings resolved in one place (core.run_settings.settings_for). Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import Config, RunConfig, parse_config
from core.run_settings import resolve_run, settings_for

FILE: dict[str, Any] = {
    "watcher": {"python": "python3.11", "remote_root": "/opt/sw", "state_dir": "/var/sw"},
    "cadence": {"cruise": "20m"},
    "thresholds": {"stall_after": "30m", "unreachable_checks": 4},
    "runs": [
        {
            "name": "known",
            "host": "10.0.0.1",
            "run_dir": "/r",
            "command": "python t.py",
            "key": "~/.ssh/id_run",
            "destroy_on_done": False,
            "deadline_grace": "5m",
            "heartbeat_s": 60,
            "max_sessions": 3,
            "max_cost": 40.0,
            "kept_reminder": "1h",
        },
        {"name": "here", "local": True, "run_dir": "/r", "command": "python t.py"},
    ],
}


def config() -> Config:
    return parse_config(FILE)


def test_a_known_run_is_watched_with_its_entry_over_the_files_defaults() -> None:
    known = settings_for(config(), "known")
    assert known.known and not known.local
    assert known.key == Path("~/.ssh/id_run").expanduser()
    assert (known.python, known.remote_root) == ("python3.11", "/opt/sw")
    assert (known.destroy_on_done, known.destroy_on_fail) == (False, True)
    assert known.destroy_when_uncollected is False
    assert known.deadline_grace_s == 300
    assert (known.max_sessions, known.max_cost, known.kept_reminder_s) == (3, 40.0, 3600)
    assert known.policy.thresholds.stall_after_s == 1800
    assert known.policy.thresholds.heartbeat_stale_s == 240  # 4 missed beats of 60 s
    assert known.policy.cadence.cruise_s == 1200


def test_a_local_run_keeps_its_supervisor_under_the_state_dir() -> None:
    here = settings_for(config(), "here")
    assert here.local and here.remote_root == "/var/sw/supervisor-code"


def test_an_unknown_run_gets_the_files_defaults_not_a_second_copy_of_them() -> None:
    # It used to get the pure Policy() defaults: the file's [cadence] and [thresholds] were
    # ignored, and unreachable_after was 0 (one blip past the check count alerted) instead
    # of the 10 minutes every known run gets.
    cfg = config()
    unknown = settings_for(cfg, "gone-from-the-file")
    bare = settings_for(
        Config(runs=[RunConfig(name="bare", host="h", run_dir="/r", command="c")]), "bare"
    )
    assert not unknown.known
    assert unknown.policy.thresholds.stall_after_s == 1800
    assert unknown.policy.thresholds.unreachable_checks == 4
    assert unknown.policy.thresholds.unreachable_after_s == 600
    assert unknown.policy.cadence.cruise_s == 1200
    assert (unknown.python, unknown.remote_root) == ("python3.11", "/opt/sw")
    assert unknown.key is None and not unknown.local and unknown.max_sessions is None
    assert unknown.max_cost is None and unknown.kept_reminder_s == bare.kept_reminder_s
    assert (unknown.destroy_on_done, unknown.destroy_on_fail) == (
        bare.destroy_on_done,
        bare.destroy_on_fail,
    )
    assert unknown.deadline_grace_s == bare.deadline_grace_s == 900
    assert unknown.destroy_when_uncollected is bare.destroy_when_uncollected is False


def test_the_settings_stored_at_launch_resolve_to_what_the_run_is_watched_with() -> None:
    cfg = config()
    stored = resolve_run(cfg, cfg.run("known"))
    assert stored.cadence == cfg.cadence and stored.thresholds == cfg.thresholds
    assert stored.python == "python3.11" and stored.remote_root == "/opt/sw"
    assert stored.key is not None and stored.key.is_absolute()
    elsewhere = parse_config({"runs": [stored.model_dump(mode="json")]})
    assert settings_for(elsewhere, "known").policy == settings_for(cfg, "known").policy
