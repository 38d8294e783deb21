"""`pixelplan train`: one run, local (one process, no Ray) or on a Ray cluster."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..config import PlannerConfig, RunConfig, apply_overrides
from ..recipes import RECIPES, get_recipe
from ..replay.config import ReplayConfig

# Flags a recipe may also set: given on the command line they win over it, so they default to None.
RECIPE_FLAGS = ("steps", "workers", "envs_per_worker", "device", "learner_gpus", "planner_gpus")


def register(sub: argparse._SubParsersAction) -> None:
    d = RunConfig()
    p = sub.add_parser("train", help="train an agent (local mode or Ray)",
                       description="Train an agent. Every field of the run config can also be set with --set.")
    p.add_argument("--agent", default=d.agent, help="glamor | dreamer | alm | stub")
    p.add_argument("--env", default=d.env, help="env id, e.g. grid, atari:pong, dmc:cartpole-balance")
    p.add_argument("--recipe", default=None, help=f"named run settings, applied before --set: {' | '.join(RECIPES)}")
    p.add_argument("--workers", type=int, default=None, help=f"env worker actors (default {d.workers})")
    p.add_argument("--envs-per-worker", type=int, default=None, help=f"default {d.envs_per_worker}")
    p.add_argument("--shards", type=int, default=1, help="replay shards")
    p.add_argument("--learners", type=int, default=d.learners, help=">1: data-parallel (torch.distributed)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--steps", type=int, default=None,
                   help=f"env steps to collect (default: the recipe's budget, else {d.steps}; with --resume: the run's)")
    p.add_argument("--mode", choices=("local", "ray"), default=d.mode)
    p.add_argument("--address", default=None, help="Ray address to join ('auto' inside a Ray job)")
    p.add_argument("--resume", default=None, help="run folder to continue from its latest checkpoint")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-host", default=d.metrics_host,
                   help="address the metrics endpoint binds (default loopback; 0.0.0.0: every interface)")
    p.add_argument("--out", default=None, help="run folder (default runs/<agent>-<env>-s<seed>)")
    p.add_argument("--device", default=None, help=f"learner device: auto | cpu | cuda (default {d.device})")
    p.add_argument("--learner-gpus", type=float, default=None, help=f"default {d.learner_gpus}")
    p.add_argument("--planner-gpus", type=float, default=None, help=f"default {d.planner_gpus}")
    p.add_argument("--replay-backend", choices=("memory", "redis"), default="memory")
    p.add_argument("--redis-url", default=None,
                   help="redis://host:port/db; the password goes in PIXELPLAN_REDIS_PASSWORD or a file named by "
                        "PIXELPLAN_REDIS_PASSWORD_FILE (one in the URL is masked in everything written)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--force", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override any setting: agent.lr=3e-4 env.time_limit=50 replay.capacity=100000 eval_every=0")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    out = args.out or f"runs/{args.agent}-{args.env.replace(':', '-').replace('/', '_')}-s{args.seed}"
    explicit = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name) is not None}
    replay = ReplayConfig(shards=args.shards, backend=args.replay_backend, redis_url=args.redis_url)
    config = RunConfig(agent=args.agent, env=args.env, seed=args.seed, mode=args.mode, address=args.address,
                       learners=args.learners, out=out, resume=args.resume, metrics_port=args.metrics_port,
                       metrics_host=args.metrics_host, progress=not args.no_progress, overwrite=args.force,
                       replay=replay, planner=PlannerConfig(), recipe=args.recipe)
    if args.resume:
        if args.recipe:
            raise ValueError("--recipe with --resume: a resumed run keeps the settings its config.json records")
        saved = Path(args.resume) / "config.json"
        if not saved.exists():
            raise FileNotFoundError(f"--resume {args.resume}: no config.json there")
        saved_config = RunConfig.load(saved)
        config = dataclasses.replace(saved_config, resume=args.resume, steps=explicit.get("steps", saved_config.steps),
                                     mode=args.mode, address=args.address, progress=not args.no_progress)
        if args.redis_url:  # config.json holds the URL without its password
            config = dataclasses.replace(config, replay=dataclasses.replace(config.replay, redis_url=args.redis_url))
        return apply_overrides(config, args.set)
    if args.recipe:
        recipe = get_recipe(args.recipe)
        recipe.check(args.agent, args.env)
        config = apply_overrides(config, list(recipe.settings_for(args.env)))
    return apply_overrides(dataclasses.replace(config, **explicit), args.set)


def run(args: argparse.Namespace) -> int:
    from ..coordinator import TrainingStopped, train
    from ..offline.plots import plot_training_curves
    from ..replay.errors import ReplayDataLost, ReplayStoreUnavailable

    config = config_from_args(args)
    try:
        result = train(config)
    except TrainingStopped as exc:  # a signal or a replay outage: a checkpoint is written, say where
        print(f"pixelplan train: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except (ReplayDataLost, ReplayStoreUnavailable) as exc:  # before training started: nothing to save
        print(f"pixelplan train: error: {exc}", file=sys.stderr, flush=True)
        return 1
    out = Path(config.resume or config.out)
    png = plot_training_curves(out)
    headline = {k: v for k, v in result.items() if k.startswith("eval/")}
    print(json.dumps(headline))
    if "eval/achievement" in headline:
        print(f"achievement rate: {headline['eval/achievement']:.3f}")
    if "eval/return" in headline:
        print(f"mean return: {headline['eval/return']:.2f}")
    print(f"run folder: {out}\nplots: {png}")
    if (out / "goals.png").exists():
        print(f"goal grid: {out / 'goals.png'}")
    return 0
