"""Goal-achievement evaluation: many episodes in lockstep so a policy can batch its decisions."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .base import PixelEnv
from .goals import GoalSet, achieved


class GoalPolicy(Protocol):
    def act(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray,
            env_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For a batch: (actions, stop). ``stop[i]``: take ``actions[i]``, then end episode i (the
        agent's plan was that action followed by its end token). ``env_ids`` say which of the lockstep
        envs each row is, so a policy may remember an episode's last step (a new episode starts with
        ``steps_left`` at the time limit)."""


class RandomGoalPolicy:
    """Uniform random actions until the time limit; never stops early."""

    def __init__(self, env: PixelEnv, seed: int = 0) -> None:
        self.env, self.rng = env, np.random.default_rng(seed)

    def act(self, obs, goals, steps_left, env_ids):
        actions = np.array([self.env.sample_action(self.rng) for _ in range(len(obs))])
        return actions, np.zeros(len(obs), bool)


@dataclass
class Film:
    """One recorded episode: ``frames[0]`` after reset, then one per step (``PixelEnv.video_frame``)."""

    frames: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8 each
    rewards: list[float] = field(default_factory=list)  # one per step
    at_goal: list[bool] = field(default_factory=list)  # goal episodes: one per frame


@dataclass
class EvalResult:
    goal_index: np.ndarray  # (E,)
    achieved: np.ndarray  # (E,) bool
    steps: np.ndarray  # (E,) steps taken before judging
    optimal: np.ndarray  # (E,) bool, stopped on the goal cell after a shortest path to it (grid only)
    final_frames: np.ndarray  # (E, *frame_shape)
    final_features: np.ndarray  # (E, F)
    has_optimal: bool = False
    extra: dict = field(default_factory=dict)
    films: list[Film] = field(default_factory=list)  # the first ``record`` episodes, in episode order
    shortest: np.ndarray | None = None  # (E,) shortest-path distance from the start to the goal (grid only)

    @property
    def achievement_rate(self) -> float:
        return float(self.achieved.mean())

    @property
    def optimal_rate(self) -> float:
        return float(self.optimal.mean()) if self.has_optimal else float("nan")

    def summary(self) -> dict[str, float]:
        out = {"eval/achievement": self.achievement_rate, "eval/episodes": float(len(self.achieved)),
               "eval/mean_steps": float(self.steps.mean())}
        if self.has_optimal:
            out["eval/optimal"] = self.optimal_rate
        return out


def evaluate(make_env: Callable[[], PixelEnv], goals: GoalSet, policy: GoalPolicy, episodes: int | None = None,
             seed: int = 0, batch_size: int | None = None,
             progress: Callable[[int], None] | None = None, record: int = 0) -> EvalResult:
    """Run ``episodes`` goal-reaching episodes (goal i % len(goals)); judge at stop or time limit.
    The first ``record`` episodes are also filmed (``EvalResult.films``)."""
    episodes = episodes or len(goals)
    batch_size = batch_size or min(episodes, len(goals))
    envs = [make_env() for _ in range(batch_size)]
    spec = envs[0].spec
    records = []
    try:
        for start in range(0, episodes, batch_size):
            idx = np.arange(start, min(start + batch_size, episodes))
            records.extend(_run_batch(envs[: len(idx)], goals, idx, policy, seed, record))
            if progress:
                progress(len(records))
    finally:
        for env in envs:
            env.close()
    films = [film for *_, film in records if film is not None]
    gi, ok, steps, frames, feats, opt, best = (np.array(col) for col in zip(*(r[:-1] for r in records)))
    has_opt = hasattr(envs[0], "shortest_path_length")
    return EvalResult(gi, ok.astype(bool), steps, opt.astype(bool) & has_opt, frames, feats, has_opt,
                      {"env_id": spec.env_id}, films, best if has_opt else None)


def _run_batch(envs: list[PixelEnv], goals: GoalSet, episode_ids: np.ndarray, policy: GoalPolicy, seed: int,
               record: int = 0):
    n, limit = len(envs), envs[0].spec.time_limit
    gidx = episode_ids % len(goals)
    obs = np.stack([env.reset(seed=seed + int(e)) for env, e in zip(envs, episode_ids)])
    films = [Film() if e < record else None for e in episode_ids]

    def film(i: int, reward: float | None = None) -> None:
        if films[i] is not None:
            films[i].frames.append(envs[i].video_frame())
            films[i].at_goal.append(bool(achieved(envs[i].goal_features(), goals.features[gidx[i]], goals.ranges)))
            if reward is not None:
                films[i].rewards.append(reward)

    for i in range(n):
        film(i)
    active, steps = np.ones(n, bool), np.zeros(n, np.int64)
    while active.any():
        ids = np.flatnonzero(active)
        actions, stop = policy.act(obs[ids], goals.frames[gidx[ids]], limit - steps[ids], ids)
        for k, i in enumerate(ids):
            step = envs[i].step(actions[k])
            obs[i], steps[i] = step.obs, steps[i] + 1
            film(i, step.reward)
            if stop[k] or step.terminated or step.truncated:
                active[i] = False
    out = []
    for i, env in enumerate(envs):
        feats, goal = env.goal_features(), goals.features[gidx[i]]
        ok = bool(achieved(feats, goal, goals.ranges))
        best = env.shortest_path_length(goal) if hasattr(env, "shortest_path_length") else -1
        # Optimal: stopped on the goal cell itself after the shortest path to it. The 10% rule accepts
        # the goal's neighbours on layouts 11+ cells wide; stopping next to it is achieved, not optimal.
        on_goal = np.array_equal(np.rint(feats), np.rint(goal))
        out.append((gidx[i], ok, steps[i], env.frame(), feats, ok and on_goal and steps[i] == best, best, films[i]))
    return out
