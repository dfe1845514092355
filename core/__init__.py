"""sleepwatch local watcher engine: pure decisions, adapters behind ports, one root."""
