"""The sharded front: round-robin inserts, prefetching, handle replacement, summed stats."""
import numpy as np
import pytest

from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.replay import ReplayConfig, ReplayShard, ShardedReplay
from pixelplan.envs.batches import BatchQuery

PAIRS = BatchQuery("pairs", 32, 5)


class DeferredHandle:
    """Like a RayHandle: a call runs only when its result is awaited, so calls can be in flight."""

    def __init__(self, obj) -> None:
        self.target, self.waiting = obj, []

    def call(self, method, *args):
        handle = self

        class Pending:
            def result(self, timeout=None):
                handle.waiting.remove(self)
                return getattr(handle.target, method)(*args)

        pending = Pending()
        self.waiting.append(pending)
        return pending


def make(synth, handle_cls=LocalHandle, shards=2, prefetch=2, first_shard=0):
    config = ReplayConfig(capacity=400, shards=shards, num_actions=4, prefetch=prefetch)
    handles = [handle_cls(ReplayShard(config, s)) for s in range(shards)]
    replay = ShardedReplay(handles, config, first_shard)
    for tag in range(6):
        replay.insert(synth.trajectory(10 + tag, tag))
    return replay, handles


def shard_tags(synth, handles) -> list[list[int]]:
    return [sorted(set(synth.decode(h.obj.sample(BatchQuery("windows", 0, 1), 500, 0).obs[:, 0])[0].tolist()))
            for h in handles]


def test_inserts_go_round_robin_and_stats_are_summed(synth):
    replay, handles = make(synth)
    assert shard_tags(synth, handles) == [[0, 2, 4], [1, 3, 5]]
    stats = replay.stats()
    assert stats["replay/transitions"] == replay.num_transitions() == sum(10 + t for t in range(6))
    assert stats["replay/inserts"] == 6 and stats["replay/shards"] == 2


def test_a_writer_starts_its_round_robin_at_its_first_shard(synth):
    _, handles = make(synth, shards=3, first_shard=4)  # worker 4 of a fleet: starts at shard 4 % 3 = 1
    assert shard_tags(synth, handles) == [[2, 5], [0, 3], [1, 4]]


def test_prefetch_keeps_batches_in_flight_with_remote_handles(synth):
    replay, handles = make(synth, DeferredHandle, prefetch=2)
    for _ in range(3):
        batch = replay.next_batch(PAIRS)
        assert len(batch) == 32
        in_flight = {id(p) for _, p in (part for pending in replay._queue for part in pending.parts)}
        assert len(replay._queue) == 2 and len(in_flight) == sum(len(h.waiting) for h in handles)
    local, _ = make(synth, LocalHandle, prefetch=2)
    local.next_batch(PAIRS)
    assert len(local._queue) == 0  # in-process calls finish at once: nothing to prefetch


def test_same_seed_same_batch_and_batches_merge_in_random_positions(synth):
    replay, _ = make(synth)
    a, b = replay.sample(PAIRS, seed=9), replay.sample(PAIRS, seed=9)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("obs", "goals", "actions", "lengths"))
    shard_of = synth.decode(a.obs)[0] % 2  # even tags live in shard 0
    assert 0 < shard_of.sum() < 32 and not np.all(np.diff(shard_of) >= 0)  # interleaved, not concatenated


def test_replaced_handle_is_used_and_a_failed_shard_surfaces(synth):
    replay, handles = make(synth)

    class Broken:
        def count(self, request):
            raise RuntimeError("shard down")

    replay.set_handle(1, LocalHandle(Broken()))
    with pytest.raises(RuntimeError, match="shard down"):
        replay.next_batch(PAIRS)
    replay.set_handle(1, handles[1])
    assert len(replay.next_batch(PAIRS)) == 32
