"""GLAMOR with ``--recipe dmc-cpu`` on DM Control from pixels: 3 seeds per task through the local
sweep, over the four tasks of Table 1's DM Control rows. Per env: mean and std over seeds of the
final achievement rate, a random policy's on the same 30 goals, and the paper's Table 1 value (500k
steps, GPU) beside it.

``--quick``: point_mass-easy only, a few hundred steps per run and 5 evaluation episodes; it checks
the plumbing, not learning. Each task's feasible ranges (500 random episodes) and goal sets are
built once and cached, which is the slow part of a first run.
"""
from __future__ import annotations

from ._recipe_sweeps import run_recipe_sweep

ENVS = ("dmc:point_mass-easy", "dmc:reacher-hard", "dmc:cartpole-balance", "dmc:pendulum-swingup")  # issue 14, item 3


def run(quick: bool) -> dict:
    return run_recipe_sweep("glamor-dmc", "dmc-cpu", ENVS[:1] if quick else ENVS, quick,
                            quick_settings=("agent.min_steps_learn=100", "eval_every=0", "eval_episodes=5"),
                            quick_steps=300)
