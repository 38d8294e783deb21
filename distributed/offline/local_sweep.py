"""Run a sweep's (agent, env, seed) grid here: on this machine, or as drivers on a connected Ray cluster.

Each run is one ``pixelplan train`` subprocess (a crash stays in its run; the others go on), at
most ``parallel`` at once, writing ``OUT/<agent>-<env>-s<seed>``: the folder layout of the
Kubernetes path, so ``pixelplan report OUT`` reads both the same way. A second call skips runs
whose folder holds ``done``, resumes runs that left a checkpoint, and starts the rest afresh.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from pixelplan.agents.registry import AGENTS
from pixelplan.envs.registry import parse_env_id

from ..checkpoint import latest_checkpoint
from ..config import RunConfig
from ..recipes import get_recipe
from .sweep import check_recipe, run_id

MAX_PARALLEL = 64  # runs at once; each is a whole training process
STOP_GRACE_S = 120.0  # after an interrupt, how long a run may take to write its checkpoint


@dataclass(frozen=True)
class LocalSweepConfig:
    agents: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    out: Path
    steps: int | None = None  # None: the recipe's budget (else the run default)
    recipe: str | None = None
    parallel: int = 1
    mode: Literal["local", "ray"] = "local"
    address: str | None = None  # an existing Ray cluster; every run joins it as its own driver
    workers: int | None = None
    envs_per_worker: int | None = None
    overrides: tuple[str, ...] = field(default=())  # `--set` for every run

    def __post_init__(self) -> None:
        for agent in self.agents:
            if agent not in AGENTS:
                raise ValueError(f"unknown agent {agent!r}: expected one of {', '.join(sorted(AGENTS))}")
        for env in self.envs:
            parse_env_id(env)
        if self.recipe is not None:
            check_recipe(self.recipe, self.agents, self.envs)
        if not 1 <= self.parallel <= MAX_PARALLEL:
            raise ValueError(f"--parallel must be in 1..{MAX_PARALLEL}, got {self.parallel}")
        if self.mode == "ray" and not self.address:
            raise ValueError("a local sweep in --mode ray needs --address of a running cluster (`ray start --head`): "
                             "otherwise every run would start a Ray cluster of its own")
        for item in self.overrides:
            if "=" not in item:
                raise ValueError(f"--set {item!r} must look like key=value")
        if len({self.folder(*run) for run in self.runs}) != len(self.runs):
            raise ValueError("two runs of this sweep would share a folder: agents, envs and seeds must be distinct "
                             "(also once env ids are spelt as folder names)")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")

    def budget(self, env: str) -> int:
        """Env steps a run on ``env`` collects, by train's precedence: --set steps=, --steps, the recipe, the default."""
        for item in reversed(self.overrides):
            if item.startswith("steps="):
                return int(float(item.partition("=")[2]))
        if self.steps is not None:
            return self.steps
        return get_recipe(self.recipe).steps_for(env) if self.recipe else RunConfig().steps

    @property
    def runs(self) -> list[tuple[str, str, int]]:
        """Seed by seed: a sweep stopped part-way has every (agent, env)'s first seed before any's second."""
        return [(a, e, s) for s in self.seeds for a in self.agents for e in self.envs]

    def folder(self, agent: str, env: str, seed: int) -> Path:
        return self.out / run_id(agent, env, seed)


def run_state(folder: Path) -> Literal["done", "resume", "fresh"]:
    if (folder / "done").exists():
        return "done"
    if (folder / "config.json").exists() and latest_checkpoint(folder / "checkpoints") is not None:
        return "resume"
    return "fresh"


def train_argv(cfg: LocalSweepConfig, agent: str, env: str, seed: int, state: str) -> list[str]:
    """The `pixelplan train` command of one run; a resumed run keeps the settings its config.json records."""
    folder = str(cfg.folder(agent, env, seed))
    argv = [sys.executable, "-m", "pixelplan.distributed.cli", "train", "--mode", cfg.mode, "--no-progress"]
    argv += ["--address", cfg.address] if cfg.address else []
    argv += ["--steps", str(cfg.steps)] if cfg.steps is not None else []
    if state == "resume":
        return argv + ["--resume", folder]
    # "fresh" may find an interrupted run that never reached a checkpoint: it starts over (--force).
    argv += ["--agent", agent, "--env", env, "--seed", str(seed), "--out", folder, "--force"]
    argv += ["--recipe", cfg.recipe] if cfg.recipe else []
    argv += ["--workers", str(cfg.workers)] if cfg.workers is not None else []
    argv += ["--envs-per-worker", str(cfg.envs_per_worker)] if cfg.envs_per_worker is not None else []
    return argv + (["--set", *cfg.overrides] if cfg.overrides else [])


