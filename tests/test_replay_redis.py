"""Redis backend against a real redis-server: recovery, eviction in Redis, faults."""
import dataclasses

import numpy as np
import pytest
import redis

from pixelplan.distributed.replay import ReplayConfig, ReplayShard, ReplayStoreUnavailable
from pixelplan.envs.batches import BatchQuery

pytestmark = pytest.mark.redis
PAIRS = BatchQuery("pairs", 64, 6)
WINDOWS = BatchQuery("windows", 64, 4, cross_episodes=True)


def config(server, **kw) -> ReplayConfig:
    return ReplayConfig(**{"capacity": 2 * 120, "shards": 2, "backend": "redis", "redis_url": server.url,
                           "num_actions": 4, "namespace": "t", **kw})


def batches_equal(a, b) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) and
               getattr(a, f.name).dtype == getattr(b, f.name).dtype for f in dataclasses.fields(a))


def test_restarted_shard_recovers_contents_order_and_samples_byte_for_byte(redis_server, synth):
    cfg = config(redis_server)
    shard = ReplayShard(cfg, 1)
    memory = ReplayShard(dataclasses.replace(cfg, backend="memory"), 1)
    for tag, length in enumerate([30, 7, 55, 12, 40, 3, 25, 33]):  # 205 steps: the ring wraps, 3 evicted
        traj = synth.trajectory(length, tag, stack=4)
        shard.insert(traj if tag % 2 else traj.to_bytes())
        memory.insert(traj)
    before = [shard.sample(r, 200, seed=5) for r in (PAIRS, WINDOWS)]
    stats = shard.stats()
    shard.close()

    again = ReplayShard(cfg, 1)
    after = [again.sample(r, 200, seed=5) for r in (PAIRS, WINDOWS)]
    assert all(batches_equal(a, b) for a, b in zip(before, after))
    assert all(batches_equal(a, memory.sample(r, 200, seed=5)) for a, r in zip(before, (PAIRS, WINDOWS)))
    for key in ("replay/transitions", "replay/trajectories", "replay/inserts", "replay/inserted_steps"):
        assert again.stats()[key] == stats[key]
    assert ReplayShard(cfg, 0).num_transitions() == 0  # another shard id: its own (empty) data


def test_eviction_deletes_from_redis(redis_server, synth):
    shard = ReplayShard(config(redis_server), 0)
    for tag in range(10):
        shard.insert(synth.trajectory(29, tag))  # 4 fit: 116 transitions, 120 of 123 frame slots
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("t:replay:0:t:*")
    assert sorted(int(k.rsplit(b":", 1)[1]) for k in keys) == [6, 7, 8, 9] == shard._ring.seqs.tolist()
    assert [int(s) for s in client.lrange("t:replay:0:index", 0, -1)] == [6, 7, 8, 9]


def test_smaller_capacity_on_restart_evicts_in_memory_and_redis(redis_server, synth):
    shard = ReplayShard(config(redis_server), 0)
    for tag in range(4):
        shard.insert(synth.trajectory(30, tag))
    smaller = ReplayShard(config(redis_server, capacity=2 * 70), 0)
    assert smaller.num_transitions() == 60
    assert ReplayShard(config(redis_server), 0).num_transitions() == 60


def test_unreachable_or_killed_redis_gives_a_connection_error_naming_the_url(redis_server, synth):
    shard = ReplayShard(config(redis_server), 0)
    shard.insert(synth.trajectory(10))
    redis_server.stop()
    with pytest.raises(ConnectionError, match=redis_server.url.replace(".", r"\.")) as caught:
        shard.insert(synth.trajectory(10, 1))
    assert isinstance(caught.value, ReplayStoreUnavailable)
    assert shard.num_transitions() == 10  # not acknowledged, not stored
    with pytest.raises(ReplayStoreUnavailable):  # the retry first resyncs from Redis: still down
        shard.insert(synth.trajectory(10, 2))
    assert shard.num_transitions() == 10 and len(shard.sample(WINDOWS, 5, seed=0)) == 5  # still serves samples
    with pytest.raises(ReplayStoreUnavailable, match="unreachable"):
        ReplayShard(config(redis_server), 0)


def test_write_with_unknown_outcome_resyncs_from_redis_without_duplicates(redis_server, synth, monkeypatch):
    shard = ReplayShard(config(redis_server), 0)
    shard.insert(synth.trajectory(10, 0))
    real_write = shard._store.write

    def write_then_lose_reply(*args):
        real_write(*args)
        raise ReplayStoreUnavailable(f"reply from {redis_server.url} lost")

    monkeypatch.setattr(shard._store, "write", write_then_lose_reply)
    with pytest.raises(ReplayStoreUnavailable):
        shard.insert(synth.trajectory(20, 1))
    monkeypatch.setattr(shard._store, "write", real_write)
    shard.insert(synth.trajectory(5, 2))
    assert shard._ring.seqs.tolist() == [0, 1, 2] and shard.num_transitions() == 35
    assert ReplayShard(config(redis_server), 0)._ring.seqs.tolist() == [0, 1, 2]
