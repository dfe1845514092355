"""Every closed word the watcher uses, and what each word implies, in one place. Pure.

Who reads it: the rules name findings with `Condition` and `Event`, whose traits (soft, needs
state, blind) the alert diff (core/transitions.py) asks and whose label and loudness the
message builders (core/messages.py) ask; core/protocol.py reads the supervisor's `status` and
`last_failure.kind` into `RunStatus` and `FailureKind`; the config accepts `FixKind`s; a run
row's `status` and `teardown` are `RunStatus` / `WatchStatus` and `TeardownState`; each
provider adapter maps its statuses to `InstanceState`; a message has a `MessageKind`. Code
compares to members, never to bare strings. The words of one module stay in it: Phase
(core/cadence.py), Health (core/findings.py), Verdict (core/gate.py), Collected
(core/outputs.py), and the message topics with their trait table (core/topics.py).

Each vocabulary is a StrEnum (a stored row or JSON document holds the plain word), and each
one with traits keeps them in ONE table next to it; a test holds every member to a row of
its table. The supervisor keeps its own strings for the words it writes;
tests/supervisor/test_contract.py holds its lists to `FailureKind` and `FixKind`. Its failure
kinds stay an OPEN vocabulary for the reader: an unknown kind is data (`error (<kind>)`, see
core.protocol.Failure), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunStatus(StrEnum):
    """state.json `status`: what the supervisor says of its run."""

    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({RunStatus.DONE, RunStatus.FAILED, RunStatus.STOPPED})


class Outcome(StrEnum):
    """state.json `outcome`: how a run ended, in the supervisor's words (supervisor.verdict
    .OUTCOMES is the same list, held so by a contract test)."""

    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    ENDED_SHORT = "ended_short"  # exit 0 below its own total, no early stop seen: alerted
    BUDGET_EXHAUSTED = "budget_exhausted"
    UNFIXABLE = "unfixable"
    KILLED = "killed"


class WatchStatus(StrEnum):
    """The statuses a run row (and its status line) gets from the watcher itself, where the
    supervisor's word is missing: the row's `status` is a RunStatus or one of these."""

    LAUNCHING = "launching"  # launched, not checked yet
    UNREACHABLE = "unreachable"  # the last check could not reach the instance
    INVALID = "invalid"  # status line only: reached, but the state could not be read
    HOST_KEY_CHANGED = "host_key_changed"  # checks stopped: the host's key is not the pinned one


# A run row in one of these still has a trainer that may be working (and billing).
LIVE_STATUSES: frozenset[str] = frozenset(
    {RunStatus.STARTING, RunStatus.RUNNING, RunStatus.RETRYING}
    | {WatchStatus.LAUNCHING, WatchStatus.UNREACHABLE}
)


def is_terminal(status: str | None) -> bool:
    """A run row's `status` (a plain string from the store) is a supervisor's end."""
    return status in TERMINAL_STATUSES


class TeardownState(StrEnum):
    """A run row's `teardown`: where the destroy of its instance stands (None: not begun)."""

    PENDING = "pending"  # claimed and under way (a restart finds it and verifies it)
    DESTROYED = "destroyed"  # verified gone
    FAILED = "failed"  # not verified gone: still billing, retried


class InstanceState(StrEnum):
    """A cloud instance's state in provider-neutral terms; each provider adapter maps its own
    statuses to it. `gone` only on the provider's clear word (a 404 or an explicit empty
    answer); an unreadable answer is an error, never a state."""

    LOADING = "loading"  # created, image loading: not up yet
    RUNNING = "running"
    STOPPED = "stopped"  # stopped (outbid, or by hand): storage still bills, may come back
    LOST = "lost"  # the provider says it will not come back (exited/offline), may still bill
    GONE = "gone"  # no longer exists
    UNKNOWN = "unknown"  # a status this version does not know: shown, never acted on


class MessageKind(StrEnum):
    """What an outbound message is (core.models.OutboundMessage); its finer topic, with the
    loud/silent trait, is core.topics.Topic."""

    ALERT = "alert"
    RECOVERY = "recovery"
    TERMINAL = "terminal"
    INFO = "info"
    SUMMARY = "summary"
    REPLY = "reply"


