"""ALM benchmark: update steps/s, a return curve, and wall-clock to a return threshold against RLlib's SAC.

Task: DM Control cartpole-balance from states (5 floats), continuous actions, action repeat 8 (as
PlaNet and Dreamer use for cartpole) and 125 agent steps per episode (1000 physics steps, the
suite's usual episode; returns in [0, 1000]).
Both agents get the same env-step budget, warmup, one update per env step, replay capacity, batch
size, hidden width, evaluation schedule (deterministic policy, same episodes) and one CPU thread.
ALM trains through the shared runtime (``Coordinator``, local mode); SAC is RLlib's (new API stack,
local env runner and learner). Both runs happen in this process, one after the other.

``time_to_threshold_s``: wall-clock from the start of training until the first evaluation whose
mean return reaches ``THRESHOLD`` (evaluation time included, the same schedule for both). Absolute
times drift with the load of a shared machine; CPU seconds of this process to the same point are
reported beside them (``*_cpu_to_threshold_s``), which depend much less on other processes.
When SAC does not reach the threshold within the budget, ``time_ratio_vs_sac`` is null and
``time_ratio_vs_sac_at_most`` bounds it with SAC's whole run time.
``update_steps_per_s`` is ALM's learner alone (Table 3 network sizes, batch 512, K = 3) on random
windows of this task's shapes; the curve runs use the smaller widths below so that they fit a CPU.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pixelplan.agents.alm import AlmAgent, AlmConfig
from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import Coordinator
from pixelplan.distributed.replay.config import ReplayConfig
from pixelplan.distributed.runtime import start_ray
from pixelplan.envs import make_env
from pixelplan.envs.batches import SequenceBatch

ENV_ID = "dmc:cartpole-balance"
GYM_ID = "pixelplan/DMC-cartpole-balance-v0"
ENV_OPTIONS = {"from_states": True, "actions": "continuous", "time_limit": 125, "action_repeat": 8}
# Random actions score 272 +- 48 per episode here (40 episodes), exactly zero actions ~760 (the pole
# starts near upright and falls slowly), any constant non-zero action ~300-430, balancing ~1000.
THRESHOLD = 800.0
RESULTS = Path(__file__).parent / "results"


@dataclasses.dataclass(frozen=True)
class Budget:
    """Shared by both agents except the learning rates (each its usual one for short runs)."""

    env_steps: int
    eval_every: int = 500
    eval_episodes: int = 5
    warmup: int = 500
    hidden: int = 256  # both: 2 hidden layers of this width (ALM's model: twice as wide, as in Table 3)
    batch_size: int = 128
    replay_capacity: int = 100_000
    alm_lr: float = 1e-3  # encoder, model, Q, reward, classifier (Table 3: 1e-4, for 1e6-step runs)
    alm_policy_lr: float = 1e-4  # Table 3's; a policy as fast as the critics saturated or collapsed in some seeds
    alm_tau: float = 0.02  # Table 3: 0.005; slower targets learned too slowly for this budget
    alm_std_steps: int = 1500  # exploration std 1.0 -> 0.1 over these env steps (Table 3: 100000)
    sac_lr: float = 3e-4  # SAC's usual rate (actor, critic and temperature)


QUICK = Budget(env_steps=3_000, hidden=128)
FULL = Budget(env_steps=6_000)


# -- ALM ------------------------------------------------------------------------------------------
def alm_update_steps_per_s(budget: Budget | None, seconds: float) -> float:
    """ALM's learn() on random windows shaped like this task's: the paper's sizes (Table 3) when
    ``budget`` is None, else the curve runs' sizes."""
    spec = make_env(ENV_ID, **ENV_OPTIONS).spec
    agent = AlmAgent(spec, alm_config(budget) if budget else AlmConfig())
    cfg, rng = agent.config, np.random.default_rng(0)
    b, k = cfg.batch_size, cfg.horizon
    batch = SequenceBatch(rng.normal(size=(b, k + 1, *spec.obs_shape)).astype(np.float32),
                          rng.uniform(-1, 1, (b, k, spec.action_size)).astype(np.float32),
                          rng.random((b, k)).astype(np.float32), np.zeros((b, k), bool), np.zeros((b, k + 1), bool))
    agent.learn(batch)
    updates, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.learn(batch)
        updates += 1
    return updates / (time.perf_counter() - start)


