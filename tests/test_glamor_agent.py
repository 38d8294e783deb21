"""GlamorAgent contract: sample request, weights, save/load round trip, registry; collection helpers."""
import numpy as np
import pytest
import torch
from glamor_pairs import grid_batch  # noqa: E402 (tests/ is on sys.path)

from pixelplan.agents.base import PlanResult
from pixelplan.agents.glamor import EpsilonSchedule, GlamorAgent, GlamorConfig, OpenLoopFollower
from pixelplan.agents.registry import make_agent, make_config
from pixelplan.envs import make_env

torch.set_num_threads(1)


def requests(env, n=5):
    obs = np.stack([env.reset()] * n)
    goals = np.stack([env.render_at((1 + i % 7, 1 + (3 * i) % 7)) for i in range(n)])
    return obs, goals, np.full(n, env.spec.time_limit)


def test_sample_request_follows_the_config():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig())
    req = agent.sample_request()
    assert (req.query.kind, req.batch_size, req.replay_ratio, req.min_steps_learn) == ("pairs", 200, 4.0, 50_000)
    assert req.query.length == env.spec.time_limit  # no longer than T by default
    assert GlamorAgent(env.spec, GlamorConfig(max_pair_length=7)).sample_request().query.length == 7
    routed = GlamorAgent(env.spec, GlamorConfig(shortest_route_share=1.0, state_pair_share=0.5)).sample_request().query
    assert (routed.shortest_routes, routed.graph_starts, routed.state_pairs) == (1.0, 0.0, 0.5)
    for name in ("graph_start_share", "state_pair_share"):
        with pytest.raises(ValueError, match=f"{name} is a share of the routed pairs"):
            GlamorConfig(**{name: 0.5})
        with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\]"):
            GlamorConfig(shortest_route_share=1.0, **{name: 1.5})


def test_save_load_round_trip_restores_everything(tmp_path):
    env = make_env("grid")
    rng = np.random.default_rng(0)
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=1)
    for _ in range(3):
        agent.learn(grid_batch(env, rng, size=16, max_len=6))
    path = agent.save(tmp_path / "ckpt" / "glamor.pt")
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    batch, req = grid_batch(env, rng, size=16, max_len=6), requests(env)
    expected_loss = agent.learn(batch)
    expected_plan = agent.plan(*req)  # no seed given: drawn from the agent's RNG, which is saved too

    other = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=2)
    other.load(path)
    assert other.updates == 3 and other.version == 3
    assert other.learn(batch) == pytest.approx(expected_loss)  # same weights and optimiser moments
    got = other.plan(*req)
    assert np.array_equal(got.actions, expected_plan.actions) and got.version == 4

    rebuilt = GlamorAgent.from_checkpoint(path)
    assert rebuilt.config == agent.config and rebuilt.updates == 3


def test_load_refuses_a_different_config(tmp_path):
    env = make_env("grid")
    path = GlamorAgent(env.spec, GlamorConfig.tiny()).save(tmp_path / "a.pt")
    with pytest.raises(ValueError, match="state_size"):
        GlamorAgent(env.spec, GlamorConfig.tiny(state_size=32)).load(path)


def test_a_checkpoint_older_than_a_config_field_loads_with_its_default():
    env = make_env("grid")
    state = GlamorAgent(env.spec, GlamorConfig.tiny()).state_dict()
    del state["config"]["plan_mode"]  # as if written before the field existed
    GlamorAgent(env.spec, GlamorConfig.tiny()).load_state_dict(state)  # the default: loads
    with pytest.raises(ValueError, match=r"\['plan_mode'\]"):  # anything but the default is a different config
        GlamorAgent(env.spec, GlamorConfig.tiny(plan_mode="plan-end")).load_state_dict(state)
    state["config"]["removed_field"] = 1  # a field this build no longer has is refused
    with pytest.raises(ValueError, match="removed_field"):
        GlamorAgent(env.spec, GlamorConfig.tiny()).load_state_dict(state)
    with pytest.raises(ValueError, match="saved for env 'grid'"):
        GlamorAgent(make_env("grid:maze").spec, GlamorConfig.tiny()).load_state_dict(state)


def test_policy_weights_are_cpu_and_carry_the_version():
    env = make_env("grid")
    learner = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=0)
    learner.learn(grid_batch(env, np.random.default_rng(3), size=16, max_len=6))
    weights = learner.policy_weights()
    assert weights["version"] == 1
    assert all(t.device.type == "cpu" for t in weights["net"].values())
    actor = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=5)
    actor.load_policy_weights(weights)
    a, b = learner.plan(*requests(env), seed=4), actor.plan(*requests(env), seed=4)
    assert np.array_equal(a.actions, b.actions) and b.version == 1


