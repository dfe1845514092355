"""`Watcher.check(run)`: the unit of work, called by core/service.py for each scheduled tick
or wait-channel wake of a run (and by `sleepwatch check`). observe (one probe, read through
core/supervisor_client.py, and the provider's word when SSH failed) → decide (pure:
core/decide.py) → commit (one store transaction: check row, alerts, outbox) → act
(core/exits.py: kill the attempt, finish, tear down, each claimed at most once) → the seconds
until the next check (None: stop watching it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.config import Config, RunConfig
from core.decide import CheckDecision, CheckPolicy, ProviderAnswer, decide
from core.errors import HostKeyMismatch, ProtocolError, SleepwatchError, StaleRun, TransportError
from core.exits import ExitHandler
from core.instance import read_instance
from core.memory import Stored
from core.models import RunRecord
from core.ports import Clock, ProviderFor, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.rules import Observation
from core.run_settings import RunSettings, settings_for
from core.store import Store
from core.supervisor_client import SupervisorClient, SupervisorExited
from core.supervisor_session import SessionHub

log = logging.getLogger(__name__)
# Pauses between tries of the end's ack (then it gives up: the teardown still ends the billing).
ACK_RETRY_DELAYS_S = (2.0, 10.0)

TransportFor = Callable[[RunRecord], Transport]


class Watcher:
    def __init__(
        self,
        store: Store,
        config: Config,
        transport_for: TransportFor,
        provider_for: ProviderFor | None,
        clock: Clock,
        *,
        emit: Callable[[str], None] = print,
        wake_outbox: Callable[[], None] = lambda: None,
        sessions: SessionHub | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions  # probes and acks on the host's session when it is up
        self.config = config
        self.transport_for = transport_for
        # None: no run has a provider (local runs, tests without a cloud)
        self.provider_for: ProviderFor = provider_for or _no_provider
        self.clock = clock
        self.emit = emit
        self.wake_outbox = wake_outbox
        self.exits = ExitHandler(
            store, config, transport_for, self.provider_for, clock, wake_outbox
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._settings: dict[str, tuple[RunConfig | None, RunSettings]] = {}
        # each watched run's memory as its last check committed it (decide's `known`)
        self._stored: dict[str, Stored] = {}

    def settings(self, name: str) -> RunSettings:
        """The run's settings (core.run_settings), made again only when its entry is another
        object (a learn or a config reload replaces it): every check asks, more than once."""
        entry = self.config.find_run(name)
        cached = self._settings.get(name)
        if cached is None or cached[0] is not entry:
            cached = self._settings[name] = (entry, settings_for(self.config, name))
        return cached[1]

    def forget(self, name: str) -> None:
        """The run is watched no more (ended, torn down, dropped): its kept memory goes."""
        self._stored.pop(name, None)

    def lock(self, name: str) -> asyncio.Lock:
        """One lock per run: a check, an exit and a human's /teardown never interleave their
        read-modify-write of the run (a check that read the row first would undo the other)."""
        return self._locks.setdefault(name, asyncio.Lock())

    async def check(self, name: str) -> float | None:
        """Check one run now. Returns seconds until the next check, or None when done with it."""
        async with self.lock(name):
            next_s = await self._check(name)
            if next_s is None:
                self.forget(name)
            return next_s

    async def _check(self, name: str) -> float | None:
        # the run and its open alerts in one read (only checks, under this lock, write alerts)
        record, open_alerts = await self.store.run_for_check(name)
        if record is None or not record.live:
            return None
        if record.ended_at is not None:  # terminal seen; exit handling interrupted or retrying
            return await self.exits.finish(record, None, None)
        obs = await self._observe(record)
        now = obs.at  # judged as of the answer: a check may wait for its channel
        instance = await self._ask_provider(record, obs)
        policy, known = self.check_policy(name), self._stored.pop(name, None)
        decision = decide(record, obs, instance, open_alerts, policy, now, known)
        try:
            await self.store.commit_check(decision.commit)
        except StaleRun as exc:  # another shell ended or relaunched it: its write stands
            log.info("%s", exc)
            current = await self.store.get_run(name)
            return None if current is None or not current.live else 1.0
        self._stored[name] = decision.stored
        return await self._act(decision, obs)

    async def _act(self, decision: CheckDecision, obs: Observation) -> float | None:
        """Apply a committed decision: print its line, wake the sender, then at most one of
        stop / (kill the attempt) / finish the run / tear it down."""
        self.emit(decision.status_line)
        if decision.commit.messages:
            self.wake_outbox()
        record = decision.record
        if decision.stop:
            return None
        if decision.kill_attempt is not None:
            await self.exits.kill_attempt(record, decision.kill_attempt)
        if decision.finish is not None:
            await self.acknowledge_end(record, decision.finish)
            return await self.exits.finish(record, decision.finish, obs.probe)
        if decision.teardown is not None:
            _, retry_s = await self.exits.teardown_live(record, decision.teardown)
            return retry_s
        return decision.interval_s

    def check_policy(self, name: str) -> CheckPolicy:
        settings = self.settings(name)
        return CheckPolicy(
            rules=settings.policy,
            deadline_grace_s=settings.deadline_grace_s,
            destroy_on_fail=settings.destroy_on_fail,
            max_cost=settings.max_cost,
            tz=self.config.telegram.zone,
        )

    def client(self, record: RunRecord) -> SupervisorClient:
        settings = self.settings(record.name)
        return SupervisorClient(
            self.transport_for(record),
            settings.python,
            settings.remote_root,
            self.config.ssh.exec_timeout,
            sessions=self.sessions,
        )

    async def _observe(self, record: RunRecord) -> Observation:
        """One probe, stamped when its answer came (not when it was asked: it may have queued
        for a channel, and a `done` line must not predate the trainer's exit)."""
        try:
            probe = await self.client(record).probe(
                record.run_dir,
                attempt=record.log_attempt,
                offset=record.log_offset,
                ack=self.config.watcher.watcher_id,  # "alive" only: the end needs `ack`
            )
        except HostKeyMismatch as exc:
            return Observation(at=self.clock(), error=str(exc), host_key_changed=True)
        except (TransportError, SupervisorExited) as exc:
            return Observation(at=self.clock(), error=str(exc))
        except ProtocolError as exc:
            now = self.clock()
            probe = ProbeSnapshot(probe=1, at=now, state_error=str(exc)[:1000])
        else:
            now = self.clock()
        return Observation(at=now, probe=probe)

    async def acknowledge_end(self, record: RunRecord, state: SupervisorState) -> None:
        """Phase two of the dead-man handshake, sent only after the terminal state is committed
        to the store: the supervisor disarms its switch only on an ack of its own end. A failed
        ack is retried a few times: with `destroy_on_* = false` an unacked end would let the
        switch destroy an instance the person meant to keep."""
        for delay_s in (*ACK_RETRY_DELAYS_S, None):
            try:
                answer = await self.client(record).ack(
                    record.run_dir,
                    watcher=self.config.watcher.watcher_id,
                    status=state.status.value,
                    attempt=state.attempt,
                    ended_at=state.ended_at,
                )
            except SleepwatchError as exc:
                log.warning("%s: could not acknowledge the end: %s", record.name, exc)
                if delay_s is not None:
                    await self.exits.sleep(delay_s)
                continue
            if not answer.matches:
                log.warning(
                    "%s: the supervisor did not match our ack: %s", record.name, answer.message
                )
            return

    async def _ask_provider(self, record: RunRecord, obs: Observation) -> ProviderAnswer | None:
        """The provider's word on an instance SSH cannot reach (None: not asked)."""
        provider = self.provider_for(record)
        if obs.probe is not None or provider is None or record.instance_id is None:
            return None
        info, error = await read_instance(provider, record.instance_id)
        return ProviderAnswer(info, error)


def _no_provider(record: RunRecord) -> None:
    return None
