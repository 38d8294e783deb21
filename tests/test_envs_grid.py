import numpy as np
import pytest

from pixelplan.envs import make_env
from pixelplan.envs.gridworld import AGENT, MOVES, GridWorld


def test_grid_shapes_start_and_exact_features():
    env = make_env("grid")
    obs = env.reset()
    assert obs.shape == env.spec.obs_shape == (1, 9, 9) and obs.dtype == np.uint8
    assert tuple(env.goal_features()) == (4, 4)  # centre of the 7x7 room (walls around)
    assert obs[0, 4, 4] == AGENT and (obs == AGENT).sum() == 1
    step = env.step(3)  # right
    assert tuple(env.goal_features()) == (4, 5) and step.obs[0, 4, 5] == AGENT
    for _ in range(10):
        env.step(3)
    assert tuple(env.goal_features()) == (4, 7)  # blocked by the wall


def test_grid_truncates_exactly_at_time_limit():
    env = make_env("grid", time_limit=5)
    env.reset()
    flags = [env.step(0).truncated for _ in range(5)]
    assert flags == [False] * 4 + [True]
    with pytest.raises(RuntimeError):
        env.step(0)


def test_shortest_paths_are_exact_on_empty_room():
    env = make_env("grid")
    for r in range(1, 8):
        for c in range(1, 8):
            assert env.shortest_path_length(np.array([r, c])) == abs(r - 4) + abs(c - 4)


def test_four_rooms_walls_lengthen_paths():
    env = make_env("grid:four-rooms")
    assert env.spec.obs_shape == (1, 13, 13)
    start = env.start
    assert env.shortest_path_length(np.array([4, 3])) > abs(4 - start[0]) + abs(3 - start[1])


@pytest.mark.parametrize("layout", ["maze", "comb"])
def test_corridor_layouts_have_dead_ends_and_exact_shortest_paths(layout):
    env = make_env(f"grid:{layout}")
    floor = np.argwhere(~env.walls)
    dist = env.distances(env.start)
    assert (dist[~env.walls] >= 0).all()  # every floor cell is reachable from the start
    neighbours = [sum(not env.walls[r + dr, c + dc] for dr, dc in MOVES) for r, c in floor]
    assert neighbours.count(1) >= 4  # dead ends
    detours = [env.shortest_path_length(cell) - np.abs(cell - env.start).sum() for cell in floor]
    assert max(detours) >= 4  # walls force detours: the Manhattan distance is no guide
    assert env.spec.time_limit >= dist.max()  # every goal can be reached within an episode


def test_ascii_map_string_and_file(tmp_path):
    text = "#####\n#S..#\n#####\n"
    env = GridWorld(text)
    assert env.start == (1, 1) and env.spec.obs_shape == (1, 3, 5)
    path = tmp_path / "corridor.txt"
    path.write_text(text)
    env2 = make_env(f"grid:{path}", cell_px=3)
    assert env2.spec.obs_shape == (1, 9, 15)
    assert env2.known_feature_ranges().tolist() == [0.0, 2.0]


@pytest.mark.parametrize("bad", ["#x#\n", "###\n###\n", "# only a comment\n"])
def test_bad_maps_are_rejected(bad):
    with pytest.raises(ValueError):
        GridWorld(bad)


def test_reward_cell_terminates():
    env = make_env("grid", reward_cell=(4, 5))
    env.reset()
    step = env.step(3)
    assert step.reward == 1.0 and step.terminated
    with pytest.raises(ValueError):
        make_env("grid", reward_cell=(0, 0))  # a wall
