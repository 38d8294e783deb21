"""Fault injection on real processes: kill or break one part of a run, then check by identity.

Every case runs the stub agent on the grid world against a real redis-server and breaks one thing:
an env worker, a replay shard (Ray actors, killed), redis-server (killed and restarted with
``appendonly yes``; out for longer than ``replay.outage_limit_s``; restarted *without* persistence),
the driver (SIGTERM, then ``--resume``), a blob in Redis (corrupted). Afterwards it compares the
uids of every trajectory replay acknowledged (the run folder's ``acked_trajectories.txt``) with
the uids Redis holds, so "nothing lost, nothing doubled" is checked trajectory by trajectory, not
by counts. Each case returns ``acknowledged`` / ``recovered`` (acknowledged and present) /
``duplicated`` (stored more than once) plus what it checks beyond that; ``ok`` says whether the
case held. The planner-kill case lives in ``_faults_planner.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import redis

from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import ACKED_FILE, Coordinator, TrainingStopped
from pixelplan.distributed.replay import ReplayConfig, ReplayShard
from pixelplan.distributed.replay.redis_server import LocalRedisServer
from pixelplan.distributed.runtime import start_ray
from pixelplan.envs.trajectory import Trajectory

SHARDS = 2


# -- identity ---------------------------------------------------------------------------------------
def acked_uids(run_dir: Path) -> list[str]:
    path = Path(run_dir) / ACKED_FILE
    return path.read_text().split() if path.exists() else []


def stored_uids(url: str, replay: ReplayConfig) -> Counter:
    """uid -> how many times Redis holds it, read straight from Redis (not through a shard)."""
    client = redis.Redis.from_url(url)
    found: Counter = Counter()
    try:
        for shard in range(replay.shards):
            prefix = f"{replay.key_prefix}:replay:{shard}:"
            seqs = client.lrange(prefix + "index", 0, -1)
            for blob in client.mget([f"{prefix}t:{int(s)}" for s in seqs]) if seqs else []:
                found[Trajectory.from_bytes(blob).uid if blob is not None else "<missing>"] += 1
    finally:
        client.close()
    return found


def tally(acked: list[str], stored: Counter) -> dict:
    unique = set(acked)
    missing = sorted(uid for uid in unique if stored[uid] == 0)
    doubled = sorted(uid for uid, count in stored.items() if count > 1)
    return {"acknowledged": len(unique), "recovered": len(unique) - len(missing), "duplicated": len(doubled),
            "acked_twice": len(acked) - len(unique), "lost": len(missing),
            "missing_uids": missing[:5], "duplicated_uids": doubled[:5]}


def intact(counts: dict) -> bool:
    return counts["acknowledged"] > 0 and counts["lost"] == counts["duplicated"] == counts["acked_twice"] == 0


def saved_replay(run_dir: Path) -> ReplayConfig:
    """The replay config the run recorded (its run_id scopes the Redis keys)."""
    return RunConfig.load(Path(run_dir) / "config.json").replay


# -- running a coordinator while something breaks ---------------------------------------------------
def run_config(out: Path, url: str, steps: int, **kw) -> RunConfig:
    replay = ReplayConfig(shards=SHARDS, backend="redis", redis_url=url, capacity=200_000,
                          outage_limit_s=kw.pop("outage_limit_s", 30.0))
    return RunConfig(agent="stub", env="grid", steps=steps, seed=2, out=str(out), progress=False, eval_every=0,
                     eval_episodes=5, checkpoint_every=10_000, sync_every=5, worker_chunk=50, log_every_s=0.5,
                     replay=replay, agent_overrides={"min_steps_learn": 200, "batch_size": 8}, **kw)


class Background:
    """Coordinator.train in a thread, so the caller can break things meanwhile."""

    def __init__(self, config: RunConfig) -> None:
        self.coordinator = Coordinator(config)
        self.result: dict = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.coordinator.train()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by join()
            self.error = exc

    def wait_for(self, key: str, value: float, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while self.coordinator.counters[key] < value:
            if not self.thread.is_alive():
                raise RuntimeError(f"training stopped early: {self.error!r}")
            if time.time() > deadline:
                raise TimeoutError(f"{key} stuck at {self.coordinator.counters[key]}")
            time.sleep(0.05)

    def join(self, timeout: float = 300) -> tuple[dict, BaseException | None]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("training did not finish")
        self.coordinator.close()
        return self.result, self.error

    def finish(self, timeout: float = 300) -> dict:
        """join(), raising the training's own error if it had one."""
        result, error = self.join(timeout)
        if error is not None:
            raise error
        return result


