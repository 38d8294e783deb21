"""Central planner service: batches plan (and, optionally, act) requests from every worker onto one device.

Goal-conditioned agents (GLAMOR) always plan here. Reward agents (Dreamer, ALM) act here when the run
says ``acting="service"``: the worker sends (obs, carry, first) and gets (actions, carry) back, so the
service stays stateless and a restarted worker loses nothing but its own carry.

``PlannerService`` is the plain class (local mode calls it directly, one caller's batch at a time).
``BatchingPlanner`` is the same service as a Ray async actor: concurrent requests of one kind are
queued and merged into batches of at most ``max_batch`` rows, the first waiting at most
``max_wait_ms``; a batch runs on the planning thread, or on the event loop when it is expected to
take under ``inline_max_ms``. New weights are applied between batches, never during one, and every plan carries
the weights version that produced it.

Hardened for callers outside the cluster (gRPC): each request is validated alone before it joins a
batch; one larger than ``max_batch`` is planned ``max_batch`` rows at a time, interleaved with everyone
else's; rows waiting are capped (``PlannerBusy`` beyond it); calls cancelled or past their deadline
are dropped before they are computed. A planner Ray restarts reads the last broadcast weights (and
its gRPC port) from ``PlannerMemory`` and serves gRPC again before answering anyone.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pixelplan.agents.base import PlanResult, check_banned
from pixelplan.agents.nets import resolve_device

from .handles import Handle, fetch
from .resolve import ResolvedRun


class PlannerBusy(RuntimeError):
    """The planner holds as many waiting rows as it may: back off and retry (gRPC RESOURCE_EXHAUSTED)."""


class PlannerMemory:
    """What a planner loses when its process dies and needs back on restart: the last broadcast weights
    and the gRPC port it served on. The coordinator writes every broadcast here (the weights as an
    object-store reference, so no copy is held twice); a planner reads it in its constructor."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.held: list | None = None  # [weights or their object-store reference]
        self.grpc_port: int | None = None

    def remember_weights(self, version: int, held: list) -> None:
        self.version, self.held = version, held

    def remember_grpc_port(self, port: int) -> None:
        self.grpc_port = port

    def recall(self) -> tuple[int | None, list | None, int | None]:
        return self.version, self.held, self.grpc_port


