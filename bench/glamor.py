"""GLAMOR benchmark: planning compute on the 7x7 grid (Fig. 3a), update and planning throughput.

* Planning compute: one tiny model is trained on ``grid`` through the real training loop
  (``distributed.coordinator.train``, local mode, the ``tiny`` preset the learning test uses), then
  evaluated closed loop (replanning every step, cap T - t) with N = 1, 5, 20, 50 candidates on every
  goal cell of the grid (the agent starts in the centre; 48 goals, several episodes each). Same model,
  only N changes. Also from the same model: the planning discount gamma against N (why gamma is not
  0.99) and the paper's ablations (no action prior, sparse planning) at N = 50.
* Update steps/s: ``agent.learn`` on a fixed pair batch; the tiny grid config (batch 64) and, in the
  full run, the paper-sized config (Fig. 5 defaults) on Atari-sized 4x104x80 observations, batch 200.
* Plans/s: ``agent.plan`` for B = 1, 8, 64 requests at once, N = 50 candidates each, steps_left = T,
  "shortest" mode: the trained grid model from the start state to goal cells, and the untrained
  paper-sized model (T = 50) on random pixels. The LSTM steps dominate (one per distinct unfinished
  prefix of the B x N candidates, see agents/glamor/planner.py).
Figures come from the device the benchmark finds (CUDA if present), plus CPU on a GPU machine;
torch runs with the thread count the training loop pinned (RunConfig.torch_threads), reported.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pixelplan.agents.glamor import GlamorAgent, GlamorConfig
from pixelplan.agents.registry import make_agent
from pixelplan.distributed.checkpoint import load_checkpoint
from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.eval_policies import AgentGoalPolicy
from pixelplan.distributed.replay.config import ReplayConfig
from pixelplan.envs import EnvSpec, GoalSet, evaluate, make_env
from pixelplan.envs.batches import PairBatch

RESULTS = Path(__file__).parent / "results"
TRIALS = (1, 5, 20, 50)
DISCOUNTS = (0.99, 0.9, 0.8, 0.6, 0.5, 0.4, 0.3)
BATCHES = (1, 8, 64)
GRID_OVERRIDES = {"preset": "tiny"}
TRAIN_STEPS = 16_000  # env steps; tiny preset: ~960 updates


def log(msg: str) -> None:
    print(f"[glamor] {msg}", flush=True)


# -- the trained grid model ------------------------------------------------------------------------
def train_grid_model(steps: int, seed: int = 0) -> GlamorAgent:
    """Train through the real loop, then rebuild the agent from its final checkpoint."""
    with tempfile.TemporaryDirectory() as out:
        run = RunConfig(agent="glamor", env="grid", steps=steps, seed=seed, envs_per_worker=8, device="cpu",
                        agent_overrides=GRID_OVERRIDES, replay=ReplayConfig.tiny(capacity=20_000),
                        planner=PlannerConfig(device="cpu"), eval_every=0, out=out, progress=False)
        summary = train(run)
        log(f"trained {summary['updates']} updates on {summary['env_steps']} env steps: "
            f"achievement {summary['eval/achievement']:.2f}, optimal {summary['eval/optimal']:.2f}")
        state = load_checkpoint(out)
    agent = make_agent("glamor", make_env("grid").spec, GRID_OVERRIDES)
    agent.load_state_dict(state["learner"]["agent"])
    return agent


def every_cell_goals(env) -> GoalSet:
    """Fig. 3a's task: every floor cell but the start is a goal."""
    cells = [tuple(c) for c in np.argwhere(~env.walls) if tuple(c) != tuple(env.start)]
    frames = np.stack([env.render_at(c) for c in cells])
    return GoalSet(env.spec.env_id, frames, np.array(cells, np.float32), env.known_feature_ranges(), seed=0)


def goal_rates(agent: GlamorAgent, goals: GoalSet, episodes: int, **settings) -> dict:
    def plan(obs, goal_frames, steps_left):
        return agent.plan(obs, goal_frames, steps_left, **settings)

    result = evaluate(lambda: make_env("grid"), goals, AgentGoalPolicy(plan, agent.spec.action_size), episodes=episodes, seed=1)
    per_goal = np.zeros((2, len(goals)))
    for g in range(len(goals)):
        mine = result.goal_index == g
        per_goal[:, g] = result.achieved[mine].mean(), result.optimal[mine].mean()
    return {"achievement": result.achievement_rate, "optimal": result.optimal_rate, "per_goal": per_goal}


