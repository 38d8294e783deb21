"""Policies the evaluator drives: closed-loop GLAMOR planning and reward-agent returns."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pixelplan.agents.base import PlanResult
from pixelplan.envs import make_env


class AgentGoalPolicy:
    """Replans every step with the T - t cap; stops after the action whose plan ended there."""

    def __init__(self, plan: Callable[[np.ndarray, np.ndarray, np.ndarray], PlanResult], seed: int = 0) -> None:
        self.plan, self.seed = plan, seed

    def act(self, obs, goals, steps_left):
        result = self.plan(obs, goals, np.asarray(steps_left))
        return result.actions[:, 0], result.lengths <= 1


def evaluate_returns(env_id: str, env_options: dict, agent, episodes: int, seed: int) -> dict[str, float]:
    """Mean undiscounted return of ``agent.act`` without exploration, episodes in lockstep."""
    envs = [make_env(env_id, **env_options) for _ in range(episodes)]
    try:
        obs = np.stack([env.reset(seed=seed + i) for i, env in enumerate(envs)])
        carry = agent.initial_carry(episodes)
        first = np.ones(episodes, bool)
        active, returns = np.ones(episodes, bool), np.zeros(episodes)
        while active.any():
            actions, carry = agent.act(obs, carry, first, False, 0)
            first[:] = False
            for i in np.flatnonzero(active):
                step = envs[i].step(actions[i])
                obs[i], returns[i] = step.obs, returns[i] + step.reward
                active[i] = not (step.terminated or step.truncated)
    finally:
        for env in envs:
            env.close()
    return {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std()),
            "eval/episodes": float(episodes)}
