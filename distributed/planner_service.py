"""Central planner service: batches plan requests from every worker onto one device.

``PlannerService`` is the plain class (local mode calls ``plan`` directly, one caller's batch at a
time). ``BatchingPlanner`` is the same service as a Ray async actor: concurrent ``plan`` calls
are queued and merged into batches of at most ``max_batch`` requests, the first waiting at most
``max_wait_ms``. New weights are applied between batches, never during one, and every answer
carries the weights version that produced it.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pixelplan.agents.base import PlanResult
from pixelplan.agents.registry import make_agent
from pixelplan.envs import make_env

from .config import RunConfig


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class PlannerService:
    def __init__(self, run: RunConfig, seed: int = 0) -> None:
        run.apply_threads()
        env = make_env(run.env, **run.env_options)
        self.spec = env.spec
        env.close()
        self.device = resolve_device(run.planner.device)
        self.agent = make_agent(run.agent, self.spec, run.agent_overrides, device=self.device)
        if not self.agent.goal_conditioned:
            raise ValueError(f"agent {run.agent!r} does not plan; the planner service serves goal-conditioned agents")
        self.config = run.planner
        self.version = 0
        self._pending: tuple[int, dict] | None = None
        self._calls = 0
        self.seed = seed
        self.batch_sizes: list[int] = []
        self.latencies: list[float] = []
        self.counters = {"plans": 0, "batches": 0}

    def set_weights(self, version: int, weights) -> int:
        """Store new weights; they take effect at the start of the next batch."""
        self._pending = (version, weights)
        return version

    def _swap_weights(self) -> None:
        if self._pending is not None:
            version, weights = self._pending
            self._pending = None
            self.agent.load_policy_weights(weights)
            self.version = version

    def check_request(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray) -> None:
        self.spec.check_obs(obs)
        if goals.shape != (len(obs), *self.spec.frame_shape) or steps_left.shape != (len(obs),):
            raise ValueError(f"plan: {len(obs)} observations need goals of shape (B, *{self.spec.frame_shape}) and "
                             f"B steps_left, got {goals.shape} and {steps_left.shape}")

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray) -> PlanResult:
        started = time.perf_counter()
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        self.check_request(obs, goals, steps_left)
        self._swap_weights()
        self._calls += 1
        result = self.agent.plan(obs, goals, np.asarray(steps_left), seed=self.seed * 1_000_003 + self._calls)
        result.version = self.version
        self.batch_sizes.append(len(obs))
        self.latencies.append(time.perf_counter() - started)
        self.counters["plans"] += len(obs)
        self.counters["batches"] += 1
        return result

    def stats(self) -> dict:
        """Counters plus the batch sizes and latencies observed since the previous call."""
        sizes, lats = self.batch_sizes, self.latencies
        self.batch_sizes, self.latencies = [], []
        return {"planner/plans": float(self.counters["plans"]), "planner/batches": float(self.counters["batches"]),
                "version/planner": float(self.version), "planner/batch_sizes": sizes, "planner/latencies": lats}

    def ping(self) -> int:
        return self.version


class BatchingPlanner(PlannerService):
    """The Ray async-actor face of the service: merges concurrent requests into batches."""

    def __init__(self, run: RunConfig, seed: int = 0) -> None:
        super().__init__(run, seed)
        self._queue: asyncio.Queue | None = None
        self._executor = ThreadPoolExecutor(max_workers=1)  # batches run one after another
        self._grpc_server = None
        self.request_latencies: list[float] = []

    async def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray) -> PlanResult:
        if self._queue is None:
            self._queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._batch_loop())
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        self.check_request(obs, goals, steps_left)  # a bad request fails alone, not its batch-mates
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((obs, goals, steps_left, future, time.perf_counter()))
        return await future

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        held = None  # a request that did not fit the previous batch opens the next one
        while True:
            items = [held or await self._queue.get()]
            held = None
            size = len(items[0][0])
            deadline = loop.time() + self.config.max_wait_ms / 1000
            while size < self.config.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if size + len(item[0]) > self.config.max_batch:
                    held = item
                    break
                items.append(item)
                size += len(item[0])
            await self._run_batch(loop, items)

    async def _run_batch(self, loop, items) -> None:
        obs = np.concatenate([it[0] for it in items])
        goals = np.concatenate([it[1] for it in items])
        steps = np.concatenate([it[2] for it in items])
        try:
            result = await loop.run_in_executor(self._executor, PlannerService.plan, self, obs, goals, steps)
        except Exception as exc:  # every caller of a failed batch hears why
            for it in items:
                if not it[3].done():
                    it[3].set_exception(exc)
            return
        start = 0
        now = time.perf_counter()
        for it in items:
            n = len(it[0])
            part = PlanResult(result.actions[start:start + n], result.lengths[start:start + n],
                              result.scores[start:start + n], result.version)
            start += n
            self.request_latencies.append(now - it[4])
            if not it[3].done():
                it[3].set_result(part)

    def stats(self) -> dict:
        out = super().stats()
        out["planner/latencies"], self.request_latencies = self.request_latencies, []  # caller-seen latency
        return out

    async def serve_grpc(self, port: int = 0) -> str:
        """Expose this service over gRPC on ``port`` (0 = a free one); returns its host:port."""
        import ray

        from .grpc.server import start_server

        self._grpc_server, bound = await start_server(self, port)
        return f"{ray.util.get_node_ip_address()}:{bound}"
