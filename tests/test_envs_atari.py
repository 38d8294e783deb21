"""Atari: documented shapes, RAM goal labels that follow their entities, seeds, bad input."""
import gymnasium as gym
import numpy as np
import pytest

import pixelplan.envs  # noqa: F401  (registers the gymnasium ids)
from pixelplan.envs import make_env, measure_feature_ranges
from pixelplan.envs.atari import GAMES, AtariEnv

PADDLE_GRAY = 147  # Pong's green player paddle after grayscale conversion
PLAYFIELD_ROWS = slice(17, 96)  # between the top and bottom walls of the 104-row frame
PLAYER_COLUMNS = slice(64, 76)  # right side: the player's paddle (the enemy's is on the left)


@pytest.fixture(scope="module")
def pong():
    env = make_env("atari:pong")
    yield env
    env.close()


def action_index(env: AtariEnv, name: str) -> int:
    return [a.name for a in env.actions].index(name)


def paddle_row(frame: np.ndarray) -> float:
    """Mean row of the player's paddle pixels in a (1, 104, 80) frame."""
    strip = frame[0, PLAYFIELD_ROWS, PLAYER_COLUMNS].astype(int)
    rows, _ = np.nonzero(np.abs(strip - PADDLE_GRAY) <= 6)
    assert len(rows), "player paddle not visible"
    return float(rows.mean())


def test_pong_shapes_and_dtypes(pong):
    obs = pong.reset(seed=0)
    assert pong.spec.env_id == "atari:pong" and pong.spec.time_limit == 50
    assert obs.shape == pong.spec.obs_shape == (4, 104, 80) and obs.dtype == np.uint8
    assert pong.spec.action_size == 6 and pong.spec.feature_names == ("ball_x", "ball_y", "enemy_y", "player_y")
    step = pong.step(0)
    assert step.obs.shape == (4, 104, 80) and step.obs.dtype == np.uint8
    assert pong.frame().shape == (1, 104, 80) and np.array_equal(step.obs[-1:], pong.frame())
    features = pong.goal_features()
    assert features.shape == (4,) and features.dtype == np.float64


def test_pong_player_paddle_label_follows_the_paddle(pong):
    pong.reset(seed=1)
    up, down = action_index(pong, "RIGHT"), action_index(pong, "LEFT")  # ALE's Pong: RIGHT moves up
    player = pong.spec.feature_names.index("player_y")
    for _ in range(12):
        pong.step(up)
    top_label, top_row = pong.goal_features()[player], paddle_row(pong.frame())
    for _ in range(15):
        pong.step(down)
    bottom_label, bottom_row = pong.goal_features()[player], paddle_row(pong.frame())
    assert bottom_label - top_label > 20  # RAM y grows downwards, like image rows
    assert bottom_row - top_row > 10


@pytest.mark.parametrize("action", [6, -1, 1.5, "up", None, True, np.array([1, 2])])
def test_bad_actions_raise_and_change_nothing(pong, action):
    pong.reset(seed=2)
    pong.step(2)
    before = (pong.observation().copy(), pong.goal_features().copy(), pong.ale.getRAM().copy(), pong.t)
    with pytest.raises(ValueError, match="action"):
        pong.step(action)
    assert np.array_equal(pong.observation(), before[0]) and np.array_equal(pong.goal_features(), before[1])
    assert np.array_equal(pong.ale.getRAM(), before[2]) and pong.t == before[3]


def rollout(env, seed: int, steps: int = 30) -> np.ndarray:
    frames = [env.reset(seed=seed)[-1]]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        frames.append(env.step(int(rng.integers(env.spec.action_size))).obs[-1])
    return np.stack(frames)


def test_same_seed_same_frames(pong):
    first, again, other = rollout(pong, 7), rollout(pong, 7), rollout(pong, 8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)  # no-op starts and sticky actions follow the seed


def test_sticky_actions_off_makes_actions_exact():
    env = AtariEnv("pong", repeat_action_probability=0.0, noop_max=0)
    a, b = rollout(env, 1), rollout(env, 2)
    assert np.array_equal(a, b)  # with no randomness left, the seed changes nothing
    env.close()


def test_feature_ranges_are_finite_and_positive(pong):
    ranges = measure_feature_ranges(pong, episodes=3, seed=0)
    assert ranges.shape == (4,) and np.all(np.isfinite(ranges)) and np.all(ranges > 0)


def test_gymnasium_id():
    env = gym.make("pixelplan/Atari-Pong-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 104, 80) and env.action_space.n == 6 and info["goal_features"].shape == (4,)
    obs, _, _, truncated, info = env.step(env.action_space.sample())
    assert obs.dtype == np.uint8 and not truncated and info["goal_features"].shape == (4,)
    env.close()


def test_unknown_game_and_bad_options():
    with pytest.raises(ValueError, match="unknown Atari game"):
        make_env("atari:pacman")
    with pytest.raises(ValueError, match="frame_skip"):
        AtariEnv("pong", frame_skip=1)


@pytest.mark.parametrize("game", GAMES)
def test_every_game_steps_and_its_labels_move(game):
    """300 random steps: documented shapes, and every RAM label takes more than one value."""
    env = AtariEnv(game, time_limit=300)
    obs = env.reset(seed=0)
    assert obs.shape == (4, 104, 80) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    features = [env.goal_features()]
    while True:
        step = env.step(env.sample_action(rng))
        features.append(env.goal_features())
        if step.terminated or step.truncated:
            break
    features = np.stack(features)
    assert features.shape[1] == len(env.spec.feature_names) >= 1
    still = [n for n, lo, hi in zip(env.spec.feature_names, features.min(0), features.max(0)) if lo == hi]
    assert not still, f"{game}: labels never moved: {still}"
    env.close()
