"""Domain values shared across core, bot and the adapters. Frozen, slotted, units in names.

Used by every layer above (docs/layers.md): the store's rows (RunRecord, OpenAlert,
CheckCommit), the outbox (OutboundMessage, OutboxItem), the transports (ExecResult), the
provider (InstanceInfo) and the chat's views (RunView, Extension).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.topics import Action, Topic

# InstanceState and MessageKind live with the other vocabularies in core.vocab; read here too.
from core.vocab import InstanceState as InstanceState
from core.vocab import MessageKind as MessageKind
from core.vocab import WatchStatus


def instance_state(info: InstanceInfo | None) -> InstanceState:
    """None (the provider said the instance does not exist) is GONE."""
    return InstanceState.GONE if info is None else info.state


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What the watcher wants a human to read. Adapters render it (console text, Telegram HTML).

    `status_line` comes first, then `title`, then `reasons`, then `log_lines` (expanded log
    context, raw text: each renderer escapes and cuts it), then `summary` (ordered key/value
    pairs of a terminal message). `chat_id` is set for replies; None means every allowed chat.
    `topic` files it in core.topics' table; `loud` is whether it may wake someone (Telegram's
    `disable_notification` is its negation); `actions` are the buttons a loud one offers.
    """

    kind: MessageKind
    title: str
    run: str | None = None
    status_line: str | None = None
    reasons: tuple[str, ...] = ()
    log_lines: tuple[str, ...] = ()
    summary: tuple[tuple[str, str], ...] = ()
    chat_id: int | None = None
    topic: Topic | None = None
    loud: bool = False
    actions: tuple[Action, ...] = ()
    chart: str | None = None  # a PNG of the run's metrics (core/run_chart.py), sent as a photo
    links: tuple[tuple[str, str], ...] = ()  # (label, https URL) the log printed (core/links.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "title": self.title,
            "run": self.run,
            "status_line": self.status_line,
            "reasons": list(self.reasons),
            "log_lines": list(self.log_lines),
            "summary": [list(p) for p in self.summary],
            "chat_id": self.chat_id,
            "topic": self.topic.value if self.topic else None,
            "loud": self.loud,
            "actions": [a.value for a in self.actions],
            "chart": self.chart,
            "links": [list(link) for link in self.links],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OutboundMessage:
        kind = MessageKind(doc["kind"])
        topic = doc.get("topic")
        return cls(
            kind=kind,
            title=doc["title"],
            run=doc.get("run"),
            status_line=doc.get("status_line"),
            reasons=tuple(doc.get("reasons") or ()),
            log_lines=tuple(doc.get("log_lines") or ()),
            summary=tuple((str(k), str(v)) for k, v in doc.get("summary") or ()),
            chat_id=doc.get("chat_id"),
            topic=Topic(topic) if topic in _TOPICS else None,
            # a row queued by a version without the flag: its alerts and ends were all loud
            loud=bool(doc.get("loud", kind in (MessageKind.ALERT, MessageKind.TERMINAL))),
            actions=tuple(Action(a) for a in doc.get("actions") or () if a in _ACTIONS),
            chart=doc["chart"] if isinstance(doc.get("chart"), str) else None,
            links=tuple((str(label), str(url)) for label, url in doc.get("links") or ()),
        )


_ACTIONS = frozenset(a.value for a in Action)
_TOPICS = frozenset(t.value for t in Topic)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    message: OutboundMessage
    created_at: datetime
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_status: int
    stdout: bytes
    stderr: bytes
    overflow: bool = False  # stdout went past the caller's byte cap: cut there, command ended


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """A cloud instance as the provider reports it, in sleepwatch's units. `state` is the
    adapter's mapping of the provider's status; `status` is the provider's own word for it
    (None when it gave none), shown to humans only, never compared."""

    id: str
    state: InstanceState
    status: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    dph_total: float | None = None  # $/h
    gpu_name: str | None = None
    num_gpus: int = 1
    gpu_ram_mb: float | None = None  # per GPU
    cpu_ram_mb: float | None = None
    disk_space_gb: float | None = None
    reliability: float | None = None
    cuda_max_good: float | None = None
    gpu_util_pct: float | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One watched run as the store keeps it. `memory` is the pure core's JSON-able memory of
    past checks (see core.rules); the store treats it as an opaque document."""

    name: str
    run_dir: str
    launched_at: datetime
    instance_id: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    live: bool = True
    status: str = WatchStatus.LAUNCHING.value  # a RunStatus or a WatchStatus (core.vocab)
    attempt: int = 0
    max_attempts: int = 0
    deadline_at: datetime | None = None
    muted_until: datetime | None = None
    log_attempt: int = 0
    log_offset: int = 0
    memory: dict[str, Any] = field(default_factory=dict)
    last_status_line: str | None = None
    last_check_at: datetime | None = None
    next_check_at: datetime | None = None
    interval_s: float | None = None
    dph_total: float | None = None
    teardown: str | None = None  # None or a core.vocab.TeardownState
    torn_down_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # how it ended: the supervisor's outcome or the watcher's ending
    settings: str | None = None  # the resolved settings it was launched with (JSON)
    cost_extended_usd: float = 0.0  # what /extend added to the run's max_cost
    kept_acked_at: datetime | None = None  # /keep: its kept instance is no longer reminded
    provider: str = "vast"  # whose instance (core/providers' registry); unused without one


@dataclass(frozen=True, slots=True)
class OpenAlert:
    run: str
    condition: str
    opened_at: datetime
    last_sent_at: datetime | None
    message: str


@dataclass(frozen=True, slots=True)
class CheckCommit:
    """Everything one check writes, applied by the store in ONE transaction so that a crash
    between 'decided' and 'recorded' can neither lose nor repeat a notification.

    `run` replaces the run row. `messages` are (dedupe_key, message): a key already in the
    outbox is skipped silently, which is what makes a re-done check after a restart harmless.
    """

    run: RunRecord
    at: datetime
    status_line: str
    health: str
    reasons: tuple[str, ...] = ()
    alerts_opened: tuple[OpenAlert, ...] = ()
    alerts_resent: tuple[str, ...] = ()  # conditions whose last_sent_at becomes `at`
    alerts_resolved: tuple[str, ...] = ()  # conditions closed at `at`
    messages: tuple[tuple[str, OutboundMessage], ...] = ()


@dataclass(frozen=True, slots=True)
class Extension:
    """What /extend moved: the deadline, and the max_cost limit (raised by the same duration at
    the run's hourly price). None: the run has no such limit."""

    deadline_at: datetime | None = None
    cost_limit_usd: float | None = None


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as a human command (/runs, /status) shows it."""

    name: str
    live: bool
    status_line: str
    instance_id: str | None = None
    cost_usd: float | None = None
    dph_total: float | None = None
    muted_until: datetime | None = None
    deadline_at: datetime | None = None
    next_check_at: datetime | None = None
    interval_s: float | None = None
    teardown: str | None = None
    outputs: str | None = None  # the collection: its result, or its progress while it runs
    tail: tuple[str, ...] = ()
    kept: bool = False  # ended, its instance left billing and not acknowledged (/keep)
    projected_usd: float | None = None  # at the current throughput to the last step
    cost_limit_usd: float | None = None  # max_cost plus what /extend added
    # its steps got heavier (core/baseline.py): when, the rate before, the rate taken as its own
    heavier: tuple[datetime, float, float] | None = None
