"""A small blocking client, for processes outside Ray that want plans."""
from __future__ import annotations

import grpc
import numpy as np

from pixelplan.agents.base import PlanResult

from .codec import from_proto, to_proto
from .generated import planner_pb2, planner_pb2_grpc
from .server import MAX_MESSAGE


class PlannerClient:
    def __init__(self, address: str, timeout: float = 30.0) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.stub = planner_pb2_grpc.PlannerStub(self.channel)
        self.timeout = timeout

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left) -> PlanResult:
        request = planner_pb2.PlanRequest(obs=to_proto(obs), goals=to_proto(goals),
                                          steps_left=[int(s) for s in np.atleast_1d(steps_left)])
        try:
            reply = self.stub.Plan(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(exc.details()) from None
            raise ConnectionError(f"planner at {self.channel_address}: {exc.code().name}: {exc.details()}") from None
        return PlanResult(from_proto(reply.actions), np.asarray(reply.lengths, np.int64),
                          np.asarray(reply.scores, np.float64), int(reply.version))

    @property
    def channel_address(self) -> str:
        return getattr(self.channel, "_target", "?")

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
