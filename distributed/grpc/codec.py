"""numpy <-> protobuf Array. Decoding checks everything a caller controls, so a bad array is a ValueError
(INVALID_ARGUMENT), never a numpy TypeError from deep inside."""
from __future__ import annotations

import math

import numpy as np

from .generated import planner_pb2

# Plain little-endian numbers only: no objects, strings, void records or byte-swapped data.
ALLOWED_DTYPES = frozenset(f"{order}{code}" for order in "<|=" for code in
                           ("b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"))
MAX_DIMS = 8


def to_proto(array: np.ndarray) -> planner_pb2.Array:
    array = np.ascontiguousarray(array)
    return planner_pb2.Array(data=array.tobytes(), shape=list(array.shape), dtype=array.dtype.str)


def from_proto(message: planner_pb2.Array, name: str = "array") -> np.ndarray:
    if message.dtype not in ALLOWED_DTYPES:
        raise ValueError(f"{name}: dtype {message.dtype[:20]!r} is not a plain number type "
                         f"(use a numpy dtype string such as '|u1', '<i8' or '<f4')")
    shape = tuple(message.shape)
    if len(shape) > MAX_DIMS or any(n < 0 for n in shape):
        raise ValueError(f"{name}: shape {list(shape)[:MAX_DIMS + 1]} must have at most {MAX_DIMS} non-negative sizes")
    dtype = np.dtype(message.dtype)
    needed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd shapes
    if len(message.data) != needed:
        raise ValueError(f"{name}: payload has {len(message.data)} bytes, shape {list(shape)} of {dtype} needs {needed}")
    return np.frombuffer(message.data, dtype=dtype).reshape(shape)
