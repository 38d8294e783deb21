"""DeepMind Control Suite tasks from pixels (or states), with fast headless rendering.

Rendering decides DMC speed on CPU. dm_control's default look has shadows, reflections, a skybox
and 4x multisampled, finely tessellated geometry: about 15-80 frames/s here. ``fast_render``
draws the same camera with those effects off, no multisampling and coarser capsules/spheres
(8 slices instead of 28): at 104x80 grayscale the frames are nearly indistinguishable and
rendering is tens of times faster. Frames are rendered square (dm_control's cameras are set up
for square images) and resized with INTER_AREA when the requested size is not square, so the
whole arena stays in view (rendering at 104x80 directly crops point_mass' and reacher's arenas).

Both looks are drawn by a ``mujoco.Renderer`` owned by the env (``fast_render=False`` keeps the
model's default visual settings: pixel-identical to dm_control's ``physics.render``). We never
call ``physics.render``: dm_control caches which GL context is current per thread, so once any
``mujoco.Renderer`` in the process has rendered, ``physics.render`` draws into the wrong context
(garbage frames). A ``mujoco.Renderer`` makes its own context current on every call, so any
number of envs of either look can share a process.
"""
from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco/dm_control pick a GL backend

import itertools

import cv2
import mujoco
import numpy as np
from dm_control import suite

from .base import PixelEnv
from .spec import EnvSpec

# Private goal features: the task observation entries holding the entity positions, for the
# GLAMOR tasks (task variants and entries as in the GLAMOR authors' configuration). Any other
# task falls back to the physics qpos.
GOAL_OBSERVATIONS = {
    "ball_in_cup-catch": ("position",),
    "cartpole-balance": ("position",),  # cart x, cos(pole), sin(pole)
    "finger-spin": ("position",),
    "manipulator-bring_ball": ("arm_pos", "hand_pos", "object_pos"),
    "pendulum-swingup": ("orientation",),
    "point_mass-easy": ("position",),
    "reacher-hard": ("position",),
}
ACTION_REPEAT = {"point_mass": 4}  # GLAMOR: frame-skip 4 on point_mass, none elsewhere
MAX_DISCRETE_ACTIONS = 729  # 3^6 (walker); beyond that use actions="continuous"


def discrete_actions(domain: str, dims: int) -> np.ndarray:
    """Rows are the discrete actions in [-1, 1]^dims.

    Every task but manipulator: the full grid {-1, 0, 1}^dims (3^A actions). Manipulator (A = 5,
    a 243-action grid) uses DISCERN's "diagonal" discretisation, which we read as one actuator
    at a time: no-op plus the rows of +I and -I (a diagonal matrix), i.e. full push on a single
    dimension, 2A + 1 = 11 actions. Every actuator stays reachable in both directions while the
    IDM's action vocabulary stays small; combined movements come from action sequences.
    """
    if domain == "manipulator":
        return np.concatenate([np.zeros((1, dims)), np.eye(dims), -np.eye(dims)]).astype(np.float32)
    if 3**dims > MAX_DISCRETE_ACTIONS:
        raise ValueError(f"{domain}: 3^{dims} discrete actions is too many; use actions='continuous'")
    return np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=dims)), np.float32)


def parse_task(name: str) -> tuple[str, str]:
    domain, _, task = name.partition("-")
    if (domain, task) not in suite.ALL_TASKS:
        raise ValueError(f"unknown DM Control task {name!r}: expected DOMAIN-TASK, e.g. cartpole-balance, "
                         f"one of {len(suite.ALL_TASKS)} suite tasks such as {', '.join(GOAL_OBSERVATIONS)}")
    return domain, task


