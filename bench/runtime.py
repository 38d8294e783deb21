"""Runtime benchmark: actor-plane throughput, planner batching and latency, RLlib as the peer.

One Ray cluster; each comparison is measured side by side in interleaved rounds and each ratio is
the median of per-round ratios, so load from other processes on the shared machine hits both sides.

* Actor plane: the W EnvWorkers (M envs each) of a real Coordinator (Ray mode, agent ``stub`` =
  random plans, planner service, replay shard, coordinator loop) against W plain Ray actors stepping
  the raw env with random actions. ``min_steps_learn`` is huge, so the learner never runs and takes no CPU.
  An episode ends with its stub plan (1..T actions); the plain fleet ends its episodes at the same
  random lengths, because a Pong reset costs ~14 steps and the ratio must measure plumbing, not
  reset frequency (the plain fleet with T-step episodes is reported as well). Then GLAMOR's real
  planner (the paper-sized model) in the same loop (its plans set the episode lengths), with
  ``plan_wait_share``: the share of the workers' working time spent blocked on plans (a worker
  blocks only when all M of its envs wait for one).
* Steady state: a fleet's rate is counted over a fixed window that opens ``warmup`` seconds after
  its first steps came back (actor start-up and first episodes excluded). Steps per CPU-second of
  the whole session (this process and every Ray process) are reported beside steps per second: on
  a loaded machine a fleet of more processes gets a larger share of the CPU, which inflates its
  wall-clock rate; the CPU ratio does not depend on the load.
* Planner: 32 client threads, each with one B=1 request in flight, against BatchingPlanner with
  batching (max_batch 64) and without (max_batch 1); caller-seen latency over Ray and over gRPC;
  and the model alone at B = 1, 16, 32 (the ceiling any batching service can reach). The service
  judged against its own model: ``planner_service_efficiency`` = plans/s through it (32 clients,
  over Ray; ``_grpc`` over gRPC) / plans/s of the model called here on batches of the size the
  service formed; ``grpc_overhead_ms`` = p50 of one client's 1-request gRPC calls minus the model's
  own p50 at B = 1, split (``grpc_breakdown``) into transport (the call minus the service's own
  queued-to-answered time: gRPC, proto coding, the service's event loop), queue (that time minus the
  model pass) and the same model's pass in the service's process minus here.
* Shipping: a worker's insert into an in-memory shard actor as compressed bytes (what workers
  send) vs as the Trajectory's arrays through Ray's object store: wall time and each side's CPU.
* Profile (``--profile``, ``profile()``): the plain fleet and the stub runtime once each, every session
  process's CPU over the window split per component (``_cpu_profile.py``: py-spy samples over /proc's
  per-thread CPU), as ms of CPU per env step side by side: where each lost % per CPU-second goes.
* Peer: RLlib's SingleAgentEnvRunner (new API stack; EnvRunnerGroup of W runners, an RLModule that
  returns random actions) on the same env with the same random episode lengths. The runners send
  back only their step counts, not the episodes: RLlib's cheapest case.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from pixelplan.bench._cpu_profile import ProfileWindow, compare, markdown, session_cpu
from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.replay.config import ReplayConfig
from pixelplan.distributed.runtime import start_ray
from pixelplan.envs import make_env
from pixelplan.envs.gym_adapter import PixelPlanGymEnv

WORKERS = 2  # these machines have 2 cores
ENVS_PER_WORKER = 4  # M >= 2: a worker steps the envs that have a plan while the others wait for theirs
CLIENTS = 32
NEVER = 10**12  # min_steps_learn: the learner never starts
ENVS = {"pong": "atari:pong", "grid": "grid"}
CHUNK = {"pong": 200, "grid": 2000}  # steps per call of the plain fleet and RLlib's runners (~0.1 s)
TINY = {"preset": "tiny"}


# -- measuring -----------------------------------------------------------------------------------
def actor_pid(ray, actor) -> int:
    return ray.get(actor.__ray_call__.remote(lambda _: os.getpid()))


def steady_rate(pump: Callable[[float], int], warmup_s: float, window_s: float,
                mark: Callable[[], None] = lambda: None, profile: ProfileWindow | None = None) -> dict:
    """Steps/s over ``window_s`` from ``warmup_s`` after the first steps; ``pump(timeout)`` keeps the fleet
    busy and returns the steps completed since its previous call; ``mark()`` runs as the window opens
    and as it closes; ``profile`` (if given) profiles the window's processes (under ``"profile"``)."""
    while pump(0.05) == 0:
        pass
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end or pump(0.0) == 0:  # the window opens at a completion
        pump(0.02)
    mark()
    if profile is not None:
        profile.open()
    t0, cpu0, steps = time.perf_counter(), session_cpu(), 0
    while time.perf_counter() - t0 < window_s:
        steps += pump(0.02)
    elapsed = time.perf_counter() - t0
    cpu = sum(c - cpu0.get(key, 0.0) for key, c in session_cpu().items())  # exited processes drop out
    out = {"steps_per_s": steps / elapsed, "steps_per_cpu_s": steps / max(cpu, 1e-9), "steps": steps}
    if profile is not None:
        out["profile"] = profile.close()
    mark()
    return out


