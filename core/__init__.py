"""sleepwatch local watcher engine: pure decisions, adapters behind ports, one root."""

# Marks the package as sleepwatch's: bot/start.py refuses to run when another distribution
# installed a package of the same name over it.
__distribution__ = "sleepwatch"

# `sleepwatch --version` when no installed distribution says (a source tree); pyproject's too
__version__ = "0.1.0"
