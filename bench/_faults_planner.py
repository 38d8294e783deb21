"""Fault case: the planner service is killed while training runs and gRPC clients are attached.

Real processes throughout: a local Ray cluster (the coordinator's), a real redis-server behind the
replay shards, and gRPC clients in threads of this process acting as outside actors. Each client
plans an episode over gRPC, plays it on its own grid env and inserts the trajectory, tagged with a
unique id, into a replay shard; an id counts as *acknowledged* once the insert returns. Mid-run Ray
kills the planner and restarts it. Afterwards every trajectory is read back from Redis and the ids
are compared with the acknowledged ones (the clients' and the run's own workers'): each must be there
exactly once.

The case also reports what the clients saw: calls refused during the outage, the time until gRPC
answered again on the same address, and the oldest weights version answered after the kill (it
must not be older than the last broadcast before the kill: no plans from untrained weights).

``bench/faults.py`` runs it as its ``planner_kill`` case (``python -m pixelplan.bench faults``).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pixelplan.bench.faults import acked_uids, intact, stored_uids, tally
from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.replay.config import ReplayConfig
from pixelplan.distributed.replay.redis_server import LocalRedisServer
from pixelplan.envs import TrajectoryBuilder, make_env


@dataclass
class ClientLog:
    """What one outside client did: acknowledged ids and (send time, weights version) of every answer."""

    acknowledged: list[str] = field(default_factory=list)
    answers: list[tuple[float, int]] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)  # send times of calls the planner did not answer
    error: BaseException | None = None


def _client_loop(index: int, address: str, shards: list, stop: threading.Event, log: ClientLog) -> None:
    from pixelplan.distributed.grpc.client import PlannerClient
    from pixelplan.distributed.planner_service import PlannerBusy

    env = make_env("grid")
    try:
        with PlannerClient(address, timeout=10) as client:
            episode = 0
            while not stop.is_set():
                obs = env.reset(seed=1000 * index + episode)
                sent = time.monotonic()
                try:
                    plan = client.plan(obs[None], env.frame()[None], [env.spec.time_limit])
                except (ConnectionError, PlannerBusy, TimeoutError):
                    log.refused.append(sent)
                    time.sleep(0.05)
                    continue
                log.answers.append((sent, plan.version))
                builder = TrajectoryBuilder(env.spec.env_id, env.frame(), env.goal_features(), env.spec.stack,
                                            worker_id=100 + index, policy_version=plan.version)
                for action in plan.actions[0, :plan.lengths[0]]:
                    step = env.step(int(action))
                    builder.add(int(action), step.reward, step.terminated, env.frame(), env.goal_features())
                    if step.terminated or step.truncated:
                        break
                trajectory = builder.finish()
                shards[episode % len(shards)].call("insert", trajectory.to_bytes()).result(timeout=60)
                log.acknowledged.append(trajectory.uid)
                episode += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the case
        log.error = exc
    finally:
        env.close()


def _wait(condition, timeout: float, what: str, training: threading.Thread) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not training.is_alive():
            raise RuntimeError(f"training stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)


def run_planner_kill_case(quick: bool = False, clients: int = 2) -> dict:
    """Kill the planner mid-run with ``clients`` gRPC clients attached; returns per-id accounting."""
    import ray

    from pixelplan.distributed.coordinator import Coordinator

    acks_each = 3 if quick else 10  # acknowledged trajectories per client before the kill, and again after it
    redis_server = LocalRedisServer().start()
    folder = Path(tempfile.mkdtemp(prefix="pixelplan-fault-planner-"))
    namespace = f"fault-planner-{uuid.uuid4().hex[:8]}"
    replay = ReplayConfig(shards=2, backend="redis", redis_url=redis_server.url, namespace=namespace, capacity=200_000)
    run = RunConfig(agent="stub", env="grid", steps=3000 if quick else 12_000, seed=3, mode="ray", workers=2,
                    out=str(folder / "run"), progress=False, eval_every=0, eval_episodes=3, checkpoint_every=50,
                    sync_every=5, worker_chunk=50, log_every_s=0.5, replay=replay,
                    agent_overrides={"min_steps_learn": 200, "batch_size": 8},
                    planner=PlannerConfig(grpc_port=0, max_wait_ms=5))
    coordinator = None
    stop = threading.Event()
    logs = [ClientLog() for _ in range(clients)]
    outcome: dict = {}
    try:
        coordinator = Coordinator(run)
        address = coordinator.grpc_address
        training = threading.Thread(target=lambda: outcome.update(result=coordinator.train()), daemon=True)
        training.start()
        threads = [threading.Thread(target=_client_loop, args=(i, address, coordinator.shards, stop, logs[i]))
                   for i in range(clients)]
        for t in threads:
            t.start()
        _wait(lambda: all(len(log.acknowledged) >= acks_each for log in logs) and coordinator.version >= 5,
              180, "client trajectories and a trained broadcast before the kill", training)
        version_at_kill = coordinator.version
        acked_at_kill = [len(log.acknowledged) for log in logs]
        killed_at = time.monotonic()
        ray.kill(coordinator.planner.actor, no_restart=False)
        # Counted by answers sent after the kill, not only by acknowledgements: a client that was mid-episode
        # at the kill gets one acknowledgement for a plan the old planner answered.
        _wait(lambda: all(len(log.acknowledged) >= n + acks_each and sum(t >= killed_at for t, _ in log.answers)
                          >= acks_each for log, n in zip(logs, acked_at_kill)),
              240, "client trajectories after the restart", training)
        served_again_at = coordinator.planner.call("grpc_address").result(timeout=60)  # the restarted actor's
        stop.set()
        for t in threads:
            t.join(60)
        training.join(600)
        finished = not training.is_alive() and "result" in outcome
        errors = [repr(log.error) for log in logs if log.error is not None]
        refused = sorted(t for log in logs for t in log.refused if t >= killed_at)
        after = [(t, v) for log in logs for t, v in log.answers if t >= killed_at]
        back = min((t for t, _ in after if refused and t > refused[0]), default=None)
        out = folder / "run"
        from_clients = [uid for log in logs for uid in log.acknowledged]
        from_workers = acked_uids(out)  # the run's own workers' acknowledged trajectories
        stored = stored_uids(redis_server.url, coordinator.run.replay)  # the run's scoped keys
        counts = tally(from_clients + from_workers, stored)
        result = {
            **counts,
            "client_trajectories": len(from_clients),
            "worker_trajectories": len(from_workers),
            "unacknowledged_present": sum(1 for uid in stored if uid not in set(from_clients + from_workers)),
            "calls_refused_during_outage": len(refused),
            "answers_after_kill": len(after),
            "grpc_back_after_s": None if back is None or not refused else round(back - refused[0], 2),
            "same_grpc_address": served_again_at == address,
            "version_at_kill": int(version_at_kill),
            "min_version_after_kill": min((v for _, v in after), default=None),
            "training_finished": finished and (out / "done").exists(),
            "checkpoints": len(list((out / "checkpoints").glob("ckpt-*"))),
            "env_steps": int(coordinator.counters["env_steps"]),
            "client_errors": errors,
        }
        result["ok"] = bool(intact(counts) and not errors and result["training_finished"] and result["same_grpc_address"]
                            and (result["min_version_after_kill"] or -1) >= result["version_at_kill"])
        return result
    finally:
        stop.set()
        if coordinator is not None:
            coordinator.close()
        redis_server.stop()
        shutil.rmtree(folder, ignore_errors=True)