def latest_env_steps(folder: Path) -> int:
    """The env step count of metrics.csv's last row (0 before the first), read from the file's tail."""
    path = folder / "metrics.csv"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines[1:] if len(lines) > 1 else []):
        parts = line.split(",")
        if len(parts) >= 4 and parts[1].isdigit():
            return int(parts[1])
    return 0


@dataclass
class _Running:
    key: tuple[str, str, int]
    state: str
    process: subprocess.Popen
    log: object


def run_local_sweep(cfg: LocalSweepConfig, progress: bool = True, poll_s: float = 1.0) -> dict[str, str]:
    """Run every pending run of the sweep; returns run id -> outcome (skipped, finished, resumed, failed)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "logs").mkdir(exist_ok=True)
    outcomes: dict[str, str] = {}
    pending = []
    budgets = {env: cfg.budget(env) for env in cfg.envs}
    finished_steps = 0
    for key in cfg.runs:
        state = run_state(cfg.folder(*key))
        if state == "done":
            outcomes[run_id(*key)] = "skipped (done)"
            finished_steps += budgets[key[1]]
        else:
            pending.append((key, state))
    running: list[_Running] = []
    interrupted: BaseException | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    with tqdm(total=sum(budgets[key[1]] for key in cfg.runs), initial=finished_steps, unit="step", disable=not progress,
              desc=f"sweep {cfg.out.name}: {len(pending)} of {len(cfg.runs)} runs to go") as bar:
        try:
            while pending or running:
                while pending and len(running) < cfg.parallel:
                    running.append(_start(cfg, *pending.pop(0)))
                for run in [r for r in running if r.process.poll() is not None]:
                    running.remove(run)
                    run.log.close()
                    outcomes[run_id(*run.key)] = _outcome(cfg, run)
                    finished_steps += budgets[run.key[1]] if run.process.returncode == 0 else 0
                bar.n = min(bar.total, finished_steps + sum(min(budgets[r.key[1]], latest_env_steps(cfg.folder(*r.key)))
                                                            for r in running))
                bar.set_postfix({"running": len(running), "failed": sum(o.startswith("failed") for o in outcomes.values())},
                                refresh=False)
                bar.refresh()
                if running:
                    time.sleep(poll_s)
        except KeyboardInterrupt as exc:
            interrupted = exc
            _stop(running)
            for run in running:
                outcomes[run_id(*run.key)] = f"interrupted (exit {run.process.returncode}; runs again on the next call)"
        finally:
            signal.signal(signal.SIGTERM, previous)
    if interrupted is not None:
        raise interrupted
    return outcomes


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _start(cfg: LocalSweepConfig, key: tuple[str, str, int], state: str) -> _Running:
    argv = train_argv(cfg, *key, state)
    log = open(cfg.out / "logs" / f"{run_id(*key)}.log", "a")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {state} run: {' '.join(argv)}\n")
    log.flush()
    # Its own session: a Ctrl-C on the terminal reaches the sweep only, which passes exactly one on.
    # No progress bars in the log (the sweep draws the one bar).
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"})  # logs are files
    return _Running(key, state, process, log)


def _outcome(cfg: LocalSweepConfig, run: _Running) -> str:
    code = run.process.returncode
    if code == 0 and (cfg.folder(*run.key) / "done").exists():
        return "resumed, finished" if run.state == "resume" else "finished"
    return f"failed (exit {code}; log: {cfg.out / 'logs' / (run_id(*run.key) + '.log')})"


def _stop(running: list[_Running]) -> None:
    """SIGINT to every run (train answers it with a checkpoint), then wait; kill what outlives the grace."""
    for run in running:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
    deadline = time.time() + STOP_GRACE_S
    for run in running:
        try:
            run.process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
        run.log.close()
