"""In-memory providers: `RecordingProvider` for tests and the demo, `NoneProvider` for runs
with no cloud instance. Both record every call as (verb, instance_id, arg)."""

from __future__ import annotations

from dataclasses import replace

from core.errors import ProviderError
from core.models import InstanceInfo, InstanceState


class RecordingProvider:
    """Keeps instances in `instances`; `destroy` removes one (a second destroy is a no-op,
    as on Vast). `fail(verb, *errors)` queues errors the next calls of that verb raise, in
    order, before normal behaviour resumes."""

    def __init__(self, instances: list[InstanceInfo] | None = None, *, name: str = "recording"):
        self.name = name
        self.instances: dict[str, InstanceInfo] = {i.id: i for i in instances or ()}
        self.requests: list[tuple[str, str, str | None]] = []
        self._failures: dict[str, list[ProviderError]] = {}

    def add(self, instance: InstanceInfo) -> None:
        self.instances[instance.id] = instance

    def set_state(self, instance_id: str, state: InstanceState, status: str | None = None) -> None:
        self.instances[instance_id] = replace(
            self.instances[instance_id], state=state, status=status
        )

    def fail(self, verb: str, *errors: ProviderError) -> None:
        self._failures.setdefault(verb, []).extend(errors)

    def calls(self, verb: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == verb]

    async def show(self, instance_id: str) -> InstanceInfo | None:
        self._record("show", instance_id, None)
        return self.instances.get(instance_id)

    async def destroy(self, instance_id: str) -> None:
        self._record("destroy", instance_id, None)
        self.instances.pop(instance_id, None)

    async def label(self, instance_id: str, label: str) -> None:
        self._record("label", instance_id, label)
        self._change(instance_id, label=label)

    def console_url(self, instance_id: str) -> str:
        return f"(the {self.name} provider's console)"

    def _record(self, verb: str, instance_id: str, arg: str | None) -> None:
        self.requests.append((verb, instance_id, arg))
        queued = self._failures.get(verb)
        if queued:
            raise queued.pop(0)

    def _change(self, instance_id: str, **fields: object) -> None:
        current = self.instances.get(instance_id)
        if current is None:
            raise ProviderError(f"no instance {instance_id}", status=404, permanent=True)
        self.instances[instance_id] = replace(current, **fields)  # type: ignore[arg-type]


class NoneProvider(RecordingProvider):
    """For runs without a cloud instance (the demo, a local machine): nothing to show,
    and destroy and label are recorded and otherwise do nothing."""

    def __init__(self) -> None:
        super().__init__(name="none")

    async def show(self, instance_id: str) -> InstanceInfo | None:
        self._record("show", instance_id, None)
        return None

    async def label(self, instance_id: str, label: str) -> None:
        self._record("label", instance_id, label)
