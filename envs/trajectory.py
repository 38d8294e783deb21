"""The trajectory record shared by workers, replay, Redis and the network.

Frames are stored once (never as stacks). The binary form is versioned, checksummed and
zstd-compressed, so corrupt, truncated or foreign bytes fail loudly instead of training on junk.
Decoding never trusts the bytes: the header is checked field by field and decompression stops at
the size the header declares (and at the caller's limit), so a small blob cannot allocate gigabytes.
Version 2 adds ``uid``, the trajectory's identity (unique per episode), so replay can drop a
resent duplicate and the fault tests can check that nothing acknowledged was lost or doubled.
"""
from __future__ import annotations

import io
import json
import math
import struct
import uuid
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

MAGIC = b"PXTR"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no uid
_HEAD = struct.Struct("<4sHII")  # magic, version, header length, crc32 of everything after
_ARRAYS = ("frames", "actions", "rewards", "terminals", "features")
_DTYPES = {"|u1", "<f4", "<i8", "|b1"}  # what validate() accepts, little-endian
_MAX_DIM = 1 << 31


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
    uid: str = ""  # identity of this episode ("" for version-1 bytes): TrajectoryBuilder draws one

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
            "uid": self.uid,
            "arrays": [[n, getattr(self, n).dtype.str, list(getattr(self, n).shape)] for n in _ARRAYS],
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        raw = b"".join(np.ascontiguousarray(getattr(self, n)).tobytes() for n in _ARRAYS)
        body = head + zstandard.ZstdCompressor(level=level).compress(raw)
        return _HEAD.pack(MAGIC, FORMAT_VERSION, len(head), zlib.crc32(body)) + body

    @classmethod
    def from_bytes(cls, data: bytes, max_raw_bytes: int = 1 << 30) -> Trajectory:
        """Decode ``to_bytes()`` output; TrajectoryError for anything else, before allocating more
        than ``max_raw_bytes`` for the decompressed arrays."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TrajectoryError(f"trajectory bytes expected, got {type(data).__name__}")
        if len(data) < _HEAD.size:
            raise TrajectoryError(f"truncated trajectory: {len(data)} bytes")
        magic, version, head_len, crc = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise TrajectoryError(f"not a pixelplan trajectory (magic {magic!r})")
        if version not in READABLE_VERSIONS:
            raise TrajectoryError(f"trajectory format version {version}; this build reads {READABLE_VERSIONS}")
        body = memoryview(data)[_HEAD.size:]
        if zlib.crc32(body) != crc:
            raise TrajectoryError("corrupt or truncated trajectory bytes (checksum mismatch)")
        if head_len > len(body):
            raise TrajectoryError(f"trajectory header length {head_len} exceeds the {len(body)} bytes that follow")
        header = _parse_header(bytes(body[:head_len]), version)
        sizes = [math.prod(shape) * np.dtype(dtype).itemsize for _, dtype, shape in header["arrays"]]
        declared = sum(sizes)
        if declared > max_raw_bytes:
            raise TrajectoryError(f"trajectory declares {declared} bytes of arrays, over the limit of {max_raw_bytes}")
        try:  # a stream reader never allocates past what it is asked for, whatever the frame claims
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(body[head_len:]))).read(declared + 1)
        except zstandard.ZstdError as exc:
            raise TrajectoryError(f"trajectory payload does not decompress: {exc}") from None
        if len(raw) != declared:
            raise TrajectoryError("trajectory payload size does not match its header")
        arrays, offset = {}, 0
        for (name, dtype, shape), size in zip(header["arrays"], sizes):
            arrays[name] = np.frombuffer(raw, dtype=np.dtype(dtype), count=size // np.dtype(dtype).itemsize,
                                         offset=offset).reshape(shape)
            offset += size
        return cls(
            env_id=header["env_id"], stack=header["stack"], worker_id=header["worker_id"],
            policy_version=header["policy_version"], extra=header["extra"], uid=header.get("uid", ""), **arrays,
        )


def _parse_header(head: bytes, version: int) -> dict:
    """The JSON header, checked field by field (it comes from outside: Redis, the network, a file)."""
    try:
        header = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TrajectoryError("trajectory header is not valid JSON") from None
    if not isinstance(header, dict):
        raise TrajectoryError("trajectory header must be a JSON object")
    types = {"env_id": str, "stack": int, "worker_id": int, "policy_version": int, "extra": dict, "arrays": list}
    if version >= 2:
        types["uid"] = str
    for key, kind in types.items():
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise TrajectoryError(f"trajectory header field {key!r} must be {kind.__name__}, got {header.get(key)!r:.60}")
    arrays = header["arrays"]
    if [a[0] if isinstance(a, list) and a else None for a in arrays] != list(_ARRAYS):
        raise TrajectoryError(f"trajectory header must list the arrays {list(_ARRAYS)}")
    for name, *rest in arrays:
        if len(rest) != 2 or rest[0] not in _DTYPES or not isinstance(rest[1], list) or not rest[1] or \
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < _MAX_DIM for d in rest[1]):
            raise TrajectoryError(f"trajectory header: bad dtype or shape for {name!r}: {rest!r:.80}")
    return header


class TrajectoryBuilder:
    """Accumulates one episode step by step; the one place a Trajectory is assembled from an env."""

    def __init__(self, env_id: str, frame: np.ndarray, features: np.ndarray, stack: int = 1,
                 worker_id: int = 0, policy_version: int = 0, extra: dict | None = None) -> None:
        self.env_id, self.stack, self.worker_id = env_id, stack, worker_id
        self.uid = uuid.uuid4().hex  # identity, independent of every seeded RNG (runs stay deterministic)
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
            extra=self.extra, uid=self.uid,
        )
