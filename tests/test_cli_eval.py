"""`pixelplan eval` on a random policy and on short real training runs of GLAMOR, Dreamer and ALM:
tables, result.json, planning-only overrides and videos (frame count, size, the file opens)."""
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pixelplan.distributed.cli import main
from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.eval_policies import load_trained_agent
from pixelplan.distributed.replay.config import ReplayConfig

# Few env steps and no learning to speak of: these tests are about the command, not the agents.
RUNS = {
    "glamor": dict(env="grid", agent_overrides={"preset": "tiny", "min_steps_learn": 200, "batch_size": 16}),
    "dreamer": dict(env="grid", env_options={"reward_cell": [1, 1], "cell_px": 4},
                    agent_overrides={"preset": "tiny_discrete", "seq_len": 4, "batch_size": 4, "seed_episodes": 1}),
    "alm": dict(env="dmc:cartpole-balance", agent_overrides={"preset": "tiny", "warmup_steps": 150},
                env_options={"from_states": True, "actions": "continuous", "time_limit": 25, "action_repeat": 8}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run folder per agent, trained for a few hundred env steps in local mode."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for agent, kw in RUNS.items():
        folders[agent] = root / agent
        train(RunConfig(agent=agent, steps=300, seed=1, envs_per_worker=2, worker_chunk=16, eval_every=0,
                        eval_episodes=2, checkpoint_every=10**9, progress=False, out=str(folders[agent]),
                        replay=ReplayConfig(capacity=2_000, prefetch=0), **kw))
    return folders


def _frames(path) -> np.ndarray:
    return iio.imread(path, index=None, plugin="FFMPEG" if path.suffix == ".mp4" else None)


def test_eval_random_writes_rate_and_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    assert main(["eval", "--env", "grid", "--agent", "random", "--episodes", "30", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["eval/achievement"] <= 0.5 and result["eval/episodes"] == 30 and result["videos"] == []
    assert (out / "goals.png").stat().st_size > 1000
    assert "achievement rate" in capsys.readouterr().out
    assert list((tmp_path / "cache" / "goals").glob("grid-*.npz"))


def test_eval_bad_env_is_a_clear_error(capsys):
    assert main(["eval", "--env", "nope"]) == 2
    assert "unknown env id" in capsys.readouterr().err


def test_glamor_run_takes_planning_overrides_and_films_goal_episodes(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    assert main(["eval", "--agent", str(trained["glamor"]), "--episodes", "4", "--video", "3", "--out", str(out),
                 "--set", "agent.policy_trials=7", "agent.plan_discount=0.7"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["kind"] == "glamor" and result["env"] == "grid" and result["eval/episodes"] == 4
    assert result["planning"] == {"policy_trials": 7, "plan_discount": 0.7}
    assert len(result["videos"]) == 3
    for path, steps in zip(result["videos"], result["steps"]):
        frames = _frames(Path(path))
        assert frames.shape[0] == steps + 1  # the frame after reset, then one per step
        assert frames.shape[1] % 16 == 0 and frames.shape[2] % 16 == 0 and frames.shape[1] >= 192
        assert frames.shape[2] > frames.shape[1]  # goal and view side by side
    printed = capsys.readouterr().out
    assert "achievement rate" in printed and "policy_trials=7" in printed


def test_planning_overrides_keep_the_trained_weights(trained):
    plain, _ = load_trained_agent(str(trained["glamor"]))
    tuned, run = load_trained_agent(str(trained["glamor"]), {"policy_trials": 200, "plan_discount": 0.7})
    assert (tuned.config.policy_trials, tuned.config.plan_discount) == (200, 0.7)
    assert plain.config.policy_trials == 50 and run.agent_overrides["preset"] == "tiny"
    trained_net, tuned_net = plain.policy_weights()["net"], tuned.policy_weights()["net"]
    assert trained_net.keys() == tuned_net.keys()
    assert all(torch.equal(trained_net[k], tuned_net[k]) for k in trained_net)


@pytest.mark.parametrize("agent,setting,message", [
    ("glamor", "agent.lr=0.1", "agent.lr changes the trained glamor model"),
    ("glamor", "agent.lstm_hidden=8", "agent.lstm_hidden changes the trained glamor model"),
    ("glamor", "eval_every=3", "only agent.FIELD=VALUE"),
    ("glamor", "agent.plan_discount=1.5", "plan_discount must be in"),
    ("dreamer", "agent.horizon=3", "none of its settings"),
])
def test_settings_that_change_the_model_are_refused(trained, tmp_path, capsys, agent, setting, message):
    assert main(["eval", "--agent", str(trained[agent]), "--out", str(tmp_path), "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("agent", ["dreamer", "alm"])
def test_reward_run_gives_mean_and_std_return_and_films_the_running_return(trained, agent, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--agent", str(trained[agent]), "--episodes", "3", "--video", "2", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    returns = np.array(result["returns"])
    assert result["kind"] == agent and len(returns) == 3 and result["eval/episodes"] == 3
    assert result["eval/return"] == pytest.approx(returns.mean()) and result["eval/return_std"] == pytest.approx(returns.std())
    assert len(result["videos"]) == 2
    for path, steps in zip(result["videos"], result["steps"]):
        frames = _frames(Path(path))
        assert frames.shape[0] == steps + 1 and frames.shape[1] % 16 == 0 and frames.shape[1] >= 192
    assert "return (mean ± std)" in capsys.readouterr().out
    assert main(["eval", "--agent", str(trained[agent]), "--episodes", "1", "--out", str(tmp_path / "plain")]) == 0
    assert json.loads((tmp_path / "plain" / "result.json").read_text())["videos"] == []


def test_eval_defaults_to_a_folder_inside_the_run(trained):
    assert main(["eval", "--agent", str(trained["dreamer"]), "--episodes", "1"]) == 0
    assert json.loads((trained["dreamer"] / "eval" / "result.json").read_text())["agent"] == str(trained["dreamer"])