# -- the plain fleet -----------------------------------------------------------------------------
class RawStepper:
    """The raw env with random actions; episodes end at T, or after 1..horizon steps if given."""

    def __init__(self, env_id: str, horizon: int | None, seed: int) -> None:
        self.env, self.horizon, self.rng = make_env(env_id), horizon, np.random.default_rng(seed)
        self._new_episode()

    def _new_episode(self) -> None:
        self.env.reset(seed=int(self.rng.integers(2**31)))
        self.left = int(self.rng.integers(1, self.horizon + 1)) if self.horizon else -1

    def run(self, steps: int) -> int:
        for _ in range(steps):
            step = self.env.step(self.env.sample_action(self.rng))
            self.left -= 1
            if step.terminated or step.truncated or self.left == 0:
                self._new_episode()
        return steps


def raw_fleet_rate(ray, actors: list, chunk: int, warmup_s: float, window_s: float, profile: bool = False) -> dict:
    """Two calls in flight per actor, so no actor waits for this driver. ``profile``: per component."""
    in_flight = {a.run.remote(chunk): a for a in actors for _ in range(2)}

    def pump(timeout: float) -> int:
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
        for ref in ready:
            actor = in_flight.pop(ref)
            in_flight[actor.run.remote(chunk)] = actor
        return sum(ray.get(ready))

    window = ProfileWindow({"driver": os.getpid()} | {f"plain env actor {i}": actor_pid(ray, a)
                                                      for i, a in enumerate(actors)}) if profile else None
    try:
        return steady_rate(pump, warmup_s, window_s, profile=window)
    finally:
        ray.get(list(in_flight))


# -- the runtime ---------------------------------------------------------------------------------
def runtime_config(env: str, agent: str, overrides: dict, out: str) -> RunConfig:
    return RunConfig(agent=agent, env=ENVS[env], steps=NEVER, seed=0, mode="ray", workers=WORKERS, out=out,
                     envs_per_worker=ENVS_PER_WORKER,
                     progress=False, eval_every=0, eval_episodes=1, checkpoint_every=NEVER,
                     agent_overrides={"min_steps_learn": NEVER, **overrides}, replay=ReplayConfig(capacity=200_000))


def coordinator_rate(ray, run: RunConfig, warmup_s: float, window_s: float, profile: bool = False) -> dict:
    """A real Coordinator trained in a thread; its env-step counter is the pump. Also the share of the
    workers' working time spent waiting for plans, over the same window. ``profile``: per component."""
    from pixelplan.distributed.coordinator import Coordinator

    coordinator, failure, seen, marks = Coordinator(run), [], [0], []

    def mark() -> None:
        stats = [w.call("stats").result() for w in coordinator.workers]
        marks.append(np.sum([[s["plan_wait_s"], s["insert_wait_s"], s["run_s"], time.perf_counter()] for s in stats],
                            axis=0))

    def train() -> None:
        try:
            coordinator.train()
        except BaseException as exc:  # noqa: BLE001 - reported by the pump
            failure.append(exc)

    def pump(timeout: float) -> int:
        time.sleep(timeout)
        if not thread.is_alive():
            raise RuntimeError(f"the coordinator stopped during the benchmark: {failure!r}")
        new, seen[0] = coordinator.counters["env_steps"] - seen[0], coordinator.counters["env_steps"]
        return new

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    window = None
    if profile:
        named = {"driver (coordinator)": os.getpid(), "planner service": actor_pid(ray, coordinator.planner.actor)}
        named |= {f"env worker {w}": actor_pid(ray, h.actor) for w, h in enumerate(coordinator.workers)}
        named |= {f"replay shard {i}": actor_pid(ray, h.actor) for i, h in enumerate(coordinator.shards)}
        window = ProfileWindow(named)
    try:
        rate = steady_rate(pump, warmup_s, window_s, mark, window)
        rate["mean_episode_length"] = coordinator.counters["env_steps"] / max(coordinator.counters["episodes"], 1)
        waited, insert_waited, worked, wall = marks[1] - marks[0]  # wall: summed over the workers, like run_s
        rate["plan_wait_share"] = float(waited / max(worked, 1e-9))
        rate["insert_wait_share"] = float(insert_waited / max(worked, 1e-9))
        rate["worker_in_call_share"] = float(worked / max(wall, 1e-9))  # the rest: between coordinator calls
        return rate
    finally:
        coordinator.stop()
        thread.join(120)
        coordinator.close()
        for handle in coordinator.workers + coordinator.learners + coordinator.shards + [coordinator.planner]:
            ray.kill(handle.actor)


