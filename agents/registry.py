"""Agent names -> (config class, factory). The runtime builds every agent through ``make_agent``.

Adding an agent = one line in ``AGENTS``. Configs are frozen dataclasses; ``overrides`` (e.g. from
``--set agent.lr=3e-4``) are checked against the config's fields, and the special key ``preset``
picks a named constructor of the config class first (``preset=tiny`` -> ``Config.tiny()``).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pixelplan.envs.spec import EnvSpec

from .config_fields import replace_checked


def _glamor(spec: EnvSpec, config: Any, device: str, seed: int) -> Any:
    from .glamor.agent import GlamorAgent

    return GlamorAgent(spec, config, device=device, seed=seed)


def _alm(spec: EnvSpec, config: Any, device: str, seed: int) -> Any:
    from .alm.agent import AlmAgent

    return AlmAgent(spec, config, device=device, seed=seed)


def _dreamer(spec: EnvSpec, config: Any, device: str, seed: int) -> Any:
    from .dreamer.agent import DreamerAgent

    return DreamerAgent(spec, config, device=device, seed=seed)


def _stub(cls_name: str) -> Callable[[EnvSpec, Any, str, int], Any]:
    def build(spec: EnvSpec, config: Any, device: str, seed: int) -> Any:
        from . import stub

        return getattr(stub, cls_name)(spec, config, device=device, seed=seed)

    return build


# name -> ("module:ConfigClass", factory(spec, config, device, seed))
AGENTS: dict[str, tuple[str, Callable[[EnvSpec, Any, str, int], Any]]] = {
    "glamor": ("pixelplan.agents.glamor.config:GlamorConfig", _glamor),
    "alm": ("pixelplan.agents.alm.config:AlmConfig", _alm),
    "dreamer": ("pixelplan.agents.dreamer.config:DreamerConfig", _dreamer),
    "stub": ("pixelplan.agents.stub:StubConfig", _stub("StubAgent")),  # random plans: runtime plumbing
    "stub-policy": ("pixelplan.agents.stub:StubConfig", _stub("StubPolicyAgent")),
}


def config_class(name: str) -> type:
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {sorted(AGENTS)}")
    module, _, cls = AGENTS[name][0].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_config(name: str, overrides: dict | None = None) -> Any:
    """The agent's config: its defaults (or a preset), with ``overrides`` applied and type-checked.

    Values may be strings (from ``--set``): each is parsed against its field's declared type.
    """
    cls = config_class(name)
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", "default")
    if preset == "default":
        config = cls()
    else:
        presets = sorted(n for n, v in vars(cls).items() if isinstance(v, classmethod) and not n.startswith("from_"))
        if preset not in presets:
            raise ValueError(f"{cls.__name__} has no preset {preset!r}; presets: {['default', *presets]}")
        config = getattr(cls, preset)()
    return replace_checked(config, overrides, prefix="agent.")


def make_agent(name: str, spec: EnvSpec, config: Any = None, device: str = "cpu", seed: int = 0) -> Any:
    """Build agent ``name`` for an environment.

    ``config`` is the agent's resolved config, or a dict of overrides (see make_config); ``seed`` sets
    its initial weights and its own random streams (the run's seed tree gives each process one).
    """
    if config is None or isinstance(config, dict):
        config = make_config(name, config)
    elif not isinstance(config, config_class(name)):
        raise TypeError(f"agent {name!r} takes a {config_class(name).__name__}, got {type(config).__name__}")
    return AGENTS[name][1](spec, config, device, seed)
