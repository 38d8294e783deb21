"""GLAMOR from DM Control states (``env.from_states``) end to end: its goals are state vectors, so the
final evaluation must not try to draw them (it once failed there, after the whole run had trained)."""
from __future__ import annotations

import json

import pytest

from pixelplan.distributed.cli import main


def test_glamor_from_states_trains_and_evaluates_without_a_goal_picture(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = main(["train", "--agent", "glamor", "--env", "dmc:point_mass-easy", "--steps", "200", "--no-progress",
                 "--envs-per-worker", "2", "--out", str(out), "--set", "env.from_states=true", "env.time_limit=30",
                 "agent.preset=tiny", "agent.min_steps_learn=50", "agent.batch_size=8", "agent.train_tasks=20",
                 "eval_every=0", "eval_episodes=3", "eval_video_every=1"])
    assert code == 0, capsys.readouterr().err
    headline = json.loads(capsys.readouterr().out.splitlines()[0])
    assert 0.0 <= headline["eval/achievement"] <= 1.0
    assert (out / "done").exists() and not (out / "goals.png").exists()


def test_a_goal_set_that_finds_no_goal_says_why():
    from pixelplan.envs import make_env
    from pixelplan.envs.goals import build_goal_set

    env = make_env("dmc:point_mass-easy", from_states=True, time_limit=2)
    with pytest.raises(ValueError, match="no goals"):
        build_goal_set(env, episodes=5, range_episodes=5)
