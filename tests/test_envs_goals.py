import numpy as np

from pixelplan.envs import GoalSet, achieved, build_goal_set, make_env, measure_feature_ranges
from pixelplan.envs.goals import DiverseGoalBuffer


def test_ten_percent_rule_hand_cases():
    ranges = np.array([10.0, 2.0])
    goal = np.array([5.0, 1.0])
    assert achieved(np.array([6.0, 1.2]), goal, ranges)  # exactly 10% and 10%
    assert not achieved(np.array([6.01, 1.0]), goal, ranges)  # just past 10% of the first range
    assert not achieved(np.array([5.0, 1.21]), goal, ranges)  # second feature off
    assert achieved(np.array([4.0, 0.8]), goal, ranges)  # symmetric
    batch = np.array([[5, 1], [7, 1], [5, 0]], float)
    assert achieved(batch, goal, ranges).tolist() == [True, False, False]


class _Const:
    """An env whose end features are fixed: its measured range must become 1 (range < 0.01 rule)."""

    def __init__(self):
        self.env = make_env("grid", time_limit=3)

    def __getattr__(self, name):
        return getattr(self.env, name)

    def known_feature_ranges(self):
        return None

    def goal_features(self):
        return np.array([2.0, self.env.goal_features()[1]])


def test_measured_ranges_use_random_end_states():
    ranges = measure_feature_ranges(_Const(), episodes=50, seed=0)
    assert ranges[0] == 1.0  # constant feature: range < 0.01 -> 1
    assert 0 < ranges[1] <= 6  # the column moves within the room


def test_diverse_buffer_spreads_goals():
    rng = np.random.default_rng(0)
    buf = DiverseGoalBuffer(4, np.ones(1), rng)
    for x in [0.0, 0.1, 0.2, 0.3]:
        buf.offer(np.zeros(1), np.array([x]))
    for x in rng.uniform(0, 10, 400):
        buf.offer(np.zeros(1), np.array([x]))
    feats = np.sort(np.concatenate(buf.features))
    assert np.min(np.diff(feats)) > 1.0  # the clustered start has been replaced by spread-out goals


def test_goal_set_reproducible_and_saved(tmp_path):
    env = make_env("grid")
    a = build_goal_set(env, 30, seed=3, episodes=100)
    b = build_goal_set(env, 30, seed=3, episodes=100)
    c = build_goal_set(env, 30, seed=4, episodes=100)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.features, c.features)
    assert len(np.unique(a.features, axis=0)) >= 25  # diverse: (almost) all distinct cells
    env.reset()  # build_goal_set left the env wherever its last episode ended
    assert not achieved(a.features, env.goal_features(), a.ranges).any()  # no goal met at the start
    path = a.save(tmp_path / "goals.npz")
    loaded = GoalSet.load(path)
    assert np.array_equal(loaded.frames, a.frames) and loaded.env_id == "grid" and loaded.seed == 3
    # each goal frame shows the agent where its features say
    for frame, (r, col) in zip(a.frames, a.features.astype(int)):
        assert frame[0, r, col] == 255


def test_goal_sets_share_one_cached_range_measurement_per_env_and_options(tmp_path, monkeypatch):
    """Each run seed builds its own training goals; the 500-episode range measurement is the env's, done once."""
    from pixelplan.distributed.goalsets import load_or_build_goal_set

    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path))
    options = {"time_limit": 20, "size": [16, 16]}
    first = load_or_build_goal_set("dmc:cartpole-balance", 5, 1, options, show_progress=False)
    (cached,) = (tmp_path / "ranges").glob("dmc_cartpole-balance-*.npy")
    stamp = cached.stat().st_mtime_ns
    second = load_or_build_goal_set("dmc:cartpole-balance", 5, 2, options, show_progress=False)
    assert cached.stat().st_mtime_ns == stamp and (first.ranges == second.ranges).all()
    assert not (first.features == second.features).all()  # different seeds, different goals
    other = load_or_build_goal_set("dmc:cartpole-balance", 5, 1, {**options, "size": [8, 8]}, show_progress=False)
    assert len(list((tmp_path / "ranges").glob("*.npy"))) == 2 and other.frames.shape[-1] == 8
