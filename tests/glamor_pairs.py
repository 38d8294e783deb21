"""Relabeled pairs from random grid walks, shared by the GLAMOR tests."""
import numpy as np

from pixelplan.envs.batches import PairBatch


def grid_batch(env, rng, size=32, max_len=8) -> PairBatch:
    """obs at i, frame at j, actions i..j-1, then END, then PAD (the replay's layout)."""
    n = env.spec.action_size
    obs, goals = [], []
    actions = np.full((size, max_len + 1), n + 1, np.int64)
    lengths = rng.integers(1, max_len + 1, size)
    for b, k in enumerate(lengths):
        obs.append(env.reset())
        acts = rng.integers(n, size=k)
        for a in acts:
            env.step(int(a))
        goals.append(env.frame())
        actions[b, :k], actions[b, k] = acts, n
    return PairBatch(np.stack(obs), np.stack(goals), actions, lengths)