class PlannerService:
    def __init__(self, resolved: ResolvedRun, memory: Handle | None = None) -> None:
        run = resolved.config
        run.apply_threads()
        self.spec = resolved.spec
        self.device = str(resolve_device(run.planner.device))
        self.seed = resolved.seeds.seed("planner")  # plan() calls draw from seed * 1_000_003 + call number
        self.agent = resolved.make_agent(self.device, self.seed)
        self.config = run.planner
        self.run_agent = run.agent
        self.version = 0
        self._pending: tuple[int, dict] | None = None
        self._calls = 0
        self.batch_sizes: list[int] = []
        self.latencies: list[float] = []
        self.counters = {"plans": 0, "acts": 0, "batches": 0, "dropped": 0}
        self.memory = memory
        self.recalled_grpc_port = None
        if memory is not None:  # a restarted planner starts from the last broadcast, not from scratch
            version, held, self.recalled_grpc_port = memory.call("recall").result()
            if held:
                self.set_weights(version, fetch(held[0]))

    def set_weights(self, version: int, weights) -> int:
        """Store new weights; they take effect at the start of the next batch. Never goes back to an
        older version (a retried broadcast may arrive after the restart restored a newer one)."""
        newest = self._pending[0] if self._pending is not None else self.version
        if version >= newest:
            self._pending = (version, weights)
        return version

    def _swap_weights(self) -> None:
        if self._pending is not None:
            version, weights = self._pending
            self._pending = None
            self.agent.load_policy_weights(weights)
            self.version = version

    def _check_rows(self, obs: np.ndarray) -> int:
        self.spec.check_obs(obs)
        if obs.shape[1:] != self.spec.obs_shape or obs.ndim != len(self.spec.obs_shape) + 1:
            raise ValueError(f"observations must be a batch (B, *{self.spec.obs_shape}), got shape {obs.shape}")
        if not 1 <= len(obs) <= self.config.max_request_rows:
            raise ValueError(f"a request holds 1 to {self.config.max_request_rows} rows (planner.max_request_rows), "
                             f"got {len(obs)}")
        return len(obs)

    def check_request(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray, banned: np.ndarray) -> None:
        """Everything that could make a batch fail is checked here, on the request alone."""
        if not self.agent.goal_conditioned:
            raise ValueError(f"agent {self.run_agent!r} does not plan; it acts (call act)")
        rows = self._check_rows(obs)
        frame_dtype = np.dtype(self.spec.frame_dtype)
        if goals.dtype != frame_dtype or goals.shape != (rows, *self.spec.frame_shape):
            raise ValueError(f"plan: {rows} observations need goals of {frame_dtype} with shape "
                             f"({rows}, *{self.spec.frame_shape}), got {goals.dtype} {goals.shape}")
        if steps_left.shape != (rows,) or steps_left.dtype.kind not in "iu" or steps_left.min() < 1:
            low = steps_left.min() if steps_left.size and steps_left.dtype.kind in "iuf" else None
            raise ValueError(f"plan: steps_left must be {rows} integers >= 1, got {steps_left.dtype} "
                             f"{steps_left.shape} (smallest {low})")
        check_banned(banned, rows, self.spec.action_size)

    def _banned(self, obs: np.ndarray, banned: np.ndarray | None) -> np.ndarray:
        """A request's first actions to avoid; none unless given (batched requests all carry the array)."""
        return np.zeros((len(obs), self.spec.action_size), bool) if banned is None else np.asarray(banned)

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray,
             banned: np.ndarray | None = None) -> PlanResult:
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        banned = self._banned(obs, banned)
        self.check_request(obs, goals, steps_left, banned)
        return self._plan_batch(obs, goals, steps_left, banned)

    def _plan_batch(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray,
                    banned: np.ndarray) -> PlanResult:
        """One planning pass over requests that were each checked already."""
        started = time.perf_counter()
        self._swap_weights()
        self._calls += 1
        result = self.agent.plan(obs, goals, np.asarray(steps_left), seed=self.seed * 1_000_003 + self._calls,
                                 banned=banned if banned.any() else None)
        result.version = self.version
        self.batch_sizes.append(len(obs))
        self.latencies.append(time.perf_counter() - started)
        self.counters["plans"] += len(obs)
        self.counters["batches"] += 1
        return result

    def check_act_request(self, obs: np.ndarray, carry: Any, first: np.ndarray) -> None:
        if self.agent.goal_conditioned:
            raise ValueError(f"agent {self.run_agent!r} plans for goals; it does not act (call plan)")
        self._check_rows(obs)
        leaves = [] if carry is None else list(carry.values()) if isinstance(carry, dict) else [carry]
        if first.shape != (len(obs),) or any(np.shape(leaf)[:1] != (len(obs),) for leaf in leaves):
            raise ValueError(f"act: {len(obs)} observations need B flags in first and a carry of batch B, "
                             f"got {first.shape} and {[np.shape(leaf) for leaf in leaves]}")

    def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool, env_steps: int) -> tuple[np.ndarray, Any]:
        """The agent's own act() on the service's device, with the latest weights."""
        obs, first = np.asarray(obs), np.asarray(first, bool)
        self.check_act_request(obs, carry, first)
        return self._act_batch(obs, carry, first, explore, env_steps)

    def _act_batch(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool,
                   env_steps: int) -> tuple[np.ndarray, Any]:
        started = time.perf_counter()
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
                "planner/batches": float(self.counters["batches"]), "planner/dropped": float(self.counters["dropped"]),
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


