"""System invariants of the one training loop in local mode, driven by stub agents."""
import csv
import dataclasses

import pytest

from pixelplan.distributed.checkpoint import latest_checkpoint, load_checkpoint
from pixelplan.distributed.config import RunConfig, apply_overrides
from pixelplan.distributed.coordinator import Coordinator, train


def _config(tmp_path, **kw) -> RunConfig:
    base = RunConfig(agent="stub", env="grid", steps=1500, seed=3, out=str(tmp_path / "run"), progress=False,
                     eval_every=500, eval_episodes=10, checkpoint_every=20, sync_every=5, worker_chunk=50,
                     envs_per_worker=2, agent_overrides={"min_steps_learn": 200, "batch_size": 8})
    return dataclasses.replace(base, **kw)


def _series(run_dir, key):
    with open(run_dir / "metrics.csv") as fh:
        return [(int(r["env_steps"]), float(r["value"])) for r in csv.DictReader(fh) if r["key"] == key]


def test_local_run_invariants(tmp_path):
    config = _config(tmp_path)
    coordinator = Coordinator(config)
    try:
        result = coordinator.train()
        learner = coordinator.learners[0].obj
        worker = coordinator.workers[0].obj
        planner = coordinator.planner.obj
    finally:
        coordinator.close()
    assert result["env_steps"] >= config.steps
    # replay ratio: items sampled per env step inserted after min_steps, within one batch of the target
    ratio = learner.agent.config.replay_ratio
    target = ratio * (result["inserted_steps"] - 200)
    assert abs(learner.agent.items_seen - target) <= 8 + 1e-9 + 0.1 * target
    assert result["updates"] == learner.updates > 0
    # the last broadcast reached the planner and the workers: no version lag at the end
    assert planner.version == worker.version == learner.version == learner.updates
    run_dir = tmp_path / "run"
    assert (run_dir / "done").exists() and (run_dir / "config.json").exists()
    assert len(_series(run_dir, "eval/achievement")) >= 3
    state = load_checkpoint(run_dir)
    assert state["learner"]["updates"] == learner.updates and state["config"]["agent"] == "stub"


def test_local_mode_is_deterministic(tmp_path):
    a = train(_config(tmp_path / "a", out=str(tmp_path / "a")))
    b = train(_config(tmp_path / "b", out=str(tmp_path / "b")))
    c = train(_config(tmp_path / "c", out=str(tmp_path / "c"), seed=4))
    keys = ("env_steps", "episodes", "inserted_steps", "updates", "eval/achievement", "eval/mean_steps")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert _series(tmp_path / "a", "eval/mean_steps") == _series(tmp_path / "b", "eval/mean_steps")
    assert [a[k] for k in keys] != [c[k] for k in keys]


def test_resume_continues_counters(tmp_path):
    first = train(_config(tmp_path, steps=800))
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt is not None
    resumed = train(_config(tmp_path, steps=1600, resume=str(tmp_path / "run")))
    assert resumed["env_steps"] >= 1600 and resumed["updates"] > first["updates"]
    steps = [s for s, _ in _series(tmp_path / "run", "eval/achievement")]
    assert steps == sorted(steps) and steps[-1] >= 1600


@pytest.mark.parametrize("acting", ["worker", "service"])
def test_policy_agents_act_on_the_worker_or_in_the_service(tmp_path, acting):
    config = _config(tmp_path, agent="stub-policy", env_options={"reward_cell": [1, 1]}, acting=acting,
                     agent_overrides={"min_steps_learn": 100, "batch_size": 4, "window": 5})
    coordinator = Coordinator(config)
    try:
        result = coordinator.train()
        served = coordinator.snapshot().get("planner/acts", 0.0)
    finally:
        coordinator.close()
    assert result["updates"] > 0 and "eval/return" in result and 0 <= result["eval/return"] <= 1
    assert served == (result["env_steps"] if acting == "service" else 0)  # one served row per env step


def test_overrides_and_bad_settings():
    config = apply_overrides(RunConfig(), ["agent.lr=3e-4", "replay.capacity=1000", "eval_every=0", "env.cell_px=2"])
    assert config.agent_overrides == {"lr": 3e-4} and config.replay.capacity == 1000 and config.eval_every == 0
    assert config.env_options == {"cell_px": 2}
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(RunConfig(), ["replay.capacty=5"])
    with pytest.raises(ValueError, match="unknown setting"):
        apply_overrides(RunConfig(), ["replay=5"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(RunConfig(), ["eval_every"])
    with pytest.raises(ValueError, match="workers"):
        RunConfig(workers=0)
    with pytest.raises(ValueError, match="acting"):
        RunConfig(acting="gpu")


def test_unknown_agent_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown agent"):
        train(_config(tmp_path, agent="nope"))


def test_a_fresh_run_never_appends_to_an_old_one(tmp_path):
    train(_config(tmp_path, steps=300, eval_every=0))
    with pytest.raises(ValueError, match="--resume"):
        train(_config(tmp_path, steps=300, eval_every=0))
    again = train(_config(tmp_path, steps=300, eval_every=0, overwrite=True))
    steps = [int(r.split(",")[1]) for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert again["env_steps"] >= 300 and max(steps) < 400  # the old run's rows are gone
