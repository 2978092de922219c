"""State stores behind the feature engine: in memory (backtests, unit tests) and Redis (live)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fraudstream.stream.state.base import StateStore, Windows
from fraudstream.stream.state.memory import MemoryStore

if TYPE_CHECKING:
    from fraudstream.config import Settings
    from fraudstream.stream.state.redis_store import RedisStore

__all__ = ["MemoryStore", "StateStore", "Windows", "open_redis_store", "windows_for"]


def open_redis_store(settings: Settings, windows: Windows | None = None) -> RedisStore:
    """A Redis-backed store for settings.redis_url (cluster when settings.redis_cluster).

    (Not named after its module `redis_store`: importing that submodule would rebind the name.)"""
    from fraudstream.stream.state.redis_store import RedisStore, connect

    if windows is None:
        windows = windows_for(settings)
    return RedisStore(connect(settings), settings.redis_key_prefix, windows)


def windows_for(settings: Settings) -> Windows:
    """Window retentions for the settings' allowed lateness and label delay."""
    return Windows.for_delays(int(settings.allowed_lateness.total_seconds() * 1000),
                              int(settings.label_delay.total_seconds() * 1000))
