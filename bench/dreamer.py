"""Dreamer benchmark: update cost at the paper's size, where it goes, acting throughput, a short DMC run.

* ``update_ms``: one ``agent.learn`` on a 50 x 50 window batch of 64x64 RGB frames with the paper's
  config (Appendix A), on the device found (CPU here); ``update_steps_per_s`` = 1000 / update_ms.
  The learning test's config (tiny nets, 36x36 grid frames, 48 x 4 windows) is timed beside it.
* ``profile_ms``: torch.profiler over one paper-size update, split by the agent's own labels
  (encoder, RSSM scan, decoder + heads, imagination, and each model's backward + step).
* ``env_steps_per_s``: ``dmc:cartpole-swingup`` at 64x64, action repeat 2, stepped with the paper-size
  policy acting on the worker (batch = envs); ``act_ms`` per call for batches of 1/8/32 says what
  central batched inference could save (``per_env_act_ms``).
* ``acting``: the Ray runtime (2 workers x 2 envs, paper-size policy, learning held off) collecting
  with the policy on each worker and with batched inference in the planner service, side by side in
  one run; ``service_vs_worker`` = service env steps/s over worker env steps/s (> 1: the service wins).
* Full run only: the learning test's grid-corner task (``distributed/offline/reference_runs.py``) for seeds
  1-3 (the test trains seed 0): greedy success rate over 30 episodes each (random walk: ~0.08).
* Full run only: the training loop (local mode) on cartpole-swingup with the paper's networks and
  update rate but 8-window batches, for 2000 agent steps (4000 frames; 100 updates in the measured run: what a CPU
  affords in minutes; the paper's curves start to rise after ~1e5 frames), its return curve as PNG.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pixelplan.agents.dreamer import DreamerAgent, DreamerConfig
from pixelplan.agents.registry import make_agent
from pixelplan.distributed.offline.reference_runs import DREAMER_GRID_OPTIONS, DREAMER_GRID_OVERRIDES, dreamer_grid_corner
from pixelplan.distributed.runtime import start_ray
from pixelplan.envs import make_env
from pixelplan.envs.batches import SequenceBatch
from pixelplan.envs.spec import EnvSpec

RESULTS = Path(__file__).parent / "results"
DMC_ENV = "dmc:cartpole-swingup"
DMC_OPTIONS = {"size": [64, 64], "grayscale": False, "stack": 1, "action_repeat": 2, "actions": "continuous",
               "time_limit": 500}  # 1000 frames at action repeat 2, as in the paper
LABELS = ("encoder", "rssm_scan", "decoder", "model_backward_step", "imagination", "actor_backward_step",
          "value_backward_step")


def log(msg: str) -> None:
    print(f"[dreamer] {msg}", flush=True)


def random_batch(spec: EnvSpec, batch: int, length: int, seed: int = 0) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    actions = (rng.integers(spec.action_size, size=(batch, length)) if spec.discrete
               else rng.uniform(-1, 1, (batch, length, spec.action_size)).astype(np.float32))
    return SequenceBatch(obs=rng.integers(0, 256, (batch, length + 1, *spec.obs_shape), dtype=np.uint8),
                         actions=actions, rewards=rng.random((batch, length), np.float32),
                         terminals=np.zeros((batch, length), bool), is_first=np.zeros((batch, length + 1), bool))


def time_updates(agent: DreamerAgent, batch: SequenceBatch, repeats: int) -> float:
    """Median ms per update (after one warm-up update)."""
    agent.learn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        agent.learn(batch)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def profile_update(agent: DreamerAgent, batch: SequenceBatch) -> dict[str, float]:
    """CPU ms per labelled section of one update (labels live in agents/dreamer)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if agent.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        agent.learn(batch)
    total = 1000 * (time.perf_counter() - start)
    sections = {e.key.removeprefix("dreamer/"): e.cpu_time_total / 1000 for e in prof.key_averages()
                if e.key.startswith("dreamer/")}
    out = {name: round(sections.get(name, 0.0), 1) for name in LABELS}
    out["other"] = round(total - sum(out.values()), 1)
    out["total"] = round(total, 1)
    return out


