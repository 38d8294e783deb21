"""Bad input gets a clear error and changes nothing."""
import numpy as np
import pytest

from pixelplan.envs import make_env, parse_env_id


@pytest.mark.parametrize("env_id", ["foo", "atari", "dmc:", "pong", ""])
def test_unknown_env_ids(env_id):
    with pytest.raises(ValueError, match="env id"):
        parse_env_id(env_id)
    with pytest.raises(ValueError):
        make_env(env_id)


def test_unknown_grid_map():
    with pytest.raises(ValueError, match="unknown grid map"):
        make_env("grid:no-such-map")


@pytest.mark.parametrize("action", [4, -1, 1.5, "up", None, True, np.array([1, 2])])
def test_bad_actions_raise_and_change_nothing(action):
    env = make_env("grid")
    env.reset()
    env.step(3)
    before = (env.observation().copy(), env.goal_features().copy(), env.t)
    with pytest.raises(ValueError, match="action"):
        env.step(action)
    assert np.array_equal(env.observation(), before[0])
    assert np.array_equal(env.goal_features(), before[1]) and env.t == before[2]


def test_numpy_integer_actions_are_accepted():
    env = make_env("grid")
    env.reset()
    env.step(np.int64(1))
    env.step(np.array(2))
    assert env.t == 2


def test_observation_shape_check():
    spec = make_env("grid").spec
    spec.check_obs(np.zeros((3, 1, 9, 9), np.uint8))
    with pytest.raises(ValueError, match="observation"):
        spec.check_obs(np.zeros((1, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="observation"):
        spec.check_obs(np.zeros((1, 9, 9), np.float32))
