"""Run configuration: one frozen object that runs the same way in local and Ray mode."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .replay.config import ReplayConfig


@dataclass(frozen=True)
class PlannerConfig:
    max_batch: int = 64  # requests per batched planning pass
    # How long the first request of a batch waits for company. 0: none; requests that arrive while a
    # batch runs form the next one, so a saturated service still batches and a lone caller waits for nothing.
    max_wait_ms: float = 0.0
    device: str = "auto"  # "auto": cuda when there is one
    grpc_port: int | None = None  # serve the planner over gRPC too (0 = pick a free port)


@dataclass(frozen=True)
class RunConfig:
    agent: str = "glamor"
    env: str = "grid"
    steps: int = 20_000  # env steps to collect
    seed: int = 0
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
        for name in ("steps", "workers", "envs_per_worker", "learners", "sync_every", "worker_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.acting not in ("worker", "service"):
            raise ValueError(f"acting must be 'worker' or 'service', got {self.acting!r}")
        if self.mode not in ("local", "ray"):
            raise ValueError(f"mode must be 'local' or 'ray', got {self.mode!r}")

    def apply_threads(self) -> None:
        """Pin torch's intra-op threads in this process (each component calls it on construction)."""
        if self.torch_threads > 0:
            import torch

            torch.set_num_threads(self.torch_threads)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        data = dict(data)
        data["replay"] = ReplayConfig(**data.get("replay", {}))
        data["planner"] = PlannerConfig(**data.get("planner", {}))
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def apply_overrides(config: RunConfig, assignments: list[str]) -> RunConfig:
    """``--set agent.lr=3e-4 replay.capacity=1e5 eval_every=0``: dotted paths into the config.

    ``agent.*`` and ``env.*`` go to ``agent_overrides``/``env_options`` (validated by the agent/env).
    """
    agent, env = dict(config.agent_overrides), dict(config.env_options)
    nested: dict[str, dict] = {"replay": {}, "planner": {}}
    top: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        value = _parse_value(raw)
        head, _, rest = key.partition(".")
        if head == "agent" and rest:
            agent[rest] = value
        elif head == "env" and rest:
            env[rest] = value
        elif head in nested and rest:
            if rest not in {f.name for f in dataclasses.fields(getattr(config, head))}:
                raise ValueError(f"unknown setting {key!r}")
            nested[head][rest] = value
        elif not rest and key in {f.name for f in dataclasses.fields(config)}:
            top[key] = value
        else:
            raise ValueError(f"unknown setting {key!r}")
    return dataclasses.replace(
        config, agent_overrides=agent, env_options=env,
        replay=dataclasses.replace(config.replay, **nested["replay"]),
        planner=dataclasses.replace(config.planner, **nested["planner"]), **top,
    )


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        try:
            return float(raw)
        except ValueError:
            return raw
