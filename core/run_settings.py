"""A run's effective settings, resolved in ONE place: `settings_for(config, name)`.

Who calls it: the watcher (its CheckPolicy: the rules' policy, the deadline's grace, the fail
policy for a lost instance, max_cost), the exit handler (destroy_on_done, destroy_on_fail,
destroy_when_uncollected), WatcherControl (max_cost for /runs and /extend), the service's
kept-instance reminders, the engine's `transport_for` (local or SSH, which key, the host's
MaxSessions), the supervisor client and the wait channel (the instance's Python and where the
supervisor package lives). `resolve_run` is what launch stores with a run and what
core/settings.py compares when the file is re-read.

Where it sits: `Config.runs` holds each run's entry as it is watched (core/settings.py puts the
settings stored at launch there); this module fills in the file's defaults. A run known to
neither is watched with the file's own defaults ([cadence], [thresholds], [watcher] python and
remote_root) and RunConfig's field defaults, never with a second copy of them, and
core/settings.py alerts about it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig
from core.rules import Policy

_FIELDS = RunConfig.model_fields
DEFAULT_HEARTBEAT_S: float = _FIELDS["heartbeat_s"].default


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What the watcher needs of one run's settings, defaults filled in."""

    name: str
    known: bool  # an entry (the file's, or the one stored at launch) exists for it
    policy: Policy
    local: bool  # supervised on this machine: no SSH, no cloud
    key: Path | None  # the SSH key (None: the agent's or the default keys)
    max_sessions: int | None  # the host's MaxSessions (None: [ssh]'s)
    python: str  # the instance's Python that runs the supervisor
    remote_root: str  # where the supervisor package was uploaded
    destroy_on_done: bool
    destroy_on_fail: bool
    destroy_when_uncollected: bool  # destroy even when outputs were not all collected
    deadline_grace_s: float
    max_cost: float | None  # USD, before what /extend added; None: no cap
    kept_reminder_s: float  # an instance left billing after the end is reminded this often


def settings_for(config: Config, name: str) -> RunSettings:
    """The settings `name` is watched with. Never raises: an unknown run gets the defaults."""
    run = config.find_run(name)
    if run is None:
        return RunSettings(
            name=name,
            known=False,
            policy=_policy(config.cadence, config.thresholds, DEFAULT_HEARTBEAT_S),
            local=_FIELDS["local"].default,
            key=None,
            max_sessions=None,
            python=config.watcher.python,
            remote_root=config.watcher.remote_root,
            destroy_on_done=_FIELDS["destroy_on_done"].default,
            destroy_on_fail=_FIELDS["destroy_on_fail"].default,
            destroy_when_uncollected=_FIELDS["destroy_when_uncollected"].default,
            deadline_grace_s=_FIELDS["deadline_grace"].default,
            max_cost=None,
            kept_reminder_s=_FIELDS["kept_reminder"].default,
        )
    return RunSettings(
        name=name,
        known=True,
        policy=policy_for(config, run),
        local=run.local,
        key=run.key.expanduser() if run.key is not None else None,
        max_sessions=run.max_sessions,
        python=run.python or config.watcher.python,
        remote_root=_remote_root(config, run),
        destroy_on_done=run.destroy_on_done,
        destroy_on_fail=run.destroy_on_fail,
        destroy_when_uncollected=run.destroy_when_uncollected,
        deadline_grace_s=run.deadline_grace,
        max_cost=run.max_cost,
        kept_reminder_s=run.kept_reminder,
    )


def resolve_run(config: Config, run: RunConfig) -> RunConfig:
    """The run with every setting the watcher uses filled in from this file's defaults, as
    stored with the run at launch (a serve started with another file still knows them)."""
    key = run.key.expanduser().resolve() if run.key is not None else None
    return run.model_copy(
        update={
            "cadence": run.cadence or config.cadence,
            "thresholds": run.thresholds or config.thresholds,
            "python": run.python or config.watcher.python,
            "remote_root": _remote_root(config, run),
            "key": key,
        }
    )


def policy_for(config: Config, run: RunConfig) -> Policy:
    return _policy(
        run.cadence or config.cadence, run.thresholds or config.thresholds, run.heartbeat_s
    )


def _policy(cadence: CadenceConfig, thresholds: ThresholdsConfig, heartbeat_s: float) -> Policy:
    scaled = thresholds.thresholds(cadence.scale)
    # a supervisor that beats rarely is not dead after one missed beat
    stale_s = max(scaled.heartbeat_stale_s, 4 * heartbeat_s)
    return Policy(thresholds=replace(scaled, heartbeat_stale_s=stale_s), cadence=cadence.policy())


def _remote_root(config: Config, run: RunConfig) -> str:
    if run.remote_root is not None:
        return run.remote_root
    if run.local:
        return str(config.watcher.resolved_state_dir() / "supervisor-code")
    return config.watcher.remote_root