class DMCEnv(PixelEnv):
    """One dm_control suite task, ``dmc:DOMAIN-TASK``.

    Options: ``actions`` "discrete" (see ``discrete_actions``) or "continuous" ([-1, 1]^A mapped
    linearly to the task's bounds); ``size`` (H, W) of a frame, default (104, 80) as GLAMOR;
    ``grayscale`` (1 channel, else 3); ``stack`` frames per observation (default 4 for pixels,
    1 for states); ``action_repeat`` physics control steps per agent step (default 4 for
    point_mass, else 1); ``time_limit`` in agent steps (default 100, GLAMOR's control T);
    ``from_states`` frames are the flattened float32 task observation instead of pixels (ALM);
    ``fast_render`` (see module docstring; False = dm_control's default look); ``camera_id``;
    ``supersample`` k renders k times larger and area-averages down, so a body smaller than a pixel
    (point_mass's ball is about 1.3 pixels wide at 64x64) stays in every frame, dimmer, instead of
    appearing and vanishing with its sub-pixel position as it does without anti-aliasing.
    Goal features: the GLAMOR observation entries above; for other tasks the physics qpos.
    """

    def __init__(self, name: str, actions: str = "discrete", size: tuple[int, int] = (104, 80),
                 grayscale: bool = True, stack: int | None = None, action_repeat: int | None = None,
                 time_limit: int = 100, from_states: bool = False, fast_render: bool = True,
                 camera_id: int = 0, supersample: int = 1) -> None:
        if actions not in ("discrete", "continuous"):
            raise ValueError(f"actions must be 'discrete' or 'continuous', got {actions!r}")
        if not 1 <= int(supersample) <= 8:
            raise ValueError(f"supersample must be an integer in 1..8, got {supersample}")
        self.supersample = int(supersample)
        height, width = (int(v) for v in size)
        if min(height, width) < 1 or time_limit < 1 or (action_repeat is not None and action_repeat < 1):
            raise ValueError(f"need positive size, time_limit and action_repeat, got {size}, {time_limit}, "
                             f"{action_repeat}")
        self.domain, self.task = parse_task(name)
        # dm_control's own time limit is switched off: our T alone truncates, so a LAST time step
        # always means the task terminated.
        self._env = suite.load(self.domain, self.task, task_kwargs={"time_limit": float("inf")})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self._table = discrete_actions(self.domain, spec.shape[0]) if actions == "discrete" else None
        self.action_repeat = action_repeat or ACTION_REPEAT.get(self.domain, 1)
        self.size, self.grayscale, self.from_states = (height, width), grayscale, from_states
        self.camera_id, self.fast_render = camera_id, fast_render
        obs_spec = self._env.observation_spec()
        self._goal_keys = GOAL_OBSERVATIONS.get(f"{self.domain}-{self.task}")
        if self._goal_keys:
            names = tuple(f"{k}_{i}" for k in self._goal_keys for i in range(int(np.prod(obs_spec[k].shape))))
        else:
            names = tuple(f"qpos_{i}" for i in range(self._env.physics.model.nq))
        if from_states:
            frame_shape, dtype = (sum(int(np.prod(s.shape)) for s in obs_spec.values()),), "float32"
        else:
            frame_shape, dtype = (1 if grayscale else 3, height, width), "uint8"
        self.spec = EnvSpec(
            env_id=f"dmc:{self.domain}-{self.task}", frame_shape=frame_shape,
            stack=stack or (1 if from_states else 4), action_kind=actions,
            action_size=len(self._table) if self._table is not None else spec.shape[0],
            time_limit=time_limit, feature_names=names, frame_dtype=dtype,
        )
        self._renderer = None if from_states else self._make_renderer(self.render_side, fast_render)
        self._time_step = None
        super().__init__()

    @property
    def render_side(self) -> int:
        """The square camera image's side: the frame's longer side, times the supersampling factor."""
        return max(self.size) * self.supersample

    def _make_renderer(self, side: int, fast: bool) -> mujoco.Renderer:
        model = self._env.physics.model.ptr
        if not fast:
            return mujoco.Renderer(model, side, side)
        quality = model.vis.quality
        saved = quality.offsamples, quality.numslices
        quality.offsamples, quality.numslices = 0, 8  # read once, when the GL context is built
        try:
            renderer = mujoco.Renderer(model, side, side)
        finally:
            quality.offsamples, quality.numslices = saved  # the model itself keeps the default look
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            renderer.scene.flags[flag] = 0
        return renderer

    # -- frames ---------------------------------------------------------------------------------
    def render_rgb(self) -> np.ndarray:
        """The current camera image, (render_side, render_side, 3) uint8."""
        self._renderer.update_scene(self._env.physics.data.ptr, camera=self.camera_id)
        return self._renderer.render()

    def video_frame(self) -> np.ndarray:
        """Pixels: the agent's view. States: the camera image in colour (the renderer is built on
        the first call, so state-based training never pays for a GL context)."""
        if not self.from_states:
            return super().video_frame()
        if self._renderer is None:
            self._renderer = self._make_renderer(self.render_side, self.fast_render)
        return self.render_rgb()

    def _frame(self) -> np.ndarray:
        if self.from_states:
            obs = self._time_step.observation
            return np.concatenate([np.asarray(v, np.float32).ravel() for v in obs.values()])
        img = self.render_rgb()
        height, width = self.size
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        if self.grayscale:
            return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[None]
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    # -- PixelEnv primitives ----------------------------------------------------------------------
    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self._env.task.random.seed(seed)  # the task draws its initial state from this RandomState
        self._time_step = self._env.reset()
        return self._frame()

    def _step(self, action) -> tuple[np.ndarray, float, bool]:
        if self._time_step is None or self._time_step.last():
            raise RuntimeError(f"{self.spec.env_id}: step() before reset() or after the task terminated")
        unit = self._table[action] if self._table is not None else action
        command = self._low + (np.asarray(unit, np.float64) + 1.0) * 0.5 * (self._high - self._low)
        reward = 0.0
        for _ in range(self.action_repeat):
            self._time_step = self._env.step(command)
            reward += self._time_step.reward or 0.0
            if self._time_step.last():
                break
        return self._frame(), reward, self._time_step.last()

    def goal_features(self) -> np.ndarray:
        if not self._goal_keys:
            return self._env.physics.data.qpos.astype(np.float64)
        obs = self._time_step.observation
        return np.concatenate([np.asarray(obs[k], np.float64).ravel() for k in self._goal_keys])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
            self._env = None
