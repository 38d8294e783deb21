"""Learner: samples prefetched batches from replay, updates the agent, publishes versioned weights.

With L > 1 learners the agent's gradients are averaged with torch.distributed (gloo on CPU,
NCCL on GPU) before every optimiser step: data-parallel training, one replica per learner.
"""
from __future__ import annotations

import dataclasses
import os
import time
import zlib

import numpy as np
import torch
import torch.distributed as dist

from pixelplan.agents.nets import resolve_device

from .handles import Handle
from .replay.sharded import ShardedReplay
from .resolve import ResolvedRun


class Learner:
    def __init__(self, resolved: ResolvedRun, rank: int, replay_handles: list[Handle],
                 dist_address: str | None = None) -> None:
        run, seeds = resolved.config, resolved.seeds
        self.rank = rank
        run.apply_threads()
        self.device = str(resolve_device(run.device))
        torch.manual_seed(seeds.seed("learner", rank))  # the agent's own draws in learn() (e.g. imagination)
        # Every rank starts from the same weights; each samples its own batches.
        self.agent = resolved.make_agent(self.device, seeds.seed("agent"))
        self.request = resolved.request
        self.replay = ShardedReplay(replay_handles, run.replay, seed=seeds.seed("learner-replay", rank))
        self.last_batch_digest = 0
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
            batch = self.replay.next_batch(self.request.query)
            self.last_batch_digest = digest(batch)
            self.last_losses = self.agent.learn(batch)
            self.updates += 1
        self.update_time += time.perf_counter() - started
        return self.stats()

    def publish(self) -> tuple[int, dict]:
        """A new weights version for the planner service and the workers (CPU tensors)."""
        self.version = self.updates
        return self.version, self.agent.policy_weights()

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "updates": self.updates, "version": self.version}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.updates, self.version = state["updates"], state["version"]

    def batch_digest(self) -> int:
        """A checksum of the last batch: data-parallel learners must each see their own."""
        return self.last_batch_digest

    def stats(self) -> dict[str, float]:
        out = {"updates": float(self.updates), "version/learner": float(self.version),
               "learner/update_time_s": self.update_time, "pid": float(os.getpid())}
        out.update({k: float(v) for k, v in self.last_losses.items()})  # agents name their own keys
        return out

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def digest(batch) -> int:
    """crc32 over every array of a batch."""
    crc = 0
    for f in dataclasses.fields(batch):
        crc = zlib.crc32(np.ascontiguousarray(getattr(batch, f.name)).tobytes(), crc)
    return crc