def alm_overrides(budget: Budget) -> dict:
    return {"hidden": budget.hidden, "model_hidden": 2 * budget.hidden, "batch_size": budget.batch_size,
            "lr": budget.alm_lr, "policy_lr": budget.alm_policy_lr, "tau": budget.alm_tau, "warmup_steps": budget.warmup,
            "std_steps": budget.alm_std_steps, "replay_size": budget.replay_capacity}


def alm_config(budget: Budget) -> AlmConfig:
    return AlmConfig(**alm_overrides(budget))


def alm_curve(budget: Budget, out: Path) -> list[tuple[float, float, int, float]]:
    """(wall s, CPU s, env steps, eval return) at each evaluation of an ALM run through the runtime."""
    run = RunConfig(agent="alm", env=ENV_ID, env_options=ENV_OPTIONS, agent_overrides=alm_overrides(budget),
                    steps=budget.env_steps, eval_every=budget.eval_every, eval_episodes=budget.eval_episodes,
                    replay=ReplayConfig(capacity=budget.replay_capacity, prefetch=0), device="cpu", sync_every=1,
                    checkpoint_every=10**9, progress=False, out=str(out))
    coordinator = Coordinator(run)
    wall0, cpu0 = time.time(), time.process_time()
    curve: list[tuple[float, float, int, float]] = []
    evaluate = coordinator.evaluate

    def timed_evaluate(**kwargs) -> dict[str, float]:
        summary = evaluate(**kwargs)
        curve.append((time.time() - wall0, time.process_time() - cpu0, int(coordinator.counters["env_steps"]),
                      float(summary["eval/return"])))
        return summary

    coordinator.evaluate = timed_evaluate
    try:
        coordinator.train()
    finally:
        coordinator.close()
    return curve


