"""Policies the evaluator drives: closed-loop GLAMOR planning and reward-agent returns, and the
trained agents behind them (``load_trained_agent``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pixelplan.agents.base import PlanResult
from pixelplan.agents.glamor.collect import NoopBans
from pixelplan.agents.registry import config_class, make_agent
from pixelplan.envs import Film, make_env

from .checkpoint import load_checkpoint
from .config import RunConfig
from .resolve import probe_spec


class AgentGoalPolicy:
    """Replans every step with the T - t cap; stops after the action whose plan ended there.

    ``ban_noops``: an action after which an env's observation stayed the same is not planned first
    again while it stays the same (``plan``'s ``banned``); in a deterministic env it would do nothing
    again, and a closed-loop planner that scores it best from that observation would repeat it until
    the time limit. All of an observation's actions banned: the ban is lifted."""

    def __init__(self, plan: Callable[..., PlanResult], n_actions: int, ban_noops: bool = False) -> None:
        self.plan, self.ban_noops = plan, ban_noops
        self.bans = NoopBans(n_actions)
        self.last: dict[int, tuple[np.ndarray, int]] = {}  # env id -> (its last observation, the action taken there)
        self.time_limit = 0

    def act(self, obs, goals, steps_left, env_ids):
        steps_left = np.asarray(steps_left)
        if not self.ban_noops:
            result = self.plan(obs, goals, steps_left)
            return result.actions[:, 0], result.lengths <= 1
        self.time_limit = max(self.time_limit, int(steps_left.max()))
        env_ids = np.asarray(env_ids).tolist()
        for row, (env, left) in enumerate(zip(env_ids, steps_left.tolist())):
            if left < self.time_limit and env in self.last:
                self.bans.stepped(env, self.last[env][1], self.last[env][0], obs[row])
            else:  # a new episode
                self.bans.forget(env)
        result = self.plan(obs, goals, steps_left, banned=self.bans.mask(env_ids))
        actions = result.actions[:, 0]
        for row, env in enumerate(env_ids):
            self.last[env] = (obs[row].copy(), int(actions[row]))
        return actions, result.lengths <= 1


def load_trained_agent(path: str, planning: dict | None = None):
    """(agent, run config) from a run folder or checkpoint, built from the checkpoint's own config.

    ``planning`` changes fields that the agent's config class lists in ``PLANNING_FIELDS`` (how a
    trained model plans, e.g. GLAMOR's N and gamma); the trained weights move into an agent built
    with them. Any other field would change the model the weights belong to, so it is refused."""
    state = load_checkpoint(path)
    run = RunConfig.from_dict(state["config"])
    planning = dict(planning or {})
    allowed = getattr(config_class(run.agent), "PLANNING_FIELDS", ())
    refused = sorted(set(planning) - set(allowed))
    if refused:
        settable = f"only its planning settings {list(allowed)}" if allowed else "none of its settings"
        raise ValueError(f"agent.{refused[0]} changes the trained {run.agent} model; at evaluation "
                         f"{settable} may change")
    spec = probe_spec(run.env, run.env_options)
    agent = make_agent(run.agent, spec, run.agent_overrides, device="cpu")
    agent.load_state_dict(state["learner"]["agent"])
    if planning:
        tuned = make_agent(run.agent, spec, {**run.agent_overrides, **planning}, device="cpu")
        tuned.load_policy_weights(agent.policy_weights())
        agent = tuned
    return agent, run


@dataclass
class ReturnResult:
    returns: np.ndarray  # (E,) undiscounted return per episode
    lengths: np.ndarray  # (E,) steps per episode
    films: list[Film] = field(default_factory=list)  # the first ``record`` episodes, in episode order

    def summary(self) -> dict[str, float]:
        return {"eval/return": float(self.returns.mean()), "eval/return_std": float(self.returns.std()),
                "eval/episodes": float(len(self.returns))}


def evaluate_returns(env_id: str, env_options: dict, agent, episodes: int, seed: int) -> dict[str, float]:
    """Mean undiscounted return of ``agent.act`` without exploration (see ``play_episodes``)."""
    return play_episodes(env_id, env_options, agent, episodes, seed).summary()


def play_episodes(env_id: str, env_options: dict, agent, episodes: int, seed: int, record: int = 0) -> ReturnResult:
    """``episodes`` episodes of ``agent.act`` without exploration, in lockstep; the first ``record`` filmed."""
    envs = [make_env(env_id, **env_options) for _ in range(episodes)]
    try:
        obs = np.stack([env.reset(seed=seed + i) for i, env in enumerate(envs)])
        films = [Film([env.video_frame()]) for env in envs[:record]]
        carry = agent.initial_carry(episodes)
        first = np.ones(episodes, bool)
        active, returns, lengths = np.ones(episodes, bool), np.zeros(episodes), np.zeros(episodes, np.int64)
        while active.any():
            actions, carry = agent.act(obs, carry, first, False, 0)
            first[:] = False
            for i in np.flatnonzero(active):
                step = envs[i].step(actions[i])
                obs[i], returns[i], lengths[i] = step.obs, returns[i] + step.reward, lengths[i] + 1
                active[i] = not (step.terminated or step.truncated)
                if i < record:
                    films[i].frames.append(envs[i].video_frame())
                    films[i].rewards.append(step.reward)
    finally:
        for env in envs:
            env.close()
    return ReturnResult(returns, lengths, films)
