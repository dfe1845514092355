"""Cloud provider adapters behind `core.ports.Provider`."""

from core.providers.recording import NoneProvider, RecordingProvider
from core.providers.vast import VastProvider

__all__ = ["NoneProvider", "RecordingProvider", "VastProvider"]