class FailureKind(StrEnum):
    """state.json `last_failure.kind`: the kinds this watcher knows. The supervisor's list
    (supervisor.classify.KINDS) is the same, in the same order, held so by a contract test; a
    kind from a newer supervisor is still read (core.protocol.Failure keeps it as
    `reported_kind` and reads it as ERROR)."""

    OOM = "oom"
    HOST_OOM = "host_oom"
    MISSING_MODULE = "missing_module"
    MISSING_BUILD_TOOL = "missing_build_tool"
    DISK_FULL = "disk_full"
    GPU_FAULT = "gpu_fault"
    TRANSIENT = "transient"
    SIGNAL = "signal"
    ERROR = "error"
    KILLED = "killed"


class FixKind(StrEnum):
    """The supervisor's bounded fixes (RUN.json `fixes`, state.json `fixes[].kind`): each one
    answers the failure kind of the same name. supervisor.config.FIX_KINDS is the same list,
    held so by a contract test."""

    MISSING_MODULE = "missing_module"
    MISSING_BUILD_TOOL = "missing_build_tool"
    DISK_FULL = "disk_full"
    OOM = "oom"


@dataclass(frozen=True, slots=True)
class FailureTraits:
    fix: FixKind | None  # the fix that answers it, if any
    retried_unfixed: bool  # the supervisor retries it even when no fix was applied


FAILURE_TRAITS: dict[FailureKind, FailureTraits] = {
    FailureKind.OOM: FailureTraits(FixKind.OOM, True),
    FailureKind.HOST_OOM: FailureTraits(None, True),
    # the same import or build fails the same way again: without its fix, no retry
    FailureKind.MISSING_MODULE: FailureTraits(FixKind.MISSING_MODULE, False),
    FailureKind.MISSING_BUILD_TOOL: FailureTraits(FixKind.MISSING_BUILD_TOOL, False),
    FailureKind.DISK_FULL: FailureTraits(FixKind.DISK_FULL, True),
    FailureKind.GPU_FAULT: FailureTraits(None, True),
    FailureKind.TRANSIENT: FailureTraits(None, True),
    FailureKind.SIGNAL: FailureTraits(None, True),
    FailureKind.ERROR: FailureTraits(None, True),
    FailureKind.KILLED: FailureTraits(None, True),
}


class Condition(StrEnum):
    """A lasting alert condition: one open alert per (run, condition), re-sent after
    `resend_after_s`, closed with one recovery message. The alerts table stores the word."""

    STALE_OUTPUT = "stale_output"
    LOW_GPU = "low_gpu"
    SLOW = "slow"
    SUPERVISOR_DEAD = "supervisor_dead"
    STALL = "stall"
    HANG = "hang"
    INVALID_STATE = "invalid_state"
    UNREACHABLE = "unreachable"
    HOST_KEY = "host_key"
    DEADLINE = "deadline"
    INSTANCE_LOST = "instance_lost"
    INSTANCE_STOPPED = "instance_stopped"
    COST_CAP = "cost_cap"  # max_cost reached: the run is stopped and torn down
    DISK_LOW = "disk_low"  # the instance's free disk under [thresholds] disk_low_mb


@dataclass(frozen=True, slots=True)
class ConditionTraits:
    label: str  # what a human reads in a title: "GPU idle"
    # soft: alerts only after holding a while; /mute silences it; an unreachable or terminal
    # check drops it; a steady soft episode lets the cadence calm down
    soft: bool = False
    # judged from the run's state: a check that saw no state must not close it (no news is
    # not a recovery, and a re-open would alert twice)
    needs_state: bool = False
    # while it is open the watcher sees no state: conditions that need one stay as they are
    blind: bool = False
    # a human is needed now: notify with sound (and action buttons); else a silent message
    loud: bool = True
    repeat: bool = True  # re-sent after `resend_after_s` while it lasts; False: told once


