"""`pixelplan eval`: a trained run (GLAMOR, Dreamer, ALM) or a random policy, from the command line.

Goal agents are judged on the env's 30 fixed evaluation goals (achievement rate), reward agents by
their mean ± std return. Prints a short table, writes ``result.json`` (and ``goals.png`` for goal
agents) and, with ``--video N``, annotated videos of the first N episodes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from pixelplan.envs import RandomGoalPolicy, evaluate, make_env, parse_env_id

from ..eval_policies import AgentGoalPolicy, load_trained_agent, play_episodes
from ..goalsets import EVAL_GOAL_SEED, EVAL_GOALS, load_or_build_goal_set
from ..offline.plan_diagnosis import by_distance, diagnose_start_plans, first_action_accuracy
from ..offline.plots import plot_goal_grid
from ..videos import goal_video, return_video, write_video


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run or a random policy: goal achievement or return")
    p.add_argument("--agent", default="random", help="a trained run's folder or checkpoint, or 'random'")
    p.add_argument("--env", default=None, help="env id: needed for 'random'; a trained run uses its own env")
    p.add_argument("--episodes", type=int, default=EVAL_GOALS)
    p.add_argument("--seed", type=int, default=None,
                   help="episode seed (default: the run's seed, or 0); the 30 evaluation goals are fixed per env")
    p.add_argument("--set", nargs="+", default=[], metavar="agent.FIELD=VALUE", dest="overrides",
                   help="planning settings of a trained run, e.g. agent.policy_trials=200 agent.plan_discount=0.7")
    p.add_argument("--video", type=int, default=0, metavar="N", help="also write videos of the first N episodes")
    p.add_argument("--fps", type=int, default=10, help="frames per second of the videos")
    p.add_argument("--diagnose", action="store_true",
                   help="grid envs: results by shortest-path distance and, for a trained GLAMOR, whether its "
                        "detours are search misses or model errors (offline/plan_diagnosis.py)")
    p.add_argument("--out", default=None, help="folder for result.json, goals.png and videos/ "
                                               "(default: RUN_DIR/eval, or runs/eval-<env> for 'random')")
    p.set_defaults(func=run)


def planning_overrides(assignments: list[str]) -> dict:
    """``agent.FIELD=VALUE`` items as a dict of raw values; whether FIELD may change, and what type its
    value must have, is the trained agent's config to say (``load_trained_agent``)."""
    planning = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        head, _, name = key.partition(".")
        if not sep or head != "agent" or not name:
            raise ValueError("at evaluation --set takes only agent.FIELD=VALUE (the trained agent's planning "
                             f"settings), got {item!r}")
        planning[name] = raw
    return planning


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if not 0 <= args.video <= args.episodes:
        raise ValueError(f"--video must be between 0 and --episodes ({args.episodes}), got {args.video}")
    if args.fps < 1:
        raise ValueError("--fps must be >= 1")
    planning = planning_overrides(args.overrides)
    if args.agent == "random":
        if args.env is None:
            raise ValueError("--env is needed to evaluate 'random' (a trained run brings its own env)")
        if planning:
            raise ValueError("--set changes a trained agent's planning; 'random' has none")
        parse_env_id(args.env)
        agent, env_id, env_options, kind, seed = None, args.env, {}, "random", args.seed or 0
        out = Path(args.out or f"runs/eval-{env_id.replace(':', '-').replace('/', '_')}")
    else:
        agent, trained = load_trained_agent(args.agent, planning)
        planning = {k: getattr(agent.config, k) for k in planning}  # as the agent's config typed them
        if args.env is not None and args.env != trained.env:
            raise ValueError(f"{args.agent} was trained on {trained.env!r}, not {args.env!r}")
        env_id, env_options, kind = trained.env, trained.env_options, trained.agent
        seed = trained.seed if args.seed is None else args.seed
        path = Path(args.agent)
        out = Path(args.out) if args.out else (path / "eval" if path.is_dir() else path.with_name(path.stem + "-eval"))
    if args.diagnose and parse_env_id(env_id)[0] != "grid":
        raise ValueError(f"--diagnose is for grid envs (it needs shortest paths), not {env_id}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"env": env_id, "agent": args.agent, "kind": kind, "seed": seed, "planning": planning}
    if agent is None or agent.goal_conditioned:
        rows, videos = _evaluate_goals(args, agent, env_id, env_options, seed, out, summary)
    else:
        rows, videos = _evaluate_returns(args, agent, env_id, env_options, seed, out, summary)
    summary["videos"] = [str(v) for v in videos]
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    overrides = " ".join(f"{k}={v}" for k, v in planning.items())
    print(f"{kind} ({args.agent}) on {env_id}, seed {seed}" + (f", {overrides}" if overrides else ""))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"result: {out / 'result.json'}")
    for video in videos:
        print(f"video: {video}")
    return 0


