"""Evaluation and training goal sets, built once per (env, seed, size) and cached on disk.

The cache key holds a hash of what the goals depend on (env id, options, the env's spec and, for
``grid:PATH``, the map's text), so an edited map or a changed option builds new goals instead of
silently evaluating against the old ones; a loaded set must also match the env's frame shape.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixelplan.envs import GoalSet, build_goal_set, make_env, measure_feature_ranges
from pixelplan.envs.base import PixelEnv
from pixelplan.envs.gridworld import GridWorld

EVAL_GOALS = 30
EVAL_GOAL_SEED = 0  # evaluation goals are fixed per env: every run seed is scored on the same 30 goals


def cache_dir() -> Path:
    return Path(os.environ.get("PIXELPLAN_CACHE", Path.home() / ".cache" / "pixelplan"))


def env_fingerprint(env: PixelEnv, env_options: dict | None = None) -> str:
    """Short hash of everything a goal set depends on."""
    layout = env.walls.astype(int).tolist() if isinstance(env, GridWorld) else None  # the parsed map itself
    described = {"spec": asdict(env.spec), "options": env_options or {}, "layout": layout}
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def goal_set_path(env_id: str, num_goals: int, seed: int, fingerprint: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)[-80:]
    return cache_dir() / "goals" / f"{safe}-{fingerprint}-n{num_goals}-seed{seed}.npz"


def _load_fitting(path: Path, env: PixelEnv, num_goals: int) -> GoalSet | None:
    """The cached set at ``path`` if it is readable and shaped for ``env``; None means build it again."""
    try:
        goals = GoalSet.load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    spec = env.spec
    fits = (goals.frames.shape[1:] == spec.frame_shape and goals.frames.dtype == np.dtype(spec.frame_dtype)
            and goals.features.shape == (len(goals), len(spec.feature_names)) and 0 < len(goals) <= num_goals)
    return goals if fits else None


def load_or_build_goal_set(env_id: str, num_goals: int = EVAL_GOALS, seed: int = 0,
                           env_options: dict | None = None, show_progress: bool = True) -> GoalSet:
    """The same (env, num_goals, seed) always gives the same goals; building is done once."""
    env = make_env(env_id, **(env_options or {}))
    try:
        path = goal_set_path(env_id, num_goals, seed, env_fingerprint(env, env_options))
        goals = _load_fitting(path, env, num_goals) if path.exists() else None
        if goals is not None:
            return goals
        ranges = env.known_feature_ranges()
        if ranges is None:
            with tqdm(total=500, desc=f"feasible ranges {env_id}", disable=not show_progress, leave=False) as bar:
                ranges = measure_feature_ranges(env, 500, seed, progress=lambda _: bar.update())
        goals = build_goal_set(env, num_goals, seed, ranges=ranges)
    finally:
        env.close()
    goals.save(path)  # atomic: a stale or foreign file at this key is replaced whole
    return goals
