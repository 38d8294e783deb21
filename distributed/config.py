"""Run configuration: one frozen object that runs the same way in local and Ray mode."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pixelplan.agents.config_fields import coerce, field_types, replace_checked
from pixelplan.agents.registry import make_config

from .replay.config import ReplayConfig


@dataclass(frozen=True)
class PlannerConfig:
    max_batch: int = 64  # requests per batched planning pass
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for company
    device: str = "auto"  # "auto": cuda when there is one
    grpc_port: int | None = None  # serve the planner over gRPC too (0 = pick a free port)

    def __post_init__(self) -> None:
        check_types(self)
        if self.max_batch < 1 or self.max_wait_ms < 0:
            raise ValueError(f"planner.max_batch must be >= 1 and planner.max_wait_ms >= 0, got "
                             f"{self.max_batch} and {self.max_wait_ms}")
        check_port("planner.grpc_port", self.grpc_port)


def check_types(config) -> None:
    """Normalise every field to its declared type (JSON lists -> tuples, 1e5 -> 100000) or refuse it."""
    for name, annotation in field_types(type(config)).items():
        value = getattr(config, name)
        if not dataclasses.is_dataclass(value):
            object.__setattr__(config, name, coerce(value, annotation, name))


def check_port(name: str, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"{name} must be a TCP port in 0..65535 (0: pick a free one), got {port}")


@dataclass(frozen=True)
class RunConfig:
    agent: str = "glamor"
    env: str = "grid"
    steps: int = 20_000  # env steps to collect
    seed: int = 0
    recipe: str | None = None  # the named recipe applied (recorded only: its settings are in the fields)
    mode: Literal["local", "ray"] = "local"
    address: str | None = None  # Ray cluster address ("auto" inside a Ray job); None starts one
    workers: int = 1
    envs_per_worker: int = 1
    learners: int = 1
    device: str = "auto"  # learner device
    learner_gpus: float = 0.0  # Ray resources per learner (set 1 on GPU clusters)
    planner_gpus: float = 0.0
    # Where reward agents (Dreamer, ALM) pick actions: "worker" (its own policy copy) or "service"
    # (batched with every other worker's in the planner service). Goal agents always plan in the service.
    acting: Literal["worker", "service"] = "worker"
    sync_every: int = 10  # learner updates between weight broadcasts
    worker_chunk: int = 64  # env steps per worker call (per env vector step count x envs)
    eval_every: int = 5_000  # env steps between evaluations (0: only at the end)
    eval_episodes: int = 30
    checkpoint_every: int = 500  # learner updates between checkpoints
    log_every_s: float = 2.0
    out: str = "runs/default"
    resume: str | None = None
    overwrite: bool = False  # a fresh run may replace an earlier run's files in ``out``
    metrics_port: int | None = None
    progress: bool = True
    torch_threads: int = 1  # intra-op threads per process (0: torch's default); >1 only on idle many-core hosts
    env_options: dict[str, Any] = field(default_factory=dict)
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("steps", "workers", "envs_per_worker", "learners", "sync_every", "worker_chunk", "eval_episodes",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("seed", "eval_every", "torch_threads", "learner_gpus", "planner_gpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every_s <= 0:
            raise ValueError(f"log_every_s must be > 0, got {self.log_every_s}")
        check_port("metrics_port", self.metrics_port)

    def apply_threads(self) -> None:
        """Pin torch's intra-op threads in this process (each component calls it on construction)."""
        if self.torch_threads > 0:
            import torch

            torch.set_num_threads(self.torch_threads)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        data = {k: v for k, v in data.items() if k != "resolved"}  # config.json also records the resolution
        data["replay"] = ReplayConfig(**data.get("replay", {}))
        data["planner"] = PlannerConfig(**data.get("planner", {}))
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def apply_overrides(config: RunConfig, assignments: list[str]) -> RunConfig:
    """``--set agent.lr=3e-4 replay.capacity=1e5 eval_every=0``: dotted paths into the config.

    Run, replay, planner and ``agent.*`` fields are parsed against their declared types here (an
    agent field against the config class of ``config.agent``); ``env.*`` values are JSON (or plain
    strings), checked by the env's constructor at resolution.
    """
    agent, env = dict(config.agent_overrides), dict(config.env_options)
    nested: dict[str, dict] = {"replay": {}, "planner": {}}
    top: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        head, _, rest = key.partition(".")
        if head == "agent" and rest:
            agent[rest] = raw
        elif head == "env" and rest:
            env[rest] = _json_or_text(raw)
        elif head in nested and rest:
            nested[head][rest] = raw
        elif not rest and key in {f.name for f in dataclasses.fields(config)} and key not in NOT_SETTABLE:
            top[key] = raw
        else:
            raise ValueError(f"unknown setting {key!r} (try agent.<field>, env.<option>, replay.<field>, "
                             f"planner.<field> or a run field such as steps)")
    agent = {k: (v if k == "preset" else getattr(make_config(config.agent, {**agent}), k)) for k, v in agent.items()}
    return replace_checked(config, {**top, "agent_overrides": agent, "env_options": env,
                                    "replay": replace_checked(config.replay, nested["replay"], "replay."),
                                    "planner": replace_checked(config.planner, nested["planner"], "planner.")})


NOT_SETTABLE = ("agent_overrides", "env_options", "replay", "planner",  # reached through their dotted paths
                "recipe")  # --recipe NAME


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
