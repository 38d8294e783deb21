"""The gRPC planner's defences on real sockets: loopback bind, TLS, bearer token, request splitting, the
bounded queue, the concurrent-call cap, and calls dropped once cancelled or expired."""
import socket
import threading
import time

import grpc
import numpy as np
import pytest
from planner_served import OBS, ServedPlanner, self_signed_certificate  # noqa: E402 (tests/ is on sys.path)

from pixelplan.distributed.grpc.client import PlannerClient
from pixelplan.distributed.grpc.codec import to_proto
from pixelplan.distributed.grpc.generated import planner_pb2
from pixelplan.distributed.planner_service import PlannerBusy


@pytest.fixture
def served():
    planners = []

    def make(**planner) -> ServedPlanner:
        planners.append(ServedPlanner(**planner))
        return planners[-1]

    yield make
    for p in planners:
        p.close()


def _outward_ip() -> str | None:
    """This host's address on its default route (no packet is sent), or None without a network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_binds_loopback_unless_told(served):
    planner = served()
    host, port = planner.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    with PlannerClient(planner.address) as client:
        assert client.plan(OBS, OBS, [3, 3]).lengths.shape == (2,)
    outward = _outward_ip()
    if outward is None:
        pytest.skip("no non-loopback address on this host to probe")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((outward, int(port))) != 0  # nothing listens there
    everywhere = served(grpc_host="0.0.0.0")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((outward, everywhere.service.grpc_port)) == 0  # the probe itself can see an open port


def test_banned_first_actions_travel_over_grpc(served):
    planner = served()
    banned = np.array([[True, False, True, True], [True, True, True, False]])  # rows may start with 1 and 3 only
    with PlannerClient(planner.address) as client:
        firsts = np.array([client.plan(OBS, OBS, [3, 3], banned=banned).actions[:, 0] for _ in range(20)])
        free = np.array([client.plan(OBS, OBS, [3, 3]).actions[:, 0] for _ in range(20)])
    assert (firsts == [1, 3]).all()
    assert len(np.unique(free)) > 2  # without the mask the stub's first actions are uniform over all 4


def test_tls_and_bearer_token_are_checked_on_every_call(served, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    planner = served(grpc_tls_cert=str(cert), grpc_tls_key=str(key), grpc_token_file=str(token_file))
    with PlannerClient(planner.address, token="s3cret-token", tls_ca=str(cert)) as client:
        assert client.plan(OBS, OBS, [2, 2]).lengths.shape == (2,)
        assert client.plan(OBS, OBS, [2, 2]).lengths.shape == (2,)  # the token goes with every call
    for token in (None, "wrong-token", "s3cret-token "):
        with PlannerClient(planner.address, token=token, tls_ca=str(cert)) as client:
            with pytest.raises(PermissionError, match="UNAUTHENTICATED"):
                client.plan(OBS, OBS, [2, 2])
    with PlannerClient(planner.address, token="s3cret-token", timeout=3) as plaintext:  # no TLS: no connection
        with pytest.raises(ConnectionError, match="UNAVAILABLE"):
            plaintext.plan(OBS, OBS, [2, 2])
    assert planner.counters()["plans"] == 4  # only the two authorised calls were computed


def test_large_request_is_planned_in_batches_of_max_batch(served):
    planner = served(max_batch=8, max_request_rows=64)
    obs = np.zeros((30, 1, 9, 9), np.uint8)
    steps = np.where(np.arange(30) % 3 == 0, 1, 50)  # rows with 1 step left must come back with length 1
    with PlannerClient(planner.address) as client:
        result = client.plan(obs, obs, steps)
    sizes = planner.call(lambda: list(planner.service.batch_sizes))
    assert sum(sizes) == 30 and max(sizes) <= 8 and len(sizes) == 4
    assert result.actions.shape[0] == 30 and (result.lengths[steps == 1] == 1).all()
    assert (result.lengths <= steps).all() and ((result.actions >= 0).sum(1) == result.lengths).all()


def _background_plan(address: str, rows: int, outcome: list) -> threading.Thread:
    def go():
        with PlannerClient(address) as client:
            try:
                outcome.append(client.plan(OBS[:1].repeat(rows, 0), OBS[:1].repeat(rows, 0), [2] * rows))
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                outcome.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_full_queue_answers_resource_exhausted(served):
    planner = served(max_request_rows=4, max_queued_rows=4, max_wait_ms=1500)  # the first call waits for company
    outcome: list = []
    first = _background_plan(planner.address, 3, outcome)
    _wait_until(lambda: planner.call(lambda: planner.service._queued_rows) == 3)
    with PlannerClient(planner.address) as client:
        with pytest.raises(PlannerBusy, match="RESOURCE_EXHAUSTED"):
            client.plan(OBS, OBS, [2, 2])
        first.join(30)
        assert outcome[0].lengths.shape == (3,)  # the queued call was answered
        assert client.plan(OBS, OBS, [2, 2]).lengths.shape == (2,)  # and the queue takes calls again
    assert planner.counters()["plans"] == 5


def test_concurrent_calls_beyond_the_cap_are_refused(served):
    planner = served(grpc_max_calls=2, max_wait_ms=1500)
    outcome: list = []
    threads = [_background_plan(planner.address, 1, outcome) for _ in range(2)]
    _wait_until(lambda: planner.call(lambda: planner.service._queued_rows) == 2)
    with PlannerClient(planner.address) as client:
        with pytest.raises(PlannerBusy, match="RESOURCE_EXHAUSTED"):
            client.plan(OBS, OBS, [2, 2])
    for t in threads:
        t.join(30)
    assert len(outcome) == 2 and all(r.lengths.shape == (1,) for r in outcome)


def test_expired_and_cancelled_calls_are_dropped_before_planning(served):
    planner = served(max_wait_ms=800)
    with PlannerClient(planner.address, timeout=0.2) as client:
        with pytest.raises(TimeoutError, match="DEADLINE_EXCEEDED"):
            client.plan(OBS, OBS, [2, 2])
        request = planner_pb2.PlanRequest(obs=to_proto(OBS[:1]), goals=to_proto(OBS[:1]), steps_left=[2])
        call = client.stub.Plan.future(request, timeout=30)
        _wait_until(lambda: planner.call(lambda: planner.service._queued_rows) == 1)
        call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
    _wait_until(lambda: planner.counters()["dropped"] == 3)
    time.sleep(1.0)  # past the batch window: anything still queued would have been planned by now
    assert planner.counters()["plans"] == 0 and planner.counters()["batches"] == 0
    with PlannerClient(planner.address) as client:
        assert client.plan(OBS, OBS, [2, 2]).lengths.shape == (2,)
    assert planner.counters()["plans"] == 2


def test_metrics_endpoint_binds_loopback_unless_told():
    import urllib.request

    from pixelplan.distributed.metrics import MetricsExporter

    exporter = MetricsExporter(port=0)
    assert b"pixelplan_env_steps_total" in urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics",
                                                                   timeout=5).read()
    outward = _outward_ip()
    if outward is None:
        pytest.skip("no non-loopback address on this host to probe")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((outward, exporter.port)) != 0
    everywhere = MetricsExporter(port=0, host="0.0.0.0")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((outward, everywhere.port)) == 0  # the probe itself can see an open port