def acting(agent: DreamerAgent, env_count: int, steps: int) -> float:
    """Env steps/s of `env_count` DMC envs stepped in lockstep by one worker-side policy."""
    envs = [make_env(DMC_ENV, **DMC_OPTIONS) for _ in range(env_count)]
    try:
        obs = np.stack([env.reset(seed=i) for i, env in enumerate(envs)])
        carry, first = agent.initial_carry(env_count), np.ones(env_count, bool)
        start = time.perf_counter()
        for t in range(steps):
            actions, carry = agent.act(obs, carry, first, True, 10**6)
            first[:] = False
            for i, env in enumerate(envs):
                step = env.step(actions[i])
                obs[i] = step.obs
                if step.terminated or step.truncated:
                    obs[i], first[i] = env.reset(seed=t), True
        return env_count * steps / (time.perf_counter() - start)
    finally:
        for env in envs:
            env.close()


def act_ms(agent: DreamerAgent, batch: int, repeats: int) -> float:
    obs = np.zeros((batch, *agent.spec.obs_shape), np.uint8)
    carry, first = agent.initial_carry(batch), np.zeros(batch, bool)
    agent.act(obs, carry, first, True, 10**6)
    start = time.perf_counter()
    for _ in range(repeats):
        _, carry = agent.act(obs, carry, first, True, 10**6)
    return 1000 * (time.perf_counter() - start) / repeats


def acting_rate(acting: str, steps: int, out: Path) -> dict[str, float]:
    """Env steps/s of the Ray runtime collecting with the policy acting on the workers or in the service.

    The seed episodes are set beyond the run so no update competes for the CPU (the policy still runs
    on every step: only its actions are replaced by random ones). The rate is the median of the
    coordinator's logged ``env_steps_per_s`` (start-up and the final evaluation excluded).
    """
    from pixelplan.distributed.config import PlannerConfig, RunConfig
    from pixelplan.distributed.coordinator import train
    from pixelplan.distributed.metrics_log import read_metrics

    run = RunConfig(agent="dreamer", env=DMC_ENV, env_options=DMC_OPTIONS, steps=steps, mode="ray", workers=2,
                    envs_per_worker=2, acting=acting, worker_chunk=32, device="cpu", eval_every=0, eval_episodes=1,
                    checkpoint_every=10**9, log_every_s=1.0, out=str(out / acting), progress=False,
                    agent_overrides={"seed_episodes": 10**6}, planner=PlannerConfig(device="cpu", max_wait_ms=2.0))
    train(run)
    _, rates = read_metrics(out / acting / "metrics.csv")["env_steps_per_s"]
    return {"env_steps_per_s": float(np.median(rates[1:-1] if len(rates) > 3 else rates)), "logged_rates": len(rates)}