# -- the cases --------------------------------------------------------------------------------------
def redis_restart_case(quick: bool = False, mode: str = "local") -> dict:
    """redis-server (appendonly, fsync always) SIGKILLed mid-run and restarted 2 s later: workers hold
    their unacknowledged trajectories and resend them; training goes on. ``mode="ray"`` needs ray.init()."""
    steps = 1500 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer(appendonly=True) as server:
        out = Path(tmp) / "run"
        run = Background(run_config(out, server.url, steps, mode=mode, workers=2 if mode == "ray" else 1))
        run.wait_for("inserted_steps", steps // 3)
        server.stop()
        time.sleep(2.0)
        server.start()
        result, error = run.join()
        counts = tally(acked_uids(out), stored_uids(server.url, saved_replay(out)))
        continued = error is None and result.get("env_steps", 0) >= steps
        resends = result.get("insert_resends", 0)  # > 0: the outage did hit inserts in flight
        return {**counts, "training_continued": continued, "insert_resends": resends,
                "ok": intact(counts) and continued and resends > 0}


def redis_outage_case(quick: bool = False) -> dict:
    """Redis out longer than replay.outage_limit_s: the run stops with a checkpoint and a clear message;
    once Redis is back, --resume finishes the run with every acknowledged trajectory still there."""
    steps = 1500 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer(appendonly=True) as server:
        out = Path(tmp) / "run"
        run = Background(run_config(out, server.url, steps, outage_limit_s=1.5))
        run.wait_for("inserted_steps", steps // 3)
        server.stop()
        _, error = run.join()
        message = str(error)
        checkpoint = Path(message.split("checkpoint ", 1)[1].split(";")[0]) if "checkpoint " in message else None
        stopped_clearly = (isinstance(error, TrainingStopped) and "unreachable" in message and checkpoint is not None
                           and checkpoint.exists())
        server.start()
        resumed, resume_error = Background(dataclasses.replace(run_config(out, server.url, steps),
                                                               resume=str(out))).join()
        counts = tally(acked_uids(out), stored_uids(server.url, saved_replay(out)))
        continued = resume_error is None and resumed.get("env_steps", 0) >= steps
        return {**counts, "stopped_with_checkpoint": stopped_clearly, "message": message[:300],
                "resumed_to_the_end": continued, "ok": intact(counts) and stopped_clearly and continued}


def redis_lost_case(quick: bool = False) -> dict:
    """Redis restarted without persistence: the shard notices the missing run marker, the run stops
    with a checkpoint and a clear message, and nothing is written into the emptied Redis."""
    steps = 1500 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer() as server:
        out = Path(tmp) / "run"
        run = Background(run_config(out, server.url, steps))
        run.wait_for("inserted_steps", steps // 3)
        server.stop()
        server.start()
        _, error = run.join()
        replay = saved_replay(out)
        client = redis.Redis.from_url(server.url)
        written_after = len(client.keys(f"{replay.key_prefix}:*"))
        client.close()
        counts = tally(acked_uids(out), stored_uids(server.url, replay))
        detected = isinstance(error, TrainingStopped) and "lost this run's replay data" in str(error)
        return {**counts, "detected": detected, "keys_written_after_loss": written_after, "message": str(error)[:300],
                "ok": detected and written_after == 0 and counts["acknowledged"] > 0}


def corrupt_blob_case(quick: bool = False) -> dict:
    """One stored blob flipped in Redis: the restarted shard skips it (counted, logged, set aside in Redis),
    holds every other trajectory exactly once, and keeps inserting and sampling."""
    steps = 1000 if quick else 3000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer() as server:
        out = Path(tmp) / "run"
        _, error = Background(run_config(out, server.url, steps)).join()
        if error is not None:
            raise error
        replay = dataclasses.replace(saved_replay(out), redis_url=server.url, num_actions=4)
        client = redis.Redis.from_url(server.url)
        prefix = f"{replay.key_prefix}:replay:0:"
        victim_seq = int(client.lrange(prefix + "index", 0, -1)[1])
        blob = bytearray(client.get(f"{prefix}t:{victim_seq}"))
        victim = Trajectory.from_bytes(bytes(blob)).uid
        blob[len(blob) // 2] ^= 0xFF
        client.set(f"{prefix}t:{victim_seq}", bytes(blob))
        shards = [ReplayShard(replay, i) for i in range(replay.shards)]
        held = Counter(uid for shard in shards for uid in shard.trajectory_ids())
        acked = acked_uids(out)
        counts = tally([u for u in acked if u != victim], held)
        skipped = sum(shard.stats()["replay/corrupt_skipped"] for shard in shards)
        set_aside = client.exists(f"{prefix}bad:{victim_seq}") == 1
        client.close()
        still_works = _insert_and_sample(shards[0])
        return {**counts, "corrupted": 1, "corrupt_skipped": int(skipped), "victim_held": held[victim],
                "set_aside_in_redis": set_aside, "inserts_and_samples_after": still_works,
                "ok": intact(counts) and skipped == 1 and held[victim] == 0 and set_aside and still_works}


def _insert_and_sample(shard: ReplayShard) -> bool:
    from pixelplan.envs import TrajectoryBuilder, make_env
    from pixelplan.envs.batches import BatchQuery

    env = make_env("grid")
    env.reset(seed=0)
    builder = TrajectoryBuilder(env.spec.env_id, env.frame(), env.goal_features(), env.spec.stack)
    for action in (0, 1, 2):
        step = env.step(action)
        builder.add(action, step.reward, step.terminated, env.frame(), env.goal_features())
    env.close()
    before = shard.num_transitions()
    shard.insert(builder.finish().to_bytes())
    batch = shard.sample(BatchQuery("pairs", 8, 3), 8, seed=0)
    return shard.num_transitions() == before + 3 and len(batch.lengths) == 8


def sigterm_resume_case(quick: bool = False) -> dict:
    """`pixelplan train` gets SIGTERM (what Kubernetes and `ray job stop` send): it writes a checkpoint,
    says so and exits 143; `--resume` then finishes the run with replay intact."""
    steps = 1500 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer(appendonly=True) as server:
        out = Path(tmp) / "run"
        common = ["--agent", "stub", "--env", "grid", "--mode", "local", "--no-progress", "--seed", "2"]
        settings = ["--set", "agent.min_steps_learn=200", "agent.batch_size=8", "eval_every=0", "eval_episodes=5",
                    "worker_chunk=50", "checkpoint_every=100000", "replay.capacity=200000"]
        first = _train_process([*common, "--steps", str(steps * 4), "--out", str(out), "--shards", str(SHARDS),
                                "--replay-backend", "redis", "--redis-url", server.url, *settings])
        deadline = time.time() + 240
        while len(acked_uids(out)) < 20 and first.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=120)
        stopped = first.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM: checkpoint" in stderr
        checkpoints = sorted((out / "checkpoints").glob("ckpt-*.pt"))
        second = _train_process([*common, "--steps", str(steps), "--resume", str(out), "--set", "eval_episodes=5"])
        _, resume_err = second.communicate(timeout=300)
        counts = tally(acked_uids(out), stored_uids(server.url, saved_replay(out)))
        resumed = second.returncode == 0 and (out / "done").exists()
        return {**counts, "exit_code": first.returncode, "stopped_with_checkpoint": stopped and bool(checkpoints),
                "message": stderr.strip().splitlines()[-1][:300] if stderr.strip() else "",
                "resumed_to_the_end": resumed, "resume_stderr": resume_err[-300:] if not resumed else "",
                "ok": intact(counts) and stopped and bool(checkpoints) and resumed}


def _train_process(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "pixelplan.distributed.cli", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def ray_kill_case(target: str, quick: bool = False) -> dict:
    """A Ray actor (``worker`` 0 or replay ``shard`` 0) killed mid-run: Ray restarts it, a shard recovers
    from Redis, the resent or retried inserts are recognised by uid, training goes on. Needs ray.init()."""
    import ray

    steps = 3000 if quick else 6000
    with tempfile.TemporaryDirectory() as tmp, LocalRedisServer() as server:
        out = Path(tmp) / "run"
        run = Background(run_config(out, server.url, steps, mode="ray", workers=2))
        run.wait_for("inserted_steps", steps // 3)
        handle = run.coordinator.workers[0] if target == "worker" else run.coordinator.shards[0]
        ray.kill(handle.actor, no_restart=False)
        result, error = run.join()
        counts = tally(acked_uids(out), stored_uids(server.url, saved_replay(out)))
        continued = error is None and result.get("env_steps", 0) >= steps
        return {**counts, "training_continued": continued, "worker_restarts": result.get("worker_restarts", 0),
                "ok": intact(counts) and continued}


LOCAL_CASES = {"redis_restart": redis_restart_case, "redis_outage": redis_outage_case,
               "redis_lost": redis_lost_case, "corrupt_blob": corrupt_blob_case, "sigterm_resume": sigterm_resume_case}


def run(quick: bool) -> dict:
    results = {}
    for name, case in LOCAL_CASES.items():
        results[name] = _timed(case, quick)
    import ray

    start_ray(num_cpus=8, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
              namespace="pixelplan-faults")
    try:
        for target in ("worker", "shard"):
            results[f"{target}_kill"] = _timed(lambda q, t=target: ray_kill_case(t, q), quick)
        results["redis_restart_ray"] = _timed(lambda q: redis_restart_case(q, mode="ray"), quick)
        results["planner_kill"] = _planner_kill(quick)
    finally:
        ray.shutdown()
    results["all_ok"] = all(r.get("ok") for r in results.values() if isinstance(r, dict) and "skipped" not in r)
    return results


def _planner_kill(quick: bool) -> dict:
    from pixelplan.bench._faults_planner import run_planner_kill_case

    return _timed(run_planner_kill_case, quick)


def _timed(case, quick: bool) -> dict:
    started = time.perf_counter()
    try:
        result = case(quick)
    except Exception as exc:  # noqa: BLE001 - one failing case must not hide the others
        result = {"error": f"{type(exc).__name__}: {exc}"[:500], "ok": False}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"[faults] {json.dumps(result)}", flush=True)
    return result


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(run("--quick" in sys.argv)))
