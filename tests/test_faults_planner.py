"""Fault case: the planner is killed mid-run with gRPC clients attached (real Ray, real redis-server)."""
import pytest

from pixelplan.bench._faults_planner import run_planner_kill_case

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]


def test_killed_planner_comes_back_on_its_address_with_the_last_weights_and_loses_nothing():
    result = run_planner_kill_case(quick=True)
    assert result["client_errors"] == []
    # By identity (trajectory uid): every trajectory a client or a worker had acknowledged is in Redis exactly once.
    assert result["client_trajectories"] >= 12
    assert result["recovered"] == result["acknowledged"] and result["lost"] == 0 and result["duplicated"] == 0
    # The planner really went away, then answered again on the same address, never with older weights.
    assert result["calls_refused_during_outage"] >= 1 and result["answers_after_kill"] >= 6
    assert result["same_grpc_address"]
    assert result["min_version_after_kill"] >= result["version_at_kill"] >= 5
    # Training went on to the end and left checkpoints; the workers' own trajectories are there too.
    assert result["training_finished"] and result["checkpoints"] >= 1 and result["env_steps"] >= 3000
    assert result["worker_trajectories"] > 0 and result["ok"]
