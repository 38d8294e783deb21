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
from pixelplan.envs.files import atomic_write
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


def env_cache_tag(env_id: str, env_options: dict | None = None, env: PixelEnv | None = None) -> str:
    """A file-name part that changes whenever the env's goals could: its spec, options and, for grid
    worlds, the parsed map (``grid:PATH`` names a file that may be edited). ``env``: an instance
    already built with these options (else one is built to read them)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id)[-80:]
    if env is not None:
        return f"{safe}-{env_fingerprint(env, env_options)}"
    probe = make_env(env_id, **(env_options or {}))
    try:
        return f"{safe}-{env_fingerprint(probe, env_options)}"
    finally:
        probe.close()


def goal_set_path(tag: str, num_goals: int, seed: int) -> Path:
    return cache_dir() / "goals" / f"{tag}-n{num_goals}-seed{seed}.npz"


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
    """The same (env, options, num_goals, seed) always gives the same goals; building is done once."""
    env = make_env(env_id, **(env_options or {}))
    try:
        tag = env_cache_tag(env_id, env_options, env)
        path = goal_set_path(tag, num_goals, seed)
        goals = _load_fitting(path, env, num_goals) if path.exists() else None
        if goals is not None:
            return goals
        ranges = feature_ranges(env, tag, show_progress)
        goals = build_goal_set(env, num_goals, seed, ranges=ranges)
    finally:
        env.close()
    goals.save(path)  # atomic: a stale or foreign file at this key is replaced whole
    return goals


RANGE_EPISODES = 500


def feature_ranges(env: PixelEnv, tag: str, show_progress: bool = True) -> np.ndarray:
    """The env's feasible range per goal feature: the env's own, or measured once per env and
    options (500 random episodes, the slow part of a goal set) and cached for every goal set."""
    known = env.known_feature_ranges()
    if known is not None:
        return known
    path = cache_dir() / "ranges" / f"{tag}-e{RANGE_EPISODES}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    with tqdm(total=RANGE_EPISODES, desc=f"feasible ranges {env.spec.env_id}", disable=not show_progress, leave=False) as bar:
        ranges = measure_feature_ranges(env, RANGE_EPISODES, EVAL_GOAL_SEED, progress=lambda _: bar.update())
    atomic_write(path, lambda fh: np.save(fh, np.asarray(ranges, np.float64), allow_pickle=False))
    return ranges
