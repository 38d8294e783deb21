"""Bad-input table, data side: trajectory bytes, replay inserts, checkpoint files.

Each bad input must give one clear line (an exception whose message is one line and says what is
wrong) and change nothing: the Redis-backed shard holds, samples and stores in Redis exactly what it
did before; the run folder's files are byte for byte the same and no code ran.
"""
import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
import zstandard

from pixelplan.distributed.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pixelplan.distributed.cli import main as cli_main
from pixelplan.distributed.replay import ReplayConfig, ReplayShard
from pixelplan.envs.batches import BatchQuery
from pixelplan.envs.trajectory import _HEAD, MAGIC, Trajectory, TrajectoryError

pytestmark = pytest.mark.redis
WINDOWS = BatchQuery("windows", 16, 3)


# -- trajectory bytes and replay inserts ---------------------------------------------------------
def forge(header: dict, payload: bytes) -> bytes:
    """Bytes with a valid checksum around any header and payload: only the content is wrong."""
    return _forge_raw(json.dumps(header).encode(), payload)


def _forge_raw(head: bytes, payload: bytes) -> bytes:
    body = head + payload
    return _HEAD.pack(MAGIC, 2, len(head), zlib.crc32(body)) + body


def header_of(traj: Trajectory, **change) -> dict:
    data = traj.to_bytes()
    _, _, head_len, _ = _HEAD.unpack_from(data)
    return {**json.loads(data[_HEAD.size:_HEAD.size + head_len]), **change}


def payload_of(traj: Trajectory) -> bytes:
    data = traj.to_bytes()
    _, _, head_len, _ = _HEAD.unpack_from(data)
    return data[_HEAD.size + head_len:]


@functools.cache
def zstd_bomb() -> bytes:
    """About 24 KB that inflate to 768 MiB, built in 1 MiB pieces (the test itself never holds 768 MiB)."""
    stream, zeros = zstandard.ZstdCompressor().compressobj(), bytes(1 << 20)
    return b"".join([stream.compress(zeros) for _ in range(768)] + [stream.flush()])


@pytest.fixture
def good(synth) -> Trajectory:
    return synth.trajectory(12, tag=9, stack=2)


def bad_bytes(good: Trajectory) -> dict:
    data = good.to_bytes()
    arrays = header_of(good)["arrays"]
    bomb = zstd_bomb()
    return {
        "empty": (b"", "truncated trajectory: 0 bytes"),
        "foreign magic": (b"GIF89a" + data[6:], "not a pixelplan trajectory"),
        "future version": (data[:4] + struct.pack("<H", 99) + data[6:], "format version 99"),
        "flipped byte": (data[:-20] + bytes([data[-20] ^ 1]) + data[-19:], "checksum mismatch"),
        "truncated": (data[:-10], "checksum mismatch"),
        "header length past the end": (_HEAD.pack(MAGIC, 2, 10**6, zlib.crc32(b"{}")) + b"{}", "exceeds"),
        "header not JSON": (_forge_raw(b"\xff\xfe{", b""), "not valid JSON"),
        "header field of the wrong type": (forge(header_of(good, env_id=7), payload_of(good)), "'env_id' must be str"),
        "object dtype": (forge(header_of(good, arrays=[[arrays[0][0], "|O", arrays[0][2]], *arrays[1:]]),
                               payload_of(good)), "bad dtype or shape for 'frames'"),
        "negative shape": (forge(header_of(good, arrays=[[arrays[0][0], arrays[0][1], [-1, 3, 1, 1]], *arrays[1:]]),
                                 payload_of(good)), "bad dtype or shape"),
        "declares more than the limit": (forge(header_of(good, arrays=[["frames", "|u1", [2**30, 2**30]],
                                                                       *arrays[1:]]), payload_of(good)), "over the limit"),
        "zstd bomb": (forge(header_of(good), bomb), "size does not match its header"),
        "payload not zstd": (forge(header_of(good), b"\x00" * 64), "does not decompress"),
        "missing array": (forge(header_of(good, arrays=arrays[:-1]), payload_of(good)), "must list the arrays"),
    }


def bad_inserts(good: Trajectory) -> dict:
    return {
        "other frame shape": (Trajectory(**{**_fields(good), "frames": np.zeros((13, 3, 2, 1), np.uint8)}), "frames"),
        "action out of range": (dataclasses.replace(good, actions=good.actions + 4), r"actions must be in \[0, 4\)"),
        "continuous actions in a discrete replay": (
            Trajectory(**{**_fields(good), "actions": np.zeros((12, 2), np.float32)}), "actions"),
        "NaN reward": (dataclasses.replace(good, rewards=np.full(12, np.nan, np.float32)), "finite"),
        "longer than a shard": (Trajectory(**{**_fields(good), **_long(good, 400)}), "does not fit"),
        "not a trajectory": ({"frames": [1, 2, 3]}, "insert takes a Trajectory or its to_bytes"),
        "text instead of bytes": ("PXTR....", "insert takes a Trajectory or its to_bytes"),
    }


def _fields(traj: Trajectory) -> dict:
    return {f.name: getattr(traj, f.name) for f in dataclasses.fields(traj)}


