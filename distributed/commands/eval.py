"""`pixelplan eval`: goal-achievement rate of an agent on the env's 30 fixed evaluation goals."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from pixelplan.envs import RandomGoalPolicy, evaluate, make_env, parse_env_id

from ..goalsets import EVAL_GOALS, load_or_build_goal_set
from ..offline.plots import plot_goal_grid


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate goal achievement on the 30 evaluation goals")
    p.add_argument("--env", required=True, help="env id: grid, grid:four-rooms, atari:pong, dmc:cartpole-balance")
    p.add_argument("--agent", default="random", help="'random', or a run folder / checkpoint of a trained agent")
    p.add_argument("--episodes", type=int, default=EVAL_GOALS)
    p.add_argument("--seed", type=int, default=0, help="goal-set and episode seed")
    p.add_argument("--out", default=None, help="folder for result.json and goals.png (default runs/eval-<env>)")
    p.set_defaults(func=run)


def _policy(agent: str, env, seed: int):
    if agent == "random":
        return RandomGoalPolicy(env, seed)
    from ..checkpoint import load_goal_policy  # trained agents: GLAMOR plans replanned every step

    return load_goal_policy(agent, env.spec)


def run(args: argparse.Namespace) -> int:
    parse_env_id(args.env)
    if args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    out = Path(args.out or f"runs/eval-{args.env.replace(':', '-').replace('/', '_')}")
    goals = load_or_build_goal_set(args.env, EVAL_GOALS, args.seed)
    probe = make_env(args.env)
    policy = _policy(args.agent, probe, args.seed)
    with tqdm(total=args.episodes, desc=f"eval {args.agent} on {args.env}", unit="ep") as bar:
        result = evaluate(lambda: make_env(args.env), goals, policy, args.episodes, args.seed,
                          progress=lambda done: bar.update(done - bar.n))
    probe.close()
    summary = {"env": args.env, "agent": args.agent, **result.summary()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    shown = min(len(result.achieved), EVAL_GOALS)
    png = plot_goal_grid(goals.frames[result.goal_index[:shown]], result.final_frames[:shown],
                         result.achieved[:shown], out / "goals.png",
                         f"{args.agent} on {args.env}: achievement {result.achievement_rate:.2f}")
    print(f"achievement rate: {result.achievement_rate:.3f} over {len(result.achieved)} episodes")
    if result.has_optimal:
        print(f"optimal-path rate: {result.optimal_rate:.3f}")
    print(f"goal grid: {png}")
    return 0
