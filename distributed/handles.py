"""One code path, two placements: a component is a plain object or a Ray actor behind a Handle.

Callers write ``handle.call("sample", 64).result()``; a LocalHandle runs the
method at once in this process (deterministic, pdb works), a RayHandle sends it to the actor.
"""
from __future__ import annotations

from typing import Any, Protocol


class Pending(Protocol):
    def result(self, timeout: float | None = None) -> Any: ...

    def done(self) -> bool: ...


class Done:
    """An already-finished call (local placement)."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class LocalHandle:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def call(self, method: str, *args, **kwargs) -> Pending:
        try:
            return Done(getattr(self.obj, method)(*args, **kwargs))
        except Exception as exc:  # surfaced at .result(), exactly like a Ray call
            return Done(error=exc)


class RayPending:
    def __init__(self, ref) -> None:
        self.ref = ref
        self._watch = None  # a completion future, made once a poll found the call still running

    def done(self) -> bool:
        """Whether ``result()`` would return at once (never blocks). A poll through ``ray.wait`` costs
        ~30 us of CPU and a worker polls its plan requests every few env steps; so the first poll asks
        Ray, and a call still running then gets Ray's completion future (~0.1 ms once), whose later
        polls cost ~1 us."""
        if self._watch is not None:
            return self._watch.done()
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
        if not ready:
            self._watch = self.ref.future()
        return bool(ready)

    def result(self, timeout: float | None = None) -> Any:
        import ray

        return ray.get(self.ref, timeout=timeout)


class RayHandle:
    def __init__(self, actor) -> None:
        self.actor = actor

    def call(self, method: str, *args, **kwargs) -> Pending:
        return RayPending(getattr(self.actor, method).remote(*args, **kwargs))


Handle = LocalHandle | RayHandle


def fetch(value: Any) -> Any:
    """The value behind an object-store reference (``RayRuntime.put``), or the value itself (local placement)."""
    import sys

    ray = sys.modules.get("ray")  # no Ray imported: there can be no references to resolve
    if ray is not None and isinstance(value, ray.ObjectRef):
        return ray.get(value)
    return value
