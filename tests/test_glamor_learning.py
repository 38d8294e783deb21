"""GLAMOR learns the 7x7 grid world through the real training loop (local mode)."""
import pytest
import torch

from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.replay.config import ReplayConfig


@pytest.mark.slow
def test_glamor_reaches_grid_goals_by_shortest_paths(tmp_path, monkeypatch):
    """Collect (open-loop ε-greedy plans) -> replay pairs -> Eq. 9 updates -> closed-loop evaluation on
    the 30 evaluation goals (build_goal_set(env, 30, seed)): ~960 updates of the tiny preset."""
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    run = RunConfig(agent="glamor", env="grid", steps=16_000, seed=0, envs_per_worker=8, device="cpu",
                    agent_overrides={"preset": "tiny"}, replay=ReplayConfig.tiny(capacity=20_000),
                    planner=PlannerConfig(device="cpu"), eval_every=0, eval_episodes=30,
                    out=str(tmp_path / "run"), progress=False)
    summary = train(run)
    assert summary["updates"] >= 900
    assert summary["eval/episodes"] == 30
    assert summary["eval/achievement"] >= 0.9, summary
    assert summary["eval/optimal"] >= 0.7, summary
