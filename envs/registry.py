"""Environment ids (`grid`, `grid:four-rooms`, `grid:PATH`, `atari:pong`, `dmc:cartpole-balance`, `gym:Pendulum-v1`)."""
from __future__ import annotations

from .base import PixelEnv

FAMILIES = ("grid", "atari", "dmc", "gym")


def parse_env_id(env_id: str) -> tuple[str, str]:
    family, _, name = env_id.partition(":")
    if family not in FAMILIES:
        raise ValueError(f"unknown env id {env_id!r}: expected one of grid, grid:MAP, atari:GAME, dmc:DOMAIN-TASK, "
                         "gym:GYMNASIUM-ID")
    if family != "grid" and not name:
        raise ValueError(f"env id {env_id!r} needs a name after ':' (e.g. atari:pong, dmc:cartpole-balance, gym:Pendulum-v1)")
    return family, name


def make_env(env_id: str, **options) -> PixelEnv:
    """Build an environment from its id; family-specific options pass through (e.g. actions="continuous" for dmc)."""
    family, name = parse_env_id(env_id)
    if family == "grid":
        from .gridworld import GridWorld

        return GridWorld(name, env_id=env_id, **options)
    if family == "atari":
        from .atari import AtariEnv

        return AtariEnv(name, **options)
    if family == "gym":
        from .gymnasium_env import GymStateEnv

        return GymStateEnv(name, **options)
    from .dmc import DMCEnv

    return DMCEnv(name, **options)
