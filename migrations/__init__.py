"""SQL migrations, applied in order at start-up (shipped as package data)."""

# Marks the package as sleepwatch's: bot/start.py refuses to run when another distribution
# installed a package of the same name over it.
__distribution__ = "sleepwatch"
