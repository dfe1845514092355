"""The buttons under a loud message (Kill, Teardown, Extend 2h, Mute 1h, Status), their labels
and what the Extend and Mute buttons ask for. Pure.

core.topics names the actions each topic offers (and re-exports these names); the Telegram
front end (bot/telegram.py, bot/handlers.py) draws and answers them; core.models carries them
on a message.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """A button under a loud message. Kill and Teardown ask to confirm first."""

    KILL = "kill"
    TEARDOWN = "teardown"
    EXTEND = "extend"
    MUTE = "mute"
    STATUS = "status"

    @property
    def label(self) -> str:
        return ACTION_LABELS[self]

    @property
    def destructive(self) -> bool:
        return self in (Action.KILL, Action.TEARDOWN)


ACTION_LABELS = {
    Action.KILL: "Kill",
    Action.TEARDOWN: "Teardown",
    Action.EXTEND: "Extend 2h",
    Action.MUTE: "Mute 1h",
    Action.STATUS: "Status",
}
EXTEND_BUTTON_S = 2 * 3600
MUTE_BUTTON_S = 3600
