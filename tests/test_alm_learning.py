"""ALM learns to balance the cartpole, trained through the shared runtime (coordinator, local mode).

Task: DMC cartpole-balance from states, action repeat 8 (PlaNet's cartpole setting), 125 agent
steps = 1000 physics steps, returns in [0, 1000]. Measured on this task: uniform random actions
score 272 +- 48 per episode (40 episodes, best 383); constant actions of +-0.05 to 1 score 136-410
and exactly zero 706-774 (10 episodes each: the pole starts near upright and falls slowly).
THRESHOLD applies to the mean of EVAL_EPISODES deterministic episodes: for random actions that mean
has std 48 / sqrt(10) ~ 15, so 800 lies more than 30 of its standard deviations above 272, 400 above
the best random episode, and above every constant policy, doing nothing included. Only a policy
that balances the pole reaches it.

Budget: 4000 env steps, one update per step after 500 warmup steps: ~105 CPU seconds here. With
this configuration, agent seeds 0 (this test), 1 and 3 passed 900 by 2000-2600 env steps and ended
at 888, 957 and 896 (5-episode evaluations every 512 steps, separate runs).
"""
import pytest
import torch

from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.replay.config import ReplayConfig

THRESHOLD = 800.0
EVAL_EPISODES = 10
ENV_OPTIONS = {"from_states": True, "actions": "continuous", "time_limit": 125, "action_repeat": 8}
# Table 3 except: narrower nets and batch (CPU); a short exploration schedule, faster critics (lr 1e-3)
# and targets (tau 0.02) for a 4000-step budget (Table 3's are for 1e6 steps). The policy keeps
# Table 3's 1e-4: as fast as the critics, it saturated its tanh at +-1 or collapsed late in some seeds.
AGENT = {"hidden": 128, "model_hidden": 256, "batch_size": 128, "lr": 1e-3, "policy_lr": 1e-4, "tau": 0.02,
         "warmup_steps": 500, "std_steps": 1500, "replay_size": 10_000}


@pytest.mark.slow
def test_alm_balances_cartpole_through_the_runtime(tmp_path):
    torch.set_num_threads(1)
    run = RunConfig(agent="alm", env="dmc:cartpole-balance", env_options=ENV_OPTIONS, agent_overrides=AGENT,
                    steps=4000, eval_every=0, eval_episodes=EVAL_EPISODES, seed=0,
                    replay=ReplayConfig(capacity=10_000, prefetch=0), device="cpu", sync_every=1,
                    checkpoint_every=10**9, progress=False, out=str(tmp_path / "run"))
    result = train(run)
    assert result["updates"] >= 0.9 * (run.steps - AGENT["warmup_steps"])  # one update per env step
    assert result["eval/return"] >= THRESHOLD, result
