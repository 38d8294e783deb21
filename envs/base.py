"""The one small interface every environment family implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import numpy as np

from .spec import EnvSpec


def rgb_image(frame: np.ndarray) -> np.ndarray:
    """A (C, H, W) uint8 frame, grayscale or RGB, as an (H, W, 3) image."""
    if frame.ndim != 3 or frame.dtype != np.uint8 or frame.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1 or 3, H, W) uint8 frame, got {frame.dtype} {frame.shape}")
    return np.repeat(frame[0][..., None], 3, axis=-1) if frame.shape[0] == 1 else frame.transpose(1, 2, 0)


@dataclass
class Step:
    obs: np.ndarray
    reward: float
    terminated: bool  # the task ended (not the time limit)
    truncated: bool  # the time limit T was reached


class PixelEnv(ABC):
    """reset/step return stacked frames; goal features stay private.

    Subclasses implement the single-frame primitives ``_reset`` and ``_step``; this base owns
    the frame stack, the time limit and input validation (a bad action raises and changes nothing).
    At reset the stack is filled with copies of the first frame: replay rebuilds stacks the same way.
    """

    spec: EnvSpec

    def __init__(self) -> None:
        self._frames: deque[np.ndarray] = deque(maxlen=self.spec.stack)
        self.t = 0

    # -- primitives ---------------------------------------------------------------------------
    @abstractmethod
    def _reset(self, seed: int | None) -> np.ndarray:
        """Start an episode and return its first frame."""

    @abstractmethod
    def _step(self, action) -> tuple[np.ndarray, float, bool]:
        """Apply a validated action; return (frame, reward, terminated)."""

    @abstractmethod
    def goal_features(self) -> np.ndarray:
        """Entity positions of the current state, float64 (the evaluator's private view)."""

    def known_feature_ranges(self) -> np.ndarray | None:
        """Exact feasible range per feature when known (grid world); None = measure it."""
        return None

    # -- public API ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        frame = self._reset(seed)
        self.t = 0
        self._frames.clear()
        for _ in range(self.spec.stack):
            self._frames.append(frame)
        return self.observation()

    def step(self, action) -> Step:
        if self.t >= self.spec.time_limit:
            raise RuntimeError(f"{self.spec.env_id}: step() after the time limit; call reset()")
        action = self.spec.check_action(action)
        frame, reward, terminated = self._step(action)
        self.t += 1
        self._frames.append(frame)
        return Step(self.observation(), float(reward), bool(terminated), self.t >= self.spec.time_limit)

    def frame(self) -> np.ndarray:
        """The current single frame (what a goal looks like)."""
        return self._frames[-1]

    def video_frame(self) -> np.ndarray:
        """The current frame as (H, W, 3) uint8 RGB for videos: the agent's own view (state-based
        families override this to render their scene)."""
        if not self.spec.pixels:
            raise ValueError(f"{self.spec.env_id} observes states and has no renderer to record videos with")
        return rgb_image(self.frame())

    def observation(self) -> np.ndarray:
        return np.concatenate(list(self._frames), axis=0)

    def sample_action(self, rng: np.random.Generator):
        if self.spec.discrete:
            return int(rng.integers(self.spec.action_size))
        return rng.uniform(-1.0, 1.0, self.spec.action_size).astype(np.float32)

    def close(self) -> None:  # noqa: B027 - an optional hook: most envs hold nothing to free
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
