"""Small reference runs that show an agent learns: the learning tests train one seed, the benchmarks more.

Dreamer's grid-corner task: the 7x7 grid world drawn with 4x4-pixel cells (36x36 frames), reward 1
and termination on entering the corner cell (1, 1), T = 20, start in the centre six steps away. A
uniform random walk gets there in about 8% of episodes; see tests/test_dreamer_learning.py for why
these settings and why success in half of 30 greedy episodes cannot be chance.
"""
from __future__ import annotations

from ..config import RunConfig
from ..replay.config import ReplayConfig

DREAMER_GRID_OPTIONS = {"reward_cell": [1, 1], "cell_px": 4}
# The paper's discrete settings (H = 10, KL scale 0.1, tanh rewards, learned discount, epsilon-greedy
# at the start of its schedule, 0.4) on tiny nets. Short windows, because successful episodes end
# after 6 steps and windows never cross episodes; 50 random seed episodes hold a few rewarded
# transitions to start from. gamma = 0.9: next to the goal, bumping into a wall for a step costs
# only (1 - gamma) of the return, and at 0.99 or 0.95 that margin drowned in the value's noise
# (greedy policies parked beside the goal: 0.99 failed 2 runs of 2, 0.95 3 of 8; 0.9 passed 6 of 6).
DREAMER_GRID_OVERRIDES = {"preset": "tiny_discrete", "seq_len": 4, "batch_size": 48, "update_every": 2.0,
                          "seed_episodes": 50, "gamma": 0.9}


def dreamer_grid_corner(out: str, seed: int = 0, steps: int = 5000, eval_episodes: int = 30) -> RunConfig:
    """About 1950 updates in 5000 env steps; six seeds were solving it by 2600-4100 steps."""
    return RunConfig(agent="dreamer", env="grid", env_options=DREAMER_GRID_OPTIONS, steps=steps, seed=seed,
                     mode="local", workers=1, envs_per_worker=4, worker_chunk=16, sync_every=5, eval_every=0,
                     eval_episodes=eval_episodes, checkpoint_every=10**9, out=out, progress=False,
                     agent_overrides=dict(DREAMER_GRID_OVERRIDES), replay=ReplayConfig.tiny())
