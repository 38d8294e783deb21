"""Chi-square tests: pairs and windows are uniform over every valid item, within and across shards.

Each test runs the same check on a naive sampler (uniform trajectory or shard first), which
over-weights short episodes; the check must reject it by a wide margin, so it can fail.
"""
import math

import numpy as np

from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.replay import ReplayConfig, ReplayShard, ShardedReplay
from pixelplan.envs.batches import BatchQuery

LENGTHS = [1, 2, 3, 5, 40, 90]  # very different episode lengths
MAX_LEN = 8
PAIRS = BatchQuery("pairs", batch_size=1000, length=MAX_LEN)
DRAWS_PER_CELL = 60


def chi_square_p(observed: dict, cells: list) -> float:
    """Upper-tail p-value of Pearson's statistic against the uniform law (Wilson-Hilferty)."""
    assert set(observed) <= set(cells), "sampled an item that is not a valid pair/window"
    n, k = sum(observed.values()), len(cells)
    expected = n / k
    stat = sum((observed.get(c, 0) - expected) ** 2 / expected for c in cells)
    dof = k - 1
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def all_pairs(tags_lengths) -> list:
    return [(tag, i, j) for tag, t in tags_lengths for i in range(t + 1) for j in range(i + 1, min(t, i + MAX_LEN) + 1)]


def tally(batches, synth) -> dict:
    counts: dict = {}
    for batch in batches:
        tag, i = synth.decode(batch.obs)
        _, j = synth.decode(batch.goals)
        for key in zip(tag.tolist(), i.tolist(), j.tolist()):
            counts[key] = counts.get(key, 0) + 1
    return counts


def shard_with(synth, tags_lengths, shard_id=0, shards=1):
    shard = ReplayShard(ReplayConfig(capacity=1000 * shards, shards=shards, num_actions=4), shard_id)
    for tag, length in tags_lengths:
        shard.insert(synth.trajectory(length, tag))
    return shard


def test_pairs_uniform_over_all_pairs_and_naive_sampler_fails(synth):
    episodes = list(enumerate(LENGTHS))
    cells = all_pairs(episodes)
    n = DRAWS_PER_CELL * len(cells)
    shard = shard_with(synth, episodes)
    p_shard = chi_square_p(tally([shard.sample(PAIRS, n, seed=1)], synth), cells)

    rng = np.random.default_rng(1)  # naive: uniform episode, then uniform pair inside it
    per_episode = {tag: [c for c in cells if c[0] == tag] for tag, _ in episodes}
    naive: dict = {}
    for tag in rng.integers(len(episodes), size=n):
        key = per_episode[tag][rng.integers(len(per_episode[tag]))]
        naive[key] = naive.get(key, 0) + 1
    p_naive = chi_square_p(naive, cells)

    assert p_shard > 1e-3, p_shard
    assert p_naive < 1e-30, p_naive


def test_union_of_unequal_shards_is_uniform_and_equal_split_fails(synth):
    placement = [[(0, 1), (1, 2), (2, 3), (3, 5)], [(4, 40)], [(5, 90)]]  # 25 / 292 / 692 pairs
    shards = [shard_with(synth, eps, s, shards=3) for s, eps in enumerate(placement)]
    replay = ShardedReplay([LocalHandle(s) for s in shards], shards[0].config)
    cells = all_pairs([e for eps in placement for e in eps])
    rounds = DRAWS_PER_CELL * len(cells) // PAIRS.batch_size
    p_union = chi_square_p(tally([replay.sample(PAIRS, seed=r) for r in range(rounds)], synth), cells)

    third = PAIRS.batch_size // 3  # naive: the same number of items from every shard
    equal = [s.sample(PAIRS, third, seed=r) for r in range(rounds) for s in shards]
    p_equal = chi_square_p(tally(equal, synth), cells)

    assert p_union > 1e-3, p_union
    assert p_equal < 1e-30, p_equal


def test_windows_uniform_within_and_across_episodes(synth):
    episodes = list(enumerate(LENGTHS))
    shard = shard_with(synth, episodes)
    length = 3
    for cross in (False, True):
        request = BatchQuery("windows", 1000, length, cross_episodes=cross)
        if cross:  # any start in the shard's step stream with `length` steps after it
            stream = [(tag, i) for tag, t in episodes for i in range(t)]
            cells = stream[:len(stream) - length + 1]
        else:
            cells = [(tag, i) for tag, t in episodes for i in range(t - length + 1)]
        batch = shard.sample(request, DRAWS_PER_CELL * len(cells), seed=2)
        tag, frame = synth.decode(batch.obs[:, 0])
        counts: dict = {}
        for key in zip(tag.tolist(), frame.tolist()):
            counts[key] = counts.get(key, 0) + 1
        assert chi_square_p(counts, cells) > 1e-3
