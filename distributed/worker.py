"""EnvWorker: steps a vector of environments and ships finished trajectories to replay.

Goal-conditioned agents (GLAMOR) ask the planner service for one plan per episode from
(s_1, g) and follow it open loop, each action replaced by a uniform random one with probability
ε; the episode ends when the plan does (the agent's end token) or at T. Plan requests do not
block: the worker keeps stepping the envs that have a plan and waits only when every env waits for
one (in local mode a plan arrives with its request, so a seeded worker repeats itself). Envs between
episodes ask for plans together, half the worker's envs at a time while others can step, and
finished episodes go to replay in one insert call per run call: each call costs ~1 ms of CPU on
both sides, as much as a few env steps (``python -m pixelplan.bench runtime --profile``).
Reward agents act through their own policy copy, or through the service with ``acting="service"``
(the worker keeps the recurrent carry). The same class runs in-process (local mode) or as a Ray actor.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from pixelplan.agents.glamor.collect import NoopBans, OpenLoopFollower
from pixelplan.envs import TrajectoryBuilder, make_env

from .goalsets import load_or_build_goal_set
from .handles import Handle, Pending
from .replay.errors import ReplayStoreUnavailable
from .replay.sharded import ShardedReplay
from .resolve import ResolvedRun

_RETRY_FIRST_S, _RETRY_MAX_S = 0.05, 2.0  # backoff between resends while the replay store is out


@dataclass
class SentBatch:
    """Episodes sent to a shard in one insert call, kept until it acknowledges them (resent meanwhile)."""

    run_call: int  # the worker's run call that sent it
    shard: int
    blobs: list[bytes]
    uids: list[str]
    transitions: int
    pending: Pending


class EnvWorker:
    def __init__(self, resolved: ResolvedRun, worker_id: int, replay_handles: list[Handle], planner: Handle | None) -> None:
        run, seeds = resolved.config, resolved.seeds
        self.worker_id = worker_id
        run.apply_threads()
        self.envs = [make_env(run.env, **run.env_options) for _ in range(run.envs_per_worker)]
        self.spec = resolved.spec
        self.agent = resolved.make_agent("cpu", seeds.seed("worker-agent", worker_id))
        self.replay = ShardedReplay(replay_handles, run.replay, first_shard=worker_id)
        self.planner = planner
        self.central_acting = not self.agent.goal_conditioned and run.acting == "service"
        self.rng = np.random.default_rng(seeds.seed("worker", worker_id))  # resets, goal draws, ε-greedy
        self.version = 0
        config = self.agent.config
        self.goals = None
        if self.agent.goal_conditioned:  # the training task set (GLAMOR: 1000 goals), not the evaluation goals
            self.goals = load_or_build_goal_set(run.env, getattr(config, "train_tasks", 1000), seeds.seed("train-goals"),
                                                run.env_options, show_progress=False)
        self.carry = None if self.agent.goal_conditioned else self.agent.initial_carry(len(self.envs))
        self.builders: list[TrajectoryBuilder | None] = [None] * len(self.envs)
        self.obs = np.zeros((len(self.envs), *self.spec.obs_shape), np.dtype(self.spec.frame_dtype))
        self.first = np.ones(len(self.envs), bool)
        self.follower = (OpenLoopFollower(len(self.envs), self.spec.action_size, int(self.rng.integers(2**31)),
                                          stop_at_plan_end=getattr(config, "stop_at_plan_end", True),
                                          replan_every=getattr(config, "collect_replan_every", 0),
                                          next_goal=getattr(config, "next_goal_at_plan_end", False))
                         if self.goals is not None else None)
        # Only the non-paper collection options plan mid-episode: the default collection skips the check.
        self.plans_mid_episode = self.follower is not None and (self.follower.replan_every > 0 or self.follower.next_goal)
        # Mid-episode plans avoid the actions that left an env's observation unchanged (ban_noop_actions).
        self.noops = (NoopBans(self.spec.action_size)
                      if self.plans_mid_episode and getattr(config, "ban_noop_actions", False) else None)
        self.returns = np.zeros(len(self.envs))
        self.counters = {"env_steps": 0, "episodes": 0, "inserted_steps": 0, "insert_resends": 0}
        self.recent_returns: list[float] = []
        self.started = time.time()
        self.outage_limit_s = run.replay.outage_limit_s
        # Finished episodes wait in the outbox (bytes, uid, transitions) and leave as one insert call per batch:
        # a call costs worker and shard ~1 ms of CPU beyond the data, as much as a few env steps. Sent batches
        # are kept until the shard acknowledges, resent while Redis is out. A run call sends its episodes as it
        # ends and waits only for the batches of earlier calls: at most two calls' episodes are held, and no
        # call waits for a shard's round trip (on a loaded machine, the shard's wait for a core).
        self.outbox: list[tuple[bytes, str, int]] = []
        self.unacked: list[SentBatch] = []
        self.run_calls = 0
        self.plan_requests: list = []  # (env ids, pending plan call), oldest first
        self.awaiting_plan = np.zeros(len(self.envs), bool)
        self.plan_group = max(1, len(self.envs) // 2)
        self.timers = {"run_s": 0.0, "plan_wait_s": 0.0, "insert_wait_s": 0.0}

    # -- weights -------------------------------------------------------------------------------
    def set_weights(self, version: int, weights) -> int:
        if not (self.agent.goal_conditioned or self.central_acting):  # else the weights live in the service
            self.agent.load_policy_weights(weights)
        self.version = version
        return version

    # -- stepping ------------------------------------------------------------------------------
    def _start_episodes(self, idx: list[int]) -> None:
        for i in idx:
            self.obs[i] = self.envs[i].reset(seed=int(self.rng.integers(2**31)))
            if self.noops is not None:
                self.noops.forget(i)
            extra = {}
            if self.goals is not None:
                extra["goal"] = int(self.rng.integers(len(self.goals)))
            self.builders[i] = TrajectoryBuilder(self.spec.env_id, self.envs[i].frame(), self.envs[i].goal_features(),
                                                 self.spec.stack, self.worker_id, self.version, extra)
            self.returns[i] = 0.0
        if self.goals is not None and idx:
            self._request_plans(idx)

    def _request_plans(self, idx: list[int]) -> None:
        """Plans from the envs' current states toward their episodes' goals, capped at the steps left."""
        goal_idx = [self.builders[i].extra["goal"] for i in idx]
        steps_left = np.array([self.spec.time_limit - len(self.builders[i]) for i in idx])
        banned = None if self.noops is None else self.noops.mask(idx)
        call = self.planner.call("plan", self.obs[idx], self.goals.frames[goal_idx], steps_left, banned=banned)
        self.plan_requests.append((idx, call))
        self.awaiting_plan[idx] = True

    def _plan_again(self, envs: list[int]) -> None:
        """Mid-episode plans for the envs the follower says are due one; one whose plan ran out gets a new
        goal (its trajectory's ``extra["goal"]`` is then the last one it was sent to)."""
        same, new = self.follower.due(envs)
        if len(new):
            for i, goal in zip(new, self.rng.integers(len(self.goals), size=len(new)).tolist()):
                self.builders[i].extra["goal"] = goal
        if len(same) or len(new):
            self._request_plans([*same.tolist(), *new.tolist()])

    def _envs_to_start(self) -> list[int]:
        """The envs between episodes that start one now. A plan request costs worker and planner 1-3 ms of
        CPU whatever its size, as much as several env steps, so a goal agent's envs start (and ask for
        plans) together, ``plan_group`` at a time, while other envs can step; alone once none can."""
        idle = [i for i, b in enumerate(self.builders) if b is None]
        if self.goals is None or len(idle) >= self.plan_group:
            return idle
        stepping = len(self.envs) - len(idle) - int(self.awaiting_plan.sum())
        return idle if stepping == 0 else []

    def _receive_plans(self) -> None:
        """Install every plan that has arrived; wait (timed) only while every env waits for one."""
        while self.plan_requests and (self.plan_requests[0][1].done() or self.awaiting_plan.all()):
            idx, call = self.plan_requests.pop(0)
            started = time.perf_counter()
            try:
                result = call.result()
            except BaseException:  # these episodes start afresh (with a new request) on the next call
                for i in idx:
                    self.builders[i] = None
                self.awaiting_plan[idx] = False
                raise
            self.timers["plan_wait_s"] += time.perf_counter() - started
            self.follower.start(np.asarray(idx), result)
            self.awaiting_plan[idx] = False
            for i in idx:
                self.builders[i].policy_version = int(result.version)

    def _actions(self, ready: np.ndarray, total_env_steps: int) -> tuple[list, np.ndarray]:
        """Next action per ``ready`` env, and which envs' agents chose to stop (their plan is used up)."""
        if self.follower is None:
            args = (self.obs, self.carry, self.first, True, total_env_steps)
            actions, self.carry = (self.planner.call("act", *args).result() if self.central_acting
                                   else self.agent.act(*args))
            return list(actions), np.zeros(len(self.envs), bool)
        actions, stop = self.follower.next_actions(self.agent.epsilon(total_env_steps), ready)
        return [int(a) for a in actions], stop

    def run(self, steps: int, total_env_steps: int = 0) -> dict[str, float]:
        """Take at least ``steps`` env steps; insert finished episodes; return this call's counts.

        Counts are per call (not cumulative) so that a restarted worker never rewinds the totals.
        """
        started, before = time.perf_counter(), dict(self.counters)
        done_steps = 0
        self.run_calls += 1
        while done_steps < steps:
            self._start_episodes(self._envs_to_start())
            self._receive_plans()
            ready = np.flatnonzero(~self.awaiting_plan & np.array([b is not None for b in self.builders]))
            actions, stop = self._actions(ready, total_env_steps + done_steps)
            self.first[ready] = False
            for i, action, stopped in zip(ready, actions, stop):
                env, ended = self.envs[i], bool(stopped)
                if not ended:
                    step = env.step(action)
                    if self.noops is not None:
                        self.noops.stepped(i, action, self.obs[i], step.obs)
                    self.obs[i] = step.obs
                    self.builders[i].add(action, step.reward, step.terminated, env.frame(), env.goal_features())
                    self.returns[i] += step.reward
                    done_steps += 1
                    ended = step.terminated or step.truncated
                if ended:
                    self._finish(i)
            if self.plans_mid_episode:
                self._plan_again([int(i) for i in ready if self.builders[i] is not None])
        self._ship()
        waiting = time.perf_counter()
        acked = self._confirm_inserts()  # a call reports only acknowledged inserts: earlier calls' and any done
        self.timers["insert_wait_s"] += time.perf_counter() - waiting
        self.counters["env_steps"] += done_steps
        self.timers["run_s"] += time.perf_counter() - started
        return {**{k: float(v - before[k]) for k, v in self.counters.items()}, "version": float(self.version),
                "acked": acked,
                "pid": float(os.getpid()), "return": float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")}

    def _finish(self, i: int) -> None:
        builder, self.builders[i] = self.builders[i], None
        self.first[i] = True
        if len(builder) == 0:
            return  # an empty plan: nothing happened, nothing to learn from
        traj = builder.finish()
        # Compressed even for memory shards: measured cheaper for caller and shard than the arrays through
        # Ray's object store (an Atari episode's arrays are too big to travel inline; bench/runtime.py).
        self.outbox.append((traj.to_bytes(), traj.uid, len(traj)))
        if len(self.outbox) >= self.replay.config.max_insert_batch:
            self._ship()
        self.counters["episodes"] += 1
        self.recent_returns = (self.recent_returns + [float(self.returns[i])])[-20:]

    def _ship(self) -> None:
        """Send the outbox to the next shard as one insert call; run() confirms it (see _confirm_inserts)."""
        if not self.outbox:
            return
        blobs, uids, lengths = (list(column) for column in zip(*self.outbox))
        shard = self.replay.pick_shard()
        self.unacked.append(SentBatch(self.run_calls, shard, blobs, uids, sum(lengths),
                                      self.replay.insert_async(blobs, shard)))
        self.outbox = []

    def _confirm_inserts(self) -> list[str]:
        """Confirm sent batches in order: those of earlier run calls (waiting if need be) and then any that
        is done; while Redis is out, resend to the same shard (which drops the copies that did land, by uid)
        with backoff, for at most ``replay.outage_limit_s``. Returns the acknowledged uids."""
        limit, acked = self.outage_limit_s, []
        while self.unacked and (self.unacked[0].run_call < self.run_calls or self.unacked[0].pending.done()):
            batch = self.unacked[0]
            delay, deadline = _RETRY_FIRST_S, None
            while True:
                try:
                    batch.pending.result()
                    break
                except ReplayStoreUnavailable as exc:
                    now = time.monotonic()
                    deadline = deadline or now + limit
                    if now >= deadline:
                        cause = getattr(exc, "cause", None) or exc  # through Ray: the shard's own error, one line
                        held = sum(len(b.uids) for b in self.unacked)
                        raise ReplayStoreUnavailable(f"{cause} (still failing after {limit:g} s of retries; "
                                                     f"{held} trajectories unacknowledged)") from None
                    time.sleep(min(delay, deadline - now))
                    delay = min(2 * delay, _RETRY_MAX_S)
                    batch.pending = self.replay.insert_async(batch.blobs, batch.shard)
                    self.counters["insert_resends"] += 1
            self.unacked.pop(0)
            self.counters["inserted_steps"] += batch.transitions
            acked.extend(batch.uids)
        return acked

    def stats(self) -> dict[str, float]:
        """Totals; ``plan_wait_s`` / ``run_s`` is the share of its working time this worker waited for plans,
        ``insert_wait_s`` / ``run_s`` for the acknowledgements of its inserts."""
        return {**{k: float(v) for k, v in {**self.counters, **self.timers}.items()}, "version": float(self.version),
                "pid": float(os.getpid()), "uptime_s": time.time() - self.started}

    def close(self) -> None:
        for env in self.envs:
            env.close()
