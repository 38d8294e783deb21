"""Evaluation and training goal sets, built once per (env, seed, size) and cached on disk."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixelplan.envs import GoalSet, build_goal_set, make_env, measure_feature_ranges
from pixelplan.envs.files import atomic_write

EVAL_GOALS = 30
EVAL_GOAL_SEED = 0  # evaluation goals are fixed per env: every run seed is scored on the same 30 goals


def cache_dir() -> Path:
    return Path(os.environ.get("PIXELPLAN_CACHE", Path.home() / ".cache" / "pixelplan"))


def env_cache_tag(env_id: str, env_options: dict | None = None) -> str:
    """A file-name part that changes whenever the env's goals could: its options, and for grid
    worlds the map itself (``grid:PATH`` names a file that may be edited)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)
    identity = {"options": env_options} if env_options else {}
    if env_id.partition(":")[0] == "grid":
        from pixelplan.envs.gridworld import resolve_map

        identity["map"] = resolve_map(env_id.partition(":")[2])
    if not identity:
        return safe
    return f"{safe}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]}"


def goal_set_path(env_id: str, num_goals: int, seed: int, env_options: dict | None = None) -> Path:
    return cache_dir() / "goals" / f"{env_cache_tag(env_id, env_options)}-n{num_goals}-seed{seed}.npz"


def load_or_build_goal_set(env_id: str, num_goals: int = EVAL_GOALS, seed: int = 0,
                           env_options: dict | None = None, show_progress: bool = True) -> GoalSet:
    """The same (env, options, num_goals, seed) always gives the same goals; building is done once."""
    path = goal_set_path(env_id, num_goals, seed, env_options)
    if path.exists():
        return GoalSet.load(path)
    env = make_env(env_id, **(env_options or {}))
    try:
        ranges = feature_ranges(env, env_id, env_options, show_progress)
        goals = build_goal_set(env, num_goals, seed, ranges=ranges)
    finally:
        env.close()
    goals.save(path)
    return goals


RANGE_EPISODES = 500


def feature_ranges(env, env_id: str, env_options: dict | None = None, show_progress: bool = True) -> np.ndarray:
    """The env's feasible range per goal feature: the env's own, or measured once per env and
    options (500 random episodes, the slow part of a goal set) and cached for every goal set."""
    known = env.known_feature_ranges()
    if known is not None:
        return known
    path = cache_dir() / "ranges" / f"{env_cache_tag(env_id, env_options)}-e{RANGE_EPISODES}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    with tqdm(total=RANGE_EPISODES, desc=f"feasible ranges {env_id}", disable=not show_progress, leave=False) as bar:
        ranges = measure_feature_ranges(env, RANGE_EPISODES, EVAL_GOAL_SEED, progress=lambda _: bar.update())
    atomic_write(path, lambda fh: np.save(fh, np.asarray(ranges, np.float64), allow_pickle=False))
    return ranges
