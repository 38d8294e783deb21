"""Reference points for a report: a random policy on the run's own evaluation goals, and the paper.

The random policy is scored on the same 30 goals every run is scored on (fixed per env and env
options, ``goalsets.EVAL_GOAL_SEED``), so "learned" means "beats chance on these goals". Each value
is computed once per (env id, env options) and cached beside the goal sets.
"""
from __future__ import annotations

import json

from pixelplan.envs import RandomGoalPolicy, evaluate, make_env
from pixelplan.envs.files import atomic_write

from ..goalsets import EVAL_GOAL_SEED, EVAL_GOALS, cache_dir, env_cache_tag, load_or_build_goal_set

RANDOM_PASSES = 3  # episodes per evaluation goal: 90 episodes keep the estimate's noise small
RANDOM_SEED = 0
CACHE_VERSION = 1  # bump when the evaluation changes, so old cached values are not reused

# GLAMOR's Table 1 (Paster, McIlraith & Ba, ICLR 2021): goal achievement at 500k agent steps,
# mean (std) over 3 seeds, on the task variants envs/dmc.py uses.
PAPER_SOURCE = "GLAMOR, Paster et al. 2021, Table 1"
PAPER_STEPS = 500_000
PAPER_TABLE1: dict[str, tuple[float, float]] = {
    "atari:bowling": (0.14, 0.07), "atari:boxing": (0.06, 0.04), "atari:breakout": (0.12, 0.05),
    "atari:frostbite": (0.35, 0.06), "atari:montezumarevenge": (0.13, 0.07), "atari:mspacman": (0.28, 0.07),
    "atari:pitfall": (0.40, 0.08), "atari:pong": (0.44, 0.20), "atari:privateeye": (0.26, 0.07),
    "atari:qbert": (0.83, 0.03), "atari:riverraid": (0.80, 0.05), "atari:seaquest": (0.57, 0.06),
    "atari:skiing": (0.30, 0.09), "atari:tennis": (0.10, 0.04),
    "dmc:ball_in_cup-catch": (0.20, 0.08), "dmc:cartpole-balance": (0.97, 0.03), "dmc:finger-spin": (0.09, 0.05),
    "dmc:manipulator-bring_ball": (0.00, 0.00), "dmc:pendulum-swingup": (0.83, 0.09),
    "dmc:point_mass-easy": (0.76, 0.16), "dmc:reacher-hard": (0.27, 0.08),
}


def paper_value(env_id: str) -> tuple[float, float] | None:
    """GLAMOR's Table 1 (mean, std) for this env at PAPER_STEPS, or None where the paper has none."""
    return PAPER_TABLE1.get(env_id)


def random_achievement(env_id: str, env_options: dict | None = None) -> dict[str, float]:
    """{"eval/achievement": ..., and on grids "eval/optimal": ...} of uniform random actions until T."""
    options = dict(env_options or {})
    path = cache_dir() / "random" / f"{env_cache_tag(env_id, options)}-v{CACHE_VERSION}.json"
    if path.exists():
        return json.loads(path.read_text())
    goals = load_or_build_goal_set(env_id, EVAL_GOALS, EVAL_GOAL_SEED, options, show_progress=False)
    probe = make_env(env_id, **options)
    try:
        result = evaluate(lambda: make_env(env_id, **options), goals, RandomGoalPolicy(probe, RANDOM_SEED),
                          RANDOM_PASSES * EVAL_GOALS, RANDOM_SEED)
    finally:
        probe.close()
    summary = {k: v for k, v in result.summary().items() if k in ("eval/achievement", "eval/optimal")}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fh.write(json.dumps(summary).encode()))
    return summary
