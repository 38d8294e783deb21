"""Redis credentials: from the URL, the environment or a file; never written or printed in clear."""
import dataclasses

import pytest

from pixelplan.distributed.cli import build_parser
from pixelplan.distributed.commands.train import config_from_args
from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.distributed.offline.sweep import train_command
from pixelplan.distributed.replay import ReplayConfig, ReplayShard, ReplayStoreUnavailable
from pixelplan.distributed.replay.redis_server import LocalRedisServer

pytestmark = pytest.mark.redis
SECRET = "s3cr%40t-pw"  # URL-encoded '@': the server's password is s3cr@t-pw


@pytest.fixture
def locked_redis():
    with LocalRedisServer(password="s3cr@t-pw") as server:
        yield server


def with_password(url: str, password: str = SECRET) -> str:
    return url.replace("redis://", f"redis://:{password}@")


def replay(url: str) -> ReplayConfig:
    return ReplayConfig(capacity=100, num_actions=4, backend="redis", redis_url=url, namespace="cred")


def test_password_from_url_env_or_file_and_errors_never_show_it(locked_redis, synth, monkeypatch, tmp_path):
    shard = ReplayShard(replay(with_password(locked_redis.url)), 0)
    shard.insert(synth.trajectory(5))
    assert "s3cr" not in repr(shard.config)
    monkeypatch.setenv("PIXELPLAN_REDIS_PASSWORD", "s3cr@t-pw")
    assert ReplayShard(replay(locked_redis.url), 0).num_transitions() == 5
    monkeypatch.delenv("PIXELPLAN_REDIS_PASSWORD")
    (tmp_path / "pw").write_text("s3cr@t-pw\n")
    monkeypatch.setenv("PIXELPLAN_REDIS_PASSWORD_FILE", str(tmp_path / "pw"))
    assert ReplayShard(replay(with_password(locked_redis.url, "***")), 0).num_transitions() == 5
    monkeypatch.delenv("PIXELPLAN_REDIS_PASSWORD_FILE")
    with pytest.raises(ValueError, match=r"refused the credentials") as wrong:
        ReplayShard(replay(with_password(locked_redis.url, "wrong-pw")), 0)
    assert "wrong-pw" not in str(wrong.value) and "***" in str(wrong.value)
    with pytest.raises(ValueError, match="PIXELPLAN_REDIS_PASSWORD"):
        ReplayShard(replay(with_password(locked_redis.url, "***")), 0)
    locked_redis.stop()
    with pytest.raises(ReplayStoreUnavailable) as down:
        shard.insert(synth.trajectory(5, 1))
    assert "s3cr" not in str(down.value) and ":***@" in str(down.value)


def test_run_folder_checkpoints_and_rayjobs_hold_no_password(locked_redis, tmp_path, monkeypatch):
    args = build_parser().parse_args(
        ["train", "--agent", "stub", "--env", "grid", "--steps", "400", "--out", str(tmp_path / "run"), "--no-progress",
         "--replay-backend", "redis", "--redis-url", with_password(locked_redis.url),
         "--set", "eval_every=0", "eval_episodes=2", "checkpoint_every=5", "agent.min_steps_learn=100",
         "agent.batch_size=4"])
    train(config_from_args(args))
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.suffix == ".pt" for p in written) and any(p.name == "config.json" for p in written)
    assert not [p for p in written if b"s3cr" in p.read_bytes()]
    assert ":***@" in (tmp_path / "run" / "config.json").read_text()
    # --resume reads the masked URL; the password comes from the environment
    monkeypatch.setenv("PIXELPLAN_REDIS_PASSWORD", "s3cr@t-pw")
    resume = build_parser().parse_args(["train", "--resume", str(tmp_path / "run"), "--steps", "600", "--no-progress"])
    assert train(config_from_args(resume))["env_steps"] >= 600
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file() and b"s3cr" in p.read_bytes()]

    from pixelplan.distributed.offline.sweep import SweepConfig

    sweep = SweepConfig(name="s", agents=("stub",), envs=("grid",), seeds=(0,), steps=100,
                        overrides=(f"replay.redis_url={with_password('redis://db:6379/0')}", "eval_every=0"))
    command = " ".join(train_command(sweep, "stub", "grid", 0))
    assert "s3cr" not in command and "replay.redis_url=redis://:***@db:6379/0" in command


def test_dataclass_repr_and_public_config_mask_the_password():
    config = RunConfig(replay=ReplayConfig(backend="redis", redis_url="redis://u:pw@h:1/0"))
    assert "pw@" not in repr(config) and config.to_dict()["replay"]["redis_url"] == "redis://u:***@h:1/0"
    assert dataclasses.replace(config.replay).redis_url == "redis://u:pw@h:1/0"  # the live config keeps it
