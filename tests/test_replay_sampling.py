"""The sampling math on its own: exact bijections and counts, stacking and token layout."""
import numpy as np
import pytest

from pixelplan.distributed.replay import sampling


def brute_pairs(length: int, max_len: int) -> set[tuple[int, int]]:
    return {(i, j) for i in range(length + 1) for j in range(i + 1, length + 1) if j - i <= max_len}


@pytest.mark.parametrize("max_len", [1, 2, 3, 7, 50])
def test_pair_rank_is_a_bijection_onto_all_valid_pairs(max_len):
    for length in range(1, 30):
        count = int(sampling.pair_counts(np.array([length]), max_len)[0])
        i, j = sampling.pair_from_rank(np.full(count, length), max_len, np.arange(count))
        pairs = list(zip(i.tolist(), j.tolist()))
        assert len(set(pairs)) == count == len(brute_pairs(length, max_len))
        assert set(pairs) == brute_pairs(length, max_len)


def test_pair_rank_stays_exact_for_huge_trajectories():
    length, max_len = 10**8, 10**6
    count = int(sampling.pair_counts(np.array([length]), max_len)[0])
    rank = np.array([0, count - 1, count - 2, count - max_len * (max_len - 1) // 2, count // 3])
    i, j = sampling.pair_from_rank(np.full(len(rank), length), max_len, rank)
    assert (i[0], j[0]) == (0, 1) and (i[1], j[1]) == (length - 1, length) and (i[2], j[2]) == (length - 2, length - 1)
    assert np.all((i < j) & (j <= length) & (j - i <= max_len))


def test_window_counts_and_draw_cover_every_item_once():
    lengths = np.array([3, 10, 1, 6])
    counts = sampling.window_counts(lengths, 4)
    assert counts.tolist() == [0, 7, 0, 3]
    k, r = sampling.draw(np.cumsum(counts), 5000, np.random.default_rng(0))
    assert set(zip(k.tolist(), r.tolist())) == {(1, x) for x in range(7)} | {(3, x) for x in range(3)}


def test_stack_offsets_clamp_at_episode_start_like_env_reset():
    assert sampling.stack_offsets(np.array([0, 2, 5]), 4).tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [2, 3, 4, 5]]


def test_pair_actions_put_end_then_pad_after_the_real_actions():
    actions = np.array([[1, 2, 0], [3, 3, 3]])
    out = sampling.pair_actions(actions, np.array([1, 3]), num_actions=4)
    assert out.tolist() == [[1, 4, 5, 5], [3, 3, 3, 4]]
    assert (sampling.end_token(4), sampling.pad_token(4)) == (4, 5)


@pytest.mark.parametrize("keys, expected", [
    ([0, 1, 0, 2, 3, 2, 4], [2, 5]),  # two loops cut out
    ([5, 6, 7, 5, 7, 8], [3, 4]),  # a shortcut the walk took later: 5 -> 7 directly at t = 3
    ([0, 0, 1], [1]),  # a bump into a wall is dropped
    ([0, 1, 0], [0, 1]),  # the goal is the start: the shortest loop back, never an empty route
    ([5, 6, 7, 8, 6, 9, 5], [0, 4, 5]),
    ([0, 0], [0]),  # ... which is the bump itself where there is one
])
def test_shortest_route_takes_the_fewest_of_the_walks_own_transitions(keys, expected):
    actions = np.arange(len(keys) - 1, dtype=np.int64)
    moves = sampling.transition_graph(np.array([keys]), actions[None], np.array([len(actions)]))
    assert sampling.shortest_route(moves, keys[0], keys[-1]) == expected


def test_shortest_route_takes_steps_another_trajectory_made_and_stops_at_each_rows_length():
    keys = np.array([[0, 1, 2, 3, 4], [1, 3, 9, 9, 9]])  # row 1 went 1 -> 3 directly, then 3 -> 9
    actions = np.array([[0, 1, 2, 3], [7, 8, 5, 5]])
    moves = sampling.transition_graph(keys, actions, np.array([4, 2]))  # row 1's padding is no transition
    assert sampling.shortest_route(moves, 0, 4) == [0, 7, 3]
    assert sampling.shortest_route(moves, 1, 9) == [7, 8]
    assert 9 not in moves  # 9 -> 9 lies past row 1's length
    with pytest.raises(ValueError, match="no route"):
        sampling.shortest_route(moves, 4, 0)


def test_routes_to_a_goal_reach_it_from_every_frame_within_max_len_and_no_farther():
    keys = np.array([[0, 1, 2, 3, 4], [1, 3, 9, 9, 9]])  # as above: 0 -> 1 -> 3 -> 4 is the shortest way to 4
    actions = np.array([[0, 1, 2, 3], [7, 8, 5, 5]])
    moves = sampling.transition_graph(keys, actions, np.array([4, 2]))
    hops = sampling.routes_to(sampling.reverse_graph(moves), 4, max_len=3)
    assert set(hops) == {0, 1, 2, 3}  # 9 has no route to 4; 4 itself is the goal, no start
    assert sampling.follow(hops, 0, 4) == sampling.shortest_route(moves, 0, 4) == [0, 7, 3]
    assert sampling.follow(hops, 2, 4) == [2, 3]
    assert set(sampling.routes_to(sampling.reverse_graph(moves), 4, max_len=2)) == {1, 2, 3}  # 0 is 3 steps away
