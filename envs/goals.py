"""Goal achievement (the 10% rule), feasible ranges and the diverse goal buffer.

Achieved = every goal feature within ``tolerance`` x its feasible range. Feasible ranges are
measured as max - min over end states of random-policy episodes (ranges below 0.01 become 1),
as in the GLAMOR authors' code, unless the env knows them exactly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import PixelEnv
from .files import atomic_write

TOLERANCE = 0.1


def achieved(features: np.ndarray, goal_features: np.ndarray, ranges: np.ndarray,
             tolerance: float = TOLERANCE) -> np.ndarray:
    """Per row: every feature within tolerance x range of the goal's (broadcasts over batches)."""
    diff = np.abs(np.asarray(features, np.float64) - np.asarray(goal_features, np.float64))
    return np.all(diff <= tolerance * np.asarray(ranges, np.float64) + 1e-9, axis=-1)


def random_episode(env: PixelEnv, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, features) of every state of one uniform-random episode."""
    env.reset(seed=int(rng.integers(2**31)))
    states = [(env.frame(), env.goal_features())]
    while True:
        step = env.step(env.sample_action(rng))
        states.append((env.frame(), env.goal_features()))
        if step.terminated or step.truncated:
            return states


def measure_feature_ranges(env: PixelEnv, episodes: int = 500, seed: int = 0,
                           progress: Callable[[int], None] | None = None) -> np.ndarray:
    known = env.known_feature_ranges()
    if known is not None:
        return known
    rng = np.random.default_rng(seed)
    ends = []
    for i in range(episodes):
        ends.append(random_episode(env, rng)[-1][1])
        if progress:
            progress(i + 1)
    ends = np.stack(ends)
    ranges = ends.max(0) - ends.min(0)
    return np.where(ranges < 0.01, 1.0, ranges)


class DiverseGoalBuffer:
    """Keeps ``capacity`` goals spread out in (range-normalised) feature space.

    A candidate replaces a randomly chosen goal only if the candidate is farther from its
    nearest remaining goal than that goal is from its own nearest neighbour.
    """

    def __init__(self, capacity: int, ranges: np.ndarray, rng: np.random.Generator) -> None:
        self.capacity, self.ranges, self.rng = capacity, np.asarray(ranges, np.float64), rng
        self.frames: list[np.ndarray] = []
        self.features: list[np.ndarray] = []

    def _nearest(self, feats: np.ndarray, exclude: int) -> float:
        pts = np.delete(np.asarray(self.features), exclude, axis=0) / self.ranges
        return float(np.min(np.linalg.norm(pts - feats / self.ranges, axis=1))) if len(pts) else np.inf

    def offer(self, frame: np.ndarray, features: np.ndarray) -> bool:
        features = np.asarray(features, np.float64)
        if len(self.features) < self.capacity:
            self.frames.append(frame)
            self.features.append(features)
            return True
        k = int(self.rng.integers(self.capacity))
        if self._nearest(features, exclude=k) > self._nearest(self.features[k], exclude=k):
            self.frames[k], self.features[k] = frame, features
            return True
        return False


@dataclass
class GoalSet:
    """Fixed goals for one environment: frames (N, *frame_shape), features (N, F), ranges (F,)."""

    env_id: str
    frames: np.ndarray
    features: np.ndarray
    ranges: np.ndarray
    seed: int

    def __len__(self) -> int:
        return len(self.frames)

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, lambda fh: np.savez_compressed(
            fh, env_id=self.env_id, frames=self.frames, features=self.features, ranges=self.ranges, seed=self.seed))

    @classmethod
    def load(cls, path: str | Path) -> GoalSet:
        with np.load(path) as z:
            return cls(str(z["env_id"]), z["frames"], z["features"], z["ranges"], int(z["seed"]))


def build_goal_set(env: PixelEnv, num_goals: int = 30, seed: int = 0, episodes: int = 200,
                   range_episodes: int = 500, ranges: np.ndarray | None = None) -> GoalSet:
    """Diverse goals from the states random-policy episodes visit; reproducible from ``seed``."""
    if ranges is None:
        ranges = measure_feature_ranges(env, range_episodes, seed)
    rng = np.random.default_rng(seed + 1)
    buffer = DiverseGoalBuffer(num_goals, ranges, rng)
    for _ in range(episodes):
        states = random_episode(env, rng)
        start = states[0][1]
        for frame, feats in states[1:]:
            if not achieved(feats, start, ranges):  # a goal met at reset tests nothing
                buffer.offer(frame, feats)
    if not buffer.frames:
        raise ValueError(f"{env.spec.env_id}: no goals: in {episodes} random episodes of {env.spec.time_limit} steps "
                         f"no state left its start's 10% neighbourhood; a longer env.time_limit gives some")
    return GoalSet(env.spec.env_id, np.stack(buffer.frames), np.stack(buffer.features).astype(np.float32),
                   np.asarray(ranges, np.float64), seed)
