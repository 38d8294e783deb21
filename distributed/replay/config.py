"""Replay settings: one frozen config serves every shard, the sharded front and the benchmark."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from .credentials import redact_url


@dataclass(frozen=True)
class ReplayConfig:
    capacity: int = 1_000_000  # transitions over all shards (GLAMOR's buffer); each shard holds capacity // shards
    shards: int = 1
    backend: Literal["memory", "redis"] = "memory"  # redis: write-through copy so a restarted shard recovers
    # e.g. "redis://127.0.0.1:6379/0"; required for backend="redis". A password is better given through
    # PIXELPLAN_REDIS_PASSWORD(_FILE) (see credentials.py); one in the URL is masked wherever it is written.
    redis_url: str | None = field(default=None, repr=False)
    namespace: str = "pixelplan"  # Redis key prefix, so a run's shards find their data again
    # Scopes Redis keys to one run (the coordinator draws one per fresh run; --resume reuses it), so a new
    # run never starts with an old run's transitions. With a run_id the shards never create their data:
    # a missing run marker means Redis lost it.
    run_id: str | None = None
    outage_limit_s: float = 60.0  # writers retry an unreachable Redis this long before the run stops
    max_trajectory_bytes: int = 1 << 28  # decompressed size limit of one trajectory before a shard knows its schema
    # Trajectories per insert call: a writer sends the episodes it finished since its last call together (each
    # call costs the writer and the shard ~1 ms of CPU on top of the data); a shard refuses larger batches.
    max_insert_batch: int = 16
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
        if self.run_id is not None and not (self.run_id.isascii() and self.run_id.replace("-", "").isalnum()):
            raise ValueError(f"run_id must be letters, digits and '-', got {self.run_id!r}")
        if not self.outage_limit_s >= 0:
            raise ValueError(f"outage_limit_s must be >= 0, got {self.outage_limit_s}")
        if self.max_trajectory_bytes < 1:
            raise ValueError(f"max_trajectory_bytes must be >= 1, got {self.max_trajectory_bytes}")
        if self.max_insert_batch < 1:
            raise ValueError(f"max_insert_batch must be >= 1, got {self.max_insert_batch}")

    @property
    def key_prefix(self) -> str:
        """Where this run's replay lives in Redis."""
        return f"{self.namespace}:{self.run_id}" if self.run_id else self.namespace

    def public(self) -> ReplayConfig:
        """This config with the Redis password masked: what run folders, checkpoints and errors show."""
        return dataclasses.replace(self, redis_url=redact_url(self.redis_url))

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
