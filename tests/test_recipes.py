"""Named run recipes: each resolves into a real run, `--set` and explicit flags override it, and a
recipe that does not exist or does not fit the agent and env is refused before anything is written."""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from pixelplan.agents.glamor.config import GlamorConfig
from pixelplan.distributed.cli import build_parser, main
from pixelplan.distributed.commands.train import config_from_args
from pixelplan.distributed.recipes import RECIPES
from pixelplan.distributed.resolve import ResolvedRun

README = Path(__file__).resolve().parents[1] / "README.md"
# the grid recipe: the tiny preset twice as wide (its LSTM not), its data settings, planning with the IDM
# alone, twice the preset's updates (so a learning-rate decay twice as long: 100 episodes of T, 2000 updates
# on the room) and its ban on actions that did nothing
ROUTES = dict(state_size=128, encoder_dim=128, mix_hidden=128, shortest_route_share=1.0, state_pair_share=1.0,
              prior_on_walks=True, use_prior=False, replay_ratio=8.0, ban_noop_actions=True)


def _config(argv: list[str]):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_grid_recipe_resolves_to_what_make_run_did(tmp_path):
    config = _config(["--agent", "glamor", "--env", "grid", "--recipe", "grid", "--out", str(tmp_path / "r")])
    assert (config.recipe, config.steps, config.envs_per_worker, config.eval_every) == ("grid", 16000, 8, 4000)
    assert config.replay.capacity == 20000
    resolved = ResolvedRun.of(config)
    # the room the tiny preset's schedules were made on; the IDM on shortest routes, the prior on the walks
    assert resolved.agent_config == GlamorConfig.tiny(lr_decay_updates=2000, **ROUTES)
    assert '"recipe": "grid"' in resolved.to_json()  # config.json records which recipe made the run


def test_grid_recipe_scales_budget_and_schedules_with_the_layouts_time_limit(tmp_path):
    config = _config(["--agent", "glamor", "--env", "grid:maze", "--recipe", "grid", "--out", str(tmp_path / "r")])
    resolved = ResolvedRun.of(config)
    episodes = config.steps / resolved.spec.time_limit
    assert resolved.spec.time_limit == 84 and episodes == 800  # as many episodes as on the 7x7 room
    assert (config.eval_every, config.replay.capacity) == (200 * 84, 1000 * 84)
    assert resolved.agent_config == GlamorConfig.tiny(eps_steps=250 * 84, lr_decay_updates=100 * 84, **ROUTES)
    assert RECIPES["grid"].steps_for("grid:maze") == config.steps
    assert RECIPES["dmc-cpu"].steps_for("dmc:point_mass-easy") == 70_000  # a fixed budget stays fixed


def test_set_and_explicit_flags_override_the_recipe(tmp_path):
    config = _config(["--agent", "glamor", "--env", "grid", "--recipe", "grid", "--out", str(tmp_path / "r"),
                      "--steps", "500", "--envs-per-worker", "2",
                      "--set", "agent.lr=1e-3", "replay.capacity=5000", "eval_every=0", "agent.preset=tiny"])
    assert (config.steps, config.envs_per_worker, config.eval_every, config.replay.capacity) == (500, 2, 0, 5000)
    assert ResolvedRun.of(config).agent_config == GlamorConfig.tiny(lr=1e-3, lr_decay_updates=2000, **ROUTES)
    # --set wins over an explicit flag too, as without a recipe
    assert _config(["--agent", "glamor", "--env", "grid", "--recipe", "grid", "--steps", "500",
                    "--set", "steps=700"]).steps == 700


def test_dmc_cpu_recipe_resolves_on_small_grayscale_frames_with_keypoint_encoders():
    config = _config(["--agent", "glamor", "--env", "dmc:point_mass-easy", "--recipe", "dmc-cpu"])
    resolved = ResolvedRun.of(config)
    assert resolved.spec.frame_shape == (1, 64, 64) and resolved.spec.stack == 4
    agent = resolved.agent_config
    assert agent.encoder_dim == GlamorConfig.tiny().encoder_dim
    assert (agent.encoder, agent.encoder_channels, agent.goal_relative) == ("keypoints", (32, 32, 16), True)


def test_atari_cpu_recipe_keeps_the_papers_frames_with_the_tiny_model():
    resolved = ResolvedRun.of(_config(["--agent", "glamor", "--env", "atari:seaquest", "--recipe", "atari-cpu"]))
    assert resolved.spec.frame_shape == (1, 104, 80) and resolved.spec.stack == 4 and resolved.spec.time_limit == 50
    assert resolved.agent_config == GlamorConfig.tiny(min_steps_learn=5000, eps_steps=20000, train_tasks=500,
                                                      lr_decay_updates=2500, encoder="keypoints",
                                                      encoder_channels=(32, 32, 16), goal_relative=True)
    assert resolved.config.steps == 40_000


def test_paper_recipe_keeps_the_papers_settings_on_cuda():
    config = _config(["--agent", "glamor", "--env", "atari:pong", "--recipe", "paper"])
    assert (config.device, config.planner.device, config.steps) == ("cuda", "cuda", 500_000)
    assert config.learner_gpus > 0 and config.planner_gpus > 0  # Ray places both on a GPU
    on_cluster = dataclasses.replace(config, mode="ray")  # local mode on a CPU machine refuses cuda (next test)
    assert ResolvedRun.of(on_cluster).agent_config == GlamorConfig()  # Fig. 5, unchanged


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU this would train the paper's 500k steps")
def test_paper_recipe_without_a_gpu_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "glamor", "--env", "dmc:cartpole-balance", "--recipe", "paper", "--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not out.exists()


def test_unknown_recipe_is_refused_with_the_known_ones(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "glamor", "--env", "grid", "--recipe", "gird", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'gird'" in err and all(name in err for name in RECIPES)
    assert not out.exists()


def test_recipe_for_another_env_family_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "glamor", "--env", "dmc:cartpole-balance", "--recipe", "grid",
                 "--out", str(out)]) == 2
    assert "recipe 'grid' is for agent glamor on grid:* envs" in capsys.readouterr().err
    assert not out.exists()


def test_readme_lists_every_recipe_with_its_budget():
    text = README.read_text()
    example_env = {"grid": "grid", "dmc-cpu": "dmc:point_mass-easy", "atari-cpu": "atari:pong", "paper": "atari:pong"}
    assert set(example_env) == set(RECIPES)
    for recipe in RECIPES.values():
        assert f"| `{recipe.name}` |" in text and f"{recipe.steps_for(example_env[recipe.name]):,}" in text


def test_kubernetes_sweep_passes_the_recipe_and_takes_its_budget(tmp_path):
    out = tmp_path / "k8s"
    assert main(["sweep", "--agents", "glamor", "--envs", "grid:maze", "--seeds", "0", "--recipe", "grid",
                 "--gpus", "0", "--out", str(out)]) == 0
    entrypoint = yaml.safe_load((out / "rayjob-glamor-grid-maze-s0.yaml").read_text())["spec"]["entrypoint"]
    argv = shlex.split(entrypoint)
    # no --steps: each run's recipe sizes its budget to its own env (67,200 steps on the maze)
    assert argv[argv.index("--recipe") + 1] == "grid" and "--steps" not in argv
    assert argv[:2] == ["pixelplan", "train"] and _config(argv[2:]).steps == 67_200