_SOFT_ONCE: dict[str, bool] = {"soft": True, "needs_state": True, "loud": False, "repeat": False}
CONDITION_TRAITS: dict[Condition, ConditionTraits] = {
    Condition.STALE_OUTPUT: ConditionTraits("no progress", soft=True, needs_state=True, loud=False),
    Condition.LOW_GPU: ConditionTraits("GPU idle", **_SOFT_ONCE),
    Condition.SLOW: ConditionTraits("throughput down", **_SOFT_ONCE),
    Condition.SUPERVISOR_DEAD: ConditionTraits("supervisor dead", needs_state=True),
    Condition.STALL: ConditionTraits("stalled again", needs_state=True),
    Condition.HANG: ConditionTraits("hung? (GPU busy, no progress)", needs_state=True),
    Condition.INVALID_STATE: ConditionTraits("state unreadable", needs_state=True, blind=True),
    Condition.UNREACHABLE: ConditionTraits("unreachable", blind=True),
    Condition.HOST_KEY: ConditionTraits("host key changed", blind=True),
    Condition.DEADLINE: ConditionTraits("deadline passed"),
    Condition.INSTANCE_LOST: ConditionTraits("instance lost"),
    Condition.INSTANCE_STOPPED: ConditionTraits("instance stopped"),
    Condition.COST_CAP: ConditionTraits("max_cost reached"),
    # a person must free space or move outputs off before a checkpoint write fails
    Condition.DISK_LOW: ConditionTraits("disk low"),
}

SOFT_CONDITIONS = frozenset(c for c, t in CONDITION_TRAITS.items() if t.soft)
NEEDS_STATE = frozenset(c for c, t in CONDITION_TRAITS.items() if t.needs_state)
BLIND_CONDITIONS = frozenset(c for c, t in CONDITION_TRAITS.items() if t.blind)
TOLD_ONCE = frozenset(c for c, t in CONDITION_TRAITS.items() if not t.repeat)


class Event(StrEnum):
    """A one-time happening, announced once per key. The key is `<event>:<detail>` (the
    attempt, the deadline's time, the terminal status): `Event.ATTEMPT.key(3)` is
    `attempt:3`."""

    ATTEMPT = "attempt"  # a new attempt: the supervisor retried
    TRACEBACK = "traceback"  # an error marker in the new log text
    STALL_KILL = "stall_kill"  # the watcher killed a stalled attempt (the supervisor retries)
    DEADLINE_WARNING = "deadline_warning"
    COST_WARNING = "cost_warning"  # max_cost an hour of spend ahead
    COST_UNKNOWN = "cost_unknown"  # max_cost set but the hourly price unknown: cannot keep it
    TERMINAL = "terminal"  # the supervisor's end (its own message says the rest)

    def key(self, detail: object) -> str:
        return f"{self.value}:{detail}"


@dataclass(frozen=True, slots=True)
class EventTraits:
    label: str
    loud: bool  # see ConditionTraits.loud


EVENT_TRAITS: dict[Event, EventTraits] = {
    Event.ATTEMPT: EventTraits("retrying", loud=False),  # the supervisor handles it
    Event.TRACEBACK: EventTraits("error in the log", loud=False),
    Event.STALL_KILL: EventTraits("stalled: attempt killed", loud=False),  # recovered
    Event.DEADLINE_WARNING: EventTraits("deadline soon", loud=True),  # /extend is a human's
    Event.COST_WARNING: EventTraits("max_cost soon", loud=True),  # /extend is a human's
    Event.COST_UNKNOWN: EventTraits("max_cost cannot be kept", loud=False),
    Event.TERMINAL: EventTraits("ended", loud=False),  # the terminal message decides
}


def event_of(key: str) -> Event | None:
    """`attempt:3` -> Event.ATTEMPT; a condition or an unknown word -> None."""
    head, sep, _ = key.partition(":")
    if not sep:
        return None
    try:
        return Event(head)
    except ValueError:
        return None


def condition_of(key: str) -> Condition | None:
    """The condition a stored alert's word names; an unknown word (a newer watcher's) -> None."""
    try:
        return Condition(key)
    except ValueError:
        return None


def label(key: str) -> str:
    """A human name for a condition or an event key (`attempt:3` -> `retrying`); an unknown
    word is shown as itself, underscores as spaces."""
    if (condition := condition_of(key)) is not None:
        return CONDITION_TRAITS[condition].label
    if (event := event_of(key)) is not None:
        return EVENT_TRAITS[event].label
    return key.split(":")[0].replace("_", " ")


def is_loud(key: str) -> bool:
    """A finding with this key needs a human now; an unknown word is loud (better woken once
    than a real problem slept through)."""
    if (condition := condition_of(key)) is not None:
        return CONDITION_TRAITS[condition].loud
    if (event := event_of(key)) is not None:
        return EVENT_TRAITS[event].loud
    return True


def pending_terminal_key(run: str) -> str:
    """The meta key under which a run's terminal message waits for its instance line
    (written by core/exits.py, forgotten by the store's reset_run on a relaunch)."""
    return f"{Event.TERMINAL.value}:{run}"
