"""Replay benchmark: shards with Atari-sized frames (1x104x80 uint8, stack 4), all in one run.

Compares side by side, alternating call by call so machine load hits both alike: sampling
relabeled pairs vs. a plain numpy gather of the same number of bytes from the same frame array (the
memory-bandwidth reference); inserts with the Redis backend vs. in memory. Also reports inserted
frames/s, sampled pairs/s and bytes of memory per stored transition, all in steady state (the ring
has wrapped and evicts).
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import statistics
import time

import numpy as np

from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.replay import ReplayConfig, ReplayShard, ShardedReplay
from pixelplan.distributed.replay.redis_server import LocalRedisServer
from pixelplan.envs.batches import BatchQuery
from pixelplan.envs.trajectory import Trajectory

FRAME = (1, 104, 80)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
STACK, NUM_ACTIONS, MAX_LEN, BATCH = 4, 18, 50, 200  # GLAMOR on Atari: T = 50, batch 200


def atari_like_episode(rng: np.random.Generator, length: int) -> Trajectory:
    """A static background with a few moving blocks: compresses like real Atari frames do."""
    background = np.repeat(np.repeat(rng.integers(0, 256, (13, 10), dtype=np.uint8), 8, 0), 8, 1)
    frames = np.broadcast_to(background, (length + 1, *FRAME[1:])).copy()
    t = np.arange(length + 1)
    for _ in range(3):
        y0, x0, vy, vx = rng.integers(0, 96), rng.integers(0, 72), rng.integers(-2, 3), rng.integers(-2, 3)
        ys, xs = (y0 + vy * t) % 96, (x0 + vx * t) % 72
        for dy, dx in itertools.product(range(8), range(4)):
            frames[t, ys + dy, xs + dx] = 255
    return Trajectory(
        env_id="atari:bench", frames=frames[:, None], actions=rng.integers(0, NUM_ACTIONS, length),
        rewards=np.zeros(length, np.float32), terminals=np.arange(length) == length - 1,
        features=np.zeros((length + 1, 8), np.float32), stack=STACK)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fill(shard: ReplayShard, episodes) -> tuple[int, float]:
    """Insert until the ring has wrapped (first touches of fresh memory are paid here): frames, seconds."""
    frames, spent = 0, 0.0
    while shard.stats()["replay/evictions"] < 2:
        traj = next(episodes)
        spent += seconds(lambda traj=traj: shard.insert(traj))
        frames += len(traj) + 1
    return frames, spent


def time_sampling(shard: ReplayShard, replay: ShardedReplay, request: BatchQuery, rounds: int,
                  rng: np.random.Generator) -> dict[str, float]:
    """Median seconds per batch: shard sample vs. numpy gather of as many frames (alternating), then 2 shards;
    plus the median per-round time ratio gather / sample."""
    frames = shard._ring.frames
    gather_idx = rng.integers(0, len(frames), size=BATCH * (STACK + 1))
    timings: dict[str, list[float]] = {"sample": [], "gather": [], "sharded": []}
    for r in range(-rounds // 5, rounds):  # negative rounds warm up
        sample_s = seconds(lambda r=r: shard.sample(request, BATCH, seed=r + rounds))
        gather_s = seconds(lambda: frames[gather_idx])
        if r >= 0:
            timings["sample"].append(sample_s)
            timings["gather"].append(gather_s)
    for r in range(-rounds // 5, rounds // 2):  # its own phase: its merge buffers change the allocator's state
        sharded_s = seconds(lambda r=r: replay.sample(request, seed=r + rounds))
        if r >= 0:
            timings["sharded"].append(sharded_s)
    medians = {name: statistics.median(t) for name, t in timings.items()}
    # Per-round ratios pair calls made a millisecond apart, so load from neighbours cancels out.
    medians["gather_over_sample"] = statistics.median(g / s for g, s in zip(timings["gather"], timings["sample"]))
    return medians


@contextlib.contextmanager
def pinned_allocator():
    """Keep freed batch buffers in the heap while timing (glibc M_MMAP_THRESHOLD, M_TRIM_THRESHOLD).

    By default glibc maps each ~10 MB batch fresh from the kernel and unmaps it on free; on this VM
    those page faults cost more than the copy itself and swing timings several-fold. A long-running
    shard mostly converges to reusing its heap; pinning measures the copy, not the allocator.
    Yields whether pinning worked; restores glibc's default thresholds afterwards.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        yield False
        return
    pinned = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    try:
        yield pinned
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)


