"""Cloud provider adapters behind `core.ports.Provider`: Vast (vast.py) and the in-memory ones
(recording.py). Which exist and which are open: registry.py, used by the composition root."""

from core.providers.recording import NoneProvider, RecordingProvider
from core.providers.vast import VastProvider

__all__ = ["NoneProvider", "RecordingProvider", "VastProvider"]
