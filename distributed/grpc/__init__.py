"""The planner service over gRPC: ``planner.proto``, a server wrapper and a small client."""
from .build import build as _build

_build()
