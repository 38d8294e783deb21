"""Resolve a run once, before anything touches its folder, then hand the result down.

The driver probes the env for its spec once, applies presets and overrides to the agent's config
(every value type-checked), builds its own agent once (which proves the config fits the env and
yields the sample request), and derives the seed tree. Workers, learners and the planner service
build from the ``ResolvedRun``: none of them rebuilds an env to learn its spec or re-reads overrides.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pixelplan.agents.base import SampleRequest
from pixelplan.agents.registry import make_agent, make_config
from pixelplan.envs import make_env
from pixelplan.envs.spec import EnvSpec

from .config import RunConfig
from .seeds import SeedTree


@dataclass(frozen=True)
class ResolvedRun:
    config: RunConfig
    spec: EnvSpec
    agent_config: Any  # the agent's frozen config dataclass, presets and overrides applied
    request: SampleRequest
    seeds: SeedTree

    def make_agent(self, device: str, seed: int) -> Any:
        return make_agent(self.config.agent, self.spec, self.agent_config, device=device, seed=seed)

    def to_json(self) -> str:
        """config.json: the run's settings at the top level (``--resume`` reads them) and what they resolved to."""
        data = self.config.to_dict()  # the Redis password masked
        data["resolved"] = {"spec": dataclasses.asdict(self.spec), "agent_config": dataclasses.asdict(self.agent_config),
                            "request": dataclasses.asdict(self.request),
                            "seeds": self.seeds.summary(self.config.workers, self.config.learners)}
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def of(cls, run: RunConfig) -> ResolvedRun:
        """Resolution alone, for callers that need no driver-side agent."""
        return resolve_run(run)[0]


def resolve_run(run: RunConfig) -> tuple[ResolvedRun, Any]:
    """Validate and resolve everything; returns the resolved run and the driver's own (CPU) agent.

    Raises ValueError with one line saying what is wrong; nothing on disk is touched.
    """
    check_local_cuda(run)
    spec = probe_spec(run.env, run.env_options)
    if spec.discrete:  # the replay writes END = n and PAD = n + 1 into pair batches
        run = dataclasses.replace(run, replay=dataclasses.replace(run.replay, num_actions=spec.action_size))
    agent_config = make_config(run.agent, run.agent_overrides)
    seeds = SeedTree(run.seed)
    agent = make_agent(run.agent, spec, agent_config, device="cpu", seed=seeds.seed("evaluation"))
    return ResolvedRun(run, spec, agent_config, agent.sample_request(), seeds), agent


def probe_spec(env_id: str, options: dict) -> EnvSpec:
    """Build the env once for its spec; bad options become one clear ValueError."""
    try:
        env = make_env(env_id, **options)
    except TypeError as exc:  # an unknown env.* option
        raise ValueError(f"env {env_id!r}: bad env.* option ({exc})") from None
    try:
        return env.spec
    finally:
        env.close()


def check_local_cuda(config: RunConfig) -> None:
    """In local mode the learner and planner run here: asking for CUDA without one is refused up front
    (in Ray mode the GPUs are the cluster's, which this process cannot see)."""
    wanted = [name for name, device in (("device", config.device), ("planner.device", config.planner.device))
              if device.startswith("cuda")]
    if config.mode == "local" and wanted:
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{' and '.join(wanted)} = cuda, but this machine has no CUDA device "
                             f"(--recipe paper needs a GPU; --set device=cpu planner.device=cpu runs it on CPU)")
