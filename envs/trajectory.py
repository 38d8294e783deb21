"""The trajectory record shared by workers, replay, Redis and the network.

Frames are stored once (never as stacks). The binary form is versioned, checksummed and
zstd-compressed, so corrupt, truncated or foreign bytes fail loudly instead of training on junk.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

MAGIC = b"PXTR"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sHII")  # magic, version, header length, crc32 of everything after
_ARRAYS = ("frames", "actions", "rewards", "terminals", "features")


class TrajectoryError(ValueError):
    """Raised for malformed trajectories or bytes."""


@dataclass
class Trajectory:
    """One episode: ``len(frames) == len(actions) + 1``; frame i is the state before action i."""

    env_id: str
    frames: np.ndarray  # (T+1, *frame_shape) uint8 pixels or float32 states
    actions: np.ndarray  # (T,) int64 or (T, A) float32
    rewards: np.ndarray  # (T,) float32
    terminals: np.ndarray  # (T,) bool: the env terminated after action i
    features: np.ndarray  # (T+1, F) float32 goal features of each frame
    stack: int = 1
    worker_id: int = 0
    policy_version: int = 0
    extra: dict = field(default_factory=dict)  # small JSON-able metadata (goal index, seed, ...)

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        """Number of transitions."""
        return len(self.actions)

    def validate(self) -> None:
        n = len(self.actions)
        if n < 1:
            raise TrajectoryError(f"{self.env_id}: empty trajectory (no transitions)")
        if self.frames.dtype not in (np.uint8, np.float32):
            raise TrajectoryError(f"frames must be uint8 pixels or float32 states, got {self.frames.dtype}")
        if self.actions.dtype not in (np.int64, np.float32):
            raise TrajectoryError(f"actions must be int64 or float32, got {self.actions.dtype}")
        expect = {"frames": n + 1, "rewards": n, "terminals": n, "features": n + 1}
        for name, length in expect.items():
            arr = getattr(self, name)
            if len(arr) != length:
                raise TrajectoryError(f"{self.env_id}: {name} has length {len(arr)}, expected {length}")
        if self.rewards.dtype != np.float32 or self.terminals.dtype != np.bool_:
            raise TrajectoryError("rewards must be float32 and terminals bool")
        if self.features.ndim != 2 or self.features.dtype != np.float32:
            raise TrajectoryError(f"features must be float32 (T+1, F), got {self.features.dtype} {self.features.shape}")
        if self.stack < 1:
            raise TrajectoryError(f"stack must be >= 1, got {self.stack}")

    # -- serialisation ----------------------------------------------------------------------------
    def to_bytes(self, level: int = 3) -> bytes:
        header = {
            "env_id": self.env_id,
            "stack": self.stack,
            "worker_id": self.worker_id,
            "policy_version": self.policy_version,
            "extra": self.extra,
            "arrays": [[n, getattr(self, n).dtype.str, list(getattr(self, n).shape)] for n in _ARRAYS],
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        raw = b"".join(np.ascontiguousarray(getattr(self, n)).tobytes() for n in _ARRAYS)
        body = head + zstandard.ZstdCompressor(level=level).compress(raw)
        return _HEAD.pack(MAGIC, FORMAT_VERSION, len(head), zlib.crc32(body)) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> Trajectory:
        if len(data) < _HEAD.size:
            raise TrajectoryError(f"truncated trajectory: {len(data)} bytes")
        magic, version, head_len, crc = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise TrajectoryError(f"not a pixelplan trajectory (magic {magic!r})")
        if version != FORMAT_VERSION:
            raise TrajectoryError(f"trajectory format version {version}; this build reads {FORMAT_VERSION}")
        body = memoryview(data)[_HEAD.size:]
        if zlib.crc32(body) != crc:
            raise TrajectoryError("corrupt or truncated trajectory bytes (checksum mismatch)")
        header = json.loads(bytes(body[:head_len]))
        raw = zstandard.ZstdDecompressor().decompress(bytes(body[head_len:]))
        arrays, offset = {}, 0
        for name, dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            size = int(np.prod(shape)) * dt.itemsize
            arrays[name] = np.frombuffer(raw, dtype=dt, count=int(np.prod(shape)), offset=offset).reshape(shape)
            offset += size
        if offset != len(raw):
            raise TrajectoryError("trajectory payload size does not match its header")
        return cls(
            env_id=header["env_id"], stack=header["stack"], worker_id=header["worker_id"],
            policy_version=header["policy_version"], extra=header["extra"], **arrays,
        )


class TrajectoryBuilder:
    """Accumulates one episode step by step; the one place a Trajectory is assembled from an env."""

    def __init__(self, env_id: str, frame: np.ndarray, features: np.ndarray, stack: int = 1,
                 worker_id: int = 0, policy_version: int = 0, extra: dict | None = None) -> None:
        self.env_id, self.stack, self.worker_id = env_id, stack, worker_id
        self.policy_version = policy_version
        self.extra = dict(extra or {})
        self.frames, self.features = [frame], [np.asarray(features, np.float32)]
        self.actions: list = []
        self.rewards: list[float] = []
        self.terminals: list[bool] = []

    def __len__(self) -> int:
        return len(self.actions)

    def add(self, action, reward: float, terminated: bool, frame: np.ndarray, features: np.ndarray) -> None:
        self.actions.append(action)
        self.rewards.append(reward)
        self.terminals.append(terminated)
        self.frames.append(frame)
        self.features.append(np.asarray(features, np.float32))

    def finish(self) -> Trajectory:
        first = np.asarray(self.actions[0]) if self.actions else np.int64(0)
        act_dtype = np.float32 if first.dtype.kind == "f" else np.int64
        return Trajectory(
            env_id=self.env_id,
            frames=np.stack(self.frames),
            actions=np.asarray(self.actions, dtype=act_dtype),
            rewards=np.asarray(self.rewards, np.float32),
            terminals=np.asarray(self.terminals, bool),
            features=np.stack(self.features),
            stack=self.stack, worker_id=self.worker_id, policy_version=self.policy_version,
            extra=self.extra,
        )
