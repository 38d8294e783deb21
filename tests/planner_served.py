"""A BatchingPlanner serving gRPC from its own event-loop thread in the test process (real sockets, no Ray),
and a self-signed certificate made with the openssl command line."""
from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import numpy as np

from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.planner_service import BatchingPlanner
from pixelplan.distributed.resolve import ResolvedRun

OBS = np.zeros((2, 1, 9, 9), np.uint8)  # the 7x7 grid's frames: (1, 9, 9) uint8


class ServedPlanner:
    def __init__(self, agent: str = "stub", **planner) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = RunConfig(agent=agent, mode="ray", planner=PlannerConfig(**{"grpc_port": 0, **planner}))

        async def construct() -> BatchingPlanner:  # the constructor serves on the running loop, as in Ray
            return BatchingPlanner(ResolvedRun.of(config))

        self.service = self.run(construct())
        self.address = self.service.grpc_address()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """A plain method of the service, on its loop (its state is the loop's)."""
        async def call():
            return fn(*args)

        return self.run(call())

    def counters(self) -> dict:
        return self.call(lambda: dict(self.service.counters))

    def close(self) -> None:
        async def shutdown():
            await self.service._grpc_server.stop(0)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # the batch loops
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1; the certificate is its own CA."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key
