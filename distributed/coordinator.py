"""The one training loop: local mode and Ray mode differ only in where components run.

Workers collect and insert into replay; learners update as fast as the rate limiter allows;
every ``sync_every`` updates learner 0's weights go out, once, through the object store, to the
planner service and the workers. Evaluation, checkpoints, the metrics log, Prometheus and the
progress bar hang off the same loop.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from pixelplan.envs import evaluate, make_env

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .eval_policies import AgentGoalPolicy, play_episodes
from .goalsets import EVAL_GOAL_SEED, EVAL_GOALS, load_or_build_goal_set
from .learner import Learner
from .metrics import MetricsExporter
from .metrics_log import MetricsLog
from .offline.plots import plot_goal_grid
from .planner_service import BatchingPlanner, PlannerMemory, PlannerService
from .replay.config import ReplayConfig
from .replay.errors import ReplayDataLost, ReplayStoreUnavailable
from .replay.limiter import RateLimiter
from .replay.shard import ReplayShard
from .replay.sharded import ShardedReplay
from .resolve import resolve_run
from .runtime import free_port, make_runtime
from .videos import goal_video, return_video
from .worker import EnvWorker

ACTOR_ERRORS: tuple[type[BaseException], ...] = ()
try:  # a dead or restarting actor: its call is lost, the actor comes back
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    ACTOR_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)
except ImportError:  # pragma: no cover
    pass


class TrainingStopped(RuntimeError):
    """The run ended early on purpose (a signal, a replay outage) after writing a checkpoint."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Coordinator:
    """Resolves the run, starts its components, and only then touches the run folder."""

    def __init__(self, run: RunConfig) -> None:
        resume_state = load_checkpoint(run.resume) if run.resume else None
        if resume_state is not None:
            run = dataclasses.replace(run, out=run.resume)
        self.resolved, self.agent = resolve_run(run)  # every bad setting is refused here; the agent evaluates
        if resume_state is None:
            check_run_folder(Path(run.out), run.overwrite)
        # Only a valid run gets a replay run_id (and, with Redis, its markers); a resumed one keeps its own.
        replay = scope_replay(self.resolved.config.replay, resume_state)
        self.resolved = dataclasses.replace(self.resolved, config=dataclasses.replace(self.resolved.config, replay=replay))
        run = self.run = self.resolved.config
        run.apply_threads()
        self.out = Path(run.out)
        self.spec = self.resolved.spec
        self.request = self.resolved.request
        self.limiter = RateLimiter(self.request.replay_ratio, self.request.min_steps_learn, self.request.batch_size)
        # Logical CPUs of a Ray cluster started here: one per worker and learner, plus the services.
        self.runtime = make_runtime(run.mode, run.address, num_cpus=max(os.cpu_count() or 1, run.workers + run.learners + 2))
        tag = uuid.uuid4().hex[:6]
        spawn = self.runtime.spawn
        self.shards = [spawn(ReplayShard, run.replay, i, name=f"{tag}-replay-{i}", num_cpus=0.25)
                       for i in range(run.replay.shards)]
        self.replay = ShardedReplay(self.shards, run.replay)  # stats only: the coordinator never samples
        self.planner = self.planner_memory = None
        if self.agent.goal_conditioned or run.acting == "service":
            # The memory outlives planner restarts: a restarted planner reads the last broadcast from it.
            self.planner_memory = spawn(PlannerMemory, name=f"{tag}-planner-memory", num_cpus=0)
            self.planner = spawn(BatchingPlanner, self.resolved, self.planner_memory, name=f"{tag}-planner",
                                 num_gpus=run.planner_gpus, local_cls=PlannerService)
        if self.agent.goal_conditioned:
            self.eval_goals = load_or_build_goal_set(run.env, EVAL_GOALS, EVAL_GOAL_SEED, run.env_options,
                                                     show_progress=run.progress)
        dist_address = f"127.0.0.1:{free_port()}" if run.learners > 1 else None
        self.learners = [spawn(Learner, self.resolved, r, self.shards, dist_address, name=f"{tag}-learner-{r}",
                               num_gpus=run.learner_gpus, restart=False) for r in range(run.learners)]
        self.workers = [spawn(EnvWorker, self.resolved, w, self.shards, self.planner, name=f"{tag}-worker-{w}")
                        for w in range(run.workers)]
        self.runtime.ready({f"replay shard {i}": h for i, h in enumerate(self.shards)}
                           | ({"planner": self.planner} if self.planner else {})
                           | {f"learner {r}": h for r, h in enumerate(self.learners)}
                           | {f"worker {w}": h for w, h in enumerate(self.workers)})
        self.counters = {"env_steps": 0, "episodes": 0, "inserted_steps": 0, "updates": 0, "worker_restarts": 0,
                         "sampled": 0, "insert_resends": 0}
        self.version = 0
        self.stopping = threading.Event()  # stop(): finish the current calls, evaluate, checkpoint
        self.stop_signal: int | None = None  # stopped by a signal: checkpoint without the final evaluation
        self.offsets = (0, 0)  # limiter counts = counters + offsets (a resumed in-memory replay starts empty)
        self.latest: dict[str, float] = {}
        self.evaluations = 0  # in this process: every eval_video_every-th one logs a video
        self.worker_seen = {w: time.time() for w in range(run.workers)}
        self.worker_pids: dict[int, float] = {}
        self.actor_versions: dict[str, float] = {}
        if resume_state is not None:
            self._restore(resume_state)  # a checkpoint that does not fit the resolved config is refused here
        else:
            clear_run_folder(self.out)
        # The run is valid and its components are up: only now is the run folder written.
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(self.resolved.to_json())
        (self.out / "done").unlink(missing_ok=True)
        self.grpc_address = self._serve_grpc() if self.planner is not None and run.planner.grpc_port is not None else None
        self.log = MetricsLog(self.out)
        self.acked_log = open(self.out / ACKED_FILE, "a")  # noqa: SIM115 - open for the run, closed in close()
        self.exporter = MetricsExporter(run.metrics_port, host=run.metrics_host) if run.metrics_port is not None else None
        self._publish()

    def _serve_grpc(self) -> str:
        address = self.planner.call("grpc_address").result()  # the planner serves from its constructor on
        (self.out / "planner_grpc_address").write_text(address)
        return address

    # -- weights, checkpoints ------------------------------------------------------------------
    def _publish(self) -> None:
        version, weights = self.learners[0].call("publish").result()
        ref = self.runtime.put(weights)  # one copy in the object store, shared by every reader
        if self.planner_memory is not None:  # first, so a planner restarting meanwhile starts from this version
            self.planner_memory.call("remember_weights", version, [ref]).result()
        targets = self.workers + ([self.planner] if self.planner else [])
        for pending in [t.call("set_weights", version, ref) for t in targets]:
            try:
                pending.result()
            except ACTOR_ERRORS:
                pass  # a restarting actor gets the next version
        self.agent.load_policy_weights(weights)  # the coordinator's copy evaluates reward agents
        self.version = version

    def checkpoint(self) -> Path:
        state = {"config": self.run.to_dict(), "learner": self.learners[0].call("state_dict").result(),
                 "counters": dict(self.counters), "version": self.version}
        return save_checkpoint(self.out / "checkpoints", state, self.counters["updates"])

    def _restore(self, state: dict) -> None:
        for learner in self.learners:
            learner.call("load_state_dict", state["learner"]).result()
        self.counters.update(state["counters"])
        if self.run.replay.backend == "memory":  # replay starts empty again; Redis brings its contents back
            self.offsets = (-self.counters["inserted_steps"], -self.counters["sampled"])

    # -- the loop ------------------------------------------------------------------------------
    def train(self) -> dict[str, float]:
        run = self.run
        pending_workers: list[tuple[int, object]] = []  # (worker, run call), oldest first
        # Ray: a second call waits in each worker's queue, so a worker never idles between calls.
        # Local calls finish when made: a second one would only reorder workers and learner.
        calls_per_worker = 1 if run.mode == "local" else 2
        pending_learn: list | None = None
        next_eval = self.counters["env_steps"] + run.eval_every if run.eval_every else math.inf
        next_ckpt = self.counters["updates"] + run.checkpoint_every
        last_log, rate_mark = 0.0, (time.time(), self.counters["env_steps"], self.counters["updates"])
        chunk = max(run.worker_chunk, run.envs_per_worker)
        bar = tqdm(total=run.steps, initial=min(self.counters["env_steps"], run.steps), unit="step",
                   disable=not run.progress, desc=f"{run.agent} {run.env}")
        try:
            while (self.counters["env_steps"] < run.steps and not self.stopping.is_set()) or pending_workers:
                in_flight = chunk * len(pending_workers)
                may_insert = self.limiter.inserts_allowed(*self._limiter_counts()) > 0
                for depth in range(1, calls_per_worker + 1):
                    for w, worker in enumerate(self.workers):
                        wanted = self.counters["env_steps"] + in_flight < run.steps and not self.stopping.is_set()
                        if sum(v == w for v, _ in pending_workers) < depth and may_insert and wanted:
                            pending_workers.append((w, worker.call("run", chunk, self.counters["env_steps"])))
                            in_flight += chunk
                if pending_learn is None:
                    n = self._updates_allowed()
                    if n > 0:
                        pending_learn = [learner.call("train", n) for learner in self.learners]
                done = set(map(id, self.runtime.wait([p for _, p in pending_workers] + (pending_learn or []), 1.0)))
                for w, p in [(w, p) for w, p in pending_workers if id(p) in done]:
                    pending_workers.remove((w, p))
                    self._collect_worker(w, p)
                if pending_learn is not None and all(id(p) in done for p in pending_learn):
                    self._collect_learners([p.result() for p in pending_learn])
                    pending_learn = None
                    if self.counters["updates"] % run.sync_every == 0:
                        self._publish()
                    if self.counters["updates"] >= next_ckpt:
                        self.checkpoint()
                        next_ckpt = self.counters["updates"] + run.checkpoint_every
                if self.counters["env_steps"] >= next_eval:
                    self.evaluate()
                    next_eval = self.counters["env_steps"] + run.eval_every
                if time.time() - last_log >= run.log_every_s:
                    rate_mark = self._log(rate_mark, bar)
                    last_log = time.time()
            if pending_learn is not None:
                self._collect_learners([p.result() for p in pending_learn])
            # A run call waits only for earlier calls' inserts: an empty call confirms (and logs) each worker's last.
            for w, pending in [(w, worker.call("run", 0, self.counters["env_steps"])) for w, worker in enumerate(self.workers)]:
                self._collect_worker(w, pending)
            if self.stop_signal is not None:
                name = signal.Signals(self.stop_signal).name
                raise TrainingStopped(f"stopped by {name}: checkpoint {self.checkpoint()}; continue with "
                                      f"--resume {self.out}", 128 + self.stop_signal)
            self._publish()
            final = self.evaluate(picture=True)
            self._log(rate_mark, bar)
            self.checkpoint()
            (self.out / "done").write_text(json.dumps(final))
            return {**self.counters, **final}
        except KeyboardInterrupt:
            print(f"interrupted: checkpoint {self.checkpoint()}")
            raise
        except (ReplayStoreUnavailable, ReplayDataLost) as exc:
            cause = getattr(exc, "cause", None) or exc  # through Ray: the remote error itself, not its traceback
            raise TrainingStopped(f"replay failed, run stopped: {cause}; checkpoint {self.checkpoint()}; "
                                  f"continue with --resume {self.out} once Redis is back") from exc
        except TrainingStopped:  # a signal: the checkpoint is already written
            raise
        except Exception:  # any other crash: keep the learner's work if it can still be had, then fail loudly
            print(f"training failed; {self._checkpoint_if_possible()}", file=sys.stderr, flush=True)
            raise
        finally:
            bar.close()

    def _checkpoint_if_possible(self) -> str:
        try:
            return f"checkpoint {self.checkpoint()}"
        except Exception as exc:  # noqa: BLE001 - the learner may be what failed
            return f"no checkpoint ({type(exc).__name__}: {str(exc)[:200]})"

    def stop(self, signum: int | None = None) -> None:
        """Ask the loop to wrap up (from another thread or a signal handler). After a signal it
        checkpoints and raises TrainingStopped instead of evaluating: a pod has seconds, not minutes."""
        self.stop_signal = signum
        self.stopping.set()

    def _limiter_counts(self) -> tuple[int, int]:
        """(env steps in replay, items sampled from them): what the replay ratio is measured on."""
        return (self.counters["inserted_steps"] + self.offsets[0], self.counters["sampled"] + self.offsets[1])

    def _updates_allowed(self) -> int:
        allowed = self.limiter.updates_allowed(*self._limiter_counts())
        to_sync = self.run.sync_every - self.counters["updates"] % self.run.sync_every
        return min(allowed, to_sync)

    def _collect_worker(self, w: int, pending) -> None:
        try:
            result = pending.result()
        except ACTOR_ERRORS:
            self.counters["worker_restarts"] += 1  # Ray restarts the actor; its next call goes to the new one
            return
        self.worker_seen[w] = time.time()
        if self.worker_pids.setdefault(w, result["pid"]) != result["pid"]:  # Ray restarted it and retried the call
            self.counters["worker_restarts"] += 1
            self.worker_pids[w] = result["pid"]
        for key in ("env_steps", "episodes", "inserted_steps", "insert_resends"):
            self.counters[key] += int(result[key])
        self.acked_log.write("".join(f"{uid}\n" for uid in result.get("acked", ())))
        self.acked_log.flush()
        self.actor_versions[f"worker{w}"] = result["version"]
        if not math.isnan(result["return"]):
            self.latest["train/return"] = result["return"]

    def _collect_learners(self, results: list[dict]) -> None:
        first = results[0]
        done = int(first["updates"]) - self.counters["updates"]
        self.counters["updates"] = int(first["updates"])
        self.counters["sampled"] += done * self.request.batch_size * len(results)
        self.latest.update({k: v for k, v in first.items() if k not in ("updates", "pid")})  # every key an agent logs

    def evaluate(self, picture: bool = False) -> dict[str, float]:
        """Goal achievement on the 30 evaluation goals (GLAMOR) or the mean return; ``picture``
        also draws the goal grid (goals above reached frames) into the run folder."""
        run = self.run
        self.evaluations += 1
        record = int(run.eval_video_every > 0 and self.evaluations % run.eval_video_every == 0)
        if self.agent.goal_conditioned:
            planner = self.planner
            record = record if self.spec.pixels else 0  # goal videos show the goal frame; a state vector has none

            def plan(obs, goals, steps_left, banned=None):
                return planner.call("plan", obs, goals, steps_left, banned=banned).result()

            policy = AgentGoalPolicy(plan, self.spec.action_size, getattr(self.agent.config, "ban_noop_actions", False))
            result = evaluate(lambda: make_env(run.env, **run.env_options), self.eval_goals, policy,
                              run.eval_episodes, seed=self.resolved.seeds.seed("evaluation"), record=record)
            summary = result.summary()
            videos = [goal_video(film, self.eval_goals.frames[result.goal_index[i]], self.spec.time_limit)
                      for i, film in enumerate(result.films)]
            if picture and self.spec.pixels:  # a state-vector goal has no picture
                shown = min(len(result.achieved), EVAL_GOALS)
                plot_goal_grid(self.eval_goals.frames[result.goal_index[:shown]], result.final_frames[:shown],
                               result.achieved[:shown], self.out / "goals.png",
                               f"{run.agent} on {run.env}: achievement {result.achievement_rate:.2f}")
        else:
            returns = play_episodes(run.env, run.env_options, self.agent, run.eval_episodes,
                                    self.resolved.seeds.seed("evaluation"), record)
            summary, videos = returns.summary(), [return_video(film) for film in returns.films]
        self.latest.update(summary)
        self.log.write(self.counters["env_steps"], summary)
        for video in videos:
            self.log.video("eval/video", video, self.counters["env_steps"])
        return summary

    # -- reporting -----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        snap = {**{k: float(v) for k, v in self.counters.items()}, **self.latest}
        snap.update(self.replay.stats())
        if self.planner is not None:
            try:
                snap.update(self.planner.call("stats").result(timeout=10))
            except ACTOR_ERRORS:
                pass
        versions = [v for v in self.actor_versions.values()] + [snap.get("version/planner", self.version)]
        snap["version/learner"] = float(self.version)
        snap["version/actors_min"] = float(min(versions)) if versions else float(self.version)
        snap["version_lag"] = float(self.version - snap["version/actors_min"])
        now = time.time()
        for w, seen in self.worker_seen.items():
            snap[f"worker_alive/{w}"] = float(now - seen < max(30.0, 10 * self.run.log_every_s))
        return snap

    def _log(self, mark: tuple[float, int, int], bar) -> tuple[float, int, int]:
        now, steps, updates = time.time(), self.counters["env_steps"], self.counters["updates"]
        dt = max(now - mark[0], 1e-6)
        snap = self.snapshot()
        snap["env_steps_per_s"] = (steps - mark[1]) / dt
        snap["updates_per_s"] = (updates - mark[2]) / dt
        if self.exporter is not None:
            self.exporter.update(snap)
        self.log.write(steps, {k: v for k, v in snap.items() if isinstance(v, (int, float)) and not k.startswith("eval/")
                               and ("/" in k or k in ("env_steps_per_s", "updates_per_s", "updates", "episodes",
                                                      "version_lag"))})
        bar.n = min(steps, self.run.steps)
        bar.set_postfix({"steps/s": f"{snap['env_steps_per_s']:.0f}", "upd/s": f"{snap['updates_per_s']:.1f}",
                         **({"achv": f"{snap['eval/achievement']:.2f}"} if "eval/achievement" in snap else {}),
                         **({"ret": f"{snap['eval/return']:.1f}"} if "eval/return" in snap else {})}, refresh=False)
        bar.refresh()
        return now, steps, updates

    def close(self) -> None:
        for handle in self.workers + self.learners:
            try:
                handle.call("close").result(timeout=10)
            except Exception:  # noqa: BLE001 - best effort while shutting down
                pass
        self.log.close()
        self.acked_log.close()
        self.runtime.shutdown()


