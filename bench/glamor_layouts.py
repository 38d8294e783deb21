"""GLAMOR with ``--recipe grid`` beyond the empty room: four-rooms and the two corridor layouts
(grid:maze, grid:comb), 3 seeds each through the local sweep. Per env: mean and std over seeds of
the final achievement and optimal-path rates, and a random policy's on the same 30 goals.

``--quick`` (a couple of CPU minutes): a few hundred steps per run, 10 evaluation episodes; it
checks the plumbing, not learning.
"""
from __future__ import annotations

from ._recipe_sweeps import run_recipe_sweep

ENVS = ("grid:four-rooms", "grid:maze", "grid:comb")


def run(quick: bool) -> dict:
    return run_recipe_sweep("glamor-layouts", "grid", ENVS, quick,
                            quick_settings=("agent.min_steps_learn=100", "eval_every=0", "eval_episodes=10"),
                            quick_steps=400)
