"""The learners' and writers' front over S shards: exact uniform sampling across unequal shards.

Each batch first asks every shard how many valid items it holds, then assigns each batch position
to a shard with probability count_s / total (one uniform integer per position over the total), so
the union of the shards' uniform draws is exactly uniform over all valid items in the service.
Positions are assigned independently, which also scatters each shard's items to random positions.
"""
from __future__ import annotations

from collections import deque
from dataclasses import fields
from typing import Any

import numpy as np

from pixelplan.envs.batches import BatchQuery, PairBatch, SequenceBatch
from pixelplan.envs.trajectory import Trajectory

from .config import ReplayConfig
from .errors import ReplayEmptyError

Batch = PairBatch | SequenceBatch
_SEED_RANGE = 2**63


class PendingBatch:
    """Per-shard sample calls in flight; ``result()`` waits and merges them into one batch."""

    def __init__(self, size: int, parts: list[tuple[np.ndarray, Any]]) -> None:
        self.size, self.parts = size, parts  # (batch positions, pending shard call)

    def result(self, timeout: float | None = None) -> Batch:
        batches = [pending.result(timeout) for _, pending in self.parts]
        if len(batches) == 1:  # every position came from one shard, already in random order
            first = batches[0]  # Ray hands over read-only arrays; torch wants writable ones (copied if not)
            return type(first)(**{f.name: np.require(getattr(first, f.name), requirements="W") for f in fields(first)})
        first = batches[0]
        merged = {}
        for f in fields(first):
            column = getattr(first, f.name)
            out = np.empty((self.size, *column.shape[1:]), column.dtype)
            for (positions, _), batch in zip(self.parts, batches):
                out[positions] = getattr(batch, f.name)
            merged[f.name] = out
        return type(first)(**merged)


class ShardedReplay:
    """Front over shard handles (``handle.call(method, ...).result()``; local or Ray placement)."""

    def __init__(self, handles: list, config: ReplayConfig, first_shard: int = 0, seed: int = 0) -> None:
        """``first_shard``: where this writer's round robin starts (workers pass their index, so a
        fleet's first trajectories spread over the shards instead of all landing on shard 0).
        ``seed``: this reader's sampling stream (each learner rank has its own, see ``seeds.py``)."""
        if len(handles) != config.shards:
            raise ValueError(f"got {len(handles)} shard handles for ReplayConfig.shards={config.shards}")
        self.handles, self.config = list(handles), config
        self._rng = np.random.default_rng(seed)
        self._next_shard = first_shard % len(self.handles)
        # A LocalHandle (it has .obj) runs a call at once: prefetching would only sample early.
        self._in_flight = 0 if all(hasattr(h, "obj") for h in handles) else config.prefetch
        self._queue: deque[PendingBatch] = deque()
        self._queued_for: BatchQuery | None = None

    # -- writing ----------------------------------------------------------------------------------
    def pick_shard(self) -> int:
        """The next shard in this writer's round robin."""
        shard = self._next_shard
        self._next_shard = (shard + 1) % len(self.handles)
        return shard

    def insert_async(self, items: list[bytes | Trajectory], shard: int | None = None):
        """Send trajectories (at most ``config.max_insert_batch``) to ``shard`` (default: the next one, round
        robin) in one call; ``.result()`` acknowledges all of them. A resend goes to the same shard, which
        recognises the copies that did land by their uids."""
        return self.handles[self.pick_shard() if shard is None else shard].call("insert_batch", list(items))

    def insert(self, data: bytes | Trajectory) -> int:
        """Insert one and wait for the ack; returns the transitions stored by the receiving shard."""
        return self.insert_async([data]).result()

    def set_handle(self, shard_id: int, handle) -> None:
        """Point at a restarted shard; batches in flight from the old one are dropped."""
        self.handles[shard_id] = handle
        self._queue.clear()

    # -- reading ----------------------------------------------------------------------------------
    def counts(self, request: BatchQuery) -> np.ndarray:
        pending = [h.call("count", request) for h in self.handles]
        return np.array([p.result() for p in pending], np.int64)

    def start_sample(self, request: BatchQuery, seed: int | None = None) -> PendingBatch:
        """Split one batch over the shards and send the sample calls without waiting for them."""
        rng = np.random.default_rng(self._rng.integers(_SEED_RANGE) if seed is None else seed)
        counts = self.counts(request)
        if counts.sum() == 0:
            raise ReplayEmptyError(f"no valid {request.kind} of length {request.length} in any shard "
                                   f"(transitions per shard: {self._per_shard('num_transitions')})")
        cum = np.cumsum(counts)
        shard_of = np.searchsorted(cum, rng.integers(0, cum[-1], request.batch_size), side="right")
        parts = []
        for shard in np.unique(shard_of):
            positions = np.flatnonzero(shard_of == shard)
            call = self.handles[shard].call("sample", request, len(positions), int(rng.integers(_SEED_RANGE)))
            parts.append((positions, call))
        return PendingBatch(request.batch_size, parts)

    def sample(self, request: BatchQuery, seed: int | None = None) -> Batch:
        """One batch drawn uniformly over every valid item in every shard."""
        return self.start_sample(request, seed).result()

    def next_batch(self, request: BatchQuery) -> Batch:
        """Like ``sample``, with ``config.prefetch`` further batches kept in flight (Ray placement)."""
        if request != self._queued_for:
            self._queue.clear()
            self._queued_for = request
        while len(self._queue) <= self._in_flight:
            self._queue.append(self.start_sample(request))
        try:
            return self._queue.popleft().result()
        except Exception:
            self._queue.clear()  # a shard failed: start afresh on the next call
            raise

    # -- reporting --------------------------------------------------------------------------------
    def num_transitions(self) -> int:
        return sum(self._per_shard("num_transitions"))

    def stats(self) -> dict[str, float]:
        total: dict[str, float] = {"replay/shards": float(len(self.handles))}
        for stats in self._per_shard("stats"):
            for key, value in stats.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def _per_shard(self, method: str) -> list:
        pending = [h.call(method) for h in self.handles]
        return [p.result() for p in pending]
