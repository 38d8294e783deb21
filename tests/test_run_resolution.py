"""Issue: a run is resolved once (validated config, spec, seed tree) before its folder is touched.

- every bad setting is refused with one line and changes nothing on disk;
- ``--set`` values are parsed against the field's declared type;
- the run seed reaches every agent's initial weights, every learner rank's sampling, and a
  local-mode run with the same seed is reproduced exactly.
"""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from pixelplan.distributed.checkpoint import load_checkpoint
from pixelplan.distributed.cli import main
from pixelplan.distributed.config import RunConfig, apply_overrides
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.learner import Learner
from pixelplan.distributed.metrics_log import read_metrics
from pixelplan.distributed.replay import ReplayShard
from pixelplan.distributed.resolve import ResolvedRun
from pixelplan.distributed.seeds import SeedTree

STUB = ["--agent", "stub", "--env", "grid", "--steps", "300", "--no-progress",
        "--set", "eval_every=0", "eval_episodes=2", "agent.min_steps_learn=100", "agent.batch_size=8"]


def snapshot(folder) -> dict[str, str]:
    """Every file under ``folder`` -> its sha256: what 'byte for byte unchanged' is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", *STUB, "--out", str(out)]) == 0
    return out


def test_set_values_follow_the_declared_types():
    config = apply_overrides(RunConfig(), ["steps=1e5", "replay.capacity=2e4", "progress=false", "planner.grpc_port=none",
                                           "agent.encoder_channels=[8, 8]", "agent.lr=3e-4", "agent.lr_final=none",
                                           "agent.stop_at_plan_end=true"])
    assert config.steps == 100_000 and isinstance(config.steps, int) and config.replay.capacity == 20_000
    assert config.progress is False and config.planner.grpc_port is None
    assert config.agent_overrides == {"encoder_channels": (8, 8), "lr": 3e-4, "lr_final": None, "stop_at_plan_end": True}
    resolved = ResolvedRun.of(dataclasses.replace(config, agent_overrides={"preset": "tiny", **config.agent_overrides}))
    assert resolved.agent_config.encoder_channels == (8, 8) and resolved.agent_config.lr == 3e-4


BAD_SETTINGS = [
    (["--set", "agent.replay_ratio=abc"], "agent.replay_ratio: expected a number"),
    (["--set", "steps=abc"], "steps: expected an integer"),
    (["--set", "seed=1.5"], "seed: expected an integer"),
    (["--set", "seed=-1"], "seed must be >= 0"),
    (["--set", "metrics_port=70000"], "TCP port"),
    (["--metrics-port", "-5"], "TCP port"),
    (["--set", "planner.grpc_port=123456"], "TCP port"),
    (["--set", "agent.no_such_field=1"], "no field"),
    (["--set", "agent.preset=huge"], "no preset"),
    (["--set", "env.no_such_option=1"], "env.* option"),
    (["--set", "mode=cluster"], "mode: expected one of"),
    (["--set", "replay.capacity=ten"], "replay.capacity: expected an integer"),
    (["--set", "agent.batch_size=1.5"], "agent.batch_size: expected an integer"),
    (["--env", "nowhere:x"], "unknown env id"),
    (["--agent", "nope"], "unknown agent"),
]


@pytest.mark.parametrize("extra,message", BAD_SETTINGS, ids=[" ".join(e) for e, _ in BAD_SETTINGS])
def test_a_bad_setting_is_refused_in_one_line_before_any_file_changes(finished_run, capsys, extra, message):
    before = snapshot(finished_run)
    capsys.readouterr()
    assert main(["train", *STUB, "--out", str(finished_run), "--force", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert snapshot(finished_run) == before  # --force deleted nothing: the setting was refused first


@pytest.mark.parametrize("extra,message", [(["--set", "agent.replay_ratio=abc"], "agent.replay_ratio"),
                                           (["--set", "mode=cluster"], "mode: expected one of"),
                                           (["--set", "steps=0"], "steps must be >= 1")])
def test_a_refused_resume_leaves_the_run_folder_byte_for_byte(finished_run, capsys, extra, message):
    before = snapshot(finished_run)
    assert (finished_run / "done").exists()
    assert main(["train", "--resume", str(finished_run), "--steps", "600", "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_config_json_records_the_resolution(finished_run):
    import json

    saved = json.loads((finished_run / "config.json").read_text())
    assert saved["resolved"]["spec"]["env_id"] == "grid"
    assert saved["resolved"]["agent_config"]["batch_size"] == 8
    assert saved["resolved"]["seeds"]["agent"] == SeedTree(0).seed("agent")
    assert RunConfig.from_dict(saved).agent_overrides == {"min_steps_learn": 100, "batch_size": 8}


AGENTS = {  # (agent, env, env options, overrides): the three agents at CPU size
    "glamor": ("grid", {}, {"preset": "tiny"}),
    "dreamer": ("grid", {"cell_px": 4}, {"preset": "tiny_discrete"}),
    "alm": ("gym:Pendulum-v1", {}, {"preset": "tiny"}),
}


def _initial_weights(agent: str, seed: int) -> dict[str, np.ndarray]:
    env, options, overrides = AGENTS[agent]
    resolved = ResolvedRun.of(RunConfig(agent=agent, env=env, env_options=options, agent_overrides=overrides, seed=seed))
    shard = LocalHandle(ReplayShard(resolved.config.replay, 0))
    weights = Learner(resolved, 0, [shard]).publish()[1]
    flat = {}
    for part, tensors in weights.items():
        for name, value in (tensors.items() if isinstance(tensors, dict) else [("", tensors)]):
            if isinstance(value, torch.Tensor):
                flat[f"{part}.{name}"] = value.numpy().copy()
    assert flat, f"{agent} published no tensors"
    return flat


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_the_run_seed_sets_every_agents_initial_weights(agent):
    one, again, two = _initial_weights(agent, 1), _initial_weights(agent, 1), _initial_weights(agent, 2)
    assert all(np.array_equal(one[k], again[k]) for k in one)
    assert any(not np.array_equal(one[k], two[k]) for k in one)


def test_learner_ranks_draw_different_batches(synth):
    resolved = ResolvedRun.of(RunConfig(agent="stub", env="grid", seed=5,  # ranks 0 and 1 without a process group
                                        agent_overrides={"batch_size": 16, "horizon": 4}))
    shard = LocalHandle(ReplayShard(dataclasses.replace(resolved.config.replay, num_actions=4), 0))
    for tag in range(20):
        shard.obj.insert(synth.trajectory(30, tag))
    rank0, rank1 = Learner(resolved, 0, [shard]), Learner(resolved, 1, [shard])
    again = Learner(resolved, 0, [shard])
    for learner in (rank0, rank1, again):
        learner.train(1)
    assert rank0.batch_digest() != rank1.batch_digest()  # each rank has its own sampling stream
    assert rank0.batch_digest() == again.batch_digest()  # and it is reproducible


def _glamor_run(tmp_path, name: str, seed: int) -> RunConfig:
    return RunConfig(agent="glamor", env="grid", steps=1200, seed=seed, out=str(tmp_path / name), progress=False,
                     envs_per_worker=4, eval_every=600, eval_episodes=10, sync_every=5, worker_chunk=64,
                     agent_overrides={"preset": "tiny", "min_steps_learn": 300, "batch_size": 16})


def _learned(out) -> dict:
    return load_checkpoint(out)["learner"]["agent"]["net"]


def test_the_same_seed_reproduces_a_local_run_and_another_seed_does_not(tmp_path):
    runs = {name: train(_glamor_run(tmp_path, name, seed)) for name, seed in (("a", 1), ("b", 1), ("c", 2))}
    assert runs["a"]["updates"] > 20
    evals = {name: {k: v[1].tolist() for k, v in read_metrics(tmp_path / name / "metrics.csv").items()
                    if k.startswith("eval/")} for name in runs}
    assert evals["a"] == evals["b"] and evals["a"]["eval/achievement"]
    nets = {name: _learned(tmp_path / name) for name in runs}
    assert all(torch.equal(nets["a"][k], nets["b"][k]) for k in nets["a"])
    assert any(not torch.equal(nets["a"][k], nets["c"][k]) for k in nets["a"])