def join_results(parts: list) -> Any:
    """One answer from the answers to a request's consecutive slices (plans are padded with -1 to the
    longest; the version is the oldest weights that produced any of the rows)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], PlanResult):
        width = max(p.actions.shape[1] for p in parts)
        actions = [np.pad(p.actions, ((0, 0), (0, width - p.actions.shape[1])), constant_values=-1) for p in parts]
        return PlanResult(np.concatenate(actions), np.concatenate([p.lengths for p in parts]),
                          np.concatenate([p.scores for p in parts]), min(p.version for p in parts))
    return concat_rows(parts)


def _timed(fn, *args) -> tuple[Any, float]:
    """``fn(*args)`` and the seconds it took, measured in the thread that ran it."""
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started


@dataclasses.dataclass
class _Request:
    args: tuple  # batched along axis 0
    rows: int
    env_steps: int
    future: asyncio.Future
    queued: float
    deadline: float | None  # loop time after which nobody wants the answer


class BatchingPlanner(PlannerService):
    """The Ray async-actor face of the service: merges concurrent requests into batches."""

    def __init__(self, resolved: ResolvedRun, memory: Handle | None = None) -> None:
        # Spawned with a memory (by the coordinator), it answers nobody before it holds broadcast weights.
        self._weights_ready = asyncio.Event()
        super().__init__(resolved, memory)
        if memory is None:
            self._weights_ready.set()
        self._queues: dict[tuple, asyncio.Queue] = {}  # one per request kind: ("plan",) or ("act", explore)
        self._queued_rows = 0  # accepted, not yet answered
        self._executor = ThreadPoolExecutor(max_workers=1)  # batches run one after another
        self._executor_busy = 0  # batches on the thread now (a cheap batch runs on the loop only when none is)
        self._row_s: dict[tuple, float] = {}  # the last batch's seconds per row, per request kind
        self._grpc_server = None
        self.grpc_port: int | None = None
        self.request_latencies: list[float] = []
        if self.config.grpc_port is not None:  # a restarted planner rebinds the port its clients know
            self._start_grpc(self.recalled_grpc_port if self.recalled_grpc_port is not None else self.config.grpc_port)

    def set_weights(self, version: int, weights) -> int:
        version = super().set_weights(version, weights)
        self._weights_ready.set()
        return version

    async def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray,
                   timeout_s: float | None = None, outside: bool = False, banned: np.ndarray | None = None) -> PlanResult:
        """``outside``: a caller from outside the cluster (gRPC), refused when the queue is full. The run's
        own workers are bounded by construction (one request of envs_per_worker rows each) and always queue."""
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        banned = self._banned(obs, banned)
        self.check_request(obs, goals, steps_left, banned)  # a bad request fails alone, not its batch-mates
        return await self._submit(("plan",), (obs, goals, steps_left, banned), 0, timeout_s, outside)

    async def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool,
                  env_steps: int) -> tuple[np.ndarray, Any]:
        obs, first = np.asarray(obs), np.asarray(first, bool)
        self.check_act_request(obs, carry, first)
        return await self._submit(("act", bool(explore)), (obs, carry, first), int(env_steps))

    async def _submit(self, kind: tuple, args: tuple, env_steps: int, timeout_s: float | None = None,
                      outside: bool = False) -> Any:
        rows, limit = len(args[0]), self.config.max_queued_rows
        if outside and self._queued_rows + rows > limit:
            raise PlannerBusy(f"planner busy: {self._queued_rows} rows already waiting (planner.max_queued_rows "
                              f"{limit}); retry later")
        loop = asyncio.get_running_loop()
        if kind not in self._queues:
            self._queues[kind] = asyncio.Queue()
            loop.create_task(self._batch_loop(kind, self._queues[kind]))
        deadline = None if timeout_s is None else loop.time() + timeout_s
        self._queued_rows += rows
        try:  # slice by slice: each next slice queues behind whatever arrived meanwhile
            parts = []
            for start in range(0, rows, self.config.max_batch):
                stop = min(start + self.config.max_batch, rows)
                future = loop.create_future()
                self._queues[kind].put_nowait(_Request(slice_rows(args, start, stop), stop - start, env_steps, future,
                                                       time.perf_counter(), deadline))
                parts.append(await future)
            return join_results(parts)
        finally:
            self._queued_rows -= rows

    def _wanted(self, item: _Request, now: float) -> bool:
        """False for a call its caller cancelled or whose deadline passed: it is dropped, not computed."""
        if not item.future.done() and item.deadline is not None and now >= item.deadline:
            item.future.set_exception(TimeoutError("the call's deadline passed before it was planned"))
        if item.future.done():
            self.counters["dropped"] += item.rows
            return False
        return True

    async def _batch_loop(self, kind: tuple, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        held = None  # a request that did not fit the previous batch opens the next one
        while True:
            first = held or await queue.get()
            held = None
            if not self._wanted(first, loop.time()):
                continue
            items, size = [first], first.rows
            deadline = loop.time() + self.config.max_wait_ms / 1000
            while size < self.config.max_batch:
                timeout = deadline - loop.time()
                try:
                    item = queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if not self._wanted(item, loop.time()):
                    continue
                if size + item.rows > self.config.max_batch:
                    held = item
                    break
                items.append(item)
                size += item.rows
            await self._weights_ready.wait()
            items = [it for it in items if self._wanted(it, loop.time())]
            if items:
                await self._run_batch(loop, kind, items)

    async def _run_batch(self, loop, kind: tuple, items: list[_Request]) -> None:
        args = concat_rows([it.args for it in items])
        if kind[0] == "plan":
            call = (self._plan_batch, *args)
        else:  # the exploration schedule follows the furthest caller (they differ by one round at most)
            call = (self._act_batch, *args, kind[1], max(it.env_steps for it in items))
        rows = sum(it.rows for it in items)
        try:
            if self._executor_busy == 0 and self._row_s.get(kind, math.inf) * rows * 1000 <= self.config.inline_max_ms:
                result, seconds = _timed(*call)  # cheap: here, on the loop (never beside a batch on the thread)
            else:
                self._executor_busy += 1
                try:
                    result, seconds = await loop.run_in_executor(self._executor, _timed, *call)
                finally:
                    self._executor_busy -= 1
            self._row_s[kind] = seconds / rows  # the batch's own cost: the hand-off to the thread is not the loop's
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

    # -- gRPC ----------------------------------------------------------------------------------
    def _start_grpc(self, port: int) -> int:
        """Bind now, start on this actor's running loop (Ray runs the constructor on it)."""
        from .grpc.server import create_server

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("serving gRPC needs the planner's running event loop (construct it in a Ray actor "
                               "or inside a coroutine)") from None
        self._grpc_server, self.grpc_port = create_server(self, self.config, port)
        loop.create_task(self._grpc_server.start())
        if self.memory is not None:
            self.memory.call("remember_grpc_port", self.grpc_port).result()
        return self.grpc_port

    async def serve_grpc(self, port: int = 0) -> str:
        """Expose this service over gRPC on ``port`` (0 = a free one) if it does not already; returns host:port."""
        if self._grpc_server is None:
            self._start_grpc(port)
        return self.grpc_address()

    def grpc_address(self) -> str:
        """host:port for clients (this node's address when bound to every interface)."""
        if self.grpc_port is None:
            raise ValueError("this planner does not serve gRPC (set planner.grpc_port)")
        host = self.config.grpc_host
        if host in ("0.0.0.0", "::"):
            import ray

            host = ray.util.get_node_ip_address()
        return f"[{host}]:{self.grpc_port}" if ":" in host else f"{host}:{self.grpc_port}"