def compare_acting(steps: int) -> dict[str, float]:
    import ray

    start_ray(num_cpus=8, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        with tempfile.TemporaryDirectory() as out:
            rates = {acting: acting_rate(acting, steps, Path(out)) for acting in ("worker", "service")}
    finally:
        ray.shutdown()
    log(f"acting through the runtime: {rates}")
    return {"worker_env_steps_per_s": rates["worker"]["env_steps_per_s"],
            "service_env_steps_per_s": rates["service"]["env_steps_per_s"],
            "service_vs_worker": rates["service"]["env_steps_per_s"] / rates["worker"]["env_steps_per_s"]}


def grid_learning(seeds: tuple[int, ...], out: Path) -> dict:
    """Greedy success rates of the learning test's configuration trained with other seeds."""
    from pixelplan.distributed.coordinator import train

    rates = {}
    for seed in seeds:
        started = time.perf_counter()
        rates[seed] = float(train(dreamer_grid_corner(str(out / f"grid-{seed}"), seed=seed))["eval/return"])
        log(f"grid corner, seed {seed}: success {rates[seed]:.2f} in {time.perf_counter() - started:.0f} s")
    return {"grid_success_by_seed": rates, "grid_success_mean": float(np.mean(list(rates.values())))}


def dmc_run(steps: int, out: Path) -> dict[str, float]:
    """A short training run through the runtime; returns its summary and draws the return curve."""
    from pixelplan.distributed.config import RunConfig
    from pixelplan.distributed.coordinator import train
    from pixelplan.distributed.metrics_log import read_metrics
    from pixelplan.distributed.replay.config import ReplayConfig

    # Paper nets and update rate; batches of 8 windows (not 50) and 2 seed episodes fit a CPU's minutes.
    overrides = {"batch_size": 8, "seed_episodes": 2}
    run = RunConfig(agent="dreamer", env=DMC_ENV, env_options=DMC_OPTIONS, steps=steps, seed=0, mode="local",
                    device="cpu", eval_every=1000, eval_episodes=2, checkpoint_every=10**9, out=str(out),
                    progress=False, agent_overrides=overrides, replay=ReplayConfig(capacity=100_000))
    started = time.perf_counter()
    summary = train(run)
    wall = time.perf_counter() - started
    curves = read_metrics(out / "metrics.csv")
    plot_returns(curves, RESULTS / "dreamer_cartpole_swingup.png", overrides)
    return {"dmc_env_steps": float(summary["env_steps"]), "dmc_updates": float(summary["updates"]),
            "dmc_final_eval_return": float(summary["eval/return"]), "dmc_wall_s": wall,
            "dmc_train_env_steps_per_s": summary["env_steps"] / wall}


def plot_returns(curves: dict, path: Path, overrides: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style in (("eval/return", "o-"), ("train/return", "-")):
        if key in curves:
            steps, values = curves[key]
            ax.plot(steps * DMC_OPTIONS["action_repeat"], values, style, label=key)
    ax.set_xlabel("environment frames (action repeat 2)")
    ax.set_ylabel("episode return")
    ax.set_title(f"Dreamer, cartpole-swingup 64x64, CPU ({overrides})", fontsize=8)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    log(f"wrote {path}")


def run(quick: bool) -> dict:
    torch.set_num_threads(1)  # as the runtime's learners and workers run (spin-waiting threads on a busy host)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict = {"device": device, "torch_threads": torch.get_num_threads()}
    dmc_spec = make_env(DMC_ENV, **DMC_OPTIONS).spec
    paper = DreamerAgent(dmc_spec, DreamerConfig(), device=device)
    repeats = 1 if quick else 3
    log(f"timing paper-size updates (50 x 50 windows, 64x64 RGB) on {device}, {repeats} repeat(s)")
    batch = random_batch(dmc_spec, 50, 50)
    result["update_ms"] = time_updates(paper, batch, repeats)
    result["update_steps_per_s"] = 1000.0 / result["update_ms"]
    log(f"update {result['update_ms']:.0f} ms")
    result["profile_ms"] = profile_update(paper, batch)
    log(f"profile {result['profile_ms']}")
    grid_spec = make_env("grid", **DREAMER_GRID_OPTIONS).spec
    tiny = make_agent("dreamer", grid_spec, DREAMER_GRID_OVERRIDES, device=device)
    result["tiny_update_ms"] = time_updates(tiny, random_batch(grid_spec, tiny.config.batch_size, tiny.config.seq_len),
                                            5 if quick else 20)
    for n in (1, 8, 32):
        result[f"act_ms_batch{n}"] = act_ms(paper, n, 5 if quick else 20)
    result["per_env_act_ms"] = {n: result[f"act_ms_batch{n}"] / n for n in (1, 8, 32)}
    result["env_steps_per_s"] = acting(paper, 1, 100 if quick else 500)
    result["env_steps_per_s_8_envs"] = acting(paper, 8, 20 if quick else 100)
    log(f"env steps/s: {result['env_steps_per_s']:.0f} (1 env), {result['env_steps_per_s_8_envs']:.0f} (8 envs)")
    result["acting"] = compare_acting(400 if quick else 2000)
    # Updates alone per 1e6 env frames (100 updates per 1000-frame episode): the paper's ~3 h on a V100.
    result["projected_update_hours_per_1e6_frames"] = (1e6 / 10) * result["update_ms"] / 1000 / 3600
    if not quick:
        with tempfile.TemporaryDirectory() as out:
            result.update(grid_learning((1, 2, 3), Path(out)))
            result.update(dmc_run(2_000, Path(out)))
    return result