def heat_map(env, goals: GoalSet, rates: dict[int, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(rates), figsize=(2.8 * len(rates), 6.4), squeeze=False,
                             layout="constrained")
    for col, (n, r) in enumerate(rates.items()):
        for row, name in enumerate(("achievement", "optimal")):
            grid = np.full(env.walls.shape, np.nan)
            for (i, j), value in zip(goals.features.astype(int), r["per_goal"][row]):
                grid[i, j] = value
            ax = axes[row, col]
            image = ax.imshow(grid[1:-1, 1:-1], vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"N={n}: {name} {r[name]:.2f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.6, label="rate per goal cell")
    fig.suptitle("GLAMOR planning compute on the 7x7 grid (start: white centre cell)\n"
                 "top: goal reached; bottom: reached by a shortest path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- throughput ------------------------------------------------------------------------------------
def timed_rate(fn, items: int, seconds: float) -> float:
    """items/s of ``fn`` after one warm-up call, repeated for at least ``seconds``."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * items / elapsed


def random_pairs(spec: EnvSpec, batch: int, max_len: int, rng: np.random.Generator) -> PairBatch:
    n = spec.action_size
    lengths = rng.integers(1, max_len + 1, batch)
    actions = np.full((batch, max_len + 1), n + 1, np.int64)
    for b, k in enumerate(lengths):
        actions[b, :k], actions[b, k] = rng.integers(n, size=k), n
    obs = rng.integers(0, 256, (batch, *spec.obs_shape), dtype=np.uint8)
    goals = rng.integers(0, 256, (batch, *spec.frame_shape), dtype=np.uint8)
    return PairBatch(obs, goals, actions, lengths)


def update_rate(spec: EnvSpec, config: GlamorConfig, device: str, seconds: float) -> float:
    agent = GlamorAgent(spec, config, device=device)
    batch = random_pairs(spec, config.batch_size, agent.horizon, np.random.default_rng(0))
    return timed_rate(lambda: agent.learn(batch), 1, seconds)


def plan_rates(agent: GlamorAgent, obs: np.ndarray, goals: np.ndarray, seconds: float) -> dict[int, float]:
    """Plans/s for B requests drawn from (obs, goals), each with the full horizon T."""
    out, rng = {}, np.random.default_rng(0)
    for b in BATCHES:
        pick = rng.integers(len(obs), size=b), rng.integers(len(goals), size=b)
        steps = np.full(b, agent.spec.time_limit)
        out[b] = timed_rate(lambda p=pick, s=steps: agent.plan(obs[p[0]], goals[p[1]], s, seed=0), b, seconds)
    return out


def throughput(grid_agent: GlamorAgent, goals: GoalSet, device: str, quick: bool) -> dict:
    seconds = 0.5 if quick else 3.0
    on_device = make_agent("glamor", grid_agent.spec, GRID_OVERRIDES, device=device)
    on_device.load_policy_weights(grid_agent.policy_weights())
    start = make_env("grid").reset()[None]
    out = {"update_steps_per_s": update_rate(grid_agent.spec, grid_agent.config, device, seconds),
           "plans_per_s": plan_rates(on_device, start, goals.frames, seconds)}
    # paper-sized model: Fig. 5 defaults, Atari-sized observations, T = 50, random pixels
    atari = EnvSpec("atari-sized", (1, 104, 80), 4, "discrete", 18, 50, ("x",))
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (16, *atari.obs_shape), dtype=np.uint8)
    frames = rng.integers(0, 256, (16, *atari.frame_shape), dtype=np.uint8)
    out["plans_per_s_paper"] = plan_rates(GlamorAgent(atari, GlamorConfig(), device=device), obs, frames, seconds)
    if not quick:
        out["update_steps_per_s_paper"] = update_rate(atari, GlamorConfig(), device, seconds)
    return out


# -- the benchmark ---------------------------------------------------------------------------------
def run(quick: bool) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    env = make_env("grid")
    goals = every_cell_goals(env)
    episodes = len(goals) * (1 if quick else 3)
    log(f"training the grid model ({TRAIN_STEPS} env steps)")
    agent = train_grid_model(TRAIN_STEPS)

    rates = {}
    for n in TRIALS:
        rates[n] = goal_rates(agent, goals, episodes, trials=n)
        log(f"N={n}: achievement {rates[n]['achievement']:.2f}, optimal {rates[n]['optimal']:.2f}")
    png = heat_map(env, goals, rates, RESULTS / "glamor_planning_compute.png")
    result = {"planning_compute": {n: {k: r[k] for k in ("achievement", "optimal")} for n, r in rates.items()},
              "plan_discount": agent.config.plan_discount, "goals": len(goals), "episodes": episodes,
              "heat_map": str(png)}

    if not quick:
        sweep = {}
        for gamma in DISCOUNTS:
            sweep[gamma] = {}
            for n in (1, 50):
                r = goal_rates(agent, goals, episodes, trials=n, discount=gamma)
                sweep[gamma][n] = {k: r[k] for k in ("achievement", "optimal")}
            log(f"gamma={gamma}: {sweep[gamma]}")
        result["discount_vs_trials"] = sweep
        ablations = {"no_prior": {"use_prior": False}, "sparse": {"sparse": True}}
        result["ablations_n50"] = {}
        for name, settings in ablations.items():
            r = goal_rates(agent, goals, episodes, trials=50, **settings)
            result["ablations_n50"][name] = {k: r[k] for k in ("achievement", "optimal")}
            log(f"{name}: {result['ablations_n50'][name]}")

    log(f"throughput on {device} ({torch.get_num_threads()} threads)")
    result.update(throughput(agent, goals, device, quick), device=device, threads=torch.get_num_threads())
    if device != "cpu":
        cpu = throughput(agent, goals, "cpu", quick)
        result.update({f"{k}_cpu": v for k, v in cpu.items()})
    return result
