"""Bad inputs to the service side (gRPC requests, CLI settings, env ids, grid maps): each gives one clear
line (or the right gRPC status) and changes nothing, on disk or in the service.

"Nothing changed in the service" is checked against a twin: two planners get the same good requests,
one also every bad one; their answers and counters must stay identical."""
import asyncio
import hashlib
import json
import os

import grpc
import numpy as np
import pytest
from planner_served import OBS, ServedPlanner  # noqa: E402 (tests/ is on sys.path)

from pixelplan.distributed.cli import main
from pixelplan.distributed.config import PlannerConfig, RunConfig, apply_overrides
from pixelplan.distributed.goalsets import load_or_build_goal_set
from pixelplan.distributed.grpc.client import PlannerClient
from pixelplan.distributed.grpc.codec import to_proto
from pixelplan.distributed.grpc.generated import planner_pb2
from pixelplan.distributed.grpc.server import create_server
from pixelplan.envs import make_env

MAX_ROWS = 16
OK = planner_pb2.PlanRequest(obs=to_proto(OBS), goals=to_proto(OBS), steps_left=[3, 3])


def _array(array=None, *, data=None, shape=None, dtype=None) -> planner_pb2.Array:
    message = to_proto(OBS if array is None else array)
    if data is not None:
        message.data = data
    if shape is not None:
        del message.shape[:]
        message.shape.extend(shape)
    if dtype is not None:
        message.dtype = dtype
    return message


def _request(obs=None, goals=None, steps_left=(3, 3), banned=None) -> planner_pb2.PlanRequest:
    return planner_pb2.PlanRequest(obs=obs or _array(), goals=goals or _array(), steps_left=list(steps_left),
                                   banned=banned)


BIG = np.zeros((MAX_ROWS + 1, 1, 9, 9), np.uint8)
GRPC_CASES = {  # name: (request, what the one-line message must say)
    "unknown dtype string": (_request(obs=_array(dtype="<zz9")), "not a plain number type"),
    "object dtype": (_request(obs=_array(dtype="|O")), "not a plain number type"),
    "byte-swapped dtype": (_request(goals=_array(OBS.astype(">u2"))), "not a plain number type"),
    "payload shorter than its shape": (_request(obs=_array(data=b"\0" * 10)), "payload has 10 bytes"),
    "negative shape": (_request(obs=_array(data=b"", shape=[-2, 1, 9, 9])), "non-negative"),
    "shape too large to multiply": (_request(obs=_array(data=b"", shape=[2**40, 2**40, 2**40])), "payload has 0"),
    "too many dimensions": (_request(obs=_array(data=b"", shape=[1] * 9)), "at most 8"),
    "empty request": (planner_pb2.PlanRequest(), "not a plain number type"),
    "float32 observations": (_request(obs=_array(OBS.astype(np.float32))), "observation must be uint8"),
    "float64 goals": (_request(goals=_array(OBS.astype(np.float64))), "goals of uint8"),
    "float32 goals (unscaled pixels)": (_request(goals=_array(OBS.astype(np.float32) / 255)), "goals of uint8"),
    "wrong frame size": (_request(obs=_array(OBS[:, :, :5])), "trailing shape"),
    "unbatched observation": (_request(obs=_array(OBS[0]), steps_left=(3,)), "must be a batch"),
    "extra leading axis": (_request(obs=_array(OBS[None])), "must be a batch"),
    "goals for fewer rows": (_request(goals=_array(OBS[:1])), "goals of uint8 with shape"),
    "steps_left zero": (_request(steps_left=(3, 0)), "steps_left must be 2 integers >= 1"),
    "steps_left negative": (_request(steps_left=(-5, 3)), "steps_left must be 2 integers >= 1"),
    "steps_left count differs": (_request(steps_left=(3,)), "steps_left must be 2 integers"),
    "zero rows": (_request(obs=_array(OBS[:0]), goals=_array(OBS[:0]), steps_left=()), "1 to 16 rows"),
    "banned as integers": (_request(banned=_array(np.zeros((2, 4), np.int64))), "banned must be (2, 4) bool"),
    "banned for the wrong action count": (_request(banned=_array(np.zeros((2, 5), bool))), "banned must be (2, 4)"),
    "banned leaves a row no action": (_request(banned=_array(np.array([[True] * 4, [False, True, True, True]]))),
                                      "leaving each request an action"),
    "banned payload too short": (_request(banned=_array(np.zeros((2, 4), bool), data=b"\0")), "banned: payload"),
    "more rows than allowed": (_request(obs=_array(BIG), goals=_array(BIG), steps_left=[2] * (MAX_ROWS + 1)),
                               "1 to 16 rows"),
}


