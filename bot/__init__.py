"""sleepwatch's Telegram face: alerts to the phone, chat commands, the morning summary."""

# Marks the package as sleepwatch's: bot/start.py refuses to run when another distribution
# installed a package of the same name over it.
__distribution__ = "sleepwatch"
