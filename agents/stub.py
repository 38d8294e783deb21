"""Stub agents that learn nothing: they measure and test the runtime's plumbing.

``stub`` plans random action sequences (the planner benchmark's "random plans" policy);
``stub-policy`` acts uniformly at random through act(). Both count what the runtime does to
them, so system tests can check invariants (replay ratio, weight versions) without learning.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelplan.envs.batches import BatchQuery
from pixelplan.envs.spec import EnvSpec

from .base import PlanResult, SampleRequest


@dataclass(frozen=True)
class StubConfig:
    batch_size: int = 16
    horizon: int = 20  # pair length for sampling, and the longest random plan
    replay_ratio: float = 4.0
    min_steps_learn: int = 100
    window: int = 0  # > 0: sample windows of this length instead of pairs
    eps_final: float = 0.1


class StubAgent:
    goal_conditioned = True

    def __init__(self, spec: EnvSpec, config: StubConfig | None = None, device: str = "cpu", seed: int = 0) -> None:
        self.spec, self.config = spec, config or StubConfig()
        self.rng = np.random.default_rng(seed)
        self.updates = self.version = 0
        self.items_seen = 0
        self.weights = np.zeros(4, np.float32)
        self.grad_sync = None

    def modules(self) -> list:
        return []

    def sample_request(self) -> SampleRequest:
        c = self.config
        kind = "windows" if c.window else "pairs"
        return SampleRequest(BatchQuery(kind, c.batch_size, c.window or c.horizon), c.replay_ratio, c.min_steps_learn)

    def epsilon(self, env_steps: int) -> float:
        return self.config.eps_final

    def learn(self, batch) -> dict[str, float]:
        self.updates += 1
        self.items_seen += len(batch)
        self.weights += 1.0
        return {"loss/stub": 1.0 / self.updates}

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray, seed: int | None = None,
             banned: np.ndarray | None = None) -> PlanResult:
        rng = np.random.default_rng(seed) if seed is not None else self.rng
        caps = np.minimum(np.asarray(steps_left), self.config.horizon)
        lengths = rng.integers(1, caps + 1)
        actions = rng.integers(self.spec.action_size, size=(len(obs), int(caps.max())))
        if banned is not None:  # each first action uniform among the allowed ones
            actions[:, 0] = [rng.choice(np.flatnonzero(~row)) for row in np.asarray(banned)]
        actions[np.arange(actions.shape[1])[None, :] >= lengths[:, None]] = -1
        return PlanResult(actions, lengths.astype(np.int64), np.zeros(len(obs)), self.version)

    def initial_carry(self, batch: int) -> Any:
        return None

    def act(self, obs, carry, first, explore, env_steps):
        if self.spec.discrete:
            return self.rng.integers(self.spec.action_size, size=len(obs)), carry
        return self.rng.uniform(-1, 1, (len(obs), self.spec.action_size)).astype(np.float32), carry

    def policy_weights(self) -> dict[str, Any]:
        return {"version": self.updates, "weights": self.weights.copy()}

    def load_policy_weights(self, weights: dict[str, Any]) -> None:
        self.version, self.weights = int(weights["version"]), np.array(weights["weights"])

    def state_dict(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "updates": self.updates, "items_seen": self.items_seen,
                "weights": self.weights.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.items_seen = state["updates"], state["items_seen"]
        self.weights = np.array(state["weights"])
        self.rng.bit_generator.state = state["rng"]


class StubPolicyAgent(StubAgent):
    goal_conditioned = False
