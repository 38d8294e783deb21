"""Fault injection against a real redis-server (local mode, real processes): checked by trajectory uid.

Each case (bench/faults.py, also run by ``python -m pixelplan.bench faults``) compares the uids of
every trajectory replay acknowledged with the uids Redis holds afterwards.
"""
import dataclasses

import pytest

from pixelplan.bench import faults

pytestmark = pytest.mark.redis


def assert_every_acknowledged_once(result: dict) -> None:
    assert result["acknowledged"] > 0
    assert result["missing_uids"] == [] and result["lost"] == 0, result
    assert result["duplicated_uids"] == [] and result["duplicated"] == 0 and result["acked_twice"] == 0, result
    assert result["recovered"] == result["acknowledged"]


def test_redis_killed_and_restarted_with_appendonly_loses_and_doubles_nothing():
    result = faults.redis_restart_case(quick=True)
    assert_every_acknowledged_once(result)
    assert result["insert_resends"] > 0  # the outage hit inserts in flight, and they were resent
    assert result["training_continued"]


def test_outage_past_the_limit_stops_with_a_checkpoint_then_resume_finishes():
    result = faults.redis_outage_case(quick=True)
    assert result["stopped_with_checkpoint"], result["message"]
    assert "\n" not in result["message"] and "unreachable" in result["message"]
    assert_every_acknowledged_once(result)
    assert result["resumed_to_the_end"]


def test_redis_restarted_without_persistence_is_detected_and_never_written_over():
    result = faults.redis_lost_case(quick=True)
    assert result["detected"], result["message"]
    assert "appendonly yes" in result["message"] and "checkpoint" in result["message"]
    assert result["keys_written_after_loss"] == 0
    assert result["acknowledged"] > 0 and result["recovered"] == 0  # Redis lost them: said, not hidden


def test_a_corrupt_blob_is_skipped_counted_and_set_aside_and_the_shard_stays_consistent():
    result = faults.corrupt_blob_case(quick=True)
    assert_every_acknowledged_once(result)  # every acknowledged trajectory but the corrupted one
    assert result["corrupt_skipped"] == 1 and result["victim_held"] == 0 and result["set_aside_in_redis"]
    assert result["inserts_and_samples_after"]


def test_each_run_gets_its_own_keys_and_resume_gets_its_contents_back(redis_server, tmp_path):
    from pixelplan.distributed.coordinator import Coordinator, train

    first = faults.run_config(tmp_path / "a", redis_server.url, 600)
    train(first)
    kept = faults.stored_uids(redis_server.url, faults.saved_replay(tmp_path / "a"))
    assert set(faults.acked_uids(tmp_path / "a")) <= set(kept) and max(kept.values()) == 1
    for out, env in ((tmp_path / "b", "grid"), (tmp_path / "c", "grid:four-rooms")):  # same Redis, fresh runs
        coordinator = Coordinator(dataclasses.replace(faults.run_config(out, redis_server.url, 600), env=env))
        try:
            assert coordinator.replay.num_transitions() == 0  # nothing of run a, whatever its env
            assert coordinator.run.replay.run_id != faults.saved_replay(tmp_path / "a").run_id
        finally:
            coordinator.close()
    resumed = Coordinator(dataclasses.replace(first, resume=str(tmp_path / "a"), steps=900))
    try:
        held = [uid for shard in resumed.shards for uid in shard.obj.trajectory_ids()]
        assert sorted(held) == sorted(kept)  # the same trajectories, by identity, once each
    finally:
        resumed.close()


def _shard(server, run_id=None):
    from pixelplan.distributed.replay import ReplayConfig, ReplayShard

    return ReplayShard(ReplayConfig(capacity=500, num_actions=4, backend="redis", redis_url=server.url,
                                    namespace="live", run_id=run_id), 0)


def test_a_flushed_redis_is_noticed_by_the_live_shard_and_never_written_over(redis_server, synth):
    import redis

    from pixelplan.distributed.replay import ReplayShard
    from pixelplan.distributed.replay.errors import ReplayDataLost
    from pixelplan.distributed.replay.redis_store import create_run

    create_run(redis_server.url, "live:r1", 1)
    shard = _shard(redis_server, "r1")
    shard.insert(synth.trajectory(10, 0))
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # same connection, no restart: only the run marker can tell
    with pytest.raises(ReplayDataLost, match="lost this run's replay data.*appendonly yes"):
        shard.insert(synth.trajectory(10, 1))
    assert client.keys("*") == [] and shard.num_transitions() == 10
    with pytest.raises(ReplayDataLost):  # a restarted shard of the run refuses to start afresh
        ReplayShard(shard.config, 0)
    assert client.keys("*") == []


def test_two_writers_of_one_shard_never_reuse_a_sequence_number(redis_server, synth):
    import redis

    from pixelplan.distributed.replay import ReplayStoreUnavailable

    first, second = _shard(redis_server), _shard(redis_server)  # e.g. a zombie and its restarted copy
    a, b, c = (synth.trajectory(10 + i, i) for i in range(3))
    first.insert(a)
    for writer, traj in ((second, b), (first, c)):  # each believes a seq the other has used: Redis refuses
        with pytest.raises(ReplayStoreUnavailable, match="already used sequence"):
            writer.insert(traj)
        writer.insert(traj)  # the worker's resend: the shard resyncs from Redis first, then writes
    client = redis.Redis.from_url(redis_server.url)
    seqs = [int(s) for s in client.lrange("live:replay:0:index", 0, -1)]
    assert seqs == sorted(set(seqs)) and len(seqs) == 3
    held = _shard(redis_server).trajectory_ids()
    assert sorted(held) == sorted([a.uid, b.uid, c.uid])  # each once, none written over
