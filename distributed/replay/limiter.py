"""Replay-ratio rate limiter: sampled items per inserted env step (GLAMOR: 4), Reverb-style.

Stateless over two counters the caller owns (env steps inserted, items sampled), so it needs no
synchronisation and survives restarts with the counters. Learning starts at ``min_steps``; from
then on the learner may sample up to ``replay_ratio * (inserted - min_steps)`` items, and writers
may run ahead of that target by at most ``tolerance`` batches before they should wait.
"""
from __future__ import annotations

import math


class RateLimiter:
    def __init__(self, replay_ratio: float, min_steps: int, batch_size: int, tolerance: float = 8.0) -> None:
        if not replay_ratio > 0:
            raise ValueError(f"replay_ratio must be > 0, got {replay_ratio}")
        if min_steps < 0 or batch_size < 1 or tolerance < 1:
            raise ValueError(f"need min_steps >= 0, batch_size >= 1, tolerance >= 1 batch; "
                             f"got {min_steps}, {batch_size}, {tolerance}")
        self.replay_ratio, self.min_steps = replay_ratio, min_steps
        self.batch_size, self.tolerance = batch_size, tolerance

    def target_items(self, inserted_steps: int) -> float:
        """Items the learner should have sampled once ``inserted_steps`` env steps are in replay."""
        return max(0.0, self.replay_ratio * (inserted_steps - self.min_steps))

    def updates_allowed(self, inserted_steps: int, sampled_items: int) -> int:
        """Batches the learner may sample now without exceeding the replay ratio."""
        if inserted_steps < self.min_steps:
            return 0
        return max(0, math.floor((self.target_items(inserted_steps) - sampled_items) / self.batch_size))

    def inserts_allowed(self, inserted_steps: int, sampled_items: int) -> int:
        """Env steps writers may still insert before the learner falls more than ``tolerance`` batches behind."""
        ahead = (sampled_items + self.tolerance * self.batch_size) / self.replay_ratio
        return max(0, math.floor(self.min_steps + ahead) - inserted_steps)
