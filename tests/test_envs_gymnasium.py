"""Gymnasium state tasks behind the PixelEnv interface (``gym:ID``), for state-based agents."""
import gymnasium as gym
import numpy as np
import pytest

from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.envs import make_env


def test_pendulum_spec_and_actions_rescaled_to_the_task_bounds():
    env = make_env("gym:Pendulum-v1")
    assert (env.spec.frame_shape, env.spec.frame_dtype, env.spec.action_kind, env.spec.time_limit) == \
        ((3,), "float32", "continuous", 200)
    raw = gym.make("Pendulum-v1")
    obs = env.reset(seed=5)
    np.testing.assert_allclose(obs, raw.reset(seed=5)[0])
    for action, torque in ((1.0, 2.0), (-0.5, -1.0), (0.0, 0.0)):  # Pendulum's torque bound is 2
        step = env.step(np.array([action], np.float32))
        expected, reward, *_ = raw.step(np.array([torque], np.float32))
        np.testing.assert_allclose(step.obs, expected, rtol=1e-6)
        assert step.reward == pytest.approx(reward)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.array([1.5], np.float32))


def test_time_limit_defaults_to_the_task_and_can_be_changed():
    env = make_env("gym:Pendulum-v1", time_limit=30)
    env.reset(seed=0)
    steps = [env.step(np.zeros(1, np.float32)) for _ in range(30)]
    assert [s.truncated for s in steps] == [False] * 29 + [True] and not any(s.terminated for s in steps)
    assert make_env("gym:CartPole-v1").spec.action_kind == "discrete"


@pytest.mark.parametrize("env_id, message", [("gym:NoSuchTask-v0", "doesn't exist"), ("gym", "needs a name")])
def test_bad_ids_are_refused(env_id, message):
    with pytest.raises(ValueError, match=message):
        make_env(env_id)


def test_alm_trains_on_a_gymnasium_task_through_the_runtime(tmp_path):
    run = RunConfig(agent="alm", env="gym:Pendulum-v1", steps=600, eval_every=0, eval_episodes=1, progress=False,
                    out=str(tmp_path / "run"), checkpoint_every=10**6,
                    agent_overrides={"preset": "tiny", "warmup_steps": 300})
    result = train(run)
    assert result["updates"] > 50 and -2000 < result["eval/return"] <= 0  # Pendulum's returns are negative
