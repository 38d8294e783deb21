"""Evaluation and training goal sets, built once per (env, seed, size) and cached on disk."""
from __future__ import annotations

import os
import re
from pathlib import Path

from tqdm import tqdm

from pixelplan.envs import GoalSet, build_goal_set, make_env, measure_feature_ranges

EVAL_GOALS = 30
EVAL_GOAL_SEED = 0  # evaluation goals are fixed per env: every run seed is scored on the same 30 goals


def cache_dir() -> Path:
    return Path(os.environ.get("PIXELPLAN_CACHE", Path.home() / ".cache" / "pixelplan"))


def goal_set_path(env_id: str, num_goals: int, seed: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)
    return cache_dir() / "goals" / f"{safe}-n{num_goals}-seed{seed}.npz"


def load_or_build_goal_set(env_id: str, num_goals: int = EVAL_GOALS, seed: int = 0,
                           env_options: dict | None = None, show_progress: bool = True) -> GoalSet:
    """The same (env, num_goals, seed) always gives the same goals; building is done once."""
    path = goal_set_path(env_id, num_goals, seed)
    if path.exists() and not env_options:
        return GoalSet.load(path)
    env = make_env(env_id, **(env_options or {}))
    try:
        ranges = env.known_feature_ranges()
        if ranges is None:
            with tqdm(total=500, desc=f"feasible ranges {env_id}", disable=not show_progress, leave=False) as bar:
                ranges = measure_feature_ranges(env, 500, seed, progress=lambda _: bar.update())
        goals = build_goal_set(env, num_goals, seed, ranges=ranges)
    finally:
        env.close()
    if not env_options:
        goals.save(path)
    return goals
