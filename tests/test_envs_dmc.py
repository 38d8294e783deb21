"""DM Control: documented shapes in every mode, goal features that follow the cart, seeds, bad input."""
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import pixelplan.envs  # noqa: F401  (registers the gymnasium ids)
from pixelplan.envs import make_env, measure_feature_ranges
from pixelplan.envs.dmc import GOAL_OBSERVATIONS, DMCEnv, discrete_actions

GLAMOR_TASKS = sorted(GOAL_OBSERVATIONS)
PUSH_LEFT, STILL, PUSH_RIGHT = 0, 1, 2  # cartpole's 3 discrete actions: -1, 0, +1


@pytest.fixture(scope="module")
def cartpole():
    env = make_env("dmc:cartpole-balance")
    yield env
    env.close()


def physics_state(env: DMCEnv) -> np.ndarray:
    return env._env.physics.get_state().copy()


@pytest.mark.parametrize("task", GLAMOR_TASKS)
def test_glamor_tasks_discrete_shapes(task):
    env = make_env(f"dmc:{task}", time_limit=3)
    obs = env.reset(seed=0)
    assert obs.shape == env.spec.obs_shape == (4, 104, 80) and obs.dtype == np.uint8
    dims = env._env.action_spec().shape[0]
    assert env.spec.action_size == (2 * dims + 1 if task.startswith("manipulator") else 3**dims)
    for action in range(3):
        step = env.step(action)
    assert step.truncated and step.obs.dtype == np.uint8 and env.frame().shape == (1, 104, 80)
    assert obs.std() > 0  # something was drawn
    features = env.goal_features()
    assert features.dtype == np.float64 and features.shape == (len(env.spec.feature_names),)
    assert env.action_repeat == (4 if task.startswith("point_mass") else 1)
    env.close()


def test_discretisations():
    grid = discrete_actions("finger", 2)
    assert grid.shape == (9, 2) and set(map(tuple, grid)) == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    diagonal = discrete_actions("manipulator", 5)
    assert diagonal.shape == (11, 5) and np.all(np.abs(diagonal).sum(1) <= 1)  # one actuator at a time
    assert np.array_equal(np.sort(diagonal, axis=0)[[0, -1]], np.array([[-1.0] * 5, [1.0] * 5]))
    with pytest.raises(ValueError, match="continuous"):
        discrete_actions("humanoid", 21)


def cart_x_after(env: DMCEnv, action, steps: int = 25) -> float:
    env.reset(seed=0)
    start = env.goal_features()[0]
    for _ in range(steps):
        env.step(action)
    return env.goal_features()[0] - start


def test_cart_x_follows_the_push(cartpole):
    assert cartpole.spec.feature_names == ("position_0", "position_1", "position_2")  # cart x, cos, sin
    right, left, still = cart_x_after(cartpole, PUSH_RIGHT), cart_x_after(cartpole, PUSH_LEFT), \
        cart_x_after(cartpole, STILL)
    assert right > 0.1 and left < -0.1 and abs(still) < 0.05


@pytest.mark.parametrize("action", [3, -1, 1.0, "left", None, False, np.array([0.5])])
def test_bad_discrete_actions_raise_and_change_nothing(cartpole, action):
    cartpole.reset(seed=1)
    cartpole.step(PUSH_RIGHT)
    before = (cartpole.observation().copy(), cartpole.goal_features().copy(), physics_state(cartpole), cartpole.t)
    with pytest.raises(ValueError, match="action"):
        cartpole.step(action)
    assert np.array_equal(cartpole.observation(), before[0]) and np.array_equal(cartpole.goal_features(), before[1])
    assert np.array_equal(physics_state(cartpole), before[2]) and cartpole.t == before[3]


def rollout(env, seed: int, steps: int = 8) -> np.ndarray:
    frames = [env.reset(seed=seed)[-1]]
    frames += [env.step(i % env.spec.action_size).obs[-1] for i in range(steps)]
    return np.stack(frames)


def test_same_seed_same_frames(cartpole):
    first, again, other = rollout(cartpole, 5), rollout(cartpole, 5), rollout(cartpole, 6)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_feature_ranges_are_finite_and_positive(cartpole):
    ranges = measure_feature_ranges(cartpole, episodes=3, seed=0)
    assert ranges.shape == (3,) and np.all(np.isfinite(ranges)) and np.all(ranges > 0)


def test_continuous_mode_maps_unit_box_and_rejects_out_of_range():
    env = make_env("dmc:cartpole-balance", actions="continuous", time_limit=20)
    assert env.spec.action_kind == "continuous" and env.spec.action_size == 1
    env.reset(seed=0)
    step = env.step(np.array([1.0], np.float32))
    assert step.obs.shape == (4, 104, 80)
    assert np.isclose(env._env.physics.data.ctrl[0], 1.0)
    before = physics_state(env)
    for bad in (np.array([1.5], np.float32), np.array([np.nan]), np.zeros(2), 1):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    assert np.array_equal(physics_state(env), before)
    env.close()


