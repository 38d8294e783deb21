"""Bad input gets a clear error and changes nothing."""
import dataclasses

import numpy as np
import pytest

from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.replay import ReplayConfig, ReplayEmptyError, ReplayShard, ShardedReplay
from pixelplan.envs.batches import BatchQuery
from pixelplan.envs.trajectory import TrajectoryError

PAIRS = BatchQuery("pairs", 4, 5)


@pytest.fixture
def shard(synth):
    shard = ReplayShard(ReplayConfig(capacity=100, num_actions=4), 0)
    shard.insert(synth.trajectory(10, stack=2))
    return shard


@pytest.mark.parametrize("change, message", [
    ({"frame_shape": (3, 2, 1)}, "frames"),
    ({"dtype": np.float32}, "frames"),
    ({"stack": 4}, "stack"),
])
def test_trajectories_unlike_the_stored_ones_are_refused(shard, synth, change, message):
    with pytest.raises(ValueError, match=message):
        shard.insert(synth.trajectory(10, **{"stack": 2, **change}))
    assert shard.num_transitions() == 10


def test_wrong_action_kind_or_range_is_refused(shard, synth):
    traj = synth.trajectory(10, stack=2)
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        shard.insert(dataclasses.replace(traj, actions=traj.actions + 10))
    continuous = dataclasses.replace(traj, actions=np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match=r"actions float32 \(2,\) \(expected int64 \(\)\)"):
        shard.insert(continuous)
    with pytest.raises(ValueError, match="not discrete"):
        ReplayShard(shard.config, 0).insert(continuous)
    with pytest.raises(ValueError, match="finite"):
        shard.insert(dataclasses.replace(traj, rewards=np.full(10, np.nan, np.float32)))
    assert shard.num_transitions() == 10


def test_empty_too_long_corrupt_or_foreign_input_is_refused(shard, synth):
    traj = synth.trajectory(10, stack=2)
    with pytest.raises(TrajectoryError, match="empty"):
        dataclasses.replace(traj, frames=traj.frames[:1], actions=traj.actions[:0], rewards=traj.rewards[:0],
                            terminals=traj.terminals[:0], features=traj.features[:1])
    with pytest.raises(ValueError, match="does not fit a shard of capacity 100"):
        shard.insert(synth.trajectory(101, stack=2))
    data = traj.to_bytes()
    with pytest.raises(TrajectoryError, match="checksum"):
        shard.insert(data[:-3])
    with pytest.raises(TypeError, match="Trajectory or its to_bytes"):
        shard.insert({"frames": traj.frames})
    traj.frames = traj.frames[:5]  # mutated after construction: re-validated on insert
    with pytest.raises(TrajectoryError, match="frames has length 5"):
        shard.insert(traj)
    assert shard.num_transitions() == 10


def test_sampling_with_nothing_valid_says_why(synth):
    shard = ReplayShard(ReplayConfig(capacity=100, num_actions=4), 0)
    with pytest.raises(ReplayEmptyError, match="empty"):
        shard.sample(PAIRS, 4, seed=0)
    shard.insert(synth.trajectory(6))
    with pytest.raises(ReplayEmptyError, match="no valid windows of length 7"):
        shard.sample(BatchQuery("windows", 4, 7), 4, seed=0)
    replay = ShardedReplay([LocalHandle(shard)], shard.config)
    with pytest.raises(ReplayEmptyError, match="any shard"):
        replay.sample(BatchQuery("windows", 4, 7))


@pytest.mark.parametrize("request_, message", [
    (BatchQuery("triples", 4, 5), "kind"),
    (BatchQuery("pairs", 4, 0), "length"),
    (BatchQuery("pairs", 4, 5, cross_episodes=True), "windows only"),
])
def test_malformed_requests_are_refused(shard, request_, message):
    with pytest.raises(ValueError, match=message):
        shard.sample(request_, 4, seed=0)


def test_pairs_need_the_action_count_and_configs_are_checked(synth):
    shard = ReplayShard(ReplayConfig(capacity=100), 0)
    shard.insert(synth.trajectory(6))
    with pytest.raises(ValueError, match="num_actions"):
        shard.sample(PAIRS, 4, seed=0)
    with pytest.raises(ValueError, match="redis_url"):
        ReplayConfig(backend="redis")
    with pytest.raises(ValueError, match="shard_id"):
        ReplayShard(ReplayConfig(shards=2), 2)
    with pytest.raises(ValueError, match="3 shard handles"):
        ShardedReplay([LocalHandle(shard)] * 3, ReplayConfig())


def test_a_batch_with_one_bad_trajectory_stores_none_of_it(synth):
    shard = ReplayShard(ReplayConfig(capacity=100, num_actions=4), 0)
    good, unlike = synth.trajectory(10, 1, stack=2), synth.trajectory(10, 2, stack=4)
    with pytest.raises(ValueError, match="stack"):  # the shard is empty: the batch's first sets the schema
        shard.insert_batch([good.to_bytes(), unlike])
    with pytest.raises(TrajectoryError, match="checksum"):
        shard.insert_batch([good, good.to_bytes()[:-3]])
    assert shard.num_transitions() == 0 and shard.stats()["replay/inserts"] == 0
    with pytest.raises(ValueError, match="1 to 3 trajectories"):
        ReplayShard(ReplayConfig(capacity=100, num_actions=4, max_insert_batch=3), 0).insert_batch([good] * 4)
    with pytest.raises(ValueError, match="1 to 16 trajectories"):
        shard.insert_batch([])
    assert shard.insert_batch([good, synth.trajectory(5, 3, stack=2)]) == 15


def test_a_resent_batch_stores_each_trajectory_once(synth):
    shard = ReplayShard(ReplayConfig(capacity=100, num_actions=4), 0)
    batch = [dataclasses.replace(synth.trajectory(n, n), uid=f"episode-{n}").to_bytes() for n in (3, 4, 5)]
    shard.insert_batch(batch[:2])  # the first two landed, then the writer heard nothing and resends all
    assert shard.insert_batch(batch) == 12
    assert shard.stats()["replay/duplicates"] == 2 and len(shard.trajectory_ids()) == 3
