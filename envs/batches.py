"""Batches the replay service hands to learners (agents take batches, never the replay itself)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class BatchQuery:
    """What a learner asks the replay for: which items, how many, how long (no rates, no model)."""

    kind: Literal["pairs", "windows"]
    batch_size: int
    length: int  # max pair distance (pairs) or window length L (windows)
    cross_episodes: bool = False  # windows may span an episode boundary (marked by is_first)
    # pairs: this share of them (drawn at random) get the fewest actions along the transitions the
    # batch's trajectories made within `length` steps of its pairs (sampling.shortest_route) instead of
    # the walk itself; for deterministic envs whose frame is the whole state (the grid).
    shortest_routes: float = 0.0
    # pairs: this share of the routed ones starts from any frame of that graph with a route of at most
    # `length` steps to the goal (hindsight relabeling across the batch's trajectories), not its own start.
    graph_starts: float = 0.0
    # pairs: this share of the other routed ones is drawn from every distinct frame the shard holds: the goal
    # uniform over them, the start uniform over those with a route of at most `length` steps to it, along
    # every transition the shard's trajectories made (replay/state_graph.py).
    state_pairs: float = 0.0


@dataclass
class PairBatch:
    """Hindsight-relabeled (s_i, a_i..a_{j-1}, s_j) tuples for GLAMOR.

    ``actions[b, :lengths[b]]`` are the real actions, ``actions[b, lengths[b]]`` is the end token,
    everything after it the pad token; width = max_len + 1.
    """

    obs: np.ndarray  # (B, stack*C, H, W) uint8: observation stack at i
    goals: np.ndarray  # (B, C, H, W) uint8: frame at j
    actions: np.ndarray  # (B, max_len + 1) int64
    lengths: np.ndarray  # (B,) int64: j - i >= 1
    # The walk itself, as actions/lengths: the same arrays unless a shortest route replaced them
    # (BatchQuery.shortest_routes), so that an action prior can still learn the behaviour.
    walk_actions: np.ndarray | None = None
    walk_lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.walk_actions is None:
            self.walk_actions, self.walk_lengths = self.actions, self.lengths

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class SequenceBatch:
    """Windows of L transitions (Dreamer sequences, ALM K-step windows).

    ``obs[:, t]`` is the observation before ``actions[:, t]``; ``obs[:, L]`` the one after the last.
    ``is_first[:, t]`` marks an episode start (only possible inside a window when crossing episodes
    was asked for). ``terminals[:, t]``: the env terminated after ``actions[:, t]``.
    """

    obs: np.ndarray  # (B, L+1, *obs_shape) uint8 pixels (stacked) or float32 states
    actions: np.ndarray  # (B, L) int64 or (B, L, A) float32
    rewards: np.ndarray  # (B, L) float32
    terminals: np.ndarray  # (B, L) bool
    is_first: np.ndarray  # (B, L+1) bool

    def __len__(self) -> int:
        return len(self.rewards)
