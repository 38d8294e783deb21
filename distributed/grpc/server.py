"""gRPC face of the planner service; it runs on the service's own asyncio loop.

Closed by default: it binds the configured host (loopback unless told otherwise), serves TLS when a
certificate and key are given, checks a bearer token on every call when a token file is given, and
caps concurrent calls. Every request is decoded and validated alone, so a bad one fails with
INVALID_ARGUMENT without touching anyone else's batch.
"""
from __future__ import annotations

import hmac
import logging
from pathlib import Path

import grpc
import numpy as np

from ..config import PlannerConfig
from ..planner_service import PlannerBusy
from .codec import from_proto, to_proto
from .generated import planner_pb2, planner_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024
log = logging.getLogger(__name__)


def read_secret(path: str, what: str) -> bytes:
    """A certificate, key or token file's bytes, or one clear error naming the setting."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"planner.{what}: cannot read {path!r} ({exc.strerror or exc})") from None
    if not data.strip():
        raise ValueError(f"planner.{what}: {path!r} is empty")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


class _Servicer(planner_pb2_grpc.PlannerServicer):
    def __init__(self, service) -> None:
        self.service = service

    async def Plan(self, request, context):  # noqa: N802 - gRPC's name
        try:
            obs, goals = from_proto(request.obs, "obs"), from_proto(request.goals, "goals")
            steps_left = np.asarray(request.steps_left, np.int64)
            banned = from_proto(request.banned, "banned") if request.HasField("banned") else None
            result = await self.service.plan(obs, goals, steps_left, timeout_s=context.time_remaining(), outside=True,
                                             banned=banned)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _one_line(exc))
        except PlannerBusy as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _one_line(exc))
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before it was planned")
        except Exception:  # noqa: BLE001 - the details stay in the planner's log, not in the caller's answer
            log.exception("planner failed on a gRPC request")
            await context.abort(grpc.StatusCode.INTERNAL, "the planner failed on this request (see the planner's log)")
        return planner_pb2.PlanReply(actions=to_proto(result.actions.astype(np.int64)), lengths=result.lengths.tolist(),
                                     scores=result.scores.tolist(), version=int(result.version))


class _BearerToken(grpc.aio.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, token: bytes) -> None:
        self.expected = b"Bearer " + token

    async def intercept_service(self, continuation, details):
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(str(given).encode(), self.expected):
            return await continuation(details)
        return grpc.unary_unary_rpc_method_handler(self._deny)

    @staticmethod
    async def _deny(request, context) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def create_server(service, config: PlannerConfig, port: int) -> tuple[grpc.aio.Server, int]:
    """Build and bind (not yet start) a server for ``service.plan``; returns (server, bound port).

    Binding happens here, synchronously, so a constructor can serve without awaiting anything.
    """
    token = read_secret(config.grpc_token_file, "grpc_token_file").strip() if config.grpc_token_file else None
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.grpc_max_calls,
                             interceptors=[_BearerToken(token)] if token else None)
    planner_pb2_grpc.add_PlannerServicer_to_server(_Servicer(service), server)
    address = bind_address(config.grpc_host, port)
    try:
        if config.grpc_tls_cert:
            pair = (read_secret(config.grpc_tls_key, "grpc_tls_key"), read_secret(config.grpc_tls_cert, "grpc_tls_cert"))
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ValueError(f"planner gRPC: cannot bind {address}: {_one_line(exc)}") from None
    if not bound:
        raise ValueError(f"planner gRPC: cannot bind {address} (in use, or not an address of this host)")
    if not token and config.grpc_host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("planner gRPC serves %s without a bearer token: anyone who reaches it can use it", address)
    return server, bound
