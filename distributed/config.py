"""Run configuration: one frozen object that runs the same way in local and Ray mode."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pixelplan.agents.config_fields import coerce, field_types, replace_checked
from pixelplan.agents.registry import make_config

from .replay.config import ReplayConfig


@dataclass(frozen=True)
class PlannerConfig:
    max_batch: int = 64  # rows per batched planning pass; a larger request is planned in several
    # How long the first request of a batch waits for company. 0: none; requests that arrive while a
    # batch runs form the next one, so a saturated service still batches and a lone caller waits for nothing.
    max_wait_ms: float = 0.0
    # A batch expected to take at most this long (by the last batch's time per row) runs on the service's
    # event loop itself, not on its planning thread: the two thread hops cost ~1 ms per batch (measured on
    # 2 loaded cores). Requests that arrive meanwhile still form the next batch; longer batches (the
    # paper-sized model) run on the thread so the loop stays responsive. 0: always the thread.
    inline_max_ms: float = 25.0
    device: str = "auto"  # "auto": cuda when there is one
    max_request_rows: int = 1024  # a request with more rows is refused (INVALID_ARGUMENT)
    max_queued_rows: int = 4096  # rows accepted but not yet answered; beyond it: RESOURCE_EXHAUSTED
    grpc_port: int | None = None  # serve the planner over gRPC too (0 = pick a free port)
    grpc_host: str = "127.0.0.1"  # loopback only unless asked ("0.0.0.0": every interface)
    grpc_max_calls: int = 64  # concurrent gRPC calls; more are refused with RESOURCE_EXHAUSTED
    grpc_tls_cert: str | None = None  # PEM certificate chain file: serve TLS (with grpc_tls_key)
    grpc_tls_key: str | None = None  # PEM private key file
    grpc_token_file: str | None = None  # file holding a bearer token every call must present

    def __post_init__(self) -> None:
        check_types(self, "planner.")
        for name in ("max_batch", "max_request_rows", "max_queued_rows", "grpc_max_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"planner.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queued_rows < self.max_request_rows:
            raise ValueError(f"planner.max_queued_rows ({self.max_queued_rows}) must be >= planner.max_request_rows "
                             f"({self.max_request_rows}): the largest allowed request must fit the queue")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ValueError(f"planner.max_wait_ms must be a number of milliseconds in [0, 10000], got {self.max_wait_ms!r}")
        if not 0 <= self.inline_max_ms <= 100:
            raise ValueError(f"planner.inline_max_ms must be a number of milliseconds in [0, 100], got {self.inline_max_ms!r}")
        check_port("planner.grpc_port", self.grpc_port)
        check_host(self.grpc_host, "planner.grpc_host")
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("planner.grpc_tls_cert and planner.grpc_tls_key go together: give both files or neither")


def check_types(config, prefix: str = "") -> None:
    """Normalise every field to its declared type (JSON lists -> tuples, 1e5 -> 100000) or refuse it."""
    for name, annotation in field_types(type(config)).items():
        value = getattr(config, name)
        if not dataclasses.is_dataclass(value):
            object.__setattr__(config, name, coerce(value, annotation, prefix + name))


def check_port(name: str, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"{name} must be a TCP port in 0..65535 (0: pick a free one), got {port}")


def check_host(host: object, name: str) -> str:
    """A host to bind: an IP address or a host name, nothing else (no port, scheme or spaces)."""
    if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}|[0-9A-Fa-f:]{2,39}", host):
        raise ValueError(f"{name} must be an IP address or host name to bind (e.g. 127.0.0.1, 0.0.0.0), got {host!r}")
    return host


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
    eval_video_every: int = 0  # every k-th evaluation also logs one episode's video to TensorBoard (0: never)
    checkpoint_every: int = 500  # learner updates between checkpoints
    log_every_s: float = 2.0
    out: str = "runs/default"
    resume: str | None = None
    overwrite: bool = False  # a fresh run may replace an earlier run's files in ``out``
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # where Prometheus metrics are served (the k8s manifests say 0.0.0.0)
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
        check_host(self.metrics_host, "metrics_host")
        if self.envs_per_worker > self.planner.max_request_rows:
            raise ValueError(f"envs_per_worker ({self.envs_per_worker}) must be <= planner.max_request_rows "
                             f"({self.planner.max_request_rows}): a worker asks for all its envs at once")
        if self.planner.grpc_port is not None and self.mode != "ray":
            raise ValueError("planner.grpc_port needs --mode ray (local mode has no service loop to serve gRPC from)")

    def apply_threads(self) -> None:
        """Pin torch's intra-op threads in this process (each component calls it on construction)."""
        if self.torch_threads > 0:
            import torch

            torch.set_num_threads(self.torch_threads)

    def to_dict(self) -> dict:
        """Plain data with the Redis password masked: what config.json and checkpoints hold."""
        return dataclasses.asdict(dataclasses.replace(self, replay=self.replay.public()))

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
    typed = make_config(config.agent, agent)  # built once: every agent.* value checked against its field's type
    agent = {k: (v if k == "preset" else getattr(typed, k)) for k, v in agent.items()}
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
