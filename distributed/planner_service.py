"""Central planner service: batches plan (and, optionally, act) requests from every worker onto one device.

Goal-conditioned agents (GLAMOR) always plan here. Reward agents (Dreamer, ALM) act here when the run
says ``acting="service"``: the worker sends (obs, carry, first) and gets (actions, carry) back, so the
service stays stateless and a restarted worker loses nothing but its own carry.

``PlannerService`` is the plain class (local mode calls it directly, one caller's batch at a time).
``BatchingPlanner`` is the same service as a Ray async actor: concurrent requests of one kind are
queued and merged into batches of at most ``max_batch`` rows, the first waiting at most
``max_wait_ms``. New weights are applied between batches, never during one, and every plan carries
the weights version that produced it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pixelplan.agents.base import PlanResult
from pixelplan.agents.nets import resolve_device
from pixelplan.agents.registry import make_agent
from pixelplan.envs import make_env

from .config import RunConfig


class PlannerService:
    def __init__(self, run: RunConfig, seed: int = 0) -> None:
        run.apply_threads()
        env = make_env(run.env, **run.env_options)
        self.spec = env.spec
        env.close()
        self.device = str(resolve_device(run.planner.device))
        self.agent = make_agent(run.agent, self.spec, run.agent_overrides, device=self.device)
        self.config = run.planner
        self.run_agent = run.agent
        self.version = 0
        self._pending: tuple[int, dict] | None = None
        self._calls = 0
        self.seed = seed
        self.batch_sizes: list[int] = []
        self.latencies: list[float] = []
        self.counters = {"plans": 0, "acts": 0, "batches": 0}

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
        if not self.agent.goal_conditioned:
            raise ValueError(f"agent {self.run_agent!r} does not plan; it acts (call act)")
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

    def check_act_request(self, obs: np.ndarray, carry: Any, first: np.ndarray) -> None:
        if self.agent.goal_conditioned:
            raise ValueError(f"agent {self.run_agent!r} plans for goals; it does not act (call plan)")
        self.spec.check_obs(obs)
        leaves = [] if carry is None else list(carry.values()) if isinstance(carry, dict) else [carry]
        if first.shape != (len(obs),) or any(np.shape(leaf)[:1] != (len(obs),) for leaf in leaves):
            raise ValueError(f"act: {len(obs)} observations need B flags in first and a carry of batch B, "
                             f"got {first.shape} and {[np.shape(leaf) for leaf in leaves]}")

    def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool, env_steps: int) -> tuple[np.ndarray, Any]:
        """The agent's own act() on the service's device, with the latest weights."""
        started = time.perf_counter()
        obs, first = np.asarray(obs), np.asarray(first, bool)
        self.check_act_request(obs, carry, first)
        self._swap_weights()
        result = self.agent.act(obs, carry, first, explore, env_steps)
        self.batch_sizes.append(len(obs))
        self.latencies.append(time.perf_counter() - started)
        self.counters["acts"] += len(obs)
        self.counters["batches"] += 1
        return result

    def stats(self) -> dict:
        """Counters plus the batch sizes and latencies observed since the previous call."""
        sizes, lats = self.batch_sizes, self.latencies
        self.batch_sizes, self.latencies = [], []
        return {"planner/plans": float(self.counters["plans"]), "planner/acts": float(self.counters["acts"]),
                "planner/batches": float(self.counters["batches"]),
                "version/planner": float(self.version), "planner/batch_sizes": sizes, "planner/latencies": lats}

    def ping(self) -> int:
        return self.version


def concat_rows(parts: list) -> Any:
    """Stack requests along the batch axis: arrays, and dicts/tuples of them (None stays None)."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, dict):
        return {k: concat_rows([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(concat_rows(list(column)) for column in zip(*parts))
    return np.concatenate(parts)


def slice_rows(tree: Any, start: int, stop: int) -> Any:
    """One caller's rows of a batched answer; scalars (a weights version) are shared."""
    if isinstance(tree, dict):
        return {k: slice_rows(v, start, stop) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(slice_rows(v, start, stop) for v in tree)
    if dataclasses.is_dataclass(tree):
        return dataclasses.replace(tree, **{f.name: slice_rows(getattr(tree, f.name), start, stop)
                                            for f in dataclasses.fields(tree)})
    return tree[start:stop] if isinstance(tree, np.ndarray) else tree


@dataclasses.dataclass
class _Request:
    args: tuple  # batched along axis 0
    rows: int
    env_steps: int
    future: asyncio.Future
    queued: float


class BatchingPlanner(PlannerService):
    """The Ray async-actor face of the service: merges concurrent requests into batches."""

    def __init__(self, run: RunConfig, seed: int = 0) -> None:
        super().__init__(run, seed)
        self._queues: dict[tuple, asyncio.Queue] = {}  # one per request kind: ("plan",) or ("act", explore)
        self._executor = ThreadPoolExecutor(max_workers=1)  # batches run one after another
        self._grpc_server = None
        self.request_latencies: list[float] = []

    async def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray) -> PlanResult:
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        self.check_request(obs, goals, steps_left)  # a bad request fails alone, not its batch-mates
        return await self._submit(("plan",), (obs, goals, steps_left), 0)

    async def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool,
                  env_steps: int) -> tuple[np.ndarray, Any]:
        obs, first = np.asarray(obs), np.asarray(first, bool)
        self.check_act_request(obs, carry, first)
        return await self._submit(("act", bool(explore)), (obs, carry, first), int(env_steps))

    async def _submit(self, kind: tuple, args: tuple, env_steps: int) -> Any:
        loop = asyncio.get_running_loop()
        if kind not in self._queues:
            self._queues[kind] = asyncio.Queue()
            loop.create_task(self._batch_loop(kind, self._queues[kind]))
        future = loop.create_future()
        await self._queues[kind].put(_Request(args, len(args[0]), env_steps, future, time.perf_counter()))
        return await future

    async def _batch_loop(self, kind: tuple, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        held = None  # a request that did not fit the previous batch opens the next one
        while True:
            items = [held or await queue.get()]
            held = None
            size = items[0].rows
            deadline = loop.time() + self.config.max_wait_ms / 1000
            while size < self.config.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if size + item.rows > self.config.max_batch:
                    held = item
                    break
                items.append(item)
                size += item.rows
            await self._run_batch(loop, kind, items)

    async def _run_batch(self, loop, kind: tuple, items: list[_Request]) -> None:
        args = concat_rows([it.args for it in items])
        if kind[0] == "plan":
            call = (PlannerService.plan, self, *args)
        else:  # the exploration schedule follows the furthest caller (they differ by one round at most)
            call = (PlannerService.act, self, *args, kind[1], max(it.env_steps for it in items))
        try:
            result = await loop.run_in_executor(self._executor, *call)
        except Exception as exc:  # every caller of a failed batch hears why
            for it in items:
                if not it.future.done():
                    it.future.set_exception(exc)
            return
        start = 0
        now = time.perf_counter()
        for it in items:
            part = slice_rows(result, start, start + it.rows)
            start += it.rows
            self.request_latencies.append(now - it.queued)
            if not it.future.done():
                it.future.set_result(part)

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
