"""`pixelplan sweep --local`: real `pixelplan train` subprocesses on stub agents, a second call
that skips finished runs, a run interrupted for real and resumed, and `pixelplan report` on the result."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelplan.distributed.checkpoint import latest_checkpoint, load_checkpoint
from pixelplan.distributed.cli import main
from pixelplan.distributed.offline.baselines import random_achievement
from pixelplan.distributed.offline.local_sweep import LocalSweepConfig, latest_env_steps

STUB_SETTINGS = ["eval_every=300", "eval_episodes=10", "checkpoint_every=5", "agent.min_steps_learn=100",
                 "agent.batch_size=8", "envs_per_worker=2", "worker_chunk=50", "log_every_s=0.2"]


def sweep_argv(out: Path, seeds: str, steps: int) -> list[str]:
    argv = ["sweep", "--local", "--agents", "stub", "--envs", "grid", "--seeds", seeds, "--steps", str(steps),
            "--out", str(out), "--no-progress"]
    for item in STUB_SETTINGS:
        argv += ["--set", item]
    return argv


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("done", "metrics.csv", "config.json")}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))  # the train subprocesses inherit it
    return tmp_path / "cache"


def test_two_seed_sweep_then_skip_then_report(tmp_path, cache, capsys):
    out = tmp_path / "sweep"
    assert main(sweep_argv(out, "0-1", 600)) == 0
    printed = capsys.readouterr().out
    for seed in (0, 1):
        run = out / f"stub-grid-s{seed}"  # the Kubernetes path's layout: <sweep>/<agent>-<env>-s<seed>
        assert f"stub-grid-s{seed}: finished" in printed
        config = json.loads((run / "config.json").read_text())
        assert (config["agent"], config["env"], config["seed"], config["steps"]) == ("stub", "grid", seed, 600)
        assert config["eval_episodes"] == 10 and config["agent_overrides"]["batch_size"] == 8  # --set reached it
        assert json.loads((run / "done").read_text())["eval/episodes"] == 10
        assert latest_env_steps(run) >= 600
    before = {seed: snapshot(out / f"stub-grid-s{seed}") for seed in (0, 1)}

    assert main(sweep_argv(out, "0-1", 600)) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped (done)") == 2
    assert all(snapshot(out / f"stub-grid-s{seed}") == before[seed] for seed in (0, 1))  # not run again

    assert main(["report", str(out)]) == 0
    with open(out / "report.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["agent"], row["env"], row["metric"], row["seeds"], row["finished"]) == (
        "stub", "grid", "eval/achievement", "2", "2")
    finals = [json.loads((out / f"stub-grid-s{s}" / "done").read_text())["eval/achievement"] for s in (0, 1)]
    assert float(row["mean"]) == pytest.approx(sum(finals) / 2)
    chance = random_achievement("grid")  # cached by the report: the same number, not recomputed
    assert list((cache / "random").glob("grid-*.json"))
    assert float(row["random"]) == chance["eval/achievement"] and 0.0 <= chance["eval/achievement"] <= 1.0
    assert f"| {chance['eval/achievement']:.2f} | – |" in (out / "report.md").read_text()  # random, no paper value


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, cache):
    out = tmp_path / "sweep"
    run = out / "stub-grid-s2"
    cmd = [sys.executable, "-m", "pixelplan.distributed.cli", *sweep_argv(out, "2", 10**7)]
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while latest_checkpoint(run / "checkpoints") is None or latest_env_steps(run) < 300:
            assert sweep.poll() is None and time.time() < deadline, "the run never reached a checkpoint"
            time.sleep(0.2)
        sweep.send_signal(signal.SIGINT)  # the sweep passes it on; train answers with a checkpoint
        output, _ = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode != 0 and "interrupted" in output
    assert not (run / "done").exists()
    stopped = load_checkpoint(run)["counters"]
    log_before = (run / "metrics.csv").read_bytes()
    assert stopped["env_steps"] > 0

    target = stopped["env_steps"] + 400
    assert main(sweep_argv(out, "2", target)) == 0
    finished = load_checkpoint(run)["counters"]
    assert (run / "done").exists() and finished["env_steps"] >= target
    assert finished["updates"] > stopped["updates"] and finished["episodes"] > stopped["episodes"]
    log_after = (run / "metrics.csv").read_bytes()
    assert log_after.startswith(log_before) and len(log_after) > len(log_before)  # continued, not restarted
    resumed_rows = list(csv.DictReader(log_after[len(log_before):].decode().splitlines(),
                                       fieldnames=["wall_time", "env_steps", "key", "value"]))
    assert min(int(r["env_steps"]) for r in resumed_rows) >= stopped["env_steps"]
    log = (out / "logs" / "stub-grid-s2.log").read_text()
    assert log.index(" fresh run: ") < log.index(" resume run: ") and "--resume" in log


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown recipe"):
        LocalSweepConfig(agents=("glamor",), envs=("grid",), seeds=(0,), out=tmp_path / "s", recipe="nope")
    with pytest.raises(ValueError, match="--address"):
        LocalSweepConfig(agents=("stub",), envs=("grid",), seeds=(0,), out=tmp_path / "s", mode="ray")
    assert main(["sweep", "--local", "--agents", "glamor", "--envs", "dmc:cartpole-balance", "--seeds", "0",
                 "--recipe", "grid", "--out", str(tmp_path / "s")]) == 2
    assert "recipe 'grid' is for agent glamor on grid:*" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_runs_go_seed_by_seed(tmp_path):
    cfg = LocalSweepConfig(agents=("stub",), envs=("grid", "grid:maze"), seeds=(0, 1), out=tmp_path / "s")
    assert cfg.runs == [("stub", "grid", 0), ("stub", "grid:maze", 0), ("stub", "grid", 1), ("stub", "grid:maze", 1)]
