"""Every pixelplan environment as a gymnasium.Env, so other libraries (RLlib, wrappers) can use it.

``gym.make("pixelplan/PixelPlan-v0", env_id="atari:pong")``, or the per-environment ids
registered below (``pixelplan/Grid-v0``, ``pixelplan/Atari-Pong-v0``, ``pixelplan/DMC-cartpole-balance-v0``).
Goal features are returned in ``info`` only, never in the observation.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from .registry import make_env

ATARI_GAMES = ("bowling", "boxing", "breakout", "frostbite", "montezumarevenge", "mspacman", "pitfall",
               "pong", "privateeye", "qbert", "riverraid", "seaquest", "skiing", "tennis")
DMC_TASKS = ("ball_in_cup-catch", "cartpole-balance", "cartpole-swingup", "finger-spin", "manipulator-bring_ball",
             "pendulum-swingup", "point_mass-easy", "reacher-hard")


class PixelPlanGymEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id: str = "grid", render_mode: str | None = None, **options) -> None:
        self.env = make_env(env_id, **options)
        spec = self.env.spec
        self.render_mode = render_mode
        if spec.pixels:
            self.observation_space = gym.spaces.Box(0, 255, spec.obs_shape, np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, spec.obs_shape, np.float32)
        if spec.discrete:
            self.action_space = gym.spaces.Discrete(spec.action_size)
        else:
            self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.action_size,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self.env.reset(seed=seed)
        return obs, {"goal_features": self.env.goal_features()}

    def step(self, action):
        if isinstance(action, np.ndarray) and self.env.spec.discrete:
            action = int(action)
        step = self.env.step(action)
        return step.obs, step.reward, step.terminated, step.truncated, {"goal_features": self.env.goal_features()}

    def render(self):
        return self.env.video_frame()

    def close(self) -> None:
        self.env.close()


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def register_all() -> None:
    entry = f"{__name__}:PixelPlanGymEnv"
    ids = {"pixelplan/PixelPlan-v0": None, "pixelplan/Grid-v0": "grid",
           "pixelplan/GridFourRooms-v0": "grid:four-rooms"}
    ids.update({f"pixelplan/Atari-{_camel(g)}-v0": f"atari:{g}" for g in ATARI_GAMES})
    ids.update({f"pixelplan/DMC-{t}-v0": f"dmc:{t}" for t in DMC_TASKS})
    for gym_id, env_id in ids.items():
        if gym_id not in gym.registry:
            gym.register(gym_id, entry_point=entry, kwargs={} if env_id is None else {"env_id": env_id})
