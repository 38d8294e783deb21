"""GLAMOR with ``--recipe atari-cpu`` on Pong and Seaquest from pixels (issue 14, item 4): 3 seeds
per game through the local sweep. Per env: mean and std over seeds of the final achievement rate, a
random policy's on the same 30 goals, and the paper's Table 1 value (500k steps, GPU) beside it. No
target: the table shows where a CPU budget stops.

``--quick``: Pong only, a few hundred steps per run and 5 evaluation episodes; it checks the
plumbing, not learning.
"""
from __future__ import annotations

from ._recipe_sweeps import run_recipe_sweep

ENVS = ("atari:pong", "atari:seaquest")


def run(quick: bool) -> dict:
    return run_recipe_sweep("glamor-atari", "atari-cpu", ENVS[:1] if quick else ENVS, quick,
                            quick_settings=("agent.min_steps_learn=100", "eval_every=0", "eval_episodes=5"),
                            quick_steps=300)
