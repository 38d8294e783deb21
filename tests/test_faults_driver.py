"""The driver stops on SIGTERM or SIGINT with a checkpoint; `--resume` finishes the run (real processes)."""
import dataclasses
import os
import signal
import threading

import pytest

from pixelplan.bench import faults
from pixelplan.distributed.checkpoint import load_checkpoint
from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import TrainingStopped, train


@pytest.mark.redis
def test_sigterm_to_pixelplan_train_checkpoints_and_resume_keeps_every_trajectory_once():
    result = faults.sigterm_resume_case(quick=True)
    assert result["exit_code"] == 128 + signal.SIGTERM
    assert result["stopped_with_checkpoint"] and result["message"].startswith("pixelplan train: stopped by SIGTERM")
    assert result["resumed_to_the_end"], result["resume_stderr"]
    assert result["acknowledged"] > 0 and result["missing_uids"] == [] and result["duplicated_uids"] == []
    assert result["recovered"] == result["acknowledged"] and result["acked_twice"] == 0


def test_sigint_in_local_mode_checkpoints_the_current_state(tmp_path, capsys):
    config = RunConfig(agent="stub", env="grid", steps=10**7, seed=1, out=str(tmp_path / "run"), progress=False,
                       eval_every=0, checkpoint_every=10**6, worker_chunk=50, log_every_s=0.2,
                       agent_overrides={"min_steps_learn": 200, "batch_size": 8})
    timer = threading.Timer(6.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(TrainingStopped, match="stopped by SIGINT: checkpoint .*ckpt-.*--resume") as caught:
        train(config)
    timer.cancel()
    assert caught.value.exit_code == 128 + signal.SIGINT and "training failed" not in capsys.readouterr().err
    assert len(list((tmp_path / "run" / "checkpoints").glob("ckpt-*.pt"))) == 1
    state = load_checkpoint(tmp_path / "run")
    assert state["counters"]["env_steps"] > 0 and not (tmp_path / "run" / "done").exists()
    resumed = train(dataclasses.replace(config, steps=state["counters"]["env_steps"] + 200,
                                        resume=str(tmp_path / "run")))
    assert resumed["env_steps"] >= state["counters"]["env_steps"] + 200


def test_a_crash_in_the_loop_still_leaves_a_checkpoint(tmp_path, monkeypatch, capsys):
    from pixelplan.distributed.worker import EnvWorker

    config = RunConfig(agent="stub", env="grid", steps=10**6, seed=1, out=str(tmp_path / "run"), progress=False,
                       eval_every=0, checkpoint_every=10**6, worker_chunk=50,
                       agent_overrides={"min_steps_learn": 200, "batch_size": 8})
    real_run, calls = EnvWorker.run, []

    def run_then_crash(self, *args):
        calls.append(1)
        if len(calls) > 20:
            raise RuntimeError("env crashed")
        return real_run(self, *args)

    monkeypatch.setattr(EnvWorker, "run", run_then_crash)
    with pytest.raises(RuntimeError, match="env crashed"):
        train(config)
    assert "training failed; checkpoint" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run")["counters"]["env_steps"] >= 20 * 50
