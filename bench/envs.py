"""Environment benchmark: single-process env steps/s for grid, Pong and pixel cartpole.

The baseline the distributed runtime's throughput is measured against. All envs are measured in
the same run, interleaved round by round so that load from other processes hits each alike;
``cartpole_render_speedup`` is the median over rounds of our fast-render cartpole's steps/s
over the same task through dm_control's default render path (``fast_render=False``), each
round measuring both back to back. Random actions; resets (on termination) count in the time.
The full run also reports each GLAMOR DMC task's and each Atari game's step+render speed.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from pixelplan.envs import make_env
from pixelplan.envs.atari import GAMES
from pixelplan.envs.dmc import GOAL_OBSERVATIONS

ENDLESS = 10**9  # time limit: episodes end only when the task terminates

# id, options, steps per round (about a quarter of a second each on this machine)
CONTENDERS = {
    "grid": ("grid", {}, 20_000),
    "pong": ("atari:pong", {}, 800),
    "cartpole": ("dmc:cartpole-balance", {}, 250),
    "cartpole_default_render": ("dmc:cartpole-balance", {"fast_render": False}, 10),
}


def steps_per_second(env, steps: int, rng: np.random.Generator) -> tuple[float, float]:
    """(steps per wall-clock second, steps per CPU second of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if env.step(env.sample_action(rng)).terminated:
            env.reset()
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def measure_once(env_id: str, steps: int, **options) -> float:
    with make_env(env_id, time_limit=ENDLESS, **options) as env:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        steps_per_second(env, max(1, steps // 10), rng)  # warm up (first frames, caches)
        return steps_per_second(env, steps, rng)[0]


def run(quick: bool) -> dict:
    rounds = 3 if quick else 9
    rng = np.random.default_rng(0)
    envs = {}
    for name, (env_id, options, _) in CONTENDERS.items():
        envs[name] = make_env(env_id, time_limit=ENDLESS, **options)
        envs[name].reset(seed=0)
        steps_per_second(envs[name], 2, rng)  # warm up
    rates = {name: [] for name in CONTENDERS}
    cpu_rates = {name: [] for name in CONTENDERS}
    try:
        for r in range(rounds):
            for name, (_, _, steps) in CONTENDERS.items():
                wall, cpu = steps_per_second(envs[name], steps, rng)
                rates[name].append(wall)
                cpu_rates[name].append(cpu)
            print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:,.0f}/s" for n, v in rates.items()), flush=True)
    finally:
        for env in envs.values():
            env.close()
    speedups = [fast / slow for fast, slow in zip(rates["cartpole"], rates["cartpole_default_render"])]
    result = {
        "grid_steps_per_s": statistics.median(rates["grid"]),
        "pong_steps_per_s": statistics.median(rates["pong"]),
        "cartpole_steps_per_s": statistics.median(rates["cartpole"]),
        "cartpole_default_render_steps_per_s": statistics.median(rates["cartpole_default_render"]),
        "cartpole_render_speedup": statistics.median(speedups),
        "rounds": rounds,
        # per CPU-second: what a core delivers when the shared machine is busy (wall rates drop)
        "cpu_steps_per_s": {name: statistics.median(v) for name, v in cpu_rates.items()},
    }
    if not quick:
        result["dmc_steps_per_s"] = {task: measure_once(f"dmc:{task}", 300) for task in GOAL_OBSERVATIONS}
        print("dmc: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in result["dmc_steps_per_s"].items()), flush=True)
        result["atari_steps_per_s"] = {game: measure_once(f"atari:{game}", 1000) for game in GAMES}
        print("atari: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in result["atari_steps_per_s"].items()), flush=True)
    return result