def _evaluate_goals(args, agent, env_id: str, env_options: dict, seed: int, out: Path, summary: dict):
    goals = load_or_build_goal_set(env_id, EVAL_GOALS, EVAL_GOAL_SEED, env_options)  # the goals training is scored on
    probe = make_env(env_id, **env_options)
    policy = RandomGoalPolicy(probe, seed) if agent is None else \
        AgentGoalPolicy(agent.plan, probe.spec.action_size, getattr(agent.config, "ban_noop_actions", False))
    try:
        record = args.video if probe.spec.pixels else 0  # goal videos and the goal grid show goal frames
        with tqdm(total=args.episodes, desc=f"eval {args.agent} on {env_id}", unit="ep") as bar:
            result = evaluate(lambda: make_env(env_id, **env_options), goals, policy, args.episodes, seed,
                              progress=lambda done: bar.update(done - bar.n), record=record)
    finally:
        probe.close()
    summary.update(result.summary())
    summary["steps"] = result.steps.tolist()
    shown = min(len(result.achieved), EVAL_GOALS)
    png = plot_goal_grid(goals.frames[result.goal_index[:shown]], result.final_frames[:shown],
                         result.achieved[:shown], out / "goals.png",
                         f"{args.agent} on {env_id}: achievement {result.achievement_rate:.2f}") \
        if probe.spec.pixels else "none (the goals are state vectors)"
    rows = [("episodes", str(len(result.achieved))), ("achievement rate", f"{result.achievement_rate:.3f}")]
    if result.has_optimal:
        rows.append(("optimal-path rate", f"{result.optimal_rate:.3f}"))
    rows += [("mean steps", f"{result.steps.mean():.1f}"), ("goal grid", str(png))]
    if args.diagnose:
        rows += _diagnose(agent, env_id, env_options, goals, result, seed, summary)
    videos = [write_video(out / "videos" / f"episode-{i:03d}",
                          goal_video(film, goals.frames[result.goal_index[i]], probe.spec.time_limit), args.fps)
              for i, film in enumerate(result.films)]
    return rows, videos


def _evaluate_returns(args, agent, env_id: str, env_options: dict, seed: int, out: Path, summary: dict):
    result = play_episodes(env_id, env_options, agent, args.episodes, seed, record=args.video)
    summary.update(result.summary())
    summary["returns"], summary["steps"] = result.returns.tolist(), result.lengths.tolist()
    rows = [("episodes", str(len(result.returns))),
            ("return (mean ± std)", f"{result.returns.mean():.2f} ± {result.returns.std():.2f}")]
    videos = [write_video(out / "videos" / f"episode-{i:03d}", return_video(film), args.fps)
              for i, film in enumerate(result.films)]
    return rows, videos


def _diagnose(agent, env_id: str, env_options: dict, goals, result, seed: int, summary: dict):
    bands = by_distance(result.shortest, result.achieved, result.optimal, result.steps)
    summary["by_distance"] = bands
    rows = [(f"distance {b['distance']} ({b['episodes']} ep)",
             f"achievement {b['achievement']:.2f}, optimal {b['optimal']:.2f}, excess steps {b['excess_steps']:.1f}")
            for b in bands]
    if agent is not None and hasattr(agent, "net"):
        env = make_env(env_id, **env_options)
        try:
            diagnosis, accuracy = diagnose_start_plans(agent, env, goals, seed), first_action_accuracy(agent, env)
        finally:
            env.close()
        summary["start_plans"], summary["first_action"] = diagnosis, accuracy
        rows += [(f"start plans: {k.replace('_', ' ')}", f"{v:.2f}") for k, v in diagnosis.items()]
        rows += [(f"IDM {k.replace('_', ' ')}", f"{v:.2f}") for k, v in accuracy.items()]
    return rows
