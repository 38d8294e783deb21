"""gRPC face of the planner service; it runs on the service's own asyncio loop."""
from __future__ import annotations

import inspect

import grpc
import numpy as np

from .codec import from_proto, to_proto
from .generated import planner_pb2, planner_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024


class _Servicer(planner_pb2_grpc.PlannerServicer):
    def __init__(self, service) -> None:
        self.service = service

    async def Plan(self, request, context):  # noqa: N802 - gRPC's name
        try:
            obs, goals = from_proto(request.obs), from_proto(request.goals)
            result = self.service.plan(obs, goals, np.asarray(request.steps_left, np.int64))
            if inspect.isawaitable(result):
                result = await result
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return planner_pb2.PlanReply(actions=to_proto(result.actions.astype(np.int64)), lengths=result.lengths.tolist(),
                                     scores=result.scores.tolist(), version=int(result.version))


async def start_server(service, port: int = 0, host: str = "0.0.0.0") -> tuple[grpc.aio.Server, int]:
    """Serve ``service.plan`` (sync or async) on ``host:port``; returns (server, bound port)."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    server = grpc.aio.server(options=options)
    planner_pb2_grpc.add_PlannerServicer_to_server(_Servicer(service), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