# -- SAC (RLlib) ----------------------------------------------------------------------------------
def sac_curve(budget: Budget) -> list[tuple[float, float, int, float]]:
    """The same evaluation points for RLlib's SAC."""
    import ray
    from ray.rllib.algorithms.sac import SACConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN, NUM_ENV_STEPS_SAMPLED_LIFETIME

    fragment = 50  # env steps per sample call; training_intensity = batch -> one update per env step
    config = (SACConfig()
              .environment(GYM_ID, env_config=ENV_OPTIONS)
              .env_runners(num_env_runners=0, rollout_fragment_length=fragment, num_envs_per_env_runner=1)
              .learners(num_learners=0)
              .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[budget.hidden] * 2, fcnet_activation="relu"))
              .training(train_batch_size_per_learner=budget.batch_size, training_intensity=budget.batch_size,
                        num_steps_sampled_before_learning_starts=budget.warmup, actor_lr=budget.sac_lr,
                        critic_lr=budget.sac_lr, alpha_lr=budget.sac_lr,
                        replay_buffer_config={"capacity": budget.replay_capacity})
              # evaluate() is called below at the same env-step marks as ALM's; the huge interval only
              # makes RLlib build the (local) evaluation runner without ever evaluating on its own
              .evaluation(evaluation_interval=10**9, evaluation_duration=budget.eval_episodes,
                          evaluation_duration_unit="episodes", evaluation_num_env_runners=0,
                          evaluation_config={"explore": False})
              .debugging(seed=0))
    start_ray(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        algo = config.build_algo()
        wall0, cpu0 = time.time(), time.process_time()
        curve: list[tuple[float, float, int, float]] = []
        steps, next_eval = 0, budget.eval_every
        while steps < budget.env_steps:
            steps = int(algo.train()[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED_LIFETIME])
            if steps >= next_eval or steps >= budget.env_steps:
                ret = algo.evaluate()[ENV_RUNNER_RESULTS][EPISODE_RETURN_MEAN]
                curve.append((time.time() - wall0, time.process_time() - cpu0, steps, float(ret)))
                next_eval += budget.eval_every
        algo.stop()
    finally:
        ray.shutdown()
    return curve


# -- comparison -----------------------------------------------------------------------------------
def train_steps_per_s(curve: list[tuple[float, float, int, float]], warmup: int) -> float | None:
    """Env steps/s between the first evaluation after warmup and the last (one update per step; the
    evaluations in between count, alike for both agents)."""
    learning = [(wall, steps) for wall, _, steps, _ in curve if steps > warmup]
    if len(learning) < 2:
        return None
    (w0, s0), (w1, s1) = learning[0], learning[-1]
    return (s1 - s0) / (w1 - w0)


def first_reaching(curve: list[tuple[float, float, int, float]], threshold: float) -> tuple[float, float, int] | None:
    for wall, cpu, steps, ret in curve:
        if ret >= threshold:
            return wall, cpu, steps
    return None


def plot(curves: dict[str, list[tuple[float, float, int, float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_steps, by_time) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, curve in curves.items():
        if curve:
            wall, _, steps, ret = zip(*curve)
            by_steps.plot(steps, ret, marker="o", label=name)
            by_time.plot(wall, ret, marker="o", label=name)
    for ax, xlabel in ((by_steps, "env steps"), (by_time, "wall-clock s (incl. evaluation)")):
        ax.axhline(THRESHOLD, color="gray", linestyle="--", linewidth=1, label=f"threshold {THRESHOLD:.0f}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("eval return (deterministic policy)")
        ax.grid(alpha=0.3)
    by_steps.legend(fontsize=8)
    fig.suptitle("DMC cartpole-balance from states (action repeat 8, 125 steps)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(quick: bool) -> dict:
    budget = QUICK if quick else FULL
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    updates_per_s = alm_update_steps_per_s(None, 10.0 if quick else 30.0)
    print(f"[alm] learner: {updates_per_s:.2f} update steps/s (Table 3 sizes)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        alm = alm_curve(budget, Path(tmp) / "alm")
    print(f"[alm] curve: {[(s, round(r)) for _, _, s, r in alm]}", flush=True)
    sac = sac_curve(budget)
    print(f"[alm] SAC curve: {[(s, round(r)) for _, _, s, r in sac]}", flush=True)
    figure = plot({"ALM (pixelplan runtime)": alm, "SAC (RLlib)": sac}, RESULTS / "alm_return_curve.png")
    hit, sac_hit = first_reaching(alm, THRESHOLD), first_reaching(sac, THRESHOLD)
    ratio = hit[0] / sac_hit[0] if hit and sac_hit else None
    cpu_ratio = hit[1] / sac_hit[1] if hit and sac_hit else None
    # SAC never reached the threshold: its whole run bounds its time to threshold from below
    ratio_at_most = hit[0] / sac[-1][0] if hit and not sac_hit and sac else ratio
    return {
        "update_steps_per_s": updates_per_s,
        "time_to_threshold_s": hit[0] if hit else None,
        "sac_time_to_threshold_s": sac_hit[0] if sac_hit else None,
        "time_ratio_vs_sac": ratio,
        "time_ratio_vs_sac_at_most": ratio_at_most,
        "sac_reached_threshold": sac_hit is not None,
        "cpu_to_threshold_s": hit[1] if hit else None,
        "sac_cpu_to_threshold_s": sac_hit[1] if sac_hit else None,
        "cpu_ratio_vs_sac": cpu_ratio,
        "steps_to_threshold": hit[2] if hit else None,
        "sac_steps_to_threshold": sac_hit[2] if sac_hit else None,
        "update_steps_per_s_curve_sizes": alm_update_steps_per_s(budget, 5.0 if quick else 15.0),
        "train_steps_per_s": train_steps_per_s(alm, budget.warmup),
        "sac_train_steps_per_s": train_steps_per_s(sac, budget.warmup),
        "threshold": THRESHOLD,
        "env_steps_budget": budget.env_steps,
        "final_return": alm[-1][3] if alm else None,
        "sac_final_return": sac[-1][3] if sac else None,
        "figure": str(figure),
        "device": "cpu",
    }
