"""numpy <-> protobuf Array."""
from __future__ import annotations

import numpy as np

from .generated import planner_pb2


def to_proto(array: np.ndarray) -> planner_pb2.Array:
    array = np.ascontiguousarray(array)
    return planner_pb2.Array(data=array.tobytes(), shape=list(array.shape), dtype=array.dtype.str)


def from_proto(message: planner_pb2.Array) -> np.ndarray:
    dtype = np.dtype(message.dtype)
    count = int(np.prod(message.shape)) if message.shape else 1
    if len(message.data) != count * dtype.itemsize:
        raise ValueError(f"array payload has {len(message.data)} bytes, shape {list(message.shape)} "
                         f"of {dtype} needs {count * dtype.itemsize}")
    return np.frombuffer(message.data, dtype=dtype).reshape(tuple(message.shape))
