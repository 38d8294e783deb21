"""`pixelplan sweep`: one RayJob per (agent, env, seed), each a distinct, selectable, resourced run."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pixelplan.distributed.cli import build_parser, main
from pixelplan.distributed.commands.train import config_from_args
from pixelplan.distributed.offline.sweep import MAX_RAYJOB_NAME, job_name, parse_seeds

# Agents come from the agent registry; "stub" (random plans) is the runtime's plumbing agent.
AGENTS = ("glamor", "stub")
AGENTS_ARG = ",".join(AGENTS)


def sweep(tmp_path: Path, *args: str, agents=AGENTS_ARG, envs="grid,dmc:cartpole-balance",
          seeds="0-4", name="table1") -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["sweep", "--agents", agents, "--envs", envs, "--seeds", seeds, "--steps", "5000",
                 "--out", str(out), *args])
    return code, out


def rayjobs(out: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(out.glob("rayjob-*.yaml"))]


def train_args(job: dict) -> dict[str, str]:
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["pixelplan", "train"]
    return {words[i]: words[i + 1] for i in range(2, len(words) - 1) if words[i].startswith("--")}


def gpu_group(job: dict) -> dict | None:
    groups = job["spec"]["rayClusterSpec"].get("workerGroupSpecs", [])
    return next((g for g in groups if g["groupName"] == "gpu"), None)


def test_parse_seeds():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,3,7") == (0, 3, 7)
    assert parse_seeds("0-2, 9") == (0, 1, 2, 9)
    for bad in ("4-0", "a-b", "", "-1", "1-", "0-2,2"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_one_job_per_run_with_its_own_labels_and_folder(tmp_path):
    code, out = sweep(tmp_path)
    assert code == 0
    jobs = rayjobs(out)
    expected = {(a, e, s) for a in AGENTS for e in ("grid", "dmc:cartpole-balance") for s in range(5)}
    seen, folders, names = set(), set(), set()
    for job in jobs:
        args, labels = train_args(job), job["metadata"]["labels"]
        run = (args["--agent"], args["--env"], int(args["--seed"]))
        seen.add(run)
        assert labels["pixelplan.io/sweep"] == "table1"
        assert (labels["pixelplan.io/agent"], labels["pixelplan.io/seed"]) == (run[0], str(run[2]))
        assert labels["pixelplan.io/env"] == run[1].replace(":", ".")
        assert job["metadata"]["annotations"]["pixelplan.io/env-id"] == run[1]
        assert args["--mode"] == "ray" and args["--address"] == "auto" and args["--steps"] == "5000"
        assert args["--out"].startswith("/results/table1/")
        head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
        assert head["metadata"]["labels"]["pixelplan.io/seed"] == str(run[2])  # Prometheus relabels from these
        mounts = head["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "results", "mountPath": "/results"} in mounts
        claims = [v["persistentVolumeClaim"]["claimName"] for v in head["spec"]["volumes"] if "persistentVolumeClaim" in v]
        assert claims == ["table1-results"]
        folders.add(args["--out"])
        names.add(job["metadata"]["name"])
    assert seen == expected and len(jobs) == len(expected)
    assert len(folders) == len(names) == len(expected)
    assert all(len(name) <= MAX_RAYJOB_NAME for name in names)
    claim, reader = yaml.safe_load_all((out / "results.yaml").read_text())
    assert claim["metadata"]["name"] == "table1-results" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert reader["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "table1-results"


def test_gpu_pod_holds_learners_and_planner(tmp_path):
    code, out = sweep(tmp_path, "--gpus", "2", "--learners", "3", "--image", "reg.example/pixelplan:cuda", seeds="0")
    assert code == 0
    for job in rayjobs(out):
        args = train_args(job)
        learners, learner_gpus, planner_gpus = int(args["--learners"]), float(args["--learner-gpus"]), float(
            args["--planner-gpus"])
        assert learners == 3 and 0 < learners * learner_gpus + planner_gpus <= 2 and args["--device"] == "cuda"
        group = gpu_group(job)
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
        assert container["image"] == "reg.example/pixelplan:cuda"
        head = job["spec"]["rayClusterSpec"]["headGroupSpec"]
        assert head["rayStartParams"]["num-gpus"] == "0"  # keeps GPU actors off the head
        assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_cpu_only_sweep_has_no_gpu_anywhere(tmp_path):
    code, out = sweep(tmp_path, "--gpus", "0", seeds="0-1")
    assert code == 0
    for job in rayjobs(out):
        assert gpu_group(job) is None
        assert "nvidia.com/gpu" not in yaml.safe_dump(job)
        args = train_args(job)
        assert (args["--device"], args["--learner-gpus"], args["--planner-gpus"]) == ("cpu", "0", "0")
        assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
            "image"] == "pixelplan:cpu"


def test_metrics_port_is_exposed_and_announced(tmp_path):
    code, out = sweep(tmp_path, "--metrics-port", "9101", seeds="0")
    assert code == 0
    for job in rayjobs(out):
        head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
        assert head["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert head["metadata"]["annotations"]["prometheus.io/port"] == "9101"
        assert {"name": "pp-metrics", "containerPort": 9101} in head["spec"]["containers"][0]["ports"]
        assert train_args(job)["--metrics-port"] == "9101"
        assert train_args(job)["--metrics-host"] == "0.0.0.0"  # the pod's endpoint must be reachable to scrape


def test_existing_claim_namespace_and_overrides(tmp_path):
    code, out = sweep(tmp_path, "--pvc", "lab-results", "--namespace", "rl", "--set", "eval_every=0",
                      "--set", "replay.capacity=100000", seeds="0")
    assert code == 0
    docs = list(yaml.safe_load_all((out / "results.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Pod"]  # the claim exists already: not rendered, not deleted with the sweep
    for job in rayjobs(out):
        assert job["metadata"]["namespace"] == "rl"
        words = shlex.split(job["spec"]["entrypoint"])
        assert words[-3:] == ["--set", "eval_every=0", "replay.capacity=100000"]
        volumes = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
        assert {"name": "results", "persistentVolumeClaim": {"claimName": "lab-results"}} in volumes


def test_entrypoint_is_what_pixelplan_train_understands(tmp_path):
    """Parsed by the real `pixelplan train` parser into the run config the sweep means."""
    code, out = sweep(tmp_path, "--gpus", "1", "--set", "eval_every=0", "--set", "replay.capacity=4096",
                      seeds="3", envs="dmc:cartpole-balance")
    assert code == 0
    for job in rayjobs(out):
        args = build_parser().parse_args(shlex.split(job["spec"]["entrypoint"])[1:])
        config = config_from_args(args)
        assert (config.env, config.seed, config.steps, config.mode, config.address) == (
            "dmc:cartpole-balance", 3, 5000, "ray", "auto")
        assert config.agent in AGENTS and config.out.startswith("/results/table1/")
        assert (config.device, config.learner_gpus, config.planner_gpus) == ("cuda", 0.5, 0.5)
        assert (config.eval_every, config.replay.capacity, config.progress) == (0, 4096, False)


def test_long_names_are_cut_but_stay_unique():
    names = {job_name("a-thirty-character-sweep-name1", "dreamer", f"dmc:ball_in_cup-catch-{i}", 12) for i in range(20)}
    assert len(names) == 20
    assert all(len(n) <= MAX_RAYJOB_NAME and n[-1].isalnum() for n in names)


@pytest.mark.parametrize("args, kw, message", [
    ((), {"seeds": "4-0"}, "end is below the start"),
    ((), {"seeds": "zero-four"}, "bad seed list"),
    ((), {"agents": "glamor,ppo"}, "unknown agent 'ppo'"),
    ((), {"agents": "glamor,glamor"}, "listed twice"),
    ((), {"envs": "grid,mujoco:ant"}, "unknown env id"),
    ((), {"envs": "grid:four-rooms,grid:four_rooms"}, "collide"),
    ((), {"name": "Table_1"}, "sweep name"),
    (("--gpus", "1", "--learners", "2", "--learner-gpus", "0.5", "--planner-gpus", "0.5"), {}, "GPUs"),
    (("--learner-gpus", "1.5", "--gpus", "4"), {}, "fraction of one GPU"),
    (("--memory", "32 GB"), {}, "Kubernetes quantity"),
    (("--set", "novalue"), {}, "key=value"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, kw, message):
    code, out = sweep(tmp_path, *args, **kw)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_rendering_twice_needs_force_and_then_drops_stale_runs(tmp_path, capsys):
    assert sweep(tmp_path, seeds="0-4")[0] == 0
    code, out = sweep(tmp_path, seeds="0-1")
    assert code == 2 and "--force" in capsys.readouterr().err
    assert len(rayjobs(out)) == 20
    assert sweep(tmp_path, "--force", seeds="0-1")[0] == 0
    assert len(rayjobs(out)) == 8


def test_force_removes_only_the_files_the_sweep_wrote(tmp_path):
    code, out = sweep(tmp_path, seeds="0-2")
    assert code == 0
    mine = {"kustomization.yaml": "resources: []\n", "values.json": "{}\n", "notes.txt": "keep\n"}
    for name, text in mine.items():
        (out / name).write_text(text)
    assert sweep(tmp_path, "--force", seeds="0")[0] == 0
    assert len(rayjobs(out)) == 4  # the 12 older RayJobs are gone, the new ones are there
    assert {name: (out / name).read_text() for name in mine} == mine  # the user's own files are untouched
