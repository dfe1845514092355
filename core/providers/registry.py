"""Which cloud providers exist (REGISTRY) and which this engine could open (`Providers`).

Called by the composition root (core/runtime.py, `open_engine`): `check_runs` refuses, at
start-up and naming the key, a run whose provider is unknown or whose instance id that
provider would never accept; `open_providers` opens every registered provider that is
configured. The watcher, the exit handler and launch then reach a run's provider only through
`Providers.for_run` (a `core.ports.ProviderFor`).

Adding a provider: one adapter module (its Provider, a pure id check, an `open`), and its
ProviderEntry in REGISTRY.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.models import RunRecord
from core.ports import Provider
from core.providers import vast

if TYPE_CHECKING:
    from core.config import Config, RunConfig, Secrets


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """How the composition root knows one provider; a run's `provider = "<name>"` selects it.

    `id_problem(instance_id)` is pure: why the id cannot be one of this provider's, or None
    (checked for every configured run at start-up, before anything is opened). `open` builds
    the adapter from the config and secrets, registering its cleanup on the stack, or returns
    the reason it cannot (e.g. "VAST_API_KEY is not set"): runs on this provider then get no
    provider, and their teardown and launch say so."""

    name: str
    id_problem: Callable[[str], str | None]
    open: Callable[[Config, Secrets, AsyncExitStack], Provider | str]


VAST = ProviderEntry("vast", vast.id_problem, vast.open_vast)
REGISTRY: tuple[ProviderEntry, ...] = (VAST,)


class Providers:
    """The providers one engine opened, by name, and why each other registered one is not
    open (its reason, e.g. "VAST_API_KEY is not set")."""

    def __init__(
        self, opened: Mapping[str, Provider], unavailable: Mapping[str, str] | None = None
    ) -> None:
        self._opened = dict(opened)
        self._unavailable = dict(unavailable or {})

    def named(self, name: str) -> Provider | None:
        return self._opened.get(name)

    def for_run(self, record: RunRecord) -> Provider | None:
        """The run's provider; None for a run without an instance or one not opened."""
        return None if record.instance_id is None else self._opened.get(record.provider)

    def why_not(self, name: str) -> str:
        """Why `named(name)` is None, in words for a human."""
        if name in self._unavailable:
            return f"provider {name!r} is not configured: {self._unavailable[name]}"
        return f"provider {name!r} is not known to this sleepwatch"


def open_providers(
    config: Config,
    secrets: Secrets,
    stack: AsyncExitStack,
    registry: Sequence[ProviderEntry] = REGISTRY,
) -> Providers:
    opened: dict[str, Provider] = {}
    unavailable: dict[str, str] = {}
    for entry in registry:
        provider = entry.open(config, secrets, stack)
        if isinstance(provider, str):
            unavailable[entry.name] = provider
        else:
            opened[entry.name] = provider
    return Providers(opened, unavailable)


def check_runs(runs: Sequence[RunConfig], registry: Sequence[ProviderEntry] = REGISTRY) -> None:
    """Raise ConfigError naming each run whose provider is not registered or whose instance
    id its provider refuses (a run without an instance needs no provider)."""
    entries = {entry.name: entry for entry in registry}
    problems = []
    for index, run in enumerate(runs):
        if run.instance_id is None:
            continue
        entry = entries.get(run.provider)
        if entry is None:
            known = ", ".join(sorted(entries)) or "none"
            where = f"runs[{index}].provider ({run.name})"
            problems.append(f"{where}: {run.provider!r} is not a known provider ({known})")
            continue
        problem = entry.id_problem(run.instance_id)
        if problem is not None:
            where = f"runs[{index}].instance_id ({run.name})"
            problems.append(f"{where}: {run.instance_id[:40]!r}: {problem}")
    if problems:
        raise ConfigError("\n".join(problems))
