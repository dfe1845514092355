"""SQL migrations, applied in order at start-up (shipped as package data)."""