def test_registry_builds_glamor_with_presets_and_checked_overrides():
    env = make_env("grid")
    agent = make_agent("glamor", env.spec, {"preset": "tiny", "lr": 1e-3, "encoder_channels": [8, 8]})
    assert agent.config == GlamorConfig.tiny(lr=1e-3, encoder_channels=(8, 8))
    assert make_config("glamor") == GlamorConfig()
    with pytest.raises(ValueError, match="no field"):
        make_agent("glamor", env.spec, {"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("glamour", env.spec)
    with pytest.raises(ValueError, match="preset"):
        make_config("glamor", {"preset": "huge"})
    with pytest.raises(ValueError, match="plan_discount"):
        make_config("glamor", {"plan_discount": 0.0})


def test_epsilon_decays_linearly_then_stays():
    eps = EpsilonSchedule(1.0, 0.1, 1000)
    assert eps(0) == 1.0 and eps(500) == pytest.approx(0.55) and eps(1000) == 0.1 and eps(10**9) == 0.1
    agent = GlamorAgent(make_env("grid").spec, GlamorConfig())
    assert agent.epsilon(150_000) == pytest.approx(0.55) and agent.epsilon(300_000) == pytest.approx(0.1)


def plans(rows):
    width = max(len(r) for r in rows)
    actions = np.full((len(rows), width), -1, np.int64)
    for i, r in enumerate(rows):
        actions[i, : len(r)] = r
    return PlanResult(actions, np.array([len(r) for r in rows]), np.zeros(len(rows)))


def test_open_loop_follower_follows_plans_then_explores():
    follower = OpenLoopFollower(3, n_actions=4, seed=0, stop_at_plan_end=True)
    follower.start(np.arange(3), plans([[0, 1, 2], [3], [2, 2]]))
    steps = [follower.next_actions(eps=0.0) for _ in range(3)]
    assert [list(a) for a, _ in steps[:1]] == [[0, 3, 2]]
    assert list(steps[1][0][[0, 2]]) == [1, 2] and list(steps[1][1]) == [False, True, False]
    assert list(steps[2][1]) == [False, True, True]
    follower.start(np.array([1]), plans([[1, 1, 1, 1]]))  # a new episode for env 1 only
    actions, stop = follower.next_actions(eps=0.0, env_ids=np.array([1]))
    assert list(actions) == [1] and not stop[0]


def test_open_loop_follower_replaces_actions_with_probability_eps():
    follower = OpenLoopFollower(2000, n_actions=4, seed=1)
    follower.start(np.arange(2000), plans([[0] * 5] * 2000))
    replaced = np.mean([np.mean(follower.next_actions(eps=0.4)[0] != 0) for _ in range(5)])
    assert replaced == pytest.approx(0.4 * 3 / 4, abs=0.02)  # a random action is 0 a quarter of the time
    actions, stop = follower.next_actions(eps=0.0)  # plans used up: random actions, no stop by default
    assert len(set(actions.tolist())) == 4 and not stop.any()


def test_follower_says_which_envs_are_due_a_plan():
    follower = OpenLoopFollower(3, n_actions=4, seed=0)
    follower.start(np.arange(3), plans([[0, 1, 2], [3], [2, 2]]))
    follower.next_actions(eps=0.0)  # one step each: env 1's plan is spent
    assert [list(x) for x in follower.due(np.arange(3))] == [[], []]  # the paper's collection: never
    follower.replan_every, follower.next_goal = 1, True
    assert [list(x) for x in follower.due(np.arange(3))] == [[0, 2], [1]]
    follower.replan_every = 2
    assert [list(x) for x in follower.due(np.array([2, 1]))] == [[], [1]]
    follower.next_actions(eps=0.0, env_ids=np.array([0]))
    assert [list(x) for x in follower.due(np.arange(3))] == [[0], [1]]


def test_collection_settings_are_checked():
    with pytest.raises(ValueError, match="collect_replan_every must be >= 0"):
        GlamorConfig(collect_replan_every=-1)
    with pytest.raises(ValueError, match="pick one"):
        GlamorConfig(next_goal_at_plan_end=True, stop_at_plan_end=True)


def test_learning_rate_is_constant_by_default_and_decays_in_the_tiny_preset():
    assert GlamorConfig().learning_rate(10**6) == 5e-4
    tiny = GlamorConfig.tiny()
    assert tiny.learning_rate(0) == 2e-3 and tiny.learning_rate(10**6) == pytest.approx(1e-4)
    assert tiny.learning_rate(500) == pytest.approx((2e-3 + 1e-4) / 2)
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(lr_decay_updates=2))
    for _ in range(3):
        agent.learn(grid_batch(env, np.random.default_rng(0), size=16, max_len=6))
    assert agent.optim.param_groups[0]["lr"] == pytest.approx(1e-4)
