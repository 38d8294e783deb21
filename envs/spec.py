"""What every agent, worker and replay shard needs to know about an environment."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment.

    A *frame* is one observation of one step: ``(C, H, W)`` uint8 pixels, or ``(D,)`` float32
    for state-based tasks. The agent observes ``stack`` frames concatenated on the channel axis;
    a goal is a single frame. Goal features are private: only the evaluator reads them.
    """

    env_id: str
    frame_shape: tuple[int, ...]
    stack: int
    action_kind: Literal["discrete", "continuous"]
    action_size: int  # number of actions (discrete) or action dimension (continuous)
    time_limit: int
    feature_names: tuple[str, ...]
    frame_dtype: str = "uint8"

    @property
    def discrete(self) -> bool:
        return self.action_kind == "discrete"

    @property
    def pixels(self) -> bool:
        return self.frame_dtype == "uint8"

    @property
    def obs_shape(self) -> tuple[int, ...]:
        if not self.pixels:
            return (self.frame_shape[0] * self.stack,)
        c, h, w = self.frame_shape
        return (c * self.stack, h, w)

    def check_action(self, action) -> int | np.ndarray:
        """Return the action in canonical form, or raise ValueError saying what is wrong."""
        if self.discrete:
            if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
                if isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
                    action = int(action)
                else:
                    raise ValueError(
                        f"{self.env_id}: discrete action must be an int in [0, {self.action_size}), "
                        f"got {type(action).__name__} {action!r}"
                    )
            if not 0 <= int(action) < self.action_size:
                raise ValueError(f"{self.env_id}: action {action} out of range [0, {self.action_size})")
            return int(action)
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (self.action_size,):
            raise ValueError(f"{self.env_id}: continuous action must have shape ({self.action_size},), got {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise ValueError(f"{self.env_id}: continuous action must be finite and in [-1, 1], got {a}")
        return a

    def check_obs(self, obs: np.ndarray) -> None:
        """Raise ValueError if ``obs`` is not a (possibly batched) observation of this env."""
        obs = np.asarray(obs)
        if obs.shape[-len(self.obs_shape):] != self.obs_shape or obs.dtype != np.dtype(self.frame_dtype):
            raise ValueError(
                f"{self.env_id}: observation must be {self.frame_dtype} with trailing shape {self.obs_shape}, "
                f"got {obs.dtype} {obs.shape}"
            )