def test_from_states_frames_are_the_task_observation():
    env = make_env("dmc:cartpole-balance", from_states=True)
    assert env.spec.frame_shape == (5,) and env.spec.stack == 1 and env.spec.frame_dtype == "float32"
    obs = env.reset(seed=0)
    assert obs.shape == env.spec.obs_shape == (5,) and obs.dtype == np.float32
    step = env.step(PUSH_RIGHT)
    assert np.array_equal(step.obs, env.frame())
    assert np.allclose(step.obs[:3], env.goal_features())  # position entry first: cart x, cos, sin
    env.close()


DEFAULT_LOOK_CHECK = """
import cv2, numpy as np
from dm_control import suite
from pixelplan.envs.dmc import DMCEnv
reference = suite.load("cartpole", "balance", task_kwargs={"random": 4})
reference.reset()
reference.step(np.array([1.0]))
# dm_control's own render path must run before any mujoco.Renderer exists (see envs/dmc.py)
rgb = reference.physics.render(104, 104, camera_id=0)
expected = cv2.cvtColor(cv2.resize(rgb, (80, 104), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
env = DMCEnv("cartpole-balance", fast_render=False)
env.reset(seed=4)
env.step(2)
assert env.frame().shape == (1, 104, 80) and env.frame().dtype == np.uint8
print(int(np.abs(env.frame()[0].astype(int) - expected).max()))
env.close()
reference.close()
"""


def test_default_look_is_dm_control_physics_render():
    """fast_render=False draws exactly what dm_control's physics.render draws (in a fresh process)."""
    out = subprocess.run([sys.executable, "-c", DEFAULT_LOOK_CHECK], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "0"


def test_fast_and_default_render_show_the_same_scene(cartpole):
    slow = DMCEnv("cartpole-balance", fast_render=False)
    motion = []
    for env in (cartpole, slow):
        start = env.reset(seed=3)[-1:].astype(np.float64)
        for _ in range(10):
            env.step(PUSH_RIGHT)
        motion.append(env.frame().astype(np.float64) - start)
    assert slow.frame().shape == cartpole.frame().shape == (1, 104, 80) and slow.frame().dtype == np.uint8
    assert np.array_equal(cartpole.goal_features(), slow.goal_features())
    assert not np.array_equal(slow.frame(), cartpole.frame())  # different looks (skybox, shadows)...
    # ...but the same camera and geometry: the moving cart changes the same pixels in both.
    assert np.corrcoef(motion[0].ravel(), motion[1].ravel())[0, 1] > 0.5
    slow.close()


def test_size_colour_and_qpos_fallback():
    env = DMCEnv("cartpole-swingup", size=(64, 64), grayscale=False, time_limit=5)
    obs = env.reset(seed=0)
    assert obs.shape == (12, 64, 64) and env.frame().shape == (3, 64, 64)
    assert env.spec.feature_names == ("qpos_0", "qpos_1")
    assert np.array_equal(env.goal_features(), env._env.physics.data.qpos)
    env.close()
    env.close()  # idempotent
    assert env._renderer is None


def test_supersampling_keeps_the_frame_size_and_area_averages_a_larger_render():
    plain = DMCEnv("point_mass-easy", size=(32, 32))
    fine = DMCEnv("point_mass-easy", size=(32, 32), supersample=4)
    assert fine.render_rgb().shape == (128, 128, 3) and fine.spec.frame_shape == plain.spec.frame_shape
    plain.reset(seed=0)
    obs = fine.reset(seed=0)
    assert obs.shape == (4, 32, 32)
    # the ball is brightest in one pixel without anti-aliasing; averaged over 4x4 it spreads, dimmer
    assert fine.frame().max() < plain.frame().max()
    assert abs(float(fine.frame().mean()) - float(plain.frame().mean())) < 3  # the same scene
    with pytest.raises(ValueError, match="supersample"):
        DMCEnv("point_mass-easy", supersample=0)
    plain.close()
    fine.close()


def test_unknown_task_and_bad_options():
    with pytest.raises(ValueError, match="unknown DM Control task"):
        make_env("dmc:cartpole-flip")
    with pytest.raises(ValueError, match="actions"):
        make_env("dmc:cartpole-balance", actions="binary")


def test_gymnasium_id():
    env = gym.make("pixelplan/DMC-cartpole-balance-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 104, 80) and env.action_space.n == 3 and info["goal_features"].shape == (3,)
    obs, reward, terminated, _, info = env.step(env.action_space.sample())
    assert obs.dtype == np.uint8 and reward >= 0 and not terminated and info["goal_features"].shape == (3,)
    env.close()