def run(quick: bool) -> dict:
    capacity = 20_000 if quick else 120_000
    rounds = 60 if quick else 400
    rng = np.random.default_rng(0)
    pool = [atari_like_episode(rng, int(n)) for n in rng.integers(20, 51, size=300)]  # time limit 50
    episodes = itertools.cycle(pool)
    frame_bytes = int(np.prod(FRAME))
    print(f"replay bench: capacity {capacity} transitions per shard, frames {FRAME}, stack {STACK}", flush=True)

    # -- one memory shard: fill past capacity, then steady-state inserts -------------------------------
    config = ReplayConfig(capacity=capacity, num_actions=NUM_ACTIONS)
    shard = ReplayShard(config, 0)
    first_frames, first_s = fill(shard, episodes)
    steady_frames, steady_s, per_transition = 0, 0.0, []
    for traj in itertools.islice(episodes, 100 if quick else 400):
        steady_s += seconds(lambda traj=traj: shard.insert(traj))
        steady_frames += len(traj) + 1
        per_transition.append(shard.stats()["replay/bytes"] / shard.num_transitions())  # varies with evictions
    bytes_per_transition = statistics.mean(per_transition)
    print(f"memory: {bytes_per_transition:.0f} B per stored transition ({bytes_per_transition / frame_bytes:.3f} "
          f"frames); inserts {steady_frames / steady_s:,.0f} frames/s", flush=True)

    # -- sampling vs. a plain gather of the same bytes; and the sharded front over 2 shards ------------
    two = ReplayConfig(capacity=2 * capacity, shards=2, num_actions=NUM_ACTIONS)
    replay = ShardedReplay([LocalHandle(ReplayShard(two, s)) for s in range(2)], two)
    while replay.num_transitions() < capacity:
        replay.insert(next(episodes))
    request = BatchQuery("pairs", BATCH, MAX_LEN)
    batch = shard.sample(request, BATCH, seed=0)
    batch_bytes = sum(getattr(batch, f).nbytes for f in ("obs", "goals", "actions", "lengths"))
    gather_bytes = BATCH * (STACK + 1) * frame_bytes  # stack at i + goal at j
    default = time_sampling(shard, replay, request, rounds // 2, rng)
    with pinned_allocator() as pinned:
        median = time_sampling(shard, replay, request, rounds, rng)
    sample_bps, gather_bps = batch_bytes / median["sample"], gather_bytes / median["gather"]
    byte_ratio = batch_bytes / gather_bytes
    sample_ratio, default_ratio = (byte_ratio * m["gather_over_sample"] for m in (median, default))
    print(f"pairs: {BATCH / median['sample']:,.0f}/s = {sample_bps / 1e9:.2f} GB/s; numpy gather "
          f"{gather_bps / 1e9:.2f} GB/s; ratio {sample_ratio:.2f}; 2 shards {BATCH / median['sharded']:,.0f} pairs/s "
          f"(default allocator: ratio {default_ratio:.2f})", flush=True)

    # -- Redis write-through vs. memory, steady state, same episodes as bytes (wire form) and objects --
    small = {"capacity": capacity // 4, "num_actions": NUM_ACTIONS}
    items = list(itertools.islice(episodes, 100 if quick else 300))
    forms = {"bytes": [e.to_bytes() for e in items], "objects": items}
    spent: dict[tuple[str, str], list[float]] = {(b, f): [] for b in ("memory", "redis") for f in forms}
    with LocalRedisServer() as server:
        shards = {}
        for backend, form in spent:
            cfg = ReplayConfig(**small, backend=backend, redis_url=server.url, namespace=f"bench-{form}")
            shards[backend, form] = ReplayShard(cfg, 0)
            fill(shards[backend, form], itertools.cycle(pool))
        for k in range(len(items)):
            for key, target in shards.items():
                spent[key].append(seconds(lambda t=target, item=forms[key[1]][k]: t.insert(item)))
        recover_s = seconds(lambda: ReplayShard(shards["redis", "bytes"].config, 0))
        recovered_frames = shards["redis", "bytes"].num_transitions() + shards["redis", "bytes"].stats()["replay/trajectories"]
    item_frames = sum(len(e) + 1 for e in items)
    total = {key: sum(t) for key, t in spent.items()}
    ratio, ratio_objects = (total["redis", f] / total["memory", f] for f in forms)
    # Per-insert pairs a millisecond apart: robust to load, but blind to Redis's latency tail.
    median_ratio = statistics.median(r / m for r, m in zip(spent["redis", "bytes"], spent["memory", "bytes"]))
    print(f"redis insert cost x{ratio:.2f} (bytes in; median pair x{median_ratio:.2f}), x{ratio_objects:.2f} "
          "(objects in: includes compressing)", flush=True)

    return {
        "sample_bytes_per_s": sample_bps,
        "gather_bytes_per_s": gather_bps,
        "sample_ratio": sample_ratio,
        "bytes_per_transition": bytes_per_transition,
        "frame_bytes": frame_bytes,
        "memory_ratio": bytes_per_transition / frame_bytes,
        "sample_ratio_default_allocator": default_ratio,
        "allocator_pinned": float(pinned),
        "redis_insert_cost_ratio": ratio,
        "redis_insert_cost_ratio_median": median_ratio,
        "redis_insert_cost_ratio_objects": ratio_objects,
        "shard_inserted_frames_per_s": steady_frames / steady_s,
        "shard_inserted_frames_per_s_first_fill": first_frames / first_s,
        "shard_inserted_frames_per_s_from_bytes": item_frames / total["memory", "bytes"],
        "shard_inserted_frames_per_s_redis_from_bytes": item_frames / total["redis", "bytes"],
        "shard_sampled_pairs_per_s": BATCH / median["sample"],
        "shard_sampled_bytes_per_s": sample_bps,
        "sharded2_sampled_pairs_per_s": BATCH / median["sharded"],
        "redis_recover_frames_per_s": recovered_frames / recover_s,
        "batch_size": BATCH,
        "max_len": MAX_LEN,
        "capacity_per_shard": capacity,
    }
