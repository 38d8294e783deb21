"""Placement: the only place that decides whether a component is a local object or a Ray actor."""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

from .handles import LocalHandle, Pending, RayHandle, RayPending

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = "timed out during startup"


def start_ray(tries: int = 3, **kwargs) -> None:
    """``ray.init(**kwargs)``, again when a cluster started here missed Ray's startup wait.

    Ray gives a new node's raylet a fixed 30 s to register with the GCS; on a loaded 2-core machine that
    wait can pass with nothing wrong. Joining an existing cluster (``address`` set) is not retried.
    """
    import ray

    for attempt in range(1, tries + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as e:  # Ray raises a bare Exception here
            if kwargs.get("address") is not None or STARTUP_TIMEOUT not in str(e) or attempt == tries:
                raise
            log.warning("Ray's node %s (try %d of %d); starting it again", STARTUP_TIMEOUT, attempt, tries)
            ray.shutdown()
            time.sleep(2.0 * attempt)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRuntime:
    """Everything in this process, called in a fixed order: deterministic, and pdb works."""

    mode = "local"

    def spawn(self, cls, *args, name: str, num_cpus: float = 1, num_gpus: float = 0, restart: bool = True,
              local_cls=None) -> LocalHandle:
        return LocalHandle((local_cls or cls)(*args))

    def put(self, value: Any) -> Any:
        return value

    def wait(self, pendings: Sequence[Pending], timeout: float | None = None) -> list[Pending]:
        return list(pendings)  # local calls finished when they were made

    def ready(self, handles: dict, timeout: float = 0.0) -> None:
        pass  # constructed in place: constructor errors have already surfaced

    def shutdown(self) -> None:
        pass


class RayRuntime:
    """Starts or joins a Ray cluster; actors restart after a crash and retry their calls."""

    mode = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, namespace: str = "pixelplan") -> None:
        """``num_cpus`` sizes a cluster started here (logical CPUs: the actors' requests must fit).

        Ray's token authentication stays as Ray sets it: on by default in Ray 2.60, where a cluster started
        here keeps its token in ``~/.ray/auth_token``. ``RAY_AUTH_MODE=disabled`` turns it off.
        """
        import ray

        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            kwargs = {"address": address, "namespace": namespace, "ignore_reinit_error": True,
                      "include_dashboard": False, "log_to_driver": True}
            if address is None:
                kwargs.update(num_cpus=num_cpus, object_store_memory=300 * 1024 * 1024)
            start_ray(**kwargs)

    def spawn(self, cls, *args, name: str, num_cpus: float = 1, num_gpus: float = 0, restart: bool = True,
              local_cls=None) -> RayHandle:
        options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "name": name, "get_if_exists": False}
        if restart:
            options.update(max_restarts=-1, max_task_retries=-1)
        actor = self.ray.remote(cls).options(**options).remote(*args)
        return RayHandle(actor)

    def put(self, value: Any) -> Any:
        return self.ray.put(value)

    def ready(self, handles: dict[str, RayHandle], timeout: float = 180.0) -> None:
        """Wait until every actor answers; name the ones that never got scheduled."""
        refs = {h.actor.__ray_ready__.remote(): name for name, h in handles.items()}
        done, waiting = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        self.ray.get(done)  # a constructor that raised raises here
        if waiting:
            names = ", ".join(refs[r] for r in waiting)
            raise RuntimeError(f"Ray could not start {names} within {timeout:.0f}s: the cluster lacks the CPUs/GPUs "
                               f"they request (see `ray status`; lower --workers or the *-gpus settings)")

    def wait(self, pendings: Sequence[Pending], timeout: float | None = None) -> list[Pending]:
        """The pendings that finished (at least one unless the timeout passed)."""
        if not pendings:
            return []
        by_ref = {p.ref: p for p in pendings if isinstance(p, RayPending)}
        ready, _ = self.ray.wait(list(by_ref), num_returns=1, timeout=timeout)
        more, _ = self.ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        return [by_ref[r] for r in dict.fromkeys(ready + more)]

    def shutdown(self) -> None:
        if self.owned:
            self.ray.shutdown()


def make_runtime(mode: str, address: str | None = None, num_cpus: int | None = None):
    return LocalRuntime() if mode == "local" else RayRuntime(address, num_cpus)