def _long(traj: Trajectory, n: int) -> dict:
    return {"frames": np.zeros((n + 1, *traj.frames.shape[1:]), np.uint8), "actions": np.zeros(n, np.int64),
            "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, bool), "features": np.zeros((n + 1, 1), np.float32)}


@pytest.fixture
def shard(redis_server, synth):
    config = ReplayConfig(capacity=300, num_actions=4, backend="redis", redis_url=redis_server.url, namespace="bad")
    shard = ReplayShard(config, 0)
    for tag in range(5):
        shard.insert(synth.trajectory(10 + tag, tag=tag, stack=2))
    return shard


def state_of(shard: ReplayShard, url: str) -> tuple:
    """Everything a bad input must not change: memory, samples and every key and value in Redis."""
    client = redis.Redis.from_url(url)
    stored = hashlib.sha256()
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        value = (client.get(key) if kind == b"string" else client.lrange(key, 0, -1) if kind == b"list"
                 else sorted(client.hgetall(key).items()))
        stored.update(key + repr(value).encode())
    client.close()
    batch = shard.sample(WINDOWS, 16, seed=3)
    stats = {k: v for k, v in shard.stats().items() if not k.startswith(("replay/samples", "replay/sample_calls"))}
    return stats, shard.trajectory_ids(), batch.obs.tobytes(), batch.actions.tobytes(), stored.hexdigest()


def one_clear_line(exc: BaseException, expected: str) -> None:
    message = str(exc)
    assert "\n" not in message and 10 < len(message) < 400, message
    assert re.search(expected, message), message


@pytest.mark.parametrize("name", ["empty", "foreign magic", "future version", "flipped byte", "truncated",
                                  "header length past the end", "header not JSON", "header field of the wrong type",
                                  "object dtype", "negative shape", "declares more than the limit", "zstd bomb",
                                  "payload not zstd", "missing array"])
def test_bad_trajectory_bytes_are_refused_and_change_nothing(shard, redis_server, good, name):
    data, expected = bad_bytes(good)[name]
    before = state_of(shard, redis_server.url)
    tracemalloc.start()
    try:
        with pytest.raises(TrajectoryError) as caught:
            shard.insert(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_clear_line(caught.value, expected)
    assert peak < 16 << 20  # the zstd bomb never inflates (an unbounded decompress allocates 768 MiB here)
    assert state_of(shard, redis_server.url) == before
    shard.insert(good)  # and the shard still takes good data
    assert shard.trajectory_ids()[-1] == good.uid


@pytest.mark.parametrize("name", ["other frame shape", "action out of range", "continuous actions in a discrete replay",
                                  "NaN reward", "longer than a shard", "not a trajectory", "text instead of bytes"])
def test_bad_replay_inserts_are_refused_and_change_nothing(shard, redis_server, good, name):
    data, expected = bad_inserts(good)[name]
    before = state_of(shard, redis_server.url)
    with pytest.raises((ValueError, TypeError)) as caught:
        shard.insert(data)
    one_clear_line(caught.value, expected)
    assert state_of(shard, redis_server.url) == before


# -- checkpoint files ------------------------------------------------------------------------------
class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def folder_state(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_bad_checkpoint(folder: Path, kind: str, marker: Path) -> Path:
    path = folder / "checkpoints" / "ckpt-000000900.pt"
    good = (folder / "checkpoints" / "ckpt-000000100.pt").read_bytes()
    buffer = io.BytesIO()
    if kind == "runs code":
        torch.save({"config": {}, "learner": RunsCode(marker)}, buffer)
    elif kind == "not a dict":
        torch.save(torch.zeros(3), buffer)
    elif kind == "no learner entry":
        torch.save({"config": {}}, buffer)
    path.write_bytes({"truncated": good[: len(good) // 2], "empty": b"", "random bytes": os.urandom(4096),
                      "plain pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94."}.get(kind, buffer.getvalue()))
    return path


CHECKPOINT_CASES = {
    "runs code": "refusing to load it .*GLOBAL posix.system",
    "truncated": "corrupt or truncated",
    "empty": "corrupt or truncated",
    "random bytes": "corrupt or truncated",
    "plain pickle": "corrupt or truncated|refusing",
    "not a dict": "not a pixelplan checkpoint",
    "no learner entry": "not a pixelplan checkpoint",
}


@pytest.fixture
def run_folder(tmp_path) -> Path:
    folder = tmp_path / "run"
    save_checkpoint(folder / "checkpoints", {"config": {"agent": "stub"}, "learner": {"updates": 100},
                                             "rng": np.random.default_rng(0).bit_generator.state,
                                             "weights": np.arange(4.0)}, 100)
    return folder


@pytest.mark.parametrize("kind", list(CHECKPOINT_CASES))
def test_bad_checkpoint_file_is_refused_in_one_line_and_resume_falls_back(run_folder, tmp_path, kind, capsys):
    marker = tmp_path / "code-ran"
    path = write_bad_checkpoint(run_folder, kind, marker)
    before = folder_state(run_folder)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    one_clear_line(caught.value, CHECKPOINT_CASES[kind])
    state = load_checkpoint(run_folder)  # the folder: the newest checkpoint that loads, and it says which
    assert state["learner"]["updates"] == 100 and isinstance(state["weights"], torch.Tensor)
    assert "skipped newer unusable checkpoints" in capsys.readouterr().err
    assert not marker.exists() and folder_state(run_folder) == before


def test_eval_of_a_crafted_checkpoint_is_one_line_and_runs_nothing(run_folder, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    (run_folder / "checkpoints" / "ckpt-000000100.pt").unlink()
    write_bad_checkpoint_only = run_folder / "checkpoints" / "ckpt-000000900.pt"
    buffer = io.BytesIO()
    torch.save({"config": {}, "learner": RunsCode(marker)}, buffer)
    write_bad_checkpoint_only.write_bytes(buffer.getvalue())
    before = folder_state(run_folder)
    assert cli_main(["eval", "--env", "grid", "--agent", str(run_folder), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pixelplan eval: error: no loadable checkpoint") and "refusing" in err[-1]
    assert not marker.exists() and folder_state(run_folder) == before


def test_empty_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
