"""Trajectories in preallocated FIFO rings: each frame stored once, oldest whole episodes evicted.

All per-step arrays share one ring of frame slots; trajectory k occupies slots
``start_k .. start_k + T_k`` (mod the ring size): frame f sits in slot start_k + f, and the action,
reward and terminal taken at frame f share that slot (the last frame's slot carries none). Samplers
speak in logical (trajectory, offset) coordinates, so samples never depend on where the ring wrapped:
a recovered shard reproduces the original's samples byte for byte.
"""
from __future__ import annotations

import numpy as np

from pixelplan.envs.trajectory import Trajectory

_START, _LEN, _SEQ = 0, 1, 2


class TrajectoryRing:
    def __init__(self, capacity: int, frame_slots: int) -> None:
        self.capacity = capacity  # transitions
        self.frame_slots = frame_slots
        self.schema: dict | None = None  # fixed by the first trajectory
        self.frames = self.actions = self.rewards = self.terminals = None
        self._row_bytes = 0  # bytes per step of a serialised trajectory of this schema (frames, actions, ...)
        self._meta = np.zeros((64, 3), np.int64)  # rows head..tail-1: start slot, length, sequence id
        self._head = self._tail = 0
        self._write = 0  # next free slot
        self.transitions = 0
        self.used_slots = 0

    # -- contents ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._tail - self._head

    @property
    def lengths(self) -> np.ndarray:
        return self._meta[self._head:self._tail, _LEN]

    @property
    def starts(self) -> np.ndarray:
        return self._meta[self._head:self._tail, _START]

    @property
    def seqs(self) -> np.ndarray:
        return self._meta[self._head:self._tail, _SEQ]

    def max_trajectory_bytes(self) -> int:
        """Decompressed size of the largest trajectory that fits (0 before the schema is known)."""
        return (self.capacity + 1) * self._row_bytes

    def nbytes(self) -> int:
        arrays = (self.frames, self.actions, self.rewards, self.terminals, self._meta)
        return sum(a.nbytes for a in arrays if a is not None)

    # -- validation and eviction ------------------------------------------------------------------
    def check(self, traj: Trajectory, like: Trajectory | None = None) -> None:
        """Raise ValueError unless ``traj`` fits this ring's schema and size; while the ring has no schema
        yet, ``like``'s (the first trajectory of a batch) stands in for it."""
        n = len(traj)
        if n > self.capacity or n + 1 > self.frame_slots:
            raise ValueError(f"trajectory of {n} transitions does not fit a shard of capacity {self.capacity} "
                             f"transitions / {self.frame_slots} frames; raise ReplayConfig.capacity")
        want = self.schema if self.schema is not None or like is None else _schema(like)
        if want is not None and _schema(traj) != want:
            got = _schema(traj)
            diff = ", ".join(f"{k} {got[k]} (expected {want[k]})" for k in want if got[k] != want[k])
            raise ValueError(f"trajectory does not match what this shard holds: {diff}")

    def evictions_for(self, n: int) -> int:
        """How many oldest trajectories must go so that one of ``n`` transitions fits."""
        transitions, slots, k = self.transitions, self.used_slots, 0
        lengths = self.lengths
        while transitions + n > self.capacity or slots + n + 1 > self.frame_slots:
            transitions -= lengths[k]
            slots -= lengths[k] + 1
            k += 1
        return k

    # -- mutation ---------------------------------------------------------------------------------
    def evict(self, k: int) -> None:
        if k:
            dropped = self._meta[self._head:self._head + k, _LEN]
            self.transitions -= int(dropped.sum())
            self.used_slots -= int(dropped.sum()) + k
            self._head += k

    def append(self, traj: Trajectory, seq: int) -> None:
        """Store ``traj`` (call ``check`` and ``evict`` first)."""
        if self.schema is None:
            self._allocate(traj)
        n = len(traj)
        slots = (self._write + np.arange(n + 1)) % self.frame_slots
        self.frames[slots] = traj.frames
        self.actions[slots[:-1]] = traj.actions
        self.rewards[slots[:-1]] = traj.rewards
        self.terminals[slots[:-1]] = traj.terminals
        self._push_meta(self._write, n, seq)
        self._write = int(slots[-1] + 1) % self.frame_slots
        self.transitions += n
        self.used_slots += n + 1

    def clear(self) -> None:
        self._head = self._tail = self._write = self.transitions = self.used_slots = 0

    def _allocate(self, traj: Trajectory) -> None:
        self.schema = _schema(traj)
        f = self.frame_slots
        self.frames = np.empty((f, *traj.frames.shape[1:]), traj.frames.dtype)
        self.actions = np.zeros((f, *traj.actions.shape[1:]), traj.actions.dtype)
        self.rewards = np.zeros(f, np.float32)
        self.terminals = np.zeros(f, bool)
        self._row_bytes = (traj.frames[0].nbytes + traj.actions[0].nbytes + traj.features[0].nbytes
                           + traj.rewards.itemsize + traj.terminals.itemsize)

    def _push_meta(self, start: int, length: int, seq: int) -> None:
        if self._tail == len(self._meta):
            live = self._meta[self._head:self._tail].copy()
            if len(live) * 2 > len(self._meta):
                self._meta = np.zeros((len(self._meta) * 2, 3), np.int64)
            self._meta[:len(live)] = live
            self._head, self._tail = 0, len(live)
        self._meta[self._tail] = (start, length, seq)
        self._tail += 1

    # -- gathers in logical coordinates -----------------------------------------------------------
    def slots(self, traj_index: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Ring slots of (trajectory index into the live order, frame/step offset), any shape."""
        return (self.starts[traj_index] + offset) % self.frame_slots

    def stacked(self, traj_index: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Frames at ``offsets`` (..., stack) concatenated on the channel axis: (..., stack*C, ...)."""
        lead = offsets.shape[:-1]
        frames = self.frames[self.slots(traj_index[..., None], offsets)]
        shape = self.frames.shape[1:]
        return frames.reshape(*lead, offsets.shape[-1] * shape[0], *shape[1:])


def _schema(traj: Trajectory) -> dict:
    return {
        "frames": f"{traj.frames.dtype} {tuple(traj.frames.shape[1:])}",
        "actions": f"{traj.actions.dtype} {tuple(traj.actions.shape[1:])}",
        "stack": traj.stack,
    }
