"""Fault injection against a real redis-server (local mode, real processes): checked by trajectory uid.

Each case (bench/faults.py, also run by ``python -m pixelplan.bench faults``) compares the uids of
every trajectory replay acknowledged with the uids Redis holds afterwards.
"""
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
