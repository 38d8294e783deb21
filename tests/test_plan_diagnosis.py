"""The grid diagnosis behind `pixelplan eval --diagnose`: shortest paths, Eq. 8 scores that agree
with the planner's own, results by distance; and the optimal-path rate's goal-cell rule."""
import math

import numpy as np
import pytest
import torch

from pixelplan.agents.glamor import GlamorAgent, GlamorConfig
from pixelplan.distributed.offline.plan_diagnosis import (
    by_distance,
    diagnose_start_plans,
    end_cell,
    first_action_accuracy,
    sequence_scores,
    shortest_action_paths,
    shortest_first_actions,
)
from pixelplan.envs import evaluate, make_env
from pixelplan.envs.goals import GoalSet, build_goal_set
from pixelplan.envs.gridworld import AGENT, GridWorld

OPEN_ROOM = "#####\n#S..#\n#...#\n#...#\n#####"


def test_shortest_paths_are_all_the_monotone_paths_of_an_open_room():
    env = GridWorld(OPEN_ROOM)
    paths = shortest_action_paths(env, (3, 3))
    assert len(paths) == math.comb(4, 2)  # 2 downs and 2 rights in any order
    assert len({tuple(p) for p in paths}) == len(paths)
    assert all(len(p) == 4 and end_cell(env, p) == (3, 3) for p in paths)
    assert len(shortest_action_paths(env, (3, 3), limit=2)) == 2


def test_sequence_scores_agree_with_the_planner():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(plan_discount=0.6), seed=3)
    obs = env.reset(seed=0)
    goal = env.render_at((1, 1))
    planned = agent.plan(obs[None], goal[None], np.array([env.spec.time_limit]), seed=5)
    plan = [int(a) for a in planned.actions[0, : planned.lengths[0]]]
    assert sequence_scores(agent, obs, goal, [plan])[0] == pytest.approx(planned.scores[0], abs=1e-4)
    longer = plan + [plan[-1]]
    assert sequence_scores(agent, obs, goal, [plan, longer]).shape == (2,)


def test_start_plan_shares_are_fractions_of_the_goals():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(policy_trials=5), seed=0)
    goals = build_goal_set(env, num_goals=5, seed=0, episodes=20, range_episodes=20)
    out = diagnose_start_plans(agent, env, goals)
    assert set(out) == {"search_miss", "model_prefers_other_length", "start_plan_reaches_goal",
                        "start_plan_is_shortest"}
    assert all(v * 5 == round(v * 5) and 0 <= v <= 1 for v in out.values())
    assert out["start_plan_is_shortest"] <= out["start_plan_reaches_goal"]


def test_by_distance_bands():
    shortest = np.array([2, 3, 7, 12, 20])
    rows = by_distance(shortest, np.array([1, 1, 0, 1, 0], bool), np.array([1, 0, 0, 0, 0], bool),
                       np.array([2, 5, 60, 14, 60]))
    assert [r["distance"] for r in rows] == ["1-5", "6-10", "11-15", "16+"]
    assert rows[0] == {"distance": "1-5", "episodes": 2, "achievement": 1.0, "optimal": 0.5, "excess_steps": 1.0}
    assert rows[2]["excess_steps"] == 2.0


class BumpUpThenStop:
    def act(self, obs, goals, steps_left, env_ids):
        return np.zeros(len(obs), np.int64), np.ones(len(obs), bool)


def test_stopping_beside_the_goal_is_achieved_but_not_optimal():
    layout = "#############\n" + "#S..........#\n" + "#...........#\n" * 10 + "#############"
    env = GridWorld(layout)  # 11 cells wide: the 10% rule accepts the goal's neighbours
    goal_cell = (2, 1)  # one step below the start; action 0 (up) bumps the wall and stays at (1, 1)
    frames = env.render_at(goal_cell)[None]
    goals = GoalSet(env.spec.env_id, frames, np.array([goal_cell], np.float32), env.known_feature_ranges(), 0)
    result = evaluate(lambda: GridWorld(layout), goals, BumpUpThenStop(), episodes=1)
    assert result.achieved[0] and result.steps[0] == 1 and result.shortest[0] == 1
    assert not result.optimal[0]  # stopped on (1, 1), beside the goal, after as many steps as the shortest path


class FirstActionNet:
    """A stand-in IDM whose first action is ``choose(cell, goal)`` (log-probs over actions, END, PAD)."""

    def __init__(self, choose) -> None:
        self.choose = choose

    def __call__(self, obs, goals, tokens):
        def cell(frame):
            return tuple(int(v) for v in np.argwhere(frame[0].numpy() == AGENT)[0])

        out = torch.full((len(obs), 1, 6), -30.0)
        for b in range(len(obs)):
            out[b, 0, self.choose(cell(obs[b]), cell(goals[b]))] = 0.0
        return out, out


def test_first_action_accuracy_separates_heading_straight_from_finding_the_door():
    env = GridWorld("#######\n#..#..#\n#.....#\n#..#..#\n#######")  # two rooms, one door at (2, 3)
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=0)

    def straight(cell, goal):  # down / up / left / right, rows first: ignores the wall
        if goal[0] != cell[0]:
            return 1 if goal[0] > cell[0] else 0
        return 3 if goal[1] > cell[1] else 2

    agent.net = FirstActionNet(straight)
    heading = first_action_accuracy(agent, env)
    assert heading["first_action_right_open"] == 1.0
    assert 0 < heading["first_action_right_detour"] < 1
    agent.net = FirstActionNet(lambda cell, goal: min(shortest_first_actions(env, cell, goal), default=0))
    assert set(first_action_accuracy(agent, env).values()) == {1.0}
