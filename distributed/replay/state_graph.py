"""Every distinct frame a replay shard holds, and every transition its trajectories made between them.

Hindsight pairs drawn from trajectories meet the states the data visits most: on four-rooms the
start's room, so a goal three rooms away is almost never a pair's goal, and the IDM never learns the
detours to it. Drawn from this graph instead, a pair's goal is any distinct frame the shard holds
(each once, however often it was visited) and its start any frame with a route of at most
``max_len`` actions to it, labelled with the shortest such route: what the IDM would learn if the
data had tried every (cell, goal) pair. For deterministic envs whose frame is the whole state (the
grid): in any other env few frames repeat and the graph is the trajectories themselves.

Nodes are named by a hash of the frame's bytes and every choice runs over sorted names, so a shard
rebuilt from the same trajectories draws the same pairs whichever order it saw them in.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from . import sampling


def frame_key(frame: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class StatePair:
    start: tuple[int, int]  # (trajectory seq, step): a visit of the start frame with a next step
    goal: tuple[int, int]  # (trajectory seq, frame): a visit of the goal frame
    route: list[int]  # the fewest actions from start to goal along the graph's transitions


class StateGraph:
    """Kept in step with a shard's trajectories: ``add`` each one stored, ``remove`` each one evicted
    (oldest first, as the ring evicts)."""

    def __init__(self) -> None:
        self._trajectories: dict[int, tuple[list[int], list[int]]] = {}  # seq -> (its frames' nodes, its actions)
        self._visits: dict[int, int] = {}  # node -> frames stored with it
        self._last_visit: dict[int, tuple[int, int]] = {}  # node -> its latest (seq, frame)
        self._last_step: dict[int, tuple[int, int]] = {}  # node -> its latest (seq, step) with a next step
        self._edges: dict[tuple[int, int, int], int] = {}  # (node, next node, action) -> transitions

    def add(self, seq: int, frames: np.ndarray, actions: np.ndarray) -> None:
        keys, actions = [frame_key(f) for f in frames], np.asarray(actions).tolist()
        self._trajectories[seq] = keys, actions
        for t, node in enumerate(keys):
            self._visits[node] = self._visits.get(node, 0) + 1
            self._last_visit[node] = (seq, t)
        for t, action in enumerate(actions):
            self._last_step[keys[t]] = (seq, t)
            edge = (keys[t], keys[t + 1], action)
            self._edges[edge] = self._edges.get(edge, 0) + 1

    def remove(self, seq: int) -> None:
        keys, actions = self._trajectories.pop(seq)
        for node in keys:
            self._visits[node] -= 1
            if not self._visits[node]:
                del self._visits[node], self._last_visit[node]
        for t, action in enumerate(actions):
            if self._last_step.get(keys[t], (seq + 1,))[0] <= seq:  # evicted oldest first: no later step
                del self._last_step[keys[t]]
            edge = (keys[t], keys[t + 1], action)
            self._edges[edge] -= 1
            if not self._edges[edge]:
                del self._edges[edge]

    def can_draw(self) -> bool:
        """Whether some transition leads from one frame to another (a pair needs a start and a goal)."""
        return any(node != nxt for node, nxt, _ in self._edges)

    def pairs(self, n: int, max_len: int, rng: np.random.Generator) -> list[StatePair]:
        """``n`` pairs: a goal uniform over the frames with a route to them, a start uniform over the frames
        with a route of 1..``max_len`` actions to that goal."""
        back: dict[int, dict[int, int]] = {}
        for node, nxt, action in sorted(self._edges):  # sorted: the same parents, whatever the insert order
            back.setdefault(nxt, {}).setdefault(node, action)
        goals = sorted(v for v, parents in back.items() if set(parents) - {v})  # another frame leads there
        if not goals:
            raise ValueError("no transition leads from one frame to another: check can_draw first")
        out = []
        for goal in (goals[g] for g in rng.integers(len(goals), size=n).tolist()):
            hops = sampling.routes_to(back, goal, max_len)  # never empty: a parent is one action away
            starts = sorted(hops)
            start = starts[int(rng.integers(len(starts)))]
            out.append(StatePair(self._last_step[start], self._last_visit[goal], sampling.follow(hops, start, goal)))
        return out
