"""Sharded replay: uniform all-pairs relabeling and windows over trajectories, in memory or Redis.

Imports only ``pixelplan.envs``; never Ray. Pair batches use
END = num_actions and PAD = num_actions + 1 (see ``sampling.end_token`` / ``pad_token``).
"""
from .config import ReplayConfig
from .errors import ReplayEmptyError, ReplayStoreUnavailable
from .limiter import RateLimiter
from .sampling import end_token, pad_token
from .shard import ReplayShard
from .sharded import PendingBatch, ShardedReplay

__all__ = ["PendingBatch", "RateLimiter", "ReplayConfig", "ReplayEmptyError", "ReplayShard",
           "ReplayStoreUnavailable", "ShardedReplay", "end_token", "pad_token"]
