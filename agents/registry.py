"""Agent names -> (config class, factory). The runtime builds every agent through ``make_agent``.

Adding an agent = one line in ``AGENTS``. Configs are frozen dataclasses; ``overrides`` (e.g. from
``--set agent.lr=3e-4``) are checked against the config's fields, and the special key ``preset``
picks a named constructor of the config class first (``preset=tiny`` -> ``Config.tiny()``).
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from pixelplan.envs.spec import EnvSpec


def _glamor(spec: EnvSpec, config: Any, device: str) -> Any:
    from .glamor.agent import GlamorAgent

    return GlamorAgent(spec, config, device=device)


def _alm(spec: EnvSpec, config: Any, device: str) -> Any:
    from .alm.agent import AlmAgent

    return AlmAgent(spec, config, device=device)


def _dreamer(spec: EnvSpec, config: Any, device: str) -> Any:
    from .dreamer.agent import DreamerAgent

    return DreamerAgent(spec, config, device=device)


def _stub(cls_name: str) -> Callable[[EnvSpec, Any, str], Any]:
    def build(spec: EnvSpec, config: Any, device: str) -> Any:
        from . import stub

        return getattr(stub, cls_name)(spec, config, device=device)

    return build


# name -> ("module:ConfigClass", factory(spec, config, device))
AGENTS: dict[str, tuple[str, Callable[[EnvSpec, Any, str], Any]]] = {
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
    """The agent's config: its defaults (or a preset), with ``overrides`` applied and validated."""
    cls = config_class(name)
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", "default")
    if preset == "default":
        config = cls()
    else:
        maker = getattr(cls, str(preset), None)
        if not callable(maker):
            raise ValueError(f"{cls.__name__} has no preset {preset!r} (try 'default' or 'tiny')")
        config = maker()
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(fields)}")
    values = {}
    for key, value in overrides.items():
        current = getattr(config, key)
        values[key] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return dataclasses.replace(config, **values)


def make_agent(name: str, spec: EnvSpec, overrides: dict | None = None, device: str = "cpu") -> Any:
    """Build agent ``name`` for an environment; ``overrides`` change its config (see make_config)."""
    config = make_config(name, overrides)
    return AGENTS[name][1](spec, config, device)
