"""Errors the replay raises on purpose, so callers can tell 'not ready yet' from 'broken'."""
from __future__ import annotations


class ReplayEmptyError(ValueError):
    """Nothing valid to sample yet (empty shard, or no trajectory long enough for the request)."""


class ReplayStoreUnavailable(ConnectionError):
    """The Redis backend cannot be reached; the message names the URL."""


class ReplayDataLost(RuntimeError):
    """Redis no longer holds this run's replay (no persistence across a restart, or flushed): stop, never overwrite."""
