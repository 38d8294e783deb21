"""Any installed gymnasium task with a flat Box observation (``gym:Pendulum-v1``, ``gym:HalfCheetah-v5``).

State-based agents (ALM) train on these beside DM Control. Continuous actions are exposed as
[-1, 1] like every other family and rescaled to the task's bounds; the episode ends at gymnasium's
``terminated`` or at our time limit (default: the task's registered ``max_episode_steps``). Such
tasks have no entities to reach, so goal features are empty.
"""
from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for videos of the MuJoCo tasks, as envs/dmc.py
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # classic-control tasks render with pygame: no sound card needed

import cv2
import gymnasium as gym
import numpy as np

from .base import PixelEnv
from .spec import EnvSpec

VIDEO_SIDE = 240  # longest side of a video frame


class GymStateEnv(PixelEnv):
    def __init__(self, name: str, time_limit: int | None = None, stack: int = 1, **make_kwargs) -> None:
        make_kwargs.setdefault("render_mode", "rgb_array")  # renders only when video_frame() asks
        try:
            self._env = gym.make(name, max_episode_steps=time_limit, **make_kwargs)
        except gym.error.Error as exc:  # an unknown id, or a task whose extra is not installed
            raise ValueError(f"gym:{name}: {exc}") from exc
        except ImportError as exc:
            raise ValueError(f"gym:{name} needs an optional dependency: {exc}") from exc
        obs_space, act_space = self._env.observation_space, self._env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            self._env.close()
            raise ValueError(f"gym:{name}: only flat Box observations are supported, got {obs_space}")
        if isinstance(act_space, gym.spaces.Discrete):
            kind, size = "discrete", int(act_space.n)
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1 and np.isfinite(act_space.low).all() \
                and np.isfinite(act_space.high).all():
            kind, size = "continuous", int(act_space.shape[0])
            self._low, self._high = act_space.low.astype(np.float64), act_space.high.astype(np.float64)
        else:
            self._env.close()
            raise ValueError(f"gym:{name}: actions must be Discrete or a bounded flat Box, got {act_space}")
        limit = time_limit or self._env.spec.max_episode_steps
        if not limit:
            self._env.close()
            raise ValueError(f"gym:{name} registers no max_episode_steps: give time_limit")
        self.spec = EnvSpec(f"gym:{name}", (int(obs_space.shape[0]),), stack, kind, size, int(limit), (),
                            frame_dtype="float32")
        super().__init__()

    def _reset(self, seed: int | None) -> np.ndarray:
        obs, _ = self._env.reset(seed=seed)
        return np.asarray(obs, np.float32)

    def _step(self, action) -> tuple[np.ndarray, float, bool]:
        if not self.spec.discrete:  # [-1, 1] -> the task's bounds
            action = self._low + (np.asarray(action, np.float64) + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, terminated, _, _ = self._env.step(action)
        return np.asarray(obs, np.float32), float(reward), bool(terminated)

    def goal_features(self) -> np.ndarray:
        return np.zeros(0)

    def video_frame(self) -> np.ndarray:
        try:
            image = self._env.render()
        except gym.error.DependencyNotInstalled as exc:
            raise ValueError(f"{self.spec.env_id} cannot render a video: {exc}") from exc
        if image is None:
            raise ValueError(f"{self.spec.env_id} was made with render_mode={self._env.render_mode!r}: videos need "
                             "'rgb_array'")
        image = np.asarray(image, np.uint8)
        scale = VIDEO_SIDE / max(image.shape[:2])  # MuJoCo tasks render 480x480: 0.7 MB a frame in memory
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return image

    def close(self) -> None:
        self._env.close()
