"""`pixelplan sweep`: render one KubeRay RayJob per (agent, env, seed) into a folder for kubectl,
or (``--local``) run them here, a bounded number at once, into the same run-folder layout."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep", help="render a multi-seed sweep as KubeRay RayJob manifests",
        description="Writes OUT/results.yaml (results claim + reader pod) and OUT/rayjob-*.yaml; "
                    "then `kubectl apply -f OUT/`. With --local: runs them on this machine (or a connected Ray "
                    "cluster) into OUT/<agent>-<env>-s<seed>, skipping finished runs and resuming interrupted ones.")
    p.add_argument("--agents", required=True, help="comma-separated, e.g. glamor,dreamer")
    p.add_argument("--envs", required=True, help="comma-separated env ids, e.g. grid,dmc:cartpole-balance")
    p.add_argument("--seeds", required=True, help="e.g. 0-4, 0,3,7 or 0-2,9")
    p.add_argument("--steps", type=int, help="env steps per run (default: the recipe's budget)")
    p.add_argument("--recipe", help="`pixelplan train --recipe NAME` for every run (see `pixelplan train --help`)")
    p.add_argument("--local", action="store_true", help="run the sweep here instead of rendering RayJobs")
    p.add_argument("--parallel", type=int, default=1, help="--local: runs at once (default 1: a 2-core machine)")
    p.add_argument("--mode", choices=("local", "ray"), default="local",
                   help="--local: each run in one process, or as a driver on the Ray cluster at --address")
    p.add_argument("--address", help="--local --mode ray: address of a running Ray cluster")
    p.add_argument("--no-progress", action="store_true", help="--local: no progress bar")
    p.add_argument("--out", type=Path, required=True, help="folder for the manifests, e.g. k8s/sweeps/NAME/")
    p.add_argument("--name", help="sweep name (labels, object names, /results/NAME); default: the --out folder name")
    p.add_argument("--image", help="container image built from deploy/Dockerfile; default pixelplan:cuda "
                                   "(pixelplan:cpu with --gpus 0)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs of each run's learner+planner pod (0: CPU only)")
    p.add_argument("--learners", type=int, default=1)
    p.add_argument("--learner-gpus", type=float, help="GPUs per learner (default: share --gpus evenly)")
    p.add_argument("--planner-gpus", type=float, help="GPUs for the planner service (default: an even share)")
    p.add_argument("--workers", type=int, help="env worker actors per run (one CPU each; RayJobs: default 8, "
                                                "--local: the recipe's or train's default)")
    p.add_argument("--envs-per-worker", type=int, help="RayJobs: default 4; --local: the recipe's or train's")
    p.add_argument("--shards", type=int, default=2, help="replay shards per run")
    p.add_argument("--cpus", type=int, help="head pod CPUs (default: workers + shards + 1)")
    p.add_argument("--memory", default="32Gi", help="head pod memory (replay lives there)")
    p.add_argument("--gpu-cpus", type=int, default=4, help="CPUs of the GPU pod")
    p.add_argument("--gpu-memory", default="32Gi", help="memory of the GPU pod")
    p.add_argument("--namespace", help="Kubernetes namespace (default: kubectl's current one)")
    p.add_argument("--pvc", help="use this existing ReadWriteMany claim instead of creating NAME-results")
    p.add_argument("--storage", default="50Gi", help="size of the results claim")
    p.add_argument("--storage-class", help="storage class of the results claim (must offer ReadWriteMany)")
    p.add_argument("--metrics-port", type=int, default=8090, help="Prometheus port of each run's driver")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="passed on to `pixelplan train --set` (repeatable)")
    p.add_argument("--template", type=Path, help="RayJob template (default: k8s/rayjob.template.yaml)")
    p.add_argument("--force", action="store_true", help="replace manifests already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..offline.sweep import RAYJOB_TEMPLATE, SweepConfig, parse_list, parse_seeds, render_sweep, write_sweep
    if args.local:
        return run_local(args)
    cfg = SweepConfig(
        name=args.name or args.out.resolve().name, agents=parse_list(args.agents, "agents"),
        envs=parse_list(args.envs, "envs"), seeds=parse_seeds(args.seeds), steps=args.steps, recipe=args.recipe,
        image=args.image or ("pixelplan:cuda" if args.gpus else "pixelplan:cpu"), gpus=args.gpus,
        learners=args.learners, workers=8 if args.workers is None else args.workers,
        envs_per_worker=4 if args.envs_per_worker is None else args.envs_per_worker,
        shards=args.shards,
        learner_gpus=args.learner_gpus, planner_gpus=args.planner_gpus, cpus=args.cpus, memory=args.memory,
        gpu_cpus=args.gpu_cpus, gpu_memory=args.gpu_memory, namespace=args.namespace, pvc=args.pvc,
        storage=args.storage, storage_class=args.storage_class, metrics_port=args.metrics_port,
        overrides=tuple(args.overrides))
    written = write_sweep(cfg, render_sweep(cfg, args.template or RAYJOB_TEMPLATE), args.out, force=args.force)
    ns = f" -n {cfg.namespace}" if cfg.namespace else ""
    print(f"wrote {len(written) - 1} RayJobs and the results volume for sweep {cfg.name!r} to {args.out}/")
    print(f"  kubectl{ns} apply -f {args.out}/")
    print(f"  kubectl{ns} get rayjobs -l pixelplan.io/sweep={cfg.name}")
    print(f"  kubectl{ns} exec {cfg.name}-reader -- pixelplan report /results/{cfg.name}")
    return 0


def run_local(args: argparse.Namespace) -> int:
    from ..offline.local_sweep import LocalSweepConfig, run_local_sweep
    from ..offline.sweep import parse_list, parse_seeds

    cfg = LocalSweepConfig(
        agents=parse_list(args.agents, "agents"), envs=parse_list(args.envs, "envs"), seeds=parse_seeds(args.seeds),
        out=args.out, steps=args.steps, recipe=args.recipe, parallel=args.parallel, mode=args.mode,
        address=args.address, workers=args.workers, envs_per_worker=args.envs_per_worker,
        overrides=tuple(args.overrides))
    outcomes = run_local_sweep(cfg, progress=not args.no_progress)
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    print(f"report: pixelplan report {args.out}")
    return 1 if any(o.startswith("failed") for o in outcomes.values()) else 0
