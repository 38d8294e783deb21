"""The sampling math: uniform draws over every valid pair or window, never materialised.

Each trajectory's items get ranks 0..count-1; counts are prefix-summed, one uniform integer over
the total picks (trajectory, rank) by binary search, and a closed form turns a pair rank into
(i, j). Every valid item of the buffer is therefore equally likely, whatever the episode lengths,
at O(B log K) per batch of B from K trajectories.

Token convention for pair batches (discrete actions 0..n-1): END = n, PAD = n + 1.
"""
from __future__ import annotations

import numpy as np


def end_token(num_actions: int) -> int:
    return num_actions


def pad_token(num_actions: int) -> int:
    return num_actions + 1


def pair_counts(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """Pairs (i < j <= T, j - i <= max_len) per trajectory of T transitions (frames 0..T)."""
    t = np.asarray(lengths, np.int64)
    m = np.minimum(t, max_len)
    return m * (t + 1) - m * (m + 1) // 2


def window_counts(lengths: np.ndarray, length: int) -> np.ndarray:
    """Windows of ``length`` consecutive transitions inside each trajectory."""
    return np.maximum(np.asarray(lengths, np.int64) - length + 1, 0)


def draw(cum_counts: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform over all items: returns (group index, rank within the group) for n draws."""
    u = rng.integers(0, int(cum_counts[-1]), size=n, dtype=np.int64)
    k = np.searchsorted(cum_counts, u, side="right")
    before = np.where(k > 0, cum_counts[np.maximum(k - 1, 0)], 0)
    return k, u - before


def pair_from_rank(lengths: np.ndarray, max_len: int, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bijection rank -> (i, j) over a trajectory's pairs, vectorised.

    Starts i = 0..T-m (m = min(T, max_len)) each have m goals: a rectangle indexed by divmod.
    The remaining starts have m-1, m-2, ..., 1 goals: a triangle whose rows, taken in reverse,
    have 1, 2, ... items, so the row of reversed rank q is the integer root of s(s+1)/2 <= q.
    """
    t = np.asarray(lengths, np.int64)
    r = np.asarray(rank, np.int64)
    m = np.minimum(t, max_len)
    rect = m * (t - m + 1)
    in_rect = r < rect
    m_safe = np.maximum(m, 1)
    i_rect, j_rect = r // m_safe, r // m_safe + 1 + r % m_safe
    q = np.where(in_rect, 0, m * (m - 1) // 2 - 1 - (r - rect))
    s = np.floor((np.sqrt(8.0 * q + 1.0) - 1.0) / 2.0).astype(np.int64)
    s += (s + 1) * (s + 2) // 2 <= q  # exact integer root despite float rounding
    s -= s * (s + 1) // 2 > q
    p = q - s * (s + 1) // 2
    i_tri = t - m + 1 + (m - 2 - s)
    j_tri = i_tri + 1 + p
    return np.where(in_rect, i_rect, i_tri), np.where(in_rect, j_rect, j_tri)


def stack_offsets(frame: np.ndarray, stack: int) -> np.ndarray:
    """Frame offsets of the stack ending at ``frame`` (oldest first), clamped at the episode start
    (copies of frame 0, as the env fills its stack at reset). Shape (..., stack)."""
    back = np.arange(stack - 1, -1, -1, dtype=np.int64)
    return np.maximum(np.asarray(frame, np.int64)[..., None] - back, 0)


def transition_graph(keys: np.ndarray, actions: np.ndarray, lengths: np.ndarray) -> dict[int, dict[int, int]]:
    """frame -> {next frame: the first action seen to take it there}, over trajectories' transitions:
    row r's frame t --actions[r, t]--> frame t+1 for t < lengths[r] (equal keys: equal frames)."""
    moves: dict[int, dict[int, int]] = {}
    for row_keys, row_actions, length in zip(keys.tolist(), actions.tolist(), lengths.tolist()):
        for t in range(length):
            moves.setdefault(row_keys[t], {}).setdefault(row_keys[t + 1], row_actions[t])
    return moves


def shortest_route(moves: dict[int, dict[int, int]], start: int, goal: int) -> list[int]:
    """The fewest actions from frame ``start`` to frame ``goal`` along the transitions in ``moves``
    (``transition_graph``), which must hold a route between them (the pair's own walk).

    Every step is one the env really made, so in a deterministic env whose frame is its whole state
    the route is as real as the walk it shortens, whichever trajectory made each step; it never holds
    a loop. At least one action: a pair whose goal is its start gets the shortest loop back to it (one
    bump into a wall, where there is one).
    """
    reached_from = _breadth_first(moves, start, len(moves) + 1, stop=goal)
    if goal not in reached_from:
        raise ValueError(f"no route from frame {start} to frame {goal} in the transitions given")
    route, node = [], goal
    while not route or node != start:
        action, node = reached_from[node]
        route.append(action)
    return route[::-1]


def _breadth_first(graph: dict[int, dict[int, int]], source: int, depth: int,
                   stop: int | None = None) -> dict[int, tuple[int, int]]:
    """node -> (action, the node it was first reached from) for the nodes 1..``depth`` edges from
    ``source``, level by level, ending after the level that reaches ``stop``. ``stop`` may be the source
    itself: it is then reached again, by the shortest loop back."""
    reached_from: dict[int, tuple[int, int]] = {}
    frontier, seen = [source], {source} - {stop}
    for _ in range(depth):
        reached = []
        for node in frontier:
            for nxt, action in graph.get(node, {}).items():
                if nxt not in seen:
                    seen.add(nxt)
                    reached_from[nxt] = (action, node)
                    reached.append(nxt)
        if not reached or stop in reached_from:
            break
        frontier = reached
    return reached_from


def pair_actions(actions: np.ndarray, lengths: np.ndarray, num_actions: int) -> np.ndarray:
    """Real actions up to each length, then END, then PAD; input (B, max_len), output width max_len+1."""
    b, width = actions.shape
    out = np.full((b, width + 1), pad_token(num_actions), np.int64)
    cols = np.arange(width + 1)
    real = cols[None, :width] < lengths[:, None]
    out[:, :width] = np.where(real, actions, out[:, :width])
    out[np.arange(b), lengths] = end_token(num_actions)
    return out


def reverse_graph(moves: dict[int, dict[int, int]]) -> dict[int, dict[int, int]]:
    """frame -> {previous frame: the action that took it here}: ``moves`` with its edges turned round."""
    back: dict[int, dict[int, int]] = {}
    for node, nexts in moves.items():
        for nxt, action in nexts.items():
            back.setdefault(nxt, {})[node] = action
    return back


def routes_to(back: dict[int, dict[int, int]], goal: int, max_len: int) -> dict[int, tuple[int, int]]:
    """frame -> (action, next frame) of a shortest route to ``goal``, for every frame of the graph
    (``reverse_graph``) with a route of 1..``max_len`` actions; follow the pairs to the goal."""
    return _breadth_first(back, goal, max_len)


def follow(hops: dict[int, tuple[int, int]], start: int, goal: int) -> list[int]:
    """The actions of the route ``routes_to`` found from ``start`` to ``goal``."""
    route, node = [], start
    while node != goal:
        action, node = hops[node]
        route.append(action)
    return route