@pytest.fixture(scope="module")
def twins():
    """(the planner that gets bad requests too, its twin that gets only the good ones)."""
    pair = [ServedPlanner(max_request_rows=MAX_ROWS, max_queued_rows=64, max_wait_ms=1) for _ in range(2)]
    clients = [PlannerClient(p.address, timeout=20) for p in pair]
    yield pair, clients
    for client, planner in zip(clients, pair):
        client.close()
        planner.close()


def _good_answers_match(pair, clients) -> None:
    answers = [client.stub.Plan(OK, timeout=20) for client in clients]
    assert answers[0] == answers[1]  # same plans, lengths, scores and version: the bad input left no trace
    assert pair[0].counters() == pair[1].counters()


@pytest.mark.parametrize("name", GRPC_CASES)
def test_bad_grpc_request_fails_alone_with_invalid_argument(twins, name):
    pair, clients = twins
    request, message = GRPC_CASES[name]
    with pytest.raises(grpc.RpcError) as caught:
        clients[0].stub.Plan(request, timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    details = caught.value.details()
    assert message in details and "\n" not in details and "Traceback" not in details, details
    _good_answers_match(pair, clients)


def test_bad_requests_do_not_fail_their_batch_mates(tmp_path):
    """Good and bad calls arriving together: every good one is answered, every bad one refused."""
    import threading

    planner = ServedPlanner(max_wait_ms=300)  # wide window: the calls share batches
    outcome: dict = {}

    def call(name, request):
        with PlannerClient(planner.address) as client:
            try:
                outcome[name] = client.stub.Plan(request, timeout=30).lengths
            except grpc.RpcError as exc:
                outcome[name] = exc.code()

    bad = {k: GRPC_CASES[k][0] for k in ("float64 goals", "steps_left zero", "float32 goals (unscaled pixels)")}
    calls = {f"good{i}": OK for i in range(4)} | bad
    threads = [threading.Thread(target=call, args=item) for item in calls.items()]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        planner.close()
    assert all(outcome[k] == grpc.StatusCode.INVALID_ARGUMENT for k in bad)
    assert all(len(outcome[f"good{i}"]) == 2 for i in range(4))


# -- CLI settings, env ids and grid maps -----------------------------------------------------------
def _write(path, text):
    path.write_text(text)
    return str(path)


def _snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


CLI_CASES = {  # name: (extra `pixelplan train` arguments, what the error line must say)
    "metrics host with a port": (["--metrics-host", "0.0.0.0:8090"], "metrics_host must be an IP address"),
    "metrics host with a scheme": (["--metrics-host", "http://example.org"], "metrics_host must be an IP address"),
    "metrics port out of range": (["--metrics-port", "70000"], "metrics_port must be a TCP port"),
    "planner gRPC port negative": (["--mode", "ray", "--set", "planner.grpc_port=-1"], "grpc_port must be a TCP port"),
    "planner gRPC port not a number": (["--mode", "ray", "--set", "planner.grpc_port=abc"], "grpc_port: expected an integer"),
    "planner gRPC host with spaces": (["--set", "planner.grpc_host=my host"], "grpc_host must be an IP address"),
    "planner gRPC in local mode": (["--set", "planner.grpc_port=0"], "needs --mode ray"),
    "TLS certificate without key": (["--set", "planner.grpc_tls_cert=cert.pem"], "go together"),
    "planner batch of zero rows": (["--set", "planner.max_batch=0"], "max_batch must be >= 1"),
    "queue smaller than a request": (["--set", "planner.max_queued_rows=8"], "must be >= planner.max_request_rows"),
    "more envs per worker than a request may hold": (["--envs-per-worker", "9", "--set", "planner.max_request_rows=8"],
                                                     "must be <= planner.max_request_rows"),
    "unknown env family": (["--env", "foo:bar"], "unknown env id 'foo:bar'"),
    "env family without a name": (["--env", "atari:"], "needs a name after ':'"),
    "grid map file missing": (["--env", "grid:/no/such/map.txt"], "unknown grid map"),
}
MAPS = {  # name: (map text, error)
    "grid map with an unknown character": ("#####\n#.x.#\n#####\n", "unknown character 'x'"),
    "grid map without floor": ("#####\n#####\n", "no floor cell"),
    "empty grid map": ("\n\n", "grid map is empty"),
}


@pytest.mark.parametrize("name", list(CLI_CASES) + list(MAPS))
def test_bad_cli_setting_gives_one_line_and_leaves_the_run_folder_alone(tmp_path, capsys, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(RunConfig(agent="stub").to_dict()))  # an earlier run's files
    (out / "metrics.csv").write_text("wall_time,env_steps,key,value\n1,10,loss,0.5\n")
    before = _snapshot(tmp_path)
    if name in MAPS:
        text, message = MAPS[name]
        args = ["--env", f"grid:{_write(tmp_path / 'map.txt', text)}"]
        before = _snapshot(tmp_path)
    else:
        args, message = CLI_CASES[name]
    code = main(["train", "--agent", "stub", "--steps", "10", "--no-progress", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert _snapshot(tmp_path) == before


def test_unreadable_token_or_certificate_binds_nothing(tmp_path):
    for planner, message in ((PlannerConfig(grpc_token_file=str(tmp_path / "none")), "grpc_token_file: cannot read"),
                             (PlannerConfig(grpc_token_file=_write(tmp_path / "empty", " \n")), "is empty"),
                             (PlannerConfig(grpc_tls_cert=str(tmp_path / "c"), grpc_tls_key=str(tmp_path / "k")),
                              "grpc_tls_key: cannot read")):
        async def create(config: PlannerConfig):  # as in the planner: on its running loop
            return create_server(object(), config, 0)

        with pytest.raises(ValueError, match=message):
            asyncio.run(create(planner))


def test_settings_reach_the_planner_config_and_are_checked_there():
    run = apply_overrides(RunConfig(mode="ray"), ["planner.grpc_port=7000", "planner.grpc_host=0.0.0.0"])
    assert (run.planner.grpc_port, run.planner.grpc_host) == (7000, "0.0.0.0")
    assert PlannerConfig().grpc_host == "127.0.0.1" and RunConfig().metrics_host == "127.0.0.1"  # closed defaults


def test_edited_grid_map_gets_new_goals_and_a_stale_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    layout = tmp_path / "maze.txt"
    layout.write_text("\n".join(["#######"] + ["#.....#"] * 5 + ["#######"]))
    small = load_or_build_goal_set(f"grid:{layout}", 5, seed=0, show_progress=False)
    files = sorted((tmp_path / "cache" / "goals").glob("*.npz"))
    assert len(files) == 1 and small.frames.shape[1:] == (1, 7, 7)
    layout.write_text("\n".join(["#########"] + ["#.......#"] * 3 + ["#########"]))  # same id, new map
    wide = load_or_build_goal_set(f"grid:{layout}", 5, seed=0, show_progress=False)
    assert wide.frames.shape[1:] == make_env(f"grid:{layout}").spec.frame_shape == (1, 5, 9)
    assert len(list((tmp_path / "cache" / "goals").glob("*.npz"))) == 2
    # A file at the key whose frames do not fit this env (e.g. written by an older version) is rebuilt.
    newest = max((tmp_path / "cache" / "goals").glob("*.npz"), key=os.path.getmtime)
    small_bytes = files[0].read_bytes()
    newest.write_bytes(small_bytes)
    again = load_or_build_goal_set(f"grid:{layout}", 5, seed=0, show_progress=False)
    assert again.frames.shape[1:] == (1, 5, 9) and np.array_equal(again.frames, wide.frames)
