"""One run seed -> an independent random stream for every part of a run that draws random numbers.

Streams are derived with numpy's SeedSequence from (run seed, part, index), so they are reproducible,
never overlap between parts, and adding a worker or learner does not shift anyone else's stream.

What the run seed controls:
- ``agent``: the learners' initial weights (every rank starts from the same ones) and their torch RNG;
- ``learner``/``learner-replay`` (per rank): the learner's own noise and which replay items it samples,
  so data-parallel learners draw different batches;
- ``worker``/``worker-agent`` (per worker): env resets, training-goal draws, ε-greedy and exploration noise;
- ``planner``: the planner service's candidate sampling;
- ``evaluation``: evaluation episodes' resets and the evaluator's planning;
- ``train-goals``: the training goal set (GLAMOR).
Evaluation goals are fixed per env (``goalsets.EVAL_GOAL_SEED``), so every seed is scored on the same goals.
Replay shards draw nothing of their own: they sample with the seeds the learners send.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

PARTS = ("agent", "learner", "learner-replay", "worker", "worker-agent", "planner", "evaluation", "train-goals")


@dataclass(frozen=True)
class SeedTree:
    root: int

    def __post_init__(self) -> None:
        if isinstance(self.root, bool) or not isinstance(self.root, int) or self.root < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.root!r}")

    def seed(self, part: str, index: int = 0) -> int:
        """A 31-bit seed for ``part`` (one of PARTS), instance ``index`` (31 bits: ALE and MuJoCo take int32 seeds)."""
        if part not in PARTS:
            raise ValueError(f"unknown seed part {part!r}; parts: {PARTS}")
        state = np.random.SeedSequence([self.root, zlib.crc32(part.encode()), index]).generate_state(1, np.uint32)
        return int(state[0] >> np.uint32(1))

    def summary(self, workers: int, learners: int) -> dict[str, int | list[int]]:
        """Every seed a run uses, for config.json (what a reader checks when two runs differ)."""
        per = {"learner": learners, "learner-replay": learners, "worker": workers, "worker-agent": workers}
        return {part: [self.seed(part, i) for i in range(per[part])] if part in per else self.seed(part)
                for part in PARTS}
