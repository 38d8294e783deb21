"""Collection helpers (Sec. 3.5): ε schedule and open-loop plan following.

Plain numpy objects with no environment inside, so a worker can drive any number of envs with
them: plan once per episode from (s_1, g) (never on ε-random steps), then ask the follower for one
action per env per step, and which envs are due another plan (GlamorConfig.collect_replan_every,
next_goal_at_plan_end; none in the paper's collection). Goals come from the training task set
(GlamorConfig.train_tasks goals from envs.goals.build_goal_set, built by the worker). Evaluation
replans every step: a plan of one action means "take it, then stop", which is envs.evaluation's
stop flag.
"""
from __future__ import annotations

import numpy as np

from pixelplan.agents.base import PlanResult

from .config import GlamorConfig


class EpsilonSchedule:
    """ε decays linearly from ``initial`` to ``final`` over ``steps`` env steps, then stays."""

    def __init__(self, initial: float, final: float, steps: int) -> None:
        if steps < 0:
            raise ValueError(f"epsilon decay steps must be >= 0, got {steps}")
        self.initial, self.final, self.steps = initial, final, steps

    @classmethod
    def from_config(cls, cfg: GlamorConfig) -> EpsilonSchedule:
        return cls(cfg.eps_initial, cfg.eps_final, cfg.eps_steps)

    def __call__(self, env_steps: int) -> float:
        if self.steps == 0 or env_steps >= self.steps:
            return self.final
        frac = max(env_steps, 0) / self.steps
        return self.initial + frac * (self.final - self.initial)


class OpenLoopFollower:
    """Per-env plan cursors. Each plan action is replaced by a uniform random one with probability ε;
    the cursor advances either way (the i-th action of the plan belongs to step i). When the plan has
    run out the env gets random actions, and ``stop`` is set if ``stop_at_plan_end``. ``replan_every``
    and ``next_goal`` say when an env is due another plan (``due``)."""

    def __init__(self, num_envs: int, n_actions: int, seed: int = 0, stop_at_plan_end: bool = False,
                 replan_every: int = 0, next_goal: bool = False) -> None:
        self.n_actions, self.stop_at_plan_end = n_actions, stop_at_plan_end
        self.replan_every, self.next_goal = replan_every, next_goal
        self.rng = np.random.default_rng(seed)
        self.plans = np.full((num_envs, 1), -1, np.int64)
        self.lengths = np.zeros(num_envs, np.int64)
        self.cursor = np.zeros(num_envs, np.int64)

    def start(self, env_ids: np.ndarray, plans: PlanResult) -> None:
        """Install fresh plans (from s_1 of new episodes) for ``env_ids``."""
        env_ids = np.asarray(env_ids, np.int64)
        width = max(self.plans.shape[1], plans.actions.shape[1])
        if width > self.plans.shape[1]:
            grown = np.full((len(self.plans), width), -1, np.int64)
            grown[:, : self.plans.shape[1]] = self.plans
            self.plans = grown
        self.plans[env_ids] = -1
        self.plans[env_ids, : plans.actions.shape[1]] = plans.actions
        self.lengths[env_ids] = plans.lengths
        self.cursor[env_ids] = 0

    def next_actions(self, eps: float, env_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(actions, stop) for ``env_ids`` (all envs by default), advancing their cursors."""
        ids = np.arange(len(self.plans)) if env_ids is None else np.asarray(env_ids, np.int64)
        cursor = self.cursor[ids]
        over = cursor >= self.lengths[ids]
        planned = self.plans[ids, np.minimum(cursor, self.plans.shape[1] - 1)]
        random = self.rng.integers(self.n_actions, size=len(ids))
        explore = over | (self.rng.random(len(ids)) < eps)
        self.cursor[ids] = cursor + 1
        return np.where(explore, random, planned), over & self.stop_at_plan_end

    def due(self, env_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of ``env_ids`` (envs mid-episode): those due a new plan toward the same goal (``replan_every``
        steps of this one taken), and those whose plan has run out, due one toward a new goal."""
        ids = np.asarray(env_ids, np.int64)
        cursor = self.cursor[ids]
        over = cursor >= self.lengths[ids]
        again = ~over & (self.replan_every > 0) & (cursor >= self.replan_every)
        return ids[again], ids[over & self.next_goal]


class NoopBans:
    """Per env, the actions that left its current observation unchanged (GlamorConfig.ban_noop_actions):
    a plan from that observation may not start with them. A step that changes the observation forgets
    them; so does a ban that has grown to every action (``mask`` then lifts it)."""

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions
        self.banned: dict[int, np.ndarray] = {}

    def forget(self, env: int) -> None:
        self.banned.pop(env, None)

    def stepped(self, env: int, action: int, before: np.ndarray, after: np.ndarray) -> None:
        if np.array_equal(before, after):
            self.banned.setdefault(env, np.zeros(self.n_actions, bool))[action] = True
        else:
            self.forget(env)

    def mask(self, envs) -> np.ndarray:
        """(len(envs), n_actions) bool: each env's banned first actions, never all of them."""
        out = np.zeros((len(envs), self.n_actions), bool)
        for row, env in enumerate(envs):
            ban = self.banned.get(env)
            if ban is not None and ban.all():
                self.forget(env)
            elif ban is not None:
                out[row] = ban
        return out
