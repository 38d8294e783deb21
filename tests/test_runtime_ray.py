"""The same loop on a real local Ray cluster: kill tests, gRPC, data-parallel learners."""
import dataclasses
import threading
import time
from collections import Counter

import numpy as np
import pytest

from pixelplan.bench.faults import Background, acked_uids
from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.coordinator import Coordinator
from pixelplan.distributed.replay.config import ReplayConfig
from pixelplan.distributed.runtime import start_ray

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster():
    start_ray(num_cpus=8, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
              namespace="pixelplan-tests")
    yield
    ray.shutdown()


def _config(tmp_path, **kw) -> RunConfig:
    base = RunConfig(agent="stub", env="grid", steps=4000, seed=1, mode="ray", workers=2, out=str(tmp_path / "run"),
                     progress=False, eval_every=0, eval_episodes=5, checkpoint_every=10_000, sync_every=5,
                     worker_chunk=50, log_every_s=0.5, agent_overrides={"min_steps_learn": 200, "batch_size": 8})
    return dataclasses.replace(base, **kw)


def test_killed_worker_is_restarted_and_training_goes_on(ray_cluster, tmp_path):
    run = Background(_config(tmp_path))
    run.wait_for("updates", 5)
    steps_before = run.coordinator.counters["env_steps"]
    ray.kill(run.coordinator.workers[0].actor, no_restart=False)
    run.wait_for("worker_restarts", 1)
    result = run.finish()
    assert result["env_steps"] >= 4000 > steps_before
    assert result["updates"] > 5 and result["worker_restarts"] >= 1


def test_killed_redis_shard_comes_back_with_its_data(ray_cluster, redis_server, tmp_path):
    replay = ReplayConfig(shards=2, backend="redis", redis_url=redis_server.url, namespace=f"t{time.time_ns()}")
    run = Background(_config(tmp_path, replay=replay, steps=5000))
    run.wait_for("inserted_steps", 1500)
    shard = run.coordinator.shards[0]
    held = shard.call("num_transitions").result()
    assert held > 0
    ray.kill(shard.actor, no_restart=False)
    time.sleep(1.0)
    assert shard.call("num_transitions").result() >= held  # recovered from Redis (and kept growing)
    result = run.finish()
    assert result["env_steps"] >= 5000
    stored = sum(s.call("num_transitions").result() for s in run.coordinator.shards)
    assert stored >= result["inserted_steps"]  # every acknowledged insert is still there
    held = Counter(uid for s in run.coordinator.shards for uid in s.call("trajectory_ids").result())
    acked = acked_uids(tmp_path / "run")
    assert acked and all(held[uid] == 1 for uid in acked)  # by identity: each exactly once
    assert max(held.values()) == 1


def test_planner_restart_loses_no_worker(ray_cluster, tmp_path):
    run = Background(_config(tmp_path, steps=5000))
    run.wait_for("env_steps", 1000)
    ray.kill(run.coordinator.planner.actor, no_restart=False)
    run.wait_for("env_steps", 3000)
    result = run.finish()
    assert result["env_steps"] >= 5000 and result["worker_restarts"] == 0
    assert run.coordinator.planner.call("ping").result() == run.coordinator.version  # re-synced weights


def test_policy_agents_act_through_the_service_from_every_worker(ray_cluster, tmp_path):
    config = _config(tmp_path, agent="stub-policy", acting="service", env_options={"reward_cell": [1, 1]},
                     agent_overrides={"min_steps_learn": 200, "batch_size": 4, "window": 5})
    run = Background(config)
    result = run.finish()
    stats = run.coordinator.planner.call("stats").result()
    assert result["updates"] > 0 and stats["planner/acts"] == result["env_steps"] >= 4000
    assert stats["version/planner"] > 0  # acted with broadcast weights, not the initial ones
    # every stored trajectory was acknowledged and logged, the workers' last batches too, each once
    stored = [uid for s in run.coordinator.shards for uid in s.call("trajectory_ids").result()]
    acked = acked_uids(tmp_path / "run")
    assert len(acked) == len(set(acked)) and sorted(acked) == sorted(stored)
    assert sum(s.call("num_transitions").result() for s in run.coordinator.shards) == result["inserted_steps"]


@pytest.mark.parametrize("agent, env, options, overrides, losses", [
    ("dreamer", "grid", {"reward_cell": [1, 1], "cell_px": 4}, {"preset": "tiny_discrete", "seed_episodes": 2},
     ("loss/kl", "loss/image", "imagine/return", "loss/actor", "loss/value")),
    ("alm", "dmc:cartpole-balance", {"from_states": True, "actions": "continuous", "time_limit": 50},
     {"preset": "tiny", "warmup_steps": 200}, ("loss/model", "loss/policy", "loss/q", "loss/reward", "loss/classifier")),
])
def test_reward_agents_train_in_ray_mode(ray_cluster, tmp_path, agent, env, options, overrides, losses):
    from pixelplan.distributed.metrics_log import read_metrics
    from pixelplan.distributed.offline.plots import plot_training_curves

    config = _config(tmp_path, agent=agent, env=env, env_options=options, agent_overrides=overrides, steps=1000,
                     checkpoint_every=20)
    result = Background(config).finish()
    out = tmp_path / "run"
    curves = read_metrics(out / "metrics.csv")
    assert result["updates"] > 20 and np.isfinite(result["eval/return"])
    assert all(key in curves and np.isfinite(curves[key][1]).all() for key in losses), sorted(curves)
    assert list((out / "checkpoints").glob("ckpt-*.pt")) and plot_training_curves(out).stat().st_size > 0


def test_grpc_clients_get_batched_plans(ray_cluster, tmp_path):
    from pixelplan.distributed.grpc.client import PlannerClient

    config = _config(tmp_path, steps=500, planner=PlannerConfig(grpc_port=0, max_wait_ms=20))
    coordinator = Coordinator(config)
    try:
        assert (tmp_path / "run" / "planner_grpc_address").read_text() == coordinator.grpc_address
        obs = np.zeros((3, 1, 9, 9), np.uint8)
        with PlannerClient(coordinator.grpc_address) as client:
            results = []
            threads = [threading.Thread(target=lambda: results.append(client.plan(obs, obs, [4, 4, 1])))
                       for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with pytest.raises(ValueError, match="observation"):
                client.plan(obs[:, :, :5], obs, [4, 4, 4])
        assert len(results) == 6
        for r in results:
            assert r.actions.shape[0] == 3 and list(r.lengths[2:]) == [1] and (r.lengths <= 4).all()
        sizes = coordinator.planner.call("stats").result()["planner/batch_sizes"]
        assert max(sizes) > 3  # concurrent requests were merged into one batch
    finally:
        coordinator.close()


def test_data_parallel_learners_stay_identical(ray_cluster, tmp_path):
    config = _config(tmp_path, agent="glamor", learners=2, steps=600, sync_every=4, workers=1,
                     agent_overrides={"preset": "tiny", "min_steps_learn": 200, "batch_size": 16})
    run = Background(config)
    result = run.finish()
    assert result["updates"] >= 8
    digests = [learner.call("batch_digest").result() for learner in run.coordinator.learners]
    assert digests[0] != digests[1]  # each rank samples its own batches (its own seed)...
    w0 = run.coordinator.learners[0].call("publish").result()[1]["net"]
    w1 = run.coordinator.learners[1].call("publish").result()[1]["net"]
    assert w0.keys() == w1.keys()
    for key in w0:  # ...yet same start (broadcast) and averaged gradients: same weights
        assert np.allclose(w0[key].numpy(), w1[key].numpy(), atol=1e-5), key
