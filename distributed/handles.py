"""One code path, two placements: a component is a plain object or a Ray actor behind a Handle.

Callers write ``handle.call("sample", 64).result()`` (or ``call_many``); a LocalHandle runs the
method at once in this process (deterministic, pdb works), a RayHandle sends it to the actor.
"""
from __future__ import annotations

from collections.abc import Sequence
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

    def done(self) -> bool:
        """Whether ``result()`` would return at once (never blocks)."""
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
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


def results(pendings: Sequence[Pending], timeout: float | None = None) -> list[Any]:
    """Wait for many calls (Ray calls run concurrently; local ones are already done)."""
    if pendings and all(isinstance(p, RayPending) for p in pendings):
        import ray

        return ray.get([p.ref for p in pendings], timeout=timeout)
    return [p.result(timeout) for p in pendings]
