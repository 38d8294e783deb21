"""Why a trained GLAMOR takes detours on a grid: a search miss or a model error.

In a deterministic world every action sequence that reaches g has the same true ratio
p_idm / p_prior (= p(g | s, a) / p(g | s)), so Eq. 8 should rank the shortest ones first through
gamma. From the start state and for each evaluation goal this scores, under the trained model, the
best of the shortest paths to g (up to ``limit`` of them enumerated) and the plan the planner
returned. A shortest path scoring higher means random shooting never sampled it (search); the
returned plan scoring higher with another length means the model, after gamma, prefers it (model
error: it rarely even reaches g, which ``reaches_goal`` counts).
"""
from __future__ import annotations

import numpy as np
import torch

from pixelplan.envs.goals import GoalSet
from pixelplan.envs.gridworld import MOVES, GridWorld


def shortest_action_paths(env: GridWorld, cell: tuple[int, int], limit: int = 64) -> list[list[int]]:
    """Up to ``limit`` distinct shortest action sequences from the start to ``cell`` (depth first)."""
    dist = env.distances(cell)  # BFS from the goal: each step of a shortest path lowers it by one
    paths, todo = [], [(env.start, [])]
    while todo and len(paths) < limit:
        pos, actions = todo.pop()
        if dist[pos] == 0:
            paths.append(actions)
            continue
        for a in sorted(shortest_first_actions(env, pos, cell)):
            todo.append(((pos[0] + MOVES[a][0], pos[1] + MOVES[a][1]), actions + [a]))
    return paths


def end_cell(env: GridWorld, actions: list[int]) -> tuple[int, int]:
    pos = env.start
    for a in actions:
        nxt = (pos[0] + MOVES[a][0], pos[1] + MOVES[a][1])
        pos = pos if env.walls[nxt] else nxt
    return pos


@torch.no_grad()
def sequence_scores(agent, obs: np.ndarray, goal: np.ndarray, sequences: list[list[int]]) -> np.ndarray:
    """Eq. 8 log-scores (sum of z over the actions and END, plus k log gamma) of whole sequences."""
    n, width = agent.spec.action_size, max(len(s) for s in sequences) + 1
    tokens = np.full((len(sequences), width), n + 1, np.int64)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)], tokens[row, len(seq)] = seq, n
    obs_t, goal_t = (torch.as_tensor(np.repeat(x[None], len(sequences), 0), device=agent.device) for x in (obs, goal))
    lp_idm, lp_prior = agent.net(obs_t, goal_t, torch.as_tensor(tokens, device=agent.device))
    z = lp_idm - lp_prior if agent.config.use_prior else lp_idm
    picked = z.gather(-1, torch.as_tensor(tokens, device=agent.device).clamp(max=n).unsqueeze(-1)).squeeze(-1)
    lengths = np.array([len(s) for s in sequences])
    valid = torch.arange(width, device=agent.device)[None] <= torch.as_tensor(lengths, device=agent.device)[:, None]
    return torch.where(valid, picked, 0.0).sum(1).cpu().numpy() + lengths * np.log(agent.config.plan_discount)


def diagnose_start_plans(agent, env: GridWorld, goals: GoalSet, seed: int = 0) -> dict[str, float]:
    """Shares of the goals where search missed a better shortest path, or the model preferred another
    length; and how many start plans, followed open loop, end on the goal (at the shortest length)."""
    obs = env.reset(seed=seed)
    miss = prefer = reach = reach_shortest = 0
    for i, (frame, feats) in enumerate(zip(goals.frames, goals.features)):
        cell = tuple(int(v) for v in np.rint(feats))
        planned = agent.plan(obs[None], frame[None], np.array([env.spec.time_limit]), seed=seed + i)
        plan = [int(a) for a in planned.actions[0, : planned.lengths[0]]]
        shortest = shortest_action_paths(env, cell)
        *shortest_scores, chosen = sequence_scores(agent, obs, frame, shortest + [plan])  # one model pass
        best_shortest = max(shortest_scores)
        miss += best_shortest > chosen + 1e-4
        prefer += chosen > best_shortest + 1e-4 and len(plan) != len(shortest[0])
        hit = end_cell(env, plan) == cell
        reach += hit
        reach_shortest += hit and len(plan) == len(shortest[0])
    k = len(goals)
    return {"search_miss": miss / k, "model_prefers_other_length": prefer / k,
            "start_plan_reaches_goal": reach / k, "start_plan_is_shortest": reach_shortest / k}


def shortest_first_actions(env: GridWorld, cell: tuple[int, int], goal: tuple[int, int]) -> set[int]:
    """The actions from ``cell`` that begin a shortest path to ``goal``."""
    dist = env.distances(goal)
    return {a for a, (dr, dc) in enumerate(MOVES)
            if not env.walls[cell[0] + dr, cell[1] + dc] and dist[cell[0] + dr, cell[1] + dc] == dist[cell] - 1}


@torch.no_grad()
def first_action_accuracy(agent, env: GridWorld) -> dict[str, float]:
    """How often the IDM's most likely first action begins a shortest path, over every (cell, goal cell)
    pair of the layout, split by whether a wall is in the way: "open" pairs, where every action that
    heads straight for the goal (lowers the row or column gap) begins a shortest path, and "detour"
    pairs, where one does not and a door must be found; detours also on the start's shortest paths
    (the cells a shortest episode passes). A model that heads straight for goals scores 1 on open pairs."""
    n, cells = agent.spec.action_size, [tuple(int(v) for v in c) for c in np.argwhere(~env.walls)]
    frames = torch.as_tensor(np.stack([env.render_at(c) for c in cells]), device=agent.device)
    from_start = env.distances(env.start)
    right = {"open": [], "detour": [], "detour_on_start_paths": []}
    for k, cell in enumerate(cells):
        lp_idm, _ = agent.net(frames[k:k + 1].expand(len(cells), *frames.shape[1:]), frames,
                              torch.full((len(cells), 1), n + 1, device=agent.device))
        best = lp_idm[:, 0, :n].argmax(1).tolist()
        for goal, action in zip(cells, best):
            if goal == cell:
                continue
            good = shortest_first_actions(env, cell, goal)
            straight = {a for a, (dr, dc) in enumerate(MOVES)
                        if (dr and dr == np.sign(goal[0] - cell[0])) or (dc and dc == np.sign(goal[1] - cell[1]))}
            kind = "open" if straight <= good else "detour"
            right[kind].append(action in good)
            if kind == "detour" and from_start[cell] + env.distances(goal)[cell] == from_start[goal]:
                right["detour_on_start_paths"].append(action in good)
    return {f"first_action_right_{kind}": float(np.mean(v)) if v else float("nan") for kind, v in right.items()}


def by_distance(shortest: np.ndarray, achieved: np.ndarray, optimal: np.ndarray, steps: np.ndarray,
                edges: tuple[int, ...] = (1, 6, 11, 16)) -> list[dict[str, float]]:
    """Achievement, optimal-path rate and mean excess steps per band of shortest-path distance."""
    rows = []
    for lo, hi in zip(edges, edges[1:] + (10**9,)):
        band = (shortest >= lo) & (shortest < hi)
        if band.any():
            rows.append({"distance": f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+", "episodes": int(band.sum()),
                         "achievement": float(achieved[band].mean()), "optimal": float(optimal[band].mean()),
                         "excess_steps": float((steps[band] - shortest[band]).mean())})
    return rows
