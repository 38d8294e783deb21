"""Learner: samples prefetched batches from replay, updates the agent, publishes versioned weights.

With L > 1 learners the agent's gradients are averaged with torch.distributed (gloo on CPU,
NCCL on GPU) before every optimiser step: data-parallel training, one replica per learner.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.distributed as dist

from pixelplan.agents.nets import resolve_device
from pixelplan.agents.registry import make_agent
from pixelplan.envs import make_env

from .config import RunConfig
from .handles import Handle
from .replay.sharded import ShardedReplay


class Learner:
    def __init__(self, run: RunConfig, rank: int, replay_handles: list[Handle], dist_address: str | None = None) -> None:
        self.run_config, self.rank = run, rank
        run.apply_threads()
        env = make_env(run.env, **run.env_options)
        self.spec = env.spec
        env.close()
        self.device = str(resolve_device(run.device))
        torch.manual_seed(run.seed * 1000 + rank)
        self.agent = make_agent(run.agent, self.spec, run.agent_overrides, device=self.device)
        self.request = self.agent.sample_request()
        self.replay = ShardedReplay(replay_handles, run.replay)
        self.rng = np.random.default_rng([run.seed, rank, 11])
        self.updates = 0
        self.version = 0
        self.last_losses: dict[str, float] = {}
        self.update_time = 0.0
        if run.learners > 1:
            self._init_process_group(dist_address, run.learners)

    def _init_process_group(self, address: str | None, world: int) -> None:
        backend = "nccl" if self.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{address}", rank=self.rank, world_size=world)
        self.agent.grad_sync = self._average_gradients
        for p in self._parameters():  # every replica starts from learner 0's weights
            dist.broadcast(p.data, src=0)

    def _parameters(self):
        return [p for m in self.agent.modules() for p in m.parameters()]

    def _average_gradients(self, params) -> None:
        world = dist.get_world_size()
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= world

    def train(self, num_updates: int) -> dict[str, float]:
        """Run ``num_updates`` updates (the coordinator's rate limiter decides how many)."""
        started = time.perf_counter()
        for _ in range(num_updates):
            batch = self.replay.next_batch(self.request)
            self.last_losses = self.agent.learn(batch)
            self.updates += 1
        self.update_time += time.perf_counter() - started
        return self.stats()

    def publish(self) -> tuple[int, dict]:
        """A new weights version for the planner service and the workers (CPU tensors)."""
        self.version = self.updates
        return self.version, self.agent.policy_weights()

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "updates": self.updates, "version": self.version,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.updates, self.version = state["updates"], state["version"]
        self.rng.bit_generator.state = state["rng"]

    def stats(self) -> dict[str, float]:
        out = {"updates": float(self.updates), "version/learner": float(self.version),
               "learner/update_time_s": self.update_time, "pid": float(os.getpid())}
        out.update({k if "/" in k else f"loss/{k}": float(v) for k, v in self.last_losses.items()})
        return out

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
