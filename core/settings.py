"""Which settings each run is watched with, so that they are never stale or silently default.

A run's settings are stored with it at launch (runs.settings) and are what `serve` uses, even
when `serve` was started with another config file or none. `serve` re-reads its config file on
SIGHUP and at each rescan: an entry edited since it was last read is applied to the run (and
stored with it, so a restart keeps it) and logged. A run known to neither is an alert.

Held by core.service (SettingsBook): `learn` at start-up and at each rescan of the store,
`reload` on SIGHUP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from core.config import Config, RunConfig, StoredSettings, changed_keys
from core.errors import ConfigError
from core.models import MessageKind, OutboundMessage, RunRecord
from core.ports import Clock
from core.run_settings import RunSettings, resolve_run, settings_for
from core.store import Store
from core.topics import Action, Topic

log = logging.getLogger(__name__)


class SettingsBook:
    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        wake_outbox: Callable[[], None],
        *,
        source: str = "the config file",
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.wake_outbox = wake_outbox
        self.source = source
        self._file = {r.name: resolve_run(config, r) for r in config.runs}
        self._effective: dict[str, RunConfig] = dict(self._file)
        self._learned: set[tuple[str, str]] = set()  # (run, launched_at) already looked at
        self._apply()

    def _apply(self) -> None:
        self.config.set_runs(list(self._effective.values()))

    def knows(self, name: str, launched_at: datetime) -> bool:
        """This launch of the run was learned already."""
        return (name, launched_at.isoformat()) in self._learned

    async def learn(self, records: Iterable[RunRecord]) -> None:
        """Take each run's stored settings (once per launch of it)."""
        learned = False
        for record in records:
            key = (record.name, record.launched_at.isoformat())
            if key in self._learned:
                continue
            self._learned.add(key)
            await self._learn_one(record)
            learned = True
        if learned:
            self._apply()

    async def _learn_one(self, record: RunRecord) -> None:
        name, in_file = record.name, self._file.get(record.name)
        problem = "no settings were stored with it at launch"
        if record.settings is not None:
            try:
                stored = StoredSettings.from_text(record.settings)
            except ConfigError as exc:
                problem = str(exc)
            else:
                if in_file is not None and (keys := changed_keys(in_file, stored)):
                    log.warning(
                        "%s: watched with the settings it was launched with; %s differs in %s "
                        "(edit them there while serve runs to apply a change)",
                        name,
                        self.source,
                        ", ".join(keys),
                    )
                self._effective[name] = stored
                return
        if in_file is not None:
            return  # launched by an older sleepwatch: the file's entry is all there is
        if record.live:
            await self._alert_unknown(record, problem)

    async def _alert_unknown(self, record: RunRecord, problem: str) -> None:
        name = record.name
        log.error(
            "%s: settings unknown (%s) and no [[runs]] entry in %s", name, problem, self.source
        )
        message = OutboundMessage(
            kind=MessageKind.ALERT,
            title=f"⚠ {name}: settings unknown",
            run=name,
            topic=Topic.SETTINGS_UNKNOWN,
            loud=True,
            actions=(Action.STATUS,),
            reasons=(
                f"{problem}, and {self.source} has no [[runs]] entry named {name}",
                f"it is watched with the defaults: {_defaults(settings_for(self.config, name))}",
                f"add its [[runs]] entry to {self.source} and send serve SIGHUP to apply it",
            ),
        )
        dedupe = f"{name}:settings-unknown:{record.launched_at.isoformat()}"
        await self.store.enqueue(message, dedupe_key=dedupe, at=self.clock())
        self.wake_outbox()

    async def reload(self, fresh: Config) -> None:
        """Apply the entries of a re-read config file that changed since it was last read."""
        new_file = {r.name: resolve_run(fresh, r) for r in fresh.runs}
        for name, run in new_file.items():
            before = self._file.get(name)
            if before is not None and not changed_keys(before, run):
                continue  # not edited: the run keeps the settings it has
            current = self._effective.get(name)
            self._effective[name] = run
            if current is None:
                continue
            keys = changed_keys(current, run)
            if not keys:
                continue
            log.warning(
                "%s: settings changed in %s: %s; applied", name, self.source, ", ".join(keys)
            )
            record = await self.store.get_run(name)
            if record is not None and record.live:
                await self.store.set_run_settings(name, StoredSettings.of(run).to_text())
        self._file = new_file
        self._apply()


def _defaults(settings: RunSettings) -> str:
    return (
        "default SSH key and remote root, the file's [cadence] and [thresholds], "
        f"destroy_on_done={str(settings.destroy_on_done).lower()}, "
        f"destroy_on_fail={str(settings.destroy_on_fail).lower()}"
    )