ACKED_FILE = "acked_trajectories.txt"  # uid of every trajectory replay acknowledged, one a line (an audit trail)
RUN_FILES = ("metrics.csv", "done", "curves.png", "goals.png", "planner_grpc_address", "checkpoints", "tb", ACKED_FILE)


def scope_replay(replay: ReplayConfig, resume_state: dict | None) -> ReplayConfig:
    """A fresh run gets its own run_id (and its Redis markers); a resumed one the checkpoint's, so Redis
    hands its contents back and no run ever starts with another run's transitions."""
    if resume_state is not None:
        return dataclasses.replace(replay, run_id=resume_state["config"]["replay"].get("run_id"))
    replay = dataclasses.replace(replay, run_id=uuid.uuid4().hex[:12])
    if replay.backend == "redis":
        from .replay.redis_store import create_run

        create_run(replay.redis_url, replay.key_prefix, replay.shards)
    return replay


@contextmanager
def stop_on_signals(coordinator: Coordinator):
    """SIGTERM (Kubernetes, ``ray job stop``) and SIGINT make the loop checkpoint and stop; a second
    signal interrupts at once (still with a checkpoint). Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        if coordinator.stopping.is_set() and coordinator.stop_signal is not None:
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name}: finishing the current calls, then a checkpoint", flush=True)
        coordinator.stop(signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_run_folder(out: Path, overwrite: bool) -> None:
    """A fresh run never appends to an earlier run's log or resumes its checkpoints by accident."""
    if (out / "metrics.csv").exists() and not overwrite:
        raise ValueError(f"{out} already holds a run: pass --resume {out} to continue it, or --force to replace it")


def clear_run_folder(out: Path) -> None:
    """Remove an earlier run's files (check_run_folder allowed it), keeping anything else in the folder."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def train(run: RunConfig) -> dict[str, float]:
    """Train one run to completion; returns the final counters and evaluation."""
    coordinator = Coordinator(run)
    try:
        with stop_on_signals(coordinator):
            return coordinator.train()
    finally:
        coordinator.close()