# -- RLlib ---------------------------------------------------------------------------------------
class RandomActionsModule(TorchRLModule):
    """A random policy as an RLModule: RLlib's runner does all its usual work but the network."""

    def setup(self) -> None:
        pass

    def _forward(self, batch, **kwargs):
        return {Columns.ACTIONS: torch.randint(self.action_space.n, (len(batch[Columns.OBS]),))}


class RandomLengthEpisodes(gym.Wrapper):
    """Ends each episode after 1..horizon steps, like the stub's random plans."""

    def __init__(self, env: gym.Env, horizon: int, seed: int) -> None:
        super().__init__(env)
        self.horizon, self.rng, self.left = horizon, np.random.default_rng(seed), 0

    def reset(self, **kwargs):
        self.left = int(self.rng.integers(1, self.horizon + 1))
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.left -= 1
        return obs, reward, terminated, truncated or self.left <= 0, info


def make_rllib_env(config) -> gym.Env:
    env = PixelPlanGymEnv(env_id=config["env_id"])
    return RandomLengthEpisodes(env, env.env.spec.time_limit, int(config.worker_index))


def rllib_group(env: str):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.env.env_runner_group import EnvRunnerGroup
    from ray.tune.registry import register_env

    register_env("pixelplan-random-length", make_rllib_env)
    config = (PPOConfig().environment("pixelplan-random-length", env_config={"env_id": ENVS[env]})
              .env_runners(num_env_runners=WORKERS, num_envs_per_env_runner=1, max_requests_in_flight_per_env_runner=2)
              .rl_module(rl_module_spec=RLModuleSpec(module_class=RandomActionsModule)))
    return EnvRunnerGroup(config=config, local_env_runner=False)


def rllib_rate(group, chunk: int, warmup_s: float, window_s: float) -> dict[str, float]:
    def sample(runner) -> int:
        return sum(len(episode) for episode in runner.sample(num_timesteps=chunk))

    def pump(timeout: float) -> int:
        return sum(group.foreach_env_runner_async_fetch_ready(sample, tag="bench", timeout_seconds=timeout))

    try:
        return steady_rate(pump, warmup_s, window_s)
    finally:
        while group.num_in_flight_async_reqs("bench"):
            group.fetch_ready_async_reqs(tags="bench", timeout_seconds=0.1)


