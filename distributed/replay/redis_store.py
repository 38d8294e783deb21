"""Write-through Redis copy of one shard: compressed trajectories plus their order.

Keys under ``{namespace}:replay:{shard_id}:``: ``t:{seq}`` holds ``Trajectory.to_bytes()`` (zstd),
``index`` is a list of live seqs oldest first, ``counters`` a hash of lifetime totals. One
MULTI/EXEC per insert adds the new trajectory and removes the evicted ones, so Redis never holds a
half-applied insert, and the shard acknowledges only after EXEC returned.
"""
from __future__ import annotations

from collections.abc import Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ReplayStoreUnavailable

_READ_CHUNK = 32  # trajectories per pipelined read while recovering (long pipelines are slower)


class RedisTrajectoryStore:
    def __init__(self, url: str, namespace: str, shard_id: int) -> None:
        self.url = url
        self.prefix = f"{namespace}:replay:{shard_id}:"
        # No retries: a failed write must surface at once, and a blind resend could apply twice.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=30.0,
                                           retry=Retry(NoBackoff(), 0))
        self._guard(self.client.ping)

    def _key(self, seq: int) -> str:
        return f"{self.prefix}t:{seq}"

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ReplayStoreUnavailable(f"Redis replay store at {self.url} is unreachable: {exc}") from exc

    def write(self, seq: int, data: bytes, transitions: int, evicted: list[int]) -> None:
        """Atomically append trajectory ``seq`` and drop the ``evicted`` (oldest) ones."""
        def run() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self._key(seq), data)
            pipe.rpush(self.prefix + "index", seq)
            pipe.hincrby(self.prefix + "counters", "inserts", 1)
            pipe.hincrby(self.prefix + "counters", "inserted_steps", transitions)
            self._queue_evictions(pipe, evicted)
            pipe.execute()
        self._guard(run)

    def evict(self, evicted: list[int]) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=True)
            self._queue_evictions(pipe, evicted)
            pipe.execute()
        if evicted:
            self._guard(run)

    def _queue_evictions(self, pipe, evicted: list[int]) -> None:
        if evicted:
            pipe.delete(*(self._key(s) for s in evicted))
            pipe.ltrim(self.prefix + "index", len(evicted), -1)

    def counters(self) -> dict[str, int]:
        raw = self._guard(self.client.hgetall, self.prefix + "counters")
        return {k.decode(): int(v) for k, v in raw.items()}

    def load(self) -> Iterator[tuple[int, bytes]]:
        """(seq, bytes) of every stored trajectory, oldest first."""
        seqs = [int(s) for s in self._guard(self.client.lrange, self.prefix + "index", 0, -1)]
        for lo in range(0, len(seqs), _READ_CHUNK):
            chunk = seqs[lo:lo + _READ_CHUNK]
            blobs = self._guard(self.client.mget, [self._key(s) for s in chunk])
            for seq, blob in zip(chunk, blobs):
                if blob is None:
                    raise RuntimeError(f"Redis replay store at {self.url}: index lists {self._key(seq)} but it is gone")
                yield seq, blob

    def close(self) -> None:
        self.client.close()
