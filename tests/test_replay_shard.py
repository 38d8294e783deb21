"""One shard: batches match what the env showed, windows respect episodes, eviction is FIFO."""
import numpy as np
import pytest

from pixelplan.distributed.replay import ReplayConfig, ReplayShard, sampling
from pixelplan.envs.base import PixelEnv
from pixelplan.envs.batches import BatchQuery
from pixelplan.envs.gridworld import AGENT, GridWorld
from pixelplan.envs.spec import EnvSpec
from pixelplan.envs.trajectory import TrajectoryBuilder


class TaggedEnv(PixelEnv):
    """Random 1x3x3 frames whose first two pixels hold (episode tag, step): stacks are checkable."""

    def __init__(self, tag: int, time_limit: int) -> None:
        self.spec = EnvSpec("tagged", (1, 3, 3), 4, "discrete", 3, time_limit, ("x",))
        super().__init__()
        self.tag, self.rng = tag, np.random.default_rng(tag)

    def _frame(self) -> np.ndarray:
        frame = self.rng.integers(0, 256, (1, 3, 3), dtype=np.uint8)
        frame[0, 0, :2] = self.tag, self.t
        return frame

    def _reset(self, seed):
        return self._frame()

    def _step(self, action):
        self.t += 1  # the base increments after _step; the frame shows the step it follows
        frame = self._frame()
        self.t -= 1
        return frame, float(action), False

    def goal_features(self):
        return np.zeros(1)


def record_episode(tag: int, length: int):
    env = TaggedEnv(tag, length)
    obs = [env.reset()]
    builder = TrajectoryBuilder("tagged", env.frame(), np.zeros(1), stack=4)
    rng = np.random.default_rng(100 + tag)
    for _ in range(length):
        action = int(rng.integers(3))
        step = env.step(action)
        obs.append(step.obs)
        builder.add(action, step.reward, step.terminated, env.frame(), np.zeros(1))
    return builder.finish(), np.stack(obs)


def test_pair_batches_rebuild_exactly_the_stacks_the_env_returned():
    shard = ReplayShard(ReplayConfig(capacity=400, num_actions=3), 0)
    episodes = {tag: record_episode(tag, length) for tag, length in enumerate([2, 9, 30])}
    for traj, _ in episodes.values():
        shard.insert(traj.to_bytes())
    batch = shard.sample(BatchQuery("pairs", 0, 6), 300, seed=3)
    assert batch.obs.shape == (300, 4, 3, 3) and batch.goals.shape == (300, 1, 3, 3)
    assert batch.actions.shape == (300, 7)
    for b in range(300):
        tag, i = batch.obs[b, -1, 0, :2]
        traj, obs = episodes[int(tag)]
        length = int(batch.lengths[b])
        j = i + length
        assert 1 <= length <= 6 and j <= len(traj)
        np.testing.assert_array_equal(batch.obs[b], obs[i])
        np.testing.assert_array_equal(batch.goals[b], traj.frames[j])
        assert batch.actions[b].tolist() == traj.actions[i:j].tolist() + [3] + [4] * (6 - length)


def test_windows_stay_inside_episodes_unless_asked(synth):
    shard = ReplayShard(ReplayConfig(capacity=500), 0)
    lengths = [3, 12, 5, 1, 20, 8]
    for tag, length in enumerate(lengths):
        shard.insert(synth.trajectory(length, tag, stack=2))
    window = BatchQuery("windows", 0, 5)
    batch = shard.sample(window, 400, seed=0)
    assert batch.obs.shape == (400, 6, 6, 1, 1) and batch.actions.shape == (400, 5)
    tags, frames = synth.decode(batch.obs[:, :, 3:])  # newest frame of each stack
    assert np.all(tags == tags[:, :1]) and np.all(np.diff(frames, axis=1) == 1)
    assert np.array_equal(batch.is_first[:, 0], frames[:, 0] == 0) and not batch.is_first[:, 1:].any()
    assert np.array_equal(batch.rewards, frames[:, :5] + 1000 * tags[:, :5])  # step t's reward
    assert np.array_equal(batch.terminals, frames[:, 1:] == np.array(lengths)[tags[:, 1:]])

    crossing = shard.sample(BatchQuery("windows", 0, 5, cross_episodes=True), 400, seed=0)
    tags, frames = synth.decode(crossing.obs[:, :, 3:])
    changes = np.diff(tags[:, :5], axis=1)
    assert changes.any(), "some windows should run into the next episode"
    assert set(np.unique(changes)) <= {0, 1}  # only into the one inserted next
    np.testing.assert_array_equal(crossing.is_first[:, 1:5], changes == 1)
    np.testing.assert_array_equal(frames[:, 1:5][changes == 1], 0)  # a new episode starts at its frame 0
    oldest = synth.decode(crossing.obs[:, :, :3])[1]  # oldest frame of each stack: clamped at the start
    np.testing.assert_array_equal(oldest[:, 1:5][changes == 1], 0)


