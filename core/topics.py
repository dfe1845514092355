"""What each message is about, and the traits that follow: loud or silent, why, which buttons.

One table for every message the watcher sends. The builders in core/messages.py (and the other
few that make messages) name a Topic; `loud_for` turns it into the message's notification flag
(Telegram `disable_notification` is its negation) and `actions_for` into the buttons a loud
message offers. docs/messages.md and the README's table are generated from TOPICS
(`python -m bot.messages_doc`), so the documentation cannot drift from what is sent.

Loud means a human is needed: something failed for good, costs money while nobody acts, or is
about to happen unless someone acts. Everything the watcher or the supervisor handled by itself
is silent: it is in the chat when the person looks, without waking them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from core.actions import ACTION_LABELS as ACTION_LABELS
from core.actions import EXTEND_BUTTON_S as EXTEND_BUTTON_S
from core.actions import MUTE_BUTTON_S as MUTE_BUTTON_S
from core.actions import Action as Action


class Topic(StrEnum):
    SELF_HEALED = "self_healed"
    RETRYING = "retrying"
    STALL_RECOVERED = "stall_recovered"
    ERROR_IN_LOG = "error_in_log"
    NEEDS_HUMAN = "needs_human"
    SOFT = "soft"
    HOST_KEY = "host_key"
    INSTANCE_LOST = "instance_lost"
    DEADLINE_AHEAD = "deadline_ahead"
    COST_AHEAD = "cost_ahead"
    STILL_BILLING = "still_billing"
    RECOVERED = "recovered"
    DESTROYED = "destroyed"
    DONE = "done"
    ENDED_SHORT = "ended_short"
    FAILED = "failed"
    STOPPED_BY_YOU = "stopped_by_you"
    STOPPED = "stopped"
    WATCHER_BLIND = "watcher_blind"
    CHECKS_WORK = "checks_work"
    STORE_BROKEN = "store_broken"
    SETTINGS_UNKNOWN = "settings_unknown"
    INFO = "info"
    MORNING_SUMMARY = "morning_summary"
    REPLY = "reply"

    @property
    def traits(self) -> TopicTraits:
        return TOPICS[self]


@dataclass(frozen=True, slots=True)
class TopicTraits:
    what: str  # the kind of message, as the table names it
    loud: bool
    why: str
    actions: tuple[Action, ...] = ()  # offered when they fit the run (see actions_for)


_LIVE_ACTIONS = (Action.KILL, Action.TEARDOWN, Action.STATUS)
TOPICS: dict[Topic, TopicTraits] = {
    Topic.SELF_HEALED: TopicTraits(
        "self-healed retry",
        False,
        "the supervisor fixed the failure itself and retries: nothing to do",
    ),
    Topic.RETRYING: TopicTraits(
        "retry without a fix",
        False,
        "attempts are left; the run's end (loud if it fails) says what it came to",
    ),
    Topic.STALL_RECOVERED: TopicTraits(
        "stall recovered",
        False,
        "the stalled attempt was killed and the supervisor retries it: handled",
    ),
    Topic.ERROR_IN_LOG: TopicTraits(
        "error in the log, run goes on",
        False,
        "the trainer logged an error but keeps running; a crash would be its own message",
    ),
    Topic.NEEDS_HUMAN: TopicTraits(
        "stall not recovered, hang, supervisor dead, unreachable, state unreadable, disk "
        "low, outputs not collected",
        True,
        "the watcher cannot fix it and the instance bills meanwhile",
        _LIVE_ACTIONS,
    ),
    Topic.SOFT: TopicTraits(
        "no progress, GPU idle, throughput down",
        False,
        "worth a look when awake; what truly needs a human (a stall, a hang) is loud",
        (Action.MUTE, *_LIVE_ACTIONS),
    ),
    Topic.HOST_KEY: TopicTraits(
        "host key changed",
        True,
        "checks stopped: the host may not be the instance; only a human can tell",
        (Action.TEARDOWN, Action.STATUS),
    ),
    Topic.INSTANCE_LOST: TopicTraits(
        "instance lost or stopped",
        True,
        "the provider says it will not come back by itself, and it may still bill",
        (Action.TEARDOWN, Action.STATUS),
    ),
    Topic.DEADLINE_AHEAD: TopicTraits(
        "deadline ahead",
        True,
        "the instance will be torn down unless someone extends the deadline",
        (Action.EXTEND, Action.TEARDOWN, Action.STATUS),
    ),
    Topic.COST_AHEAD: TopicTraits(
        "cost cap ahead",
        True,
        "the run will be stopped for its cost unless someone extends it",
        (Action.EXTEND, Action.TEARDOWN, Action.STATUS),
    ),
    Topic.STILL_BILLING: TopicTraits(
        "still billing (destroy failed, or kept by policy)",
        True,
        "money is spent every hour until someone destroys it",
        (Action.TEARDOWN, Action.STATUS),
    ),
    Topic.RECOVERED: TopicTraits(
        "recovered",
        False,
        "the condition cleared by itself",
    ),
    Topic.DESTROYED: TopicTraits(
        "instance destroyed",
        False,
        "a confirmation: billing stopped",
    ),
    Topic.DONE: TopicTraits(
        "run done (completed, early stop)",
        False,
        'a healthy end needs nobody; `notify_done = "loud"` makes it loud',
    ),
    Topic.ENDED_SHORT: TopicTraits(
        "run ended short",
        True,
        "exit 0 below its own total with no early stop: did it really finish?",
        (Action.STATUS,),
    ),
    Topic.FAILED: TopicTraits(
        "run failed (budget spent, unfixable)",
        True,
        "the run will not finish without a change only a human can make",
        (Action.STATUS,),
    ),
    Topic.STOPPED_BY_YOU: TopicTraits(
        "run stopped by /kill or /teardown",
        False,
        "the person asked for it: a confirmation",
    ),
    Topic.STOPPED: TopicTraits(
        "run stopped by the watcher (deadline, lost instance)",
        True,
        "the run did not finish",
        (Action.STATUS,),
    ),
    Topic.WATCHER_BLIND: TopicTraits(
        "the watcher cannot check a run",
        True,
        "nothing watches the run until a human looks",
        (Action.TEARDOWN, Action.STATUS),
    ),
    Topic.CHECKS_WORK: TopicTraits(
        "checks work again",
        False,
        "the watcher recovered by itself",
    ),
    Topic.STORE_BROKEN: TopicTraits(
        "watcher store broken (disk full)",
        True,
        "the watcher cannot record checks or messages until space is freed",
    ),
    Topic.SETTINGS_UNKNOWN: TopicTraits(
        "settings unknown",
        True,
        "a run is watched with defaults (destroy on done and on fail) until its entry is added",
        (Action.STATUS,),
    ),
    Topic.INFO: TopicTraits("information (launch)", False, "nothing to do"),
    Topic.MORNING_SUMMARY: TopicTraits(
        "morning summary", False, "read over breakfast, not at 3 a.m."
    ),
    Topic.REPLY: TopicTraits("answer to a command", False, "the person is already looking"),
}

# Findings of a check, by the key's prefix (`attempt:3` → attempt), mapped to their topic.
_FINDING_TOPICS = {
    "stall_kill": Topic.STALL_RECOVERED,
    "traceback": Topic.ERROR_IN_LOG,
    "host_key": Topic.HOST_KEY,
    "instance_lost": Topic.INSTANCE_LOST,
    "instance_stopped": Topic.INSTANCE_LOST,
    "deadline_warning": Topic.DEADLINE_AHEAD,
    "deadline": Topic.DEADLINE_AHEAD,
    "cost_warning": Topic.COST_AHEAD,
    "cost_cap": Topic.COST_AHEAD,
    "cost_unknown": Topic.INFO,
    "stale_output": Topic.SOFT,
    "low_gpu": Topic.SOFT,
    "slow": Topic.SOFT,
}


def finding_topic(key: str, *, healed: bool = False) -> Topic:
    """The topic of one finding; a retry (`attempt:N`) is SELF_HEALED when a fix was applied
    before it."""
    prefix = key.split(":")[0]
    if prefix == "attempt":
        return Topic.SELF_HEALED if healed else Topic.RETRYING
    return _FINDING_TOPICS.get(prefix, Topic.NEEDS_HUMAN)


# When several findings share a message, its headline is the most urgent one's.
_URGENCY = (
    Topic.HOST_KEY,
    Topic.INSTANCE_LOST,
    Topic.NEEDS_HUMAN,
    Topic.COST_AHEAD,
    Topic.DEADLINE_AHEAD,
    Topic.SOFT,
    Topic.STALL_RECOVERED,
    Topic.SELF_HEALED,
    Topic.RETRYING,
    Topic.ERROR_IN_LOG,
)


def lead_topic(topics: Collection[Topic]) -> Topic:
    """The topic a message about all of `topics` is filed under (the most urgent one)."""
    for topic in _URGENCY:
        if topic in topics:
            return topic
    return next(iter(topics), Topic.INFO)


def loud_for(topics: Collection[Topic], *, notify_done: str = "silent") -> bool:
    """Loud when any of them needs a human; a healthy end only when the person asked."""
    if Topic.DONE in topics and notify_done == "loud":
        return True
    return any(TOPICS[t].loud for t in topics)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What decides whether a button fits: can the run be stopped, destroyed, extended (it has
    a deadline or a max_cost: /extend moves both)."""

    live: bool = True
    has_instance: bool = False
    extendable: bool = False


def actions_for(topics: Collection[Topic], facts: RunFacts) -> tuple[Action, ...]:
    """The buttons of a loud message about `topics`: those its topics offer that fit the run.
    A silent message has none (nobody is woken to press them)."""
    if not loud_for(topics):
        return ()
    wanted = dict.fromkeys(a for t in topics for a in TOPICS[t].actions)
    fits = {
        Action.KILL: facts.live,
        Action.TEARDOWN: facts.has_instance,
        Action.EXTEND: facts.live and facts.extendable,
        Action.MUTE: facts.live,
        Action.STATUS: True,
    }
    return tuple(a for a in wanted if fits[a])