# -- the planner service -------------------------------------------------------------------------
def plan_request(env: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A worker's episode-start request: (obs, the frame 10 random steps later as goal, T)."""
    with make_env(ENVS[env]) as e:
        obs, rng = e.reset(seed=0), np.random.default_rng(0)
        for _ in range(10):
            e.step(e.sample_action(rng))
        return obs[None], e.frame()[None], np.array([e.spec.time_limit])


def spawn_planners(ray, env: str, agent: str, overrides: dict) -> dict:
    """The service with batching (max_batch 64) and one request at a time, placed as the Coordinator does."""
    from pixelplan.distributed.planner_service import BatchingPlanner
    from pixelplan.distributed.resolve import ResolvedRun

    def spawn(max_batch: int):
        config = PlannerConfig(max_batch=max_batch)
        run = RunConfig(agent=agent, env=ENVS[env], agent_overrides=overrides, planner=config)
        return ray.remote(BatchingPlanner).options(num_cpus=1).remote(ResolvedRun.of(run))

    return {"env": env, "agent": agent, "overrides": overrides, "batched": spawn(64), "one_at_a_time": spawn(1)}


def planner_load(make_call: Callable[[], Callable[[], object]], warmup_s: float, window_s: float,
                 mark: Callable[[], None] = lambda: None) -> dict:
    """CLIENTS threads, each with one request in flight: plans/s and caller-seen latency; ``mark()``
    runs as the window opens and as it closes."""
    stop, records = threading.Event(), []

    def client() -> None:
        call = make_call()
        while not stop.is_set():
            started = time.perf_counter()
            call()
            records.append((started, time.perf_counter()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    while len(records) < CLIENTS:  # the first wave served: every client is in the loop
        time.sleep(0.01)
    time.sleep(warmup_s)
    mark()
    t0 = time.perf_counter()
    time.sleep(window_s)
    t1 = time.perf_counter()
    mark()
    stop.set()
    for t in threads:
        t.join()
    ms = np.array([end - start for start, end in records if t0 <= end <= t1]) * 1000
    return {"plans_per_s": len(ms) / (t1 - t0), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "requests": len(ms)}


def planner_compare(ray, planners: dict, rounds: int, warmup_s: float, window_s: float) -> dict:
    """Batched vs one at a time over Ray in interleaved rounds, then the batched service over gRPC."""
    from pixelplan.distributed.grpc.client import PlannerClient

    request, batched, single = plan_request(planners["env"]), planners["batched"], planners["one_at_a_time"]
    name = f"{planners['agent']} {planners['env']}"
    out = {"torch_threads": ray.get(batched.__ray_call__.remote(lambda service: torch.get_num_threads())), "rounds": []}
    for _ in range(rounds):
        ray.get(batched.stats.remote())  # forget earlier batch sizes
        b = planner_load(lambda: lambda: ray.get(batched.plan.remote(*request)), warmup_s, window_s)
        b["mean_batch_size"] = float(np.mean(ray.get(batched.stats.remote())["planner/batch_sizes"]))
        s = planner_load(lambda: lambda: ray.get(single.plan.remote(*request)), warmup_s, window_s)
        out["rounds"].append({"batched": b, "one_at_a_time": s, "speedup": b["plans_per_s"] / s["plans_per_s"]})
        print(f"  planner {name}: batched {b['plans_per_s']:.1f} plans/s (p50 {b['p50_ms']:.0f} ms, batch "
              f"{b['mean_batch_size']:.1f}), one at a time {s['plans_per_s']:.1f} plans/s", flush=True)
    for key in ("batched", "one_at_a_time", "speedup"):
        values = [r[key] for r in out["rounds"]]
        out[key] = statistics.median(values) if key == "speedup" else {
            k: statistics.median(v[k] for v in values) for k in values[0]}
    address, clients = ray.get(batched.serve_grpc.remote(0)), []

    def grpc_call() -> Callable[[], object]:
        clients.append(PlannerClient(address))
        return lambda client=clients[-1]: client.plan(*request)

    ray.get(batched.stats.remote())
    out["grpc"] = planner_load(grpc_call, warmup_s, window_s)
    out["grpc"]["mean_batch_size"] = float(np.mean(ray.get(batched.stats.remote())["planner/batch_sizes"]))
    print(f"  planner {name} over gRPC: {out['grpc']['plans_per_s']:.1f} plans/s (p50 {out['grpc']['p50_ms']:.0f} ms, "
          f"batch {out['grpc']['mean_batch_size']:.1f})", flush=True)
    for client in clients:
        client.close()
    out["service_overhead"] = over = service_overhead(ray, planners, request, address, rounds, warmup_s, window_s)
    print(f"  planner {name} against its own model: efficiency {over['efficiency']:.2f} (per CPU-second "
          f"{over['cpu_efficiency']:.2f}), gRPC overhead {over['grpc_overhead_ms']:.2f} ms "
          f"({', '.join(f'{k} {v:.2f}' for k, v in over['grpc_breakdown'].items())})", flush=True)
    ray.kill(batched)
    ray.kill(single)
    return out


def model_plans_per_s(env: str, agent: str, overrides: dict, seconds: float, sizes=(1, 16, 32)) -> dict:
    """``agent.plan`` alone, here, on one torch thread like the service actor: what batching can gain at most."""
    from pixelplan.agents.registry import make_agent

    obs, goal, steps = plan_request(env)
    model, threads, rates = make_agent(agent, make_env(ENVS[env]).spec, overrides), torch.get_num_threads(), {}
    torch.set_num_threads(1)
    try:
        for b in sizes:
            args = (np.repeat(obs, b, 0), np.repeat(goal, b, 0), np.repeat(steps, b))
            calls, start = 0, time.perf_counter()
            while calls == 0 or time.perf_counter() - start < seconds:
                model.plan(*args, seed=calls)
                calls += 1
            rates[f"B{b}"] = b * calls / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return {"plans_per_s": rates, "ceiling": rates[f"B{sizes[-1]}"] / rates[f"B{sizes[0]}"]}


def service_overhead(ray, planners: dict, request: tuple, grpc_address: str, rounds: int, warmup_s: float,
                     window_s: float) -> dict:
    """The batched service judged against its own model, called here on one torch thread.

    Efficiency, in rounds: plans/s through the service with CLIENTS Ray callers over plans/s of the
    model on batches of the size the service formed in that round (wall), and the same per
    CPU-second (the service actor's process vs this thread: independent of machine load). gRPC
    overhead: one client alternating a 1-request gRPC call with the model's own B = 1 call; the
    median of the differences.
    """
    from pixelplan.agents.registry import make_agent
    from pixelplan.distributed.grpc.client import PlannerClient

    service = planners["batched"]
    model = make_agent(planners["agent"], make_env(ENVS[planners["env"]]).spec, planners["overrides"])

    def plan_here(b: int, seed: int) -> None:
        model.plan(*(np.repeat(x, b, 0) for x in request), seed=seed)

    def service_cpu() -> float:
        return ray.get(service.__ray_call__.remote(lambda _: time.process_time()))

    threads, rows, gaps = torch.get_num_threads(), [], []
    torch.set_num_threads(1)
    try:
        for _ in range(rounds):
            ray.get(service.stats.remote())
            cpu: list[float] = []
            load = planner_load(lambda: lambda: ray.get(service.plan.remote(*request)), warmup_s, window_s,
                                lambda marks=cpu: marks.append(service_cpu()))
            b = max(1, round(float(np.mean(ray.get(service.stats.remote())["planner/batch_sizes"]))))
            calls, wall, thread_cpu = 0, time.perf_counter(), time.thread_time()
            while calls == 0 or time.perf_counter() - wall < window_s:
                plan_here(b, calls)
                calls += 1
            wall, thread_cpu = time.perf_counter() - wall, time.thread_time() - thread_cpu
            rows.append({"batch": b, "efficiency": load["plans_per_s"] / (b * calls / wall),
                         "cpu_efficiency": load["requests"] / (cpu[1] - cpu[0]) / (b * calls / thread_cpu)})
        with PlannerClient(grpc_address) as client:
            client.plan(*request)
            ray.get(service.stats.remote())  # forget earlier latencies (model passes and served requests)
            calls_ms, here_ms = [], []
            start = time.perf_counter()
            while len(gaps) < 5 or time.perf_counter() - start < window_s:
                t0 = time.perf_counter()
                client.plan(*request)
                t1 = time.perf_counter()
                plan_here(1, len(gaps))
                t2 = time.perf_counter()
                gaps.append(2 * t1 - t0 - t2)
                calls_ms.append(1000 * (t1 - t0))
                here_ms.append(1000 * (t2 - t1))
        # Where the gap goes: the caller's call, the service's queued-to-answered time, its model pass.
        model_ms = ray.get(service.__ray_call__.remote(lambda s: [1000 * x for x in s.latencies]))
        served_ms = [1000 * x for x in ray.get(service.stats.remote())["planner/latencies"]]
        p50 = {"call": statistics.median(calls_ms), "served": statistics.median(served_ms),
               "model_in_service": statistics.median(model_ms), "model_here": statistics.median(here_ms)}
        breakdown = {"grpc_call_p50_ms": p50["call"],
                     "transport_ms": p50["call"] - p50["served"],  # gRPC, proto coding, the service's event loop
                     "queue_ms": p50["served"] - p50["model_in_service"],  # batch loop and hand-offs
                     "model_service_vs_here_ms": p50["model_in_service"] - p50["model_here"]}  # same model, other process
    finally:
        torch.set_num_threads(threads)
    return {"efficiency": statistics.median(r["efficiency"] for r in rows),
            "cpu_efficiency": statistics.median(r["cpu_efficiency"] for r in rows),
            "grpc_overhead_ms": 1000 * statistics.median(gaps), "grpc_pairs": len(gaps),
            "grpc_breakdown": breakdown, "rounds": rows}


# -- shipping trajectories -----------------------------------------------------------------------
def insert_cost(ray, blocks: int, per_block: int = 10) -> dict:
    """A worker's insert into an in-memory shard actor (call to acknowledgement), both ways, in
    alternating blocks of episodes: compressed bytes (``to_bytes`` on the caller, decoded by the
    shard) vs the Trajectory's arrays through Ray's object store. Per insert: wall time, and CPU time
    of the caller's process and of the shard's (which pays what, independent of machine load).
    Atari-sized episodes of 20-50 steps."""
    from pixelplan.bench.replay import NUM_ACTIONS, atari_like_episode
    from pixelplan.distributed.replay.shard import ReplayShard

    shard = ray.remote(ReplayShard).options(num_cpus=0.25).remote(ReplayConfig(capacity=20_000,
                                                                               num_actions=NUM_ACTIONS), 0)
    rng = np.random.default_rng(0)
    pool = [atari_like_episode(rng, int(n)) for n in rng.integers(20, 51, size=per_block)]
    ray.get(shard.insert.remote(pool[0]))
    shard_cpu = lambda: ray.get(shard.__ray_call__.remote(lambda _: time.process_time()))  # noqa: E731
    spent = {form: np.zeros(3) for form in ("bytes", "arrays")}  # wall, caller CPU, shard CPU
    for _ in range(blocks):
        for form in spent:
            before = np.array([time.perf_counter(), time.process_time(), shard_cpu()])
            for traj in pool:
                ray.get(shard.insert.remote(traj.to_bytes() if form == "bytes" else traj))
            spent[form] += np.array([time.perf_counter(), time.process_time(), shard_cpu()]) - before
    ray.kill(shard)
    ms = {f"{form}_{what}_ms": 1000 * float(total[k]) / (blocks * per_block) for form, total in spent.items()
          for k, what in enumerate(("wall", "caller_cpu", "shard_cpu"))}
    print("  insert into a memory shard (per episode): " + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()), flush=True)
    return {**ms, "episodes": blocks * per_block}


# -- the whole benchmark -------------------------------------------------------------------------
def actor_plane(ray, env: str, rounds: int, warmup_s: float, window_s: float, out_dir: str, fixed_t: bool,
                glamor: dict | None, ready: list) -> dict:
    """Rounds of (plain fleet, stub runtime, RLlib[, plain fleet with T-step episodes]); then GLAMOR once."""
    horizon = make_env(ENVS[env]).spec.time_limit
    stepper = ray.remote(RawStepper).options(num_cpus=1)
    matched = [stepper.remote(ENVS[env], horizon, i) for i in range(WORKERS)]
    fixed = [stepper.remote(ENVS[env], None, i) for i in range(WORKERS)] if fixed_t else []
    group, chunk, rows = rllib_group(env), CHUNK[env], []
    ray.get(ready)  # actors started meanwhile must be up before anything is timed
    for r in range(rounds):
        stub = runtime_config(env, "stub", {"horizon": horizon}, f"{out_dir}/{env}-stub-{r}")
        row = {"raw": raw_fleet_rate(ray, matched, chunk, warmup_s, window_s),
               "stub": coordinator_rate(ray, stub, warmup_s, window_s),
               "rllib": rllib_rate(group, chunk, warmup_s, window_s)}
        if fixed:
            row["raw_T_episodes"] = raw_fleet_rate(ray, fixed, chunk, warmup_s, window_s)
        rows.append(row)
        print(f"  {env} round {r + 1}/{rounds}: " + ", ".join(f"{k} {v['steps_per_s']:,.0f}/s" for k, v in row.items()),
              flush=True)

    def median(f: Callable[[dict], float]) -> float:
        return statistics.median(f(row) for row in rows)

    out = {f"{name}_{unit}": median(lambda row, n=name, u=unit: row[n][u]) for name in rows[0]
           for unit in ("steps_per_s", "steps_per_cpu_s")}
    out.update(ratio=median(lambda row: row["stub"]["steps_per_s"] / row["raw"]["steps_per_s"]),
               cpu_ratio=median(lambda row: row["stub"]["steps_per_cpu_s"] / row["raw"]["steps_per_cpu_s"]),
               rllib_ratio=median(lambda row: row["stub"]["steps_per_s"] / row["rllib"]["steps_per_s"]),
               rllib_of_raw=median(lambda row: row["rllib"]["steps_per_s"] / row["raw"]["steps_per_s"]),
               stub_mean_episode_length=median(lambda row: row["stub"]["mean_episode_length"]),
               stub_plan_wait_share=median(lambda row: row["stub"]["plan_wait_share"]),
               per_round=[{k: round(v["steps_per_s"]) for k, v in row.items()} for row in rows])
    if glamor is not None:
        raw = raw_fleet_rate(ray, matched, chunk, warmup_s, window_s)
        real = coordinator_rate(ray, runtime_config(env, "glamor", glamor, f"{out_dir}/{env}-glamor"), warmup_s,
                                window_s)
        out["glamor"] = {"overrides": glamor, "steps_per_s": real["steps_per_s"], "raw_steps_per_s": raw["steps_per_s"],
                         "ratio": real["steps_per_s"] / raw["steps_per_s"],
                         "cpu_ratio": real["steps_per_cpu_s"] / raw["steps_per_cpu_s"],
                         "mean_episode_length": real["mean_episode_length"], "plan_wait_share": real["plan_wait_share"]}
        print(f"  {env} GLAMOR {glamor}: {real['steps_per_s']:,.0f}/s vs plain {raw['steps_per_s']:,.0f}/s, "
              f"waiting for plans {real['plan_wait_share']:.0%} of the workers' time", flush=True)
    group.stop()
    for actor in matched + fixed:
        ray.kill(actor)
    return out


@contextlib.contextmanager
def ray_session():
    """The benchmark's Ray session (``run`` and ``profile`` alike); yields the ``ray`` module."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import ray

    # Logical CPUs only place actors (every fleet stays up, idle, between its turns); the cores stay 2.
    start_ray(num_cpus=32, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
              log_to_driver=False, namespace="pixelplan-bench")
    try:
        yield ray
    finally:
        ray.shutdown()


def run(quick: bool) -> dict:
    with ray_session() as ray:
        return _run(ray, quick)


def profile(quick: bool) -> dict:
    """``--profile``: the stub actor plane and the plain fleet on Pong, one window each, every session
    process's CPU over it split per component (py-spy in the profiled processes). Rates carry py-spy's
    own load: the ratios to quote come from ``run``; this says where the CPU goes."""
    warmup_s, window_s = (2.0, 4.0) if quick else (3.0, 10.0)
    load_before = os.getloadavg()[0]
    with ray_session() as ray:
        horizon = make_env(ENVS["pong"]).spec.time_limit
        plain = [ray.remote(RawStepper).options(num_cpus=1).remote(ENVS["pong"], horizon, i) for i in range(WORKERS)]
        raw = raw_fleet_rate(ray, plain, CHUNK["pong"], warmup_s, window_s, profile=True)
        for actor in plain:
            ray.kill(actor)
        with tempfile.TemporaryDirectory() as out_dir:
            stub = coordinator_rate(ray, runtime_config("pong", "stub", {"horizon": horizon}, f"{out_dir}/stub"),
                                    warmup_s, window_s, profile=True)
    comparison = compare(raw, stub)
    load = [load_before, os.getloadavg()[0]]
    notes = (f"`python -m pixelplan.bench runtime{' --quick' if quick else ''} --profile`: Pong, W={WORKERS} "
             f"workers x M={ENVS_PER_WORKER} envs (stub: random plans of 1..T actions; plain: the raw env, episodes "
             f"ended at the same random lengths), {window_s:g} s windows after {warmup_s:g} s warm-up, py-spy at "
             f"{raw['profile']['rate_hz']} Hz, {os.cpu_count()} cores, load average {load[0]:.2f} -> {load[1]:.2f}. "
             f"Mean stub episode: {stub['mean_episode_length']:.1f} steps. Stub workers' wall time: in a call "
             f"{stub['worker_in_call_share']:.0%} (the rest between the coordinator's calls), of which blocked on plans "
             f"{stub['plan_wait_share']:.1%} and on insert acknowledgements {stub['insert_wait_share']:.1%}.")
    table = markdown("Actor plane CPU profile: plain fleet vs stub runtime", ("plain", "stub"), (raw, stub),
                     comparison, notes)
    print(table, flush=True)
    return {"cpu_ratio": comparison["cpu_ratio"], "ratio": comparison["ratio"],
            "plain_ms_per_step": comparison["baseline_ms_per_step"], "stub_ms_per_step": comparison["subject_ms_per_step"],
            "stub_mean_episode_length": stub["mean_episode_length"], "stub_plan_wait_share": stub["plan_wait_share"],
            "stub_insert_wait_share": stub["insert_wait_share"], "stub_worker_in_call_share": stub["worker_in_call_share"],
            "comparison": comparison, "plain": raw, "stub": stub, "load_avg_1min": load, "markdown": table}


def _run(ray, quick: bool) -> dict:
    # Each stub round starts a fresh Coordinator (~10-30 s of actor start-up here): rounds are few.
    rounds, warmup_s, window_s = (1, 1.0, 2.0) if quick else (2, 1.5, 4.0)
    load_before = os.getloadavg()[0]
    planners = {"glamor-tiny-grid": spawn_planners(ray, "grid", "glamor", TINY)}  # they start during RLlib's start
    if not quick:
        planners.update({"stub-pong": spawn_planners(ray, "pong", "stub", {}),
                         "glamor-pong": spawn_planners(ray, "pong", "glamor", {})})
    ready = [p[k].ping.remote() for p in planners.values() for k in ("batched", "one_at_a_time")]
    with tempfile.TemporaryDirectory() as out_dir:
        plane = {"pong": actor_plane(ray, "pong", rounds, warmup_s, window_s, out_dir, not quick,
                                     {}, ready)}  # GLAMOR's default (paper-sized) model
        if not quick:
            plane["grid"] = actor_plane(ray, "grid", 1, warmup_s, window_s, out_dir, False, TINY, [])
    planner = {"glamor-tiny-grid": planner_compare(ray, planners["glamor-tiny-grid"], rounds, warmup_s, window_s)}
    planner["glamor-tiny-grid"]["model_only"] = model_plans_per_s("grid", "glamor", TINY, window_s / 4)
    if not quick:
        planner["stub-pong"] = planner_compare(ray, planners["stub-pong"], 1, warmup_s, window_s)
        planner["glamor-pong"] = planner_compare(ray, planners["glamor-pong"], 1, 2.0, 12.0)
        planner["glamor-pong"]["model_only"] = model_plans_per_s("pong", "glamor", {}, 1.0)
    shipping = insert_cost(ray, 4 if quick else 20)
    main = planner["glamor-tiny-grid"]
    return {
        "actor_plane_ratio": plane["pong"]["ratio"],
        "actor_plane_cpu_ratio": plane["pong"]["cpu_ratio"],
        "plan_wait_share": plane["pong"]["glamor"]["plan_wait_share"],
        "planner_service_efficiency": main["service_overhead"]["efficiency"],
        "planner_service_cpu_efficiency": main["service_overhead"]["cpu_efficiency"],
        "grpc_overhead_ms": main["service_overhead"]["grpc_overhead_ms"],
        "grpc_breakdown": main["service_overhead"]["grpc_breakdown"],
        "planner_batching_speedup": main["speedup"],
        "planner_p50_ms": main["batched"]["p50_ms"], "planner_p99_ms": main["batched"]["p99_ms"],
        "grpc_p50_ms": main["grpc"]["p50_ms"], "grpc_p99_ms": main["grpc"]["p99_ms"],
        "rllib_ratio": plane["pong"]["rllib_ratio"],
        "insert_ms_arrays": shipping["arrays_wall_ms"], "insert_ms_bytes": shipping["bytes_wall_ms"],
        "actor_plane": plane, "planner": planner, "shipping": shipping,
        "setup": {"env": ENVS["pong"], "planner": "glamor tiny on grid", "workers": WORKERS, "clients": CLIENTS,
                  "envs_per_worker": ENVS_PER_WORKER, "planner_max_wait_ms": PlannerConfig().max_wait_ms,
                  "rounds": rounds, "warmup_s": warmup_s, "window_s": window_s, "cpus": os.cpu_count(),
                  "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                  "load_avg_1min": [load_before, os.getloadavg()[0]]},
    }