def test_eviction_drops_whole_oldest_trajectories_in_insert_order(synth):
    shard = ReplayShard(ReplayConfig(capacity=50, frame_overhead=0.5), 0)  # transitions bind, not frames
    lengths = [10, 20, 5, 15, 12, 7, 30]
    stored = []
    for tag, length in enumerate(lengths):
        total = shard.insert(synth.trajectory(length, tag))
        stored.append(tag)
        while sum(lengths[t] for t in stored) > 50:
            stored.pop(0)
        assert total == sum(lengths[t] for t in stored)
    batch = shard.sample(BatchQuery("windows", 0, 1), 2000, seed=0)
    assert set(synth.decode(batch.obs[:, 0])[0].tolist()) == set(stored) == {4, 5, 6}
    stats = shard.stats()
    assert stats["replay/trajectories"] == 3 and stats["replay/evictions"] == 4 and stats["replay/inserts"] == 7


def test_frames_are_stored_once(synth):
    frame_bytes = 104 * 80
    shard = ReplayShard(ReplayConfig(capacity=3000), 0)
    while shard.num_transitions() < 2700:
        shard.insert(synth.trajectory(300, frame_shape=(1, 104, 80), stack=4))
    assert shard.stats()["replay/bytes"] / shard.config.capacity <= 1.1 * frame_bytes


def test_frame_budget_caps_very_short_episodes(synth):
    config = ReplayConfig(capacity=64, frame_overhead=0.25)  # 80 frame slots
    shard = ReplayShard(config, 0)
    for tag in range(60):
        shard.insert(synth.trajectory(1, tag))  # 2 frames per transition
    assert shard.num_transitions() == 40 and shard.count(BatchQuery("windows", 0, 1)) == 40


def test_state_frames_and_continuous_actions_form_windows():
    from pixelplan.envs.trajectory import Trajectory

    shard = ReplayShard(ReplayConfig(capacity=100), 0)
    for tag in range(3):
        frames = np.full((11, 5), tag, np.float32)
        shard.insert(Trajectory("dmc", frames, np.zeros((10, 2), np.float32), np.ones(10, np.float32),
                                np.zeros(10, bool), np.zeros((11, 1), np.float32), stack=3))
    batch = shard.sample(BatchQuery("windows", 0, 4), 8, seed=0)
    assert batch.obs.shape == (8, 5, 15) and batch.obs.dtype == np.float32
    assert batch.actions.shape == (8, 4, 2) and batch.actions.dtype == np.float32


def test_shortest_route_pairs_are_real_routes_no_longer_than_the_walk_or_its_own_route():
    env, rng = GridWorld("four-rooms"), np.random.default_rng(0)
    shard = ReplayShard(ReplayConfig(capacity=1000, num_actions=4), 0)
    for _ in range(4):
        env.reset()
        builder = TrajectoryBuilder("grid", env.frame(), env.goal_features())
        for _ in range(60):
            action = int(rng.integers(4))
            step = env.step(action)
            builder.add(action, step.reward, step.terminated, env.frame(), env.goal_features())
        shard.insert(builder.finish())
    walks = shard.sample(BatchQuery("pairs", 0, 60), 200, seed=1)
    routes = shard.sample(BatchQuery("pairs", 0, 60, shortest_routes=1.0), 200, seed=1)
    np.testing.assert_array_equal(routes.obs, walks.obs)  # the same pairs, other actions
    np.testing.assert_array_equal(routes.walk_actions, walks.actions)  # ... and the walk beside them
    np.testing.assert_array_equal(routes.walk_lengths, walks.lengths)
    assert np.all(routes.lengths <= walks.lengths) and np.mean(routes.lengths < walks.lengths) > 0.5
    own_lengths = []
    for b in range(200):
        start = tuple(int(v) for v in np.argwhere(routes.obs[b, 0] == AGENT)[0])
        env.reset()
        env.pos, visited = start, {start}
        for action in routes.actions[b, :routes.lengths[b]]:
            env.step(int(action))
            assert env.pos not in visited or env.pos == start  # no loop, except back to a start that is the goal
            visited.add(env.pos)
        np.testing.assert_array_equal(env.frame(), routes.goals[b])
        assert routes.actions[b, routes.lengths[b]] == 4  # END
        assert routes.lengths[b] >= max(env.distances(start)[env.pos], 1)
        env.reset()
        env.pos, cells = start, [start]  # the walk's own cells: its own stretch's route is never shorter
        for action in walks.actions[b, :walks.lengths[b]]:
            env.step(int(action))
            cells.append(env.pos)
        keys = np.array([[r * 100 + c for r, c in cells]])
        own = sampling.transition_graph(keys, walks.actions[b:b + 1], walks.lengths[b:b + 1])
        own_lengths.append(len(sampling.shortest_route(own, keys[0, 0], keys[0, -1])))
    assert np.all(routes.lengths <= own_lengths)
    assert np.mean(routes.lengths < own_lengths) > 0.1  # steps of other walks shorten some routes
    half = shard.sample(BatchQuery("pairs", 0, 60, shortest_routes=0.5), 200, seed=1)
    walked, routed = (np.all(half.actions == x.actions, axis=1) for x in (walks, routes))
    assert np.all(walked | routed) and 0.3 < np.mean(walked & ~routed) < 0.7  # each pair one or the other


