"""Named run recipes: ``pixelplan train --recipe NAME`` applies a documented set of settings.

A recipe is a list of ``--set`` strings applied after the defaults and before the command line,
so an explicit flag (``--steps``, ``--envs-per-worker``...) or the user's ``--set`` always wins.
It names the agents and env families it was made for and is refused elsewhere: a recipe tuned
for a 9x9 grid says nothing about Atari. A recipe may count some settings in episodes of the env's
time limit T (its default, before any ``--set env.time_limit``), so that one recipe sizes itself to
every layout: a maze whose far goals are 3x as many steps away gets 3x the steps, the same number
of episodes, and its schedules stretch with it.
"""
from __future__ import annotations

from dataclasses import dataclass

from pixelplan.envs.registry import parse_env_id


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    agents: tuple[str, ...]
    env_families: tuple[str, ...]
    settings: tuple[str, ...]  # `--set` strings; one of them (here or in per_episode) is the budget, steps=N
    per_episode: tuple[str, ...] = ()  # `--set` strings whose numbers count episodes of T: "steps=800"

    def settings_for(self, env: str) -> tuple[str, ...]:
        if not self.per_episode:
            return self.settings
        from .resolve import probe_spec  # builds the env once: only recipes that scale with T pay for it

        episode = probe_spec(env, {}).time_limit
        scaled = (f"{key}={round(float(value) * episode)}" for key, _, value in (s.partition("=") for s in self.per_episode))
        return (*self.settings, *scaled)

    def steps_for(self, env: str) -> int:
        return int(float(next(s for s in self.settings_for(env) if s.startswith("steps=")).partition("=")[2]))

    def check(self, agent: str, env: str) -> None:
        family, _ = parse_env_id(env)
        if agent not in self.agents or family not in self.env_families:
            raise ValueError(f"recipe {self.name!r} is for agent {'/'.join(self.agents)} on "
                             f"{'/'.join(f + ':*' for f in self.env_families)} envs, not {agent} on {env}")


# The tiny model (goal-relative IDM) with keypoint encoders: dmc-cpu's and atari-cpu's model.
PIXEL_CPU_MODEL = ("agent.preset=tiny", "agent.encoder=keypoints", "agent.encoder_channels=[32,32,16]")

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    # 800 episodes of T whatever the layout: on the 7x7 room (T = 20) these are the 16k steps, 5k-step
    # eps decay and learning-rate decay the tiny preset was made with; four-rooms (T = 60) gets 48k steps,
    # the maze (T = 84) 67k. Replay ratio 8, twice the preset's: lr_decay_updates = steps x 8 / batch 64.
    # The preset's state, encoder and mixing widths doubled (64 -> 128; the LSTM stays 64): at 64 the IDM
    # still took a bump into the wall beside a door on its way to a fifth of four-rooms' goals.
    # The IDM learns shortest routes (GlamorConfig.shortest_route_share) between pairs drawn over every
    # distinct frame the replay holds (state_pair_share): pairs from the walks' own trajectories almost
    # never spanned the 11+ steps to half of four-rooms' goals, and its IDM chose the wrong side of a wall
    # on 0.37-0.45 of (cell, goal) pairs behind one (0.11-0.13 with state pairs). The planner scores
    # with the IDM alone (use_prior=false): the routes are not the behaviour, so the paper's division by
    # the behaviour prior does not apply, and it favoured the bumps into walls beside doors that the
    # walks rarely make. The prior still learns the walks (prior_on_walks), for use_prior=true. The
    # planner never repeats an action that left the frame unchanged (ban_noop_actions). README, Results.
    Recipe("grid", "GLAMOR's CPU preset on any grid layout (grid, grid:four-rooms, grid:PATH), what `make run` "
                   "does: 800 episodes of the layout's time limit T, a few CPU minutes on the 7x7 room",
           ("glamor",), ("grid",), ("agent.preset=tiny", "agent.state_size=128", "agent.encoder_dim=128", "agent.mix_hidden=128",
                                    "agent.shortest_route_share=1.0", "agent.state_pair_share=1.0",
                                    "agent.prior_on_walks=true", "agent.use_prior=false", "agent.replay_ratio=8",
                                    "agent.ban_noop_actions=true",
                                    "envs_per_worker=8"),
           per_episode=("steps=800", "agent.eps_steps=250", "agent.lr_decay_updates=100", "replay.capacity=1000",
                        "eval_every=200")),
    # From pixels the paper's encoders learned nothing here in 45 minutes (point_mass 0.10, random 0.07),
    # though the same run from states reached 0.87: two IMPALA encoders had to find and align a ball one
    # pixel wide from a weak signal. Keypoint encoders with a goal-relative IDM context (agents/nets.py,
    # GlamorConfig.goal_relative) reached 0.60 +- 0.15 on point_mass at 70k steps (3 seeds; random 0.07),
    # chosen there alone; on the other three tasks, untouched: reacher-hard 0.17, cartpole-balance 0.32,
    # pendulum-swingup 0.54 (5x, 10x, 24x random). A third of the IMPALA encoders' cost per update: 70k
    # steps in 20-25 minutes here beside another run (learner 3.0-3.7 updates/s, replay ratio 4, batch 64).
    Recipe("dmc-cpu", "DM Control from 64x64 grayscale pixels (4 stacked) on a 2-core CPU: the tiny model "
                      "with keypoint encoders and a goal-relative IDM, 70k steps in about 23 minutes",
           ("glamor",), ("dmc",),
           (*PIXEL_CPU_MODEL, "agent.min_steps_learn=5000", "agent.eps_steps=35000",
            "agent.train_tasks=500", "agent.lr_decay_updates=4400", "env.size=[64,64]", "env.grayscale=true",
            "env.stack=4", "replay.capacity=70000", "eval_every=17500", "envs_per_worker=8", "steps=70000")),
    # Atari's frames stay the paper's (80x104 grayscale, 4 stacked; T = 50), with dmc-cpu's model: its
    # keypoint encoders and goal-relative IDM, which Atari's goals (entity positions) suit as well. A run
    # takes 21-27 minutes beside another (learner 1.4-1.8 updates/s, half dmc-cpu's: larger frames);
    # 3 seeds reached 0.32 +- 0.10 on Pong (random 0.00) and 0.10 +- 0.03 on Seaquest (random 0.07).
    Recipe("atari-cpu", "Atari at the scale of a 2-core CPU: dmc-cpu's tiny keypoint model and schedules on the "
                        "paper's frames, 40k steps (a twelfth of Table 1's 500k) in about 24 minutes",
           ("glamor",), ("atari",),
           (*PIXEL_CPU_MODEL, "agent.min_steps_learn=5000", "agent.eps_steps=20000",
            "agent.train_tasks=500", "agent.lr_decay_updates=2500", "replay.capacity=40000", "eval_every=10000",
            "envs_per_worker=8", "steps=40000")),
    Recipe("paper", "GLAMOR's Fig. 5 settings unchanged (the default config: IMPALA encoders, AdamW 5e-4, replay "
                    "ratio 4, N = 50, eps 1 -> 0.1 over 3e5 steps, 1e6 buffer) at Table 1's budget of 500k agent "
                    "steps, learner and planner on CUDA (needs a GPU)",
           ("glamor",), ("atari", "dmc"),
           ("device=cuda", "planner.device=cuda", "learner_gpus=0.5", "planner_gpus=0.5", "replay.capacity=1000000",
            "workers=4", "envs_per_worker=4", "eval_every=25000", "steps=500000")),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
