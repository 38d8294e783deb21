import numpy as np
import pytest

from pixelplan.envs import Trajectory, TrajectoryBuilder, TrajectoryError, make_env
from pixelplan.envs import trajectory as T


def _episode(steps=7, seed=0) -> Trajectory:
    env = make_env("grid")
    rng = np.random.default_rng(seed)
    env.reset()
    b = TrajectoryBuilder("grid", env.frame(), env.goal_features(), stack=1, worker_id=3, policy_version=11,
                          extra={"goal": 5})
    for _ in range(steps):
        a = int(rng.integers(4))
        s = env.step(a)
        b.add(a, s.reward, s.terminated, env.frame(), env.goal_features())
    return b.finish()


def test_round_trip_is_exact():
    traj = _episode()
    back = Trajectory.from_bytes(traj.to_bytes())
    for name in ("frames", "actions", "rewards", "terminals", "features"):
        assert np.array_equal(getattr(back, name), getattr(traj, name))
        assert getattr(back, name).dtype == getattr(traj, name).dtype
    assert (back.env_id, back.worker_id, back.policy_version, back.extra) == ("grid", 3, 11, {"goal": 5})
    assert len(back) == 7 and back.frames.shape == (8, 1, 9, 9)


def test_continuous_and_state_trajectories_round_trip():
    traj = Trajectory("dmc:x", np.random.rand(4, 5).astype(np.float32), np.random.rand(3, 2).astype(np.float32),
                      np.zeros(3, np.float32), np.zeros(3, bool), np.zeros((4, 1), np.float32))
    back = Trajectory.from_bytes(traj.to_bytes())
    assert np.array_equal(back.actions, traj.actions) and back.frames.dtype == np.float32


def test_frames_are_compressed():
    traj = _episode(steps=20)
    assert len(traj.to_bytes()) < traj.frames.nbytes


@pytest.mark.parametrize("cut", [0, 5, 20, -1])
def test_truncated_bytes_fail(cut):
    data = _episode().to_bytes()
    with pytest.raises(TrajectoryError):
        Trajectory.from_bytes(data[:cut])


def test_corrupt_bytes_fail():
    data = bytearray(_episode().to_bytes())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(TrajectoryError, match="checksum"):
        Trajectory.from_bytes(bytes(data))


def test_wrong_version_and_magic_fail():
    data = bytearray(_episode().to_bytes())
    wrong_version = bytes(data[:4]) + (T.FORMAT_VERSION + 1).to_bytes(2, "little") + bytes(data[6:])
    with pytest.raises(TrajectoryError, match="version"):
        Trajectory.from_bytes(wrong_version)
    with pytest.raises(TrajectoryError, match="magic"):
        Trajectory.from_bytes(b"XXXX" + bytes(data[4:]))


def test_malformed_trajectories_fail():
    good = _episode()
    with pytest.raises(TrajectoryError, match="empty"):
        Trajectory("grid", good.frames[:1], good.actions[:0], good.rewards[:0], good.terminals[:0], good.features[:1])
    with pytest.raises(TrajectoryError, match="frames"):
        Trajectory("grid", good.frames[:-1], good.actions, good.rewards, good.terminals, good.features)
    with pytest.raises(TrajectoryError, match="uint8"):
        Trajectory("grid", good.frames.astype(np.int16), good.actions, good.rewards, good.terminals, good.features)