def test_shortest_route_pairs_are_refused_on_stacked_frames_and_windows():
    shard = ReplayShard(ReplayConfig(capacity=400, num_actions=3), 0)
    shard.insert(record_episode(0, 9)[0])
    with pytest.raises(ValueError, match="stack 1"):
        shard.sample(BatchQuery("pairs", 0, 4, shortest_routes=1.0), 4, seed=0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        shard.sample(BatchQuery("pairs", 0, 4, shortest_routes=1.5), 4, seed=0)
    with pytest.raises(ValueError, match="pairs only"):
        shard.sample(BatchQuery("windows", 0, 4, shortest_routes=1.0), 4, seed=0)


def test_graph_starts_meet_goals_of_other_trajectories_along_real_shortest_routes():
    """Walks A and B go from the middle of a corridor to its left and right end and back: a pair can start
    at a cell only A visited with a goal only B reached, along a route through both walks' steps."""
    env = GridWorld("#########\n#.......#\n#########")  # one corridor, cells (1, 1) .. (1, 7)
    shard = ReplayShard(ReplayConfig(capacity=100, num_actions=4), 0)
    for start, moves in (((1, 4), [2, 2, 2, 3, 3, 3]), ((1, 4), [3, 3, 3, 2, 2, 2])):  # 2 left, 3 right
        env.reset()
        env.pos = start
        builder = TrajectoryBuilder("grid", env.frame(), env.goal_features())
        for action in moves:
            step = env.step(action)
            builder.add(action, step.reward, step.terminated, env.frame(), env.goal_features())
        shard.insert(builder.finish())
    own = shard.sample(BatchQuery("pairs", 0, 6, shortest_routes=1.0), 400, seed=2)
    moved = shard.sample(BatchQuery("pairs", 0, 6, shortest_routes=1.0, graph_starts=1.0), 400, seed=2)
    np.testing.assert_array_equal(moved.goals, own.goals)  # the same goals, other starts

    def cells(frames):
        return [tuple(int(v) for v in np.argwhere(f[0] == AGENT)[0]) for f in frames]

    crossing = 0
    for start, goal, actions, length, walk, walk_length in zip(
            cells(moved.obs), cells(moved.goals), moved.actions, moved.lengths, moved.walk_actions, moved.walk_lengths):
        env.reset()
        env.pos = start
        for action in actions[:length]:
            env.step(int(action))
        assert env.pos == goal and length == max(abs(goal[1] - start[1]), 1) <= 6  # real, shortest, within reach
        assert actions[length] == 4 and walk[walk_length] == 4 and 1 <= walk_length <= 6
        crossing += (start[1] - 4) * (goal[1] - 4) < 0  # cells only A visited to cells only B visited, or back
    assert crossing > 40
    assert sum((s[1] - 4) * (g[1] - 4) < 0 for s, g in zip(cells(own.obs), cells(own.goals))) == 0
    with pytest.raises(ValueError, match="needs shortest_routes"):
        shard.sample(BatchQuery("pairs", 0, 6, graph_starts=1.0), 4, seed=0)


def _corridor_walk(env: GridWorld, moves: list[int]):
    env.reset()
    builder = TrajectoryBuilder("grid", env.frame(), env.goal_features())
    for action in moves:
        step = env.step(action)
        builder.add(action, step.reward, step.terminated, env.frame(), env.goal_features())
    return builder.finish()


def test_state_pairs_draw_goals_uniformly_over_the_frames_held_along_real_shortest_routes():
    """Nine walks stay in a corridor's left half, one reaches its right end: trajectory pairs almost never
    aim at the right half, state pairs aim at every cell alike, and an evicted walk's cells go with it."""
    env = GridWorld("#########\n#S......#\n#########")  # one corridor, cells (1, 1) .. (1, 7); 2 left, 3 right
    far = _corridor_walk(env, [3] * 6 + [2] * 6)
    near = [_corridor_walk(env, [3, 3, 2, 2] * 3) for _ in range(9)]
    shard = ReplayShard(ReplayConfig(capacity=130, num_actions=4), 0)  # holds 10 walks of 12 steps
    for traj in [far, *near]:
        shard.insert(traj)

    def cells(frames):
        return [int(np.argwhere(f[0] == AGENT)[0][1]) for f in frames]

    own = shard.sample(BatchQuery("pairs", 0, 12, shortest_routes=1.0), 700, seed=1)
    drawn = shard.sample(BatchQuery("pairs", 0, 12, shortest_routes=1.0, state_pairs=1.0), 700, seed=1)
    for start, goal, actions, length, walk, walk_length in zip(
            cells(drawn.obs), cells(drawn.goals), drawn.actions, drawn.lengths, drawn.walk_actions, drawn.walk_lengths):
        env.reset()
        env.pos = (1, start)
        for action in actions[:length]:
            env.step(int(action))
        assert env.pos == (1, goal) and length == abs(goal - start) >= 1  # real, shortest, never the start
        assert actions[length] == 4 and walk[walk_length] == 4 and walk_length >= 1
    goal_counts = np.bincount(cells(drawn.goals), minlength=8)[1:]
    assert goal_counts.min() > 700 / 7 * 0.6  # each of the 7 cells about a seventh of the goals
    assert np.mean(np.array(cells(own.goals)) >= 5) < 0.08  # the trajectories' own pairs: cells 5-7 rarely
    shard.insert(_corridor_walk(env, [3, 3, 2, 2] * 3))  # evicts the far walk: only cells 1-3 are held now
    after = shard.sample(BatchQuery("pairs", 0, 12, shortest_routes=1.0, state_pairs=1.0), 200, seed=1)
    assert set(cells(after.goals)) == set(cells(after.obs)) == {1, 2, 3}


def test_state_pairs_depend_on_the_trajectories_held_not_on_the_shard_history():
    """A shard that evicted a walk and built its graph early draws what a shard that only ever held the
    survivors draws when it builds its graph at the first request: recovery rebuilds it that way."""
    env = GridWorld("#########\n#...S...#\n#########")
    walks = [_corridor_walk(env, moves) for moves in ([2, 2, 2, 3], [3, 3, 3, 2, 2], [2, 3, 3, 3, 3, 2])]
    query = BatchQuery("pairs", 0, 6, shortest_routes=1.0, state_pairs=0.5)
    early = ReplayShard(ReplayConfig(capacity=12, num_actions=4), 0)
    early.insert(_corridor_walk(env, [2, 2, 3, 3, 3, 3]))
    early.insert(walks[0])
    early.sample(query, 8, seed=0)  # builds the graph, kept in step from here
    for walk in walks[1:]:
        early.insert(walk)  # evicts the first walk on the way
    late = ReplayShard(ReplayConfig(capacity=12, num_actions=4), 0)
    for walk in walks:
        late.insert(walk)
    a, b = early.sample(query, 300, seed=5), late.sample(query, 300, seed=5)
    for field in ("obs", "goals", "actions", "lengths", "walk_actions", "walk_lengths"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    with pytest.raises(ValueError, match="needs shortest_routes"):
        late.sample(BatchQuery("pairs", 0, 6, state_pairs=1.0), 4, seed=0)
    stuck = ReplayShard(ReplayConfig(capacity=12, num_actions=4), 0)
    stuck.insert(_corridor_walk(GridWorld("#####\n#S..#\n#####"), [0, 1, 2, 0]))  # bumps only: one frame
    own = stuck.sample(BatchQuery("pairs", 0, 4, shortest_routes=1.0), 8, seed=1)
    drawn = stuck.sample(BatchQuery("pairs", 0, 4, shortest_routes=1.0, state_pairs=1.0), 8, seed=1)
    np.testing.assert_array_equal(drawn.actions, own.actions)  # no pair of two frames: the trajectory's pairs
