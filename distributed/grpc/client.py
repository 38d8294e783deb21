"""A small blocking client, for processes outside Ray that want plans."""
from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np

from pixelplan.agents.base import PlanResult

from ..planner_service import PlannerBusy
from .codec import from_proto, to_proto
from .generated import planner_pb2, planner_pb2_grpc
from .server import MAX_MESSAGE

# What a refused call raises here: the caller's mistake, a full planner, a wrong token, a late answer.
_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: ValueError, grpc.StatusCode.RESOURCE_EXHAUSTED: PlannerBusy,
           grpc.StatusCode.UNAUTHENTICATED: PermissionError, grpc.StatusCode.DEADLINE_EXCEEDED: TimeoutError}


class PlannerClient:
    """``tls_ca``: the PEM file (or bytes) that signed the server's certificate (TLS on); ``token``: the
    bearer token the server checks."""

    def __init__(self, address: str, timeout: float = 30.0, token: str | None = None,
                 tls_ca: str | bytes | None = None) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.max_reconnect_backoff_ms", 2000)]  # a restarted planner is found again within seconds
        if tls_ca is not None:
            ca = tls_ca if isinstance(tls_ca, bytes) else Path(tls_ca).read_bytes()
            self.channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca), options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.address = address
        self.stub = planner_pb2_grpc.PlannerStub(self.channel)
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left, banned: np.ndarray | None = None) -> PlanResult:
        """``banned``: (B, n_actions) bool, first actions no plan may start with (each row leaves one)."""
        request = planner_pb2.PlanRequest(obs=to_proto(obs), goals=to_proto(goals),
                                          steps_left=[int(s) for s in np.atleast_1d(steps_left)])
        if banned is not None:
            request.banned.CopyFrom(to_proto(np.asarray(banned)))
        try:
            reply = self.stub.Plan(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            error = _ERRORS.get(exc.code(), ConnectionError)
            raise error(f"planner at {self.address}: {exc.code().name}: {exc.details()}") from None
        return PlanResult(from_proto(reply.actions), np.asarray(reply.lengths, np.int64),
                          np.asarray(reply.scores, np.float64), int(reply.version))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
