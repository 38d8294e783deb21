"""AgentGoalPolicy: closed-loop replanning, and the ban on an action that left the observation unchanged."""
import numpy as np

from pixelplan.agents.base import PlanResult
from pixelplan.distributed.eval_policies import AgentGoalPolicy


class LowestAllowed:
    """A stand-in planner whose plan starts with the lowest action not banned (2 actions: never stops)."""

    def __init__(self) -> None:
        self.bans = []

    def __call__(self, obs, goals, steps_left, banned=None):
        self.bans.append(None if banned is None else banned.copy())
        first = np.zeros(len(obs), np.int64) if banned is None else np.argmin(banned, axis=1)
        return PlanResult(np.stack([first, first], 1), np.full(len(obs), 2), np.zeros(len(obs)), 0)


def frames(*cells):
    out = np.zeros((len(cells), 1, 3, 3), np.uint8)
    for i, cell in enumerate(cells):
        out[(i, 0, *cell)] = 255
    return out


def test_an_action_that_changed_nothing_is_banned_until_the_observation_changes():
    plan = LowestAllowed()
    policy = AgentGoalPolicy(plan, n_actions=3, ban_noops=True)
    a, b = frames((0, 0)), frames((1, 1))
    goal = frames((2, 2))
    taken = [int(policy.act(obs, goal, np.array([left]), np.array([0]))[0][0])
             for obs, left in ((a, 10), (a, 9), (a, 8), (a, 7), (b, 6), (b, 10))]
    # at a: 0 did nothing, then 1, then 2; all three banned lifts the ban; at b (a new frame) and at the
    # start of a new episode (steps left back at the limit) nothing is banned
    assert taken == [0, 1, 2, 0, 0, 0]
    assert [None if x is None else x[0].tolist() for x in plan.bans[:4]] == \
        [[False] * 3, [True, False, False], [True, True, False], [False] * 3]


def test_envs_are_remembered_apart_and_the_ban_is_off_by_default():
    plan = LowestAllowed()
    policy = AgentGoalPolicy(plan, n_actions=3, ban_noops=True)
    start = frames((0, 0), (0, 0))
    goals = frames((2, 2), (2, 2))
    policy.act(start, goals, np.array([10, 10]), np.array([0, 1]))
    actions, _ = policy.act(frames((0, 0), (1, 0)), goals, np.array([9, 9]), np.array([0, 1]))
    assert actions.tolist() == [1, 0]  # env 0 stood still, env 1 moved
    actions, _ = policy.act(frames((1, 0)), goals[:1], np.array([8]), np.array([1]))  # env 0 finished
    assert actions.tolist() == [1]  # env 1 stood still at (1, 0)
    plain = LowestAllowed()
    off = AgentGoalPolicy(plain, n_actions=3)
    for left in (10, 9, 8):
        assert off.act(start[:1], goals[:1], np.array([left]), np.array([0]))[0].tolist() == [0]
    assert plain.bans == [None] * 3
