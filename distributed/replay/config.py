"""Replay settings: one frozen config serves every shard, the sharded front and the benchmark."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ReplayConfig:
    capacity: int = 1_000_000  # transitions over all shards (GLAMOR's buffer); each shard holds capacity // shards
    shards: int = 1
    backend: Literal["memory", "redis"] = "memory"  # redis: write-through copy so a restarted shard recovers
    redis_url: str | None = None  # e.g. "redis://127.0.0.1:6379/0"; required for backend="redis"
    namespace: str = "pixelplan"  # Redis key prefix, so a run's shards find their data again
    prefetch: int = 2  # batches ShardedReplay keeps in flight ahead of the learner
    # Discrete envs: actions are 0..num_actions-1, END = num_actions, PAD = num_actions + 1 in pair
    # batches. Required for pair sampling; when set, inserted actions are checked against it.
    num_actions: int | None = None
    # A T-step episode needs T+1 frames: the frame ring holds capacity * (1 + frame_overhead) frames,
    # so episodes shorter than 1 / frame_overhead steps fill the frames before the transitions.
    frame_overhead: float = 1 / 32

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards must be >= 1, got {self.shards}")
        if self.capacity < self.shards:
            raise ValueError(f"capacity {self.capacity} leaves no room per shard for {self.shards} shards")
        if self.backend not in ("memory", "redis"):
            raise ValueError(f"backend must be 'memory' or 'redis', got {self.backend!r}")
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("backend='redis' needs redis_url, e.g. 'redis://127.0.0.1:6379/0'")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {self.prefetch}")
        if self.num_actions is not None and self.num_actions < 1:
            raise ValueError(f"num_actions must be >= 1 or None, got {self.num_actions}")
        if self.frame_overhead < 0:
            raise ValueError(f"frame_overhead must be >= 0, got {self.frame_overhead}")
        if not self.namespace:
            raise ValueError("namespace must be a non-empty string")

    @property
    def shard_capacity(self) -> int:
        return self.capacity // self.shards

    @property
    def shard_frame_slots(self) -> int:
        return self.shard_capacity + max(1, int(self.shard_capacity * self.frame_overhead))

    @classmethod
    def tiny(cls, **overrides) -> ReplayConfig:
        """Small buffer for CPU tests."""
        return cls(**{"capacity": 5_000, "prefetch": 1, **overrides})
