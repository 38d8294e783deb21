"""Write-through Redis copy of one shard: compressed trajectories plus their order.

Keys under ``{key_prefix}:replay:{shard_id}:``: ``t:{seq}`` holds ``Trajectory.to_bytes()`` (zstd),
``index`` is a list of live seqs oldest first, ``counters`` a hash of lifetime totals, ``marker``
the run marker and ``bad:{seq}`` blobs set aside because they did not decode. One Lua script per
insert checks the marker and the sequence number, then adds the new trajectory and removes the
evicted ones, atomically: Redis never holds a half-applied insert, a Redis that lost its data
(restarted without persistence, flushed) is noticed instead of written over, and a sequence
number is never used twice. The shard acknowledges only after the script returned.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .credentials import redact_url, url_password, without_password
from .errors import ReplayDataLost, ReplayStoreUnavailable

_READ_CHUNK = 32  # trajectories per pipelined read while recovering (long pipelines are slower)

# KEYS: marker, index, counters, new trajectory, evicted trajectories...; ARGV: marker value, seq, blob, steps
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('PIXELPLAN_LOST') end
if tonumber(redis.call('HGET', KEYS[3], 'inserts') or '0') ~= tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[4]) == 1 then
  return redis.error_reply('PIXELPLAN_SEQ')
end
redis.call('SET', KEYS[4], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'inserts', 1)
redis.call('HINCRBY', KEYS[3], 'inserted_steps', ARGV[4])
for i = 5, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('LREM', KEYS[2], 1, string.match(KEYS[i], '(%d+)$'))
end
return 1
"""
# KEYS: index, then per bad seq its key and its quarantine key; ARGV: the seqs
_QUARANTINE = """
for i, seq in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[2 * i]) == 1 then redis.call('RENAME', KEYS[2 * i], KEYS[2 * i + 1]) end
  redis.call('LREM', KEYS[1], 1, seq)
end
return #ARGV
"""


class SequenceConflict(ReplayStoreUnavailable):
    """Redis already holds this sequence number (another writer, or a stale shard): resynchronise first."""


class RedisTrajectoryStore:
    def __init__(self, url: str, key_prefix: str, shard_id: int, create: bool = True) -> None:
        """``create``: start this shard's data if Redis holds none; else a missing marker is ReplayDataLost."""
        self.url = redact_url(url)  # errors and logs name the server, never the password
        self.prefix = f"{key_prefix}:replay:{shard_id}:"
        # No retries: a failed write must surface at once (the writer resends; the marker and the
        # sequence check make a resend safe).
        self.client = connect(url, socket_timeout=30.0, retry=Retry(NoBackoff(), 0))
        self._write = self.client.register_script(_WRITE)
        self._quarantine = self.client.register_script(_QUARANTINE)
        self.marker = self._guard(self._open_marker, create)

    def _key(self, seq: int) -> str:
        return f"{self.prefix}t:{seq}"

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except redis.AuthenticationError as exc:  # a subclass of ConnectionError
            raise ValueError(f"Redis replay store at {self.url} refused the credentials: {exc}") from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ReplayStoreUnavailable(f"Redis replay store at {self.url} is unreachable: {exc}") from exc

    def _open_marker(self, create: bool) -> str:
        key = self.prefix + "marker"
        if create and not self.client.exists(self.prefix + "counters"):
            self.client.set(key, uuid.uuid4().hex, nx=True)
        marker = self.client.get(key)
        if marker is None:
            raise self._lost()
        return marker.decode()

    def _lost(self) -> ReplayDataLost:
        return ReplayDataLost(f"Redis at {self.url} lost this run's replay data ({self.prefix}marker is gone): it "
                              "restarted without persistence or was flushed. Run Redis with `appendonly yes`; "
                              "nothing was written over")

    def write(self, seq: int, data: bytes, transitions: int, evicted: list[int]) -> None:
        """Atomically append trajectory ``seq`` and drop the ``evicted`` (oldest) ones."""
        keys = [self.prefix + "marker", self.prefix + "index", self.prefix + "counters", self._key(seq),
                *(self._key(s) for s in evicted)]
        try:
            self._guard(self._write, keys, [self.marker, seq, data, transitions])
        except redis.ResponseError as exc:
            if "PIXELPLAN_LOST" in str(exc):
                raise self._lost() from None
            if "PIXELPLAN_SEQ" in str(exc):
                raise SequenceConflict(f"Redis at {self.url} already used sequence {seq} of {self.prefix}: "
                                       "resynchronising this shard") from None
            raise

    def evict(self, evicted: list[int]) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*(self._key(s) for s in evicted))
            for seq in evicted:
                pipe.lrem(self.prefix + "index", 1, seq)
            pipe.execute()
        if evicted:
            self._guard(run)

    def quarantine(self, seqs: list[int]) -> None:
        """Set undecodable blobs aside under ``bad:{seq}`` (kept for inspection) and out of the index."""
        keys = [self.prefix + "index"]
        for seq in seqs:
            keys += [self._key(seq), f"{self.prefix}bad:{seq}"]
        if seqs:
            self._guard(self._quarantine, keys, seqs)

    def counters(self) -> dict[str, int]:
        raw = self._guard(self.client.hgetall, self.prefix + "counters")
        return {k.decode(): int(v) for k, v in raw.items()}

    def load(self) -> Iterator[tuple[int, bytes | None]]:
        """(seq, bytes) of every stored trajectory, oldest first (None: listed but gone)."""
        if self._guard(self.client.get, self.prefix + "marker") is None:
            raise self._lost()
        seqs = [int(s) for s in self._guard(self.client.lrange, self.prefix + "index", 0, -1)]
        for lo in range(0, len(seqs), _READ_CHUNK):
            chunk = seqs[lo:lo + _READ_CHUNK]
            yield from zip(chunk, self._guard(self.client.mget, [self._key(s) for s in chunk]))

    def close(self) -> None:
        self.client.close()


def connect(url: str, **kwargs) -> redis.Redis:
    """A client for ``url`` with its password from the URL, the environment or a file (credentials.py)."""
    return redis.Redis.from_url(without_password(url), password=url_password(url), socket_connect_timeout=2.0,
                                **kwargs)


def create_run(url: str, key_prefix: str, shards: int) -> None:
    """Start a run's replay in Redis (its shards' markers): shards of a run with a run_id never do."""
    client = connect(url)
    try:
        for shard_id in range(shards):
            client.set(f"{key_prefix}:replay:{shard_id}:marker", uuid.uuid4().hex, nx=True)
    except redis.AuthenticationError as exc:
        raise ValueError(f"Redis replay store at {redact_url(url)} refused the credentials: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ReplayStoreUnavailable(f"Redis replay store at {redact_url(url)} is unreachable: {exc}") from exc
    finally:
        client.close()
