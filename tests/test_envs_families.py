"""The PixelEnv contract, checked the same way on one environment of each family."""
import numpy as np
import pytest

from pixelplan.envs import make_env

T = 6


@pytest.fixture(scope="module", params=["grid", "atari:pong", "dmc:cartpole-balance"])
def env(request):
    env = make_env(request.param, time_limit=T)
    yield env
    env.close()


def test_observations_match_the_spec(env):
    spec = env.spec
    obs = env.reset(seed=0)
    assert obs.shape == spec.obs_shape and obs.dtype == np.dtype(spec.frame_dtype)
    spec.check_obs(obs)
    channels = spec.frame_shape[0]
    assert np.array_equal(obs, np.concatenate([env.frame()] * spec.stack))  # reset fills the stack
    rng = np.random.default_rng(0)
    for _ in range(3):
        step = env.step(env.sample_action(rng))
        assert step.obs.shape == spec.obs_shape and step.obs.dtype == obs.dtype
        assert env.frame().shape == spec.frame_shape
        assert np.array_equal(step.obs[-channels:], env.frame())
        assert isinstance(step.reward, float)


def test_goal_features_match_the_feature_names(env):
    env.reset(seed=1)
    features = env.goal_features()
    assert features.shape == (len(env.spec.feature_names),) and features.dtype == np.float64
    assert np.all(np.isfinite(features))


def test_truncated_exactly_at_the_time_limit(env):
    env.reset(seed=2)
    rng = np.random.default_rng(1)
    flags = [env.step(env.sample_action(rng)) for _ in range(T)]
    assert [s.truncated for s in flags] == [False] * (T - 1) + [True]
    assert not any(s.terminated for s in flags)
    with pytest.raises(RuntimeError, match="time limit"):
        env.step(env.sample_action(rng))
    env.reset(seed=3)
    assert env.t == 0
