"""The contract between agents and the runtime (workers, learners, planner service).

Agents are plain torch code: they take batches (``envs.batches``) and never see the replay,
Ray or the network. The runtime builds them from ``(spec, config)`` through ``agents.registry``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pixelplan.envs.batches import BatchQuery, PairBatch, SequenceBatch
from pixelplan.envs.spec import EnvSpec


@dataclass(frozen=True)
class SampleRequest:
    """What an agent trains on (the replay's query) and how fast (the rate limiter's settings)."""

    query: BatchQuery
    replay_ratio: float  # sampled items per inserted env step
    min_steps_learn: int  # env steps in replay before the first update

    @property
    def batch_size(self) -> int:
        return self.query.batch_size


@dataclass
class PlanResult:
    """Plans for a batch of requests: ``actions[b, :lengths[b]]`` (no end token), tagged with a version."""

    actions: np.ndarray  # (B, max_len) int64, -1 after the plan's end
    lengths: np.ndarray  # (B,) int64 >= 1
    scores: np.ndarray  # (B,) float, Eq. 8 log-score of the returned plan
    version: int = 0


def check_banned(banned: np.ndarray, rows: int, n_actions: int) -> None:
    """A plan request's banned first actions: (rows, n_actions) bool, leaving each row an action."""
    if banned.shape != (rows, n_actions) or banned.dtype != bool or banned.all(1).any():
        raise ValueError(f"plan: banned must be ({rows}, {n_actions}) bool leaving each request an "
                         f"action, got {banned.dtype} {banned.shape}")


class Agent(Protocol):
    spec: EnvSpec
    goal_conditioned: bool  # True: acts through plan(); False: through act()
    # Set by a data-parallel learner: called with the parameters after backward, before the optimiser
    # step (it all-reduces their gradients). None for a single learner.
    grad_sync: Callable[[list], None] | None

    def modules(self) -> list:
        """The trainable torch modules (a data-parallel learner broadcasts their initial weights)."""

    def sample_request(self) -> SampleRequest: ...

    def learn(self, batch: PairBatch | SequenceBatch) -> dict[str, float]:
        """One update; returns scalars under namespaced keys ("loss/idm", "grad_norm/net", "imagine/return"):
        the runtime logs and plots them as named, so a key says what it is and no two agents share one
        for different things."""

    def policy_weights(self) -> dict[str, Any]:
        """Inference-only weights on CPU (what the planner service and workers need)."""

    def load_policy_weights(self, weights: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict:
        """Everything to resume: models, optimisers, counters, RNG states, config."""

    def load_state_dict(self, state: dict) -> None: ...


class GoalAgent(Agent, Protocol):
    def epsilon(self, env_steps: int) -> float:
        """Probability that collection replaces a planned action by a uniform random one."""

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray, seed: int | None = None) -> PlanResult:
        """Batched planning for (obs, goal) requests; plan b is at most steps_left[b] long."""


class PolicyAgent(Agent, Protocol):
    def initial_carry(self, batch: int) -> Any:
        """Recurrent state for ``batch`` fresh episodes (None for stateless policies)."""

    def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool, env_steps: int) -> tuple[np.ndarray, Any]:
        """Actions for a batch; ``first[b]`` resets env b's carry; exploration noise follows ``env_steps``."""
