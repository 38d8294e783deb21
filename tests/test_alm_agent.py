"""AlmAgent: the PolicyAgent contract, target networks, gradient routing and checkpoints."""
import numpy as np
import pytest
import torch

from pixelplan.agents.alm import AlmAgent, AlmConfig
from pixelplan.envs.batches import SequenceBatch
from pixelplan.envs.spec import EnvSpec

torch.set_num_threads(1)

STATES = EnvSpec("dmc:fake-states", (5,), 1, "continuous", 2, 100, (), frame_dtype="float32")
PIXELS = EnvSpec("dmc:fake-pixels", (3, 32, 32), 2, "continuous", 2, 100, ())


def window_batch(spec: EnvSpec, cfg: AlmConfig, seed: int = 0) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    b, k = cfg.batch_size, cfg.horizon
    shape = (b, k + 1, *spec.obs_shape)
    obs = rng.integers(0, 256, shape, dtype=np.uint8) if spec.pixels else rng.normal(size=shape).astype(np.float32)
    terminals = np.zeros((b, k), bool)
    terminals[0, -1] = True
    return SequenceBatch(obs, rng.uniform(-1, 1, (b, k, spec.action_size)).astype(np.float32),
                         rng.random((b, k)).astype(np.float32), terminals, np.zeros((b, k + 1), bool))


@pytest.mark.parametrize("spec", [STATES, PIXELS], ids=["states", "pixels"])
def test_act_and_learn_shapes_and_metrics(spec):
    cfg = AlmConfig.tiny()
    agent = AlmAgent(spec, cfg)
    obs = window_batch(spec, cfg).obs[:4, 0]
    assert agent.initial_carry(4) is None
    for explore, steps in ((True, 0), (True, 10**6), (False, 0)):
        actions, carry = agent.act(obs, None, np.ones(4, bool), explore, steps)
        assert actions.shape == (4, 2) and actions.dtype == np.float32 and carry is None
        assert np.all(np.abs(actions) <= 1.0)
    metrics = agent.learn(window_batch(spec, cfg))
    for key in ("loss/model", "loss/policy", "loss/q", "loss/reward", "loss/classifier", "model/kl",
                "grad_norm/model", "grad_norm/policy", "grad_norm/q", "grad_norm/reward", "grad_norm/classifier"):
        assert np.isfinite(metrics[key]), key
    assert metrics["model/kl"] >= 0.0


def test_sample_request_follows_the_paper():
    request = AlmAgent(STATES, AlmConfig()).sample_request()
    assert (request.query.kind, request.batch_size, request.query.length) == ("windows", 512, 3)
    assert request.replay_ratio == 512  # one update of 512 windows per env step
    assert request.min_steps_learn == 5000 and not request.query.cross_episodes


def test_warmup_acts_uniformly_then_policy_plus_scheduled_noise():
    agent = AlmAgent(STATES, AlmConfig.tiny(warmup_steps=100, std_steps=1000))
    obs = np.zeros((2000, 5), np.float32)
    greedy, _ = agent.act(obs[:1], None, np.ones(1, bool), False, 0)
    warm, _ = agent.act(obs, None, np.ones(2000, bool), True, 50)
    assert np.std(warm) == pytest.approx(2 / np.sqrt(12), rel=0.05)  # uniform on [-1, 1]
    late, _ = agent.act(obs, None, np.ones(2000, bool), True, 10**6)
    # far from the bounds the noise is N(0, 0.1): the sample std around the greedy action is ~0.1
    inside = np.abs(greedy[0]) < 0.5
    assert np.std(late - greedy, axis=0)[inside] == pytest.approx(0.1, rel=0.1)


def test_act_rejects_wrong_observations():
    agent = AlmAgent(STATES, AlmConfig.tiny())
    with pytest.raises(ValueError, match="observation"):
        agent.act(np.zeros((2, 4), np.float32), None, np.ones(2, bool), True, 0)
    with pytest.raises(ValueError, match="batch"):
        agent.act(np.zeros(5, np.float32), None, np.ones(1, bool), True, 0)


def test_learn_rejects_windows_of_the_wrong_length_or_crossing_episodes():
    cfg = AlmConfig.tiny()
    agent = AlmAgent(STATES, cfg)
    with pytest.raises(ValueError, match="K=3"):
        agent.learn(window_batch(STATES, AlmConfig.tiny(horizon=2)))
    batch = window_batch(STATES, cfg)
    batch.is_first[0, 2] = True
    with pytest.raises(ValueError, match="cross episode"):
        agent.learn(batch)


def test_discrete_env_is_rejected():
    with pytest.raises(ValueError, match="continuous"):
        AlmAgent(EnvSpec("grid", (1, 9, 9), 1, "discrete", 4, 50, ()), AlmConfig.tiny())


def test_targets_move_by_polyak_averaging():
    cfg = AlmConfig.tiny(tau=0.1)
    agent = AlmAgent(STATES, cfg)
    before = {name: [p.detach().clone() for p in getattr(agent, name).parameters()]
              for name in ("target_encoder", "q_target")}
    agent.learn(window_batch(STATES, cfg))
    for target, online in (("target_encoder", agent.encoder), ("q_target", agent.q)):
        for old, new, p in zip(before[target], getattr(agent, target).parameters(), online.parameters()):
            assert torch.allclose(new, 0.9 * old + 0.1 * p.detach(), atol=1e-6)
        assert any(not torch.equal(o, n) for o, n in zip(before[target], getattr(agent, target).parameters()))


def test_encoder_gets_no_gradient_from_q_or_reward_losses():
    cfg = AlmConfig.tiny()
    agent = AlmAgent(STATES, cfg)
    obs, actions, rewards, terminals = agent.tensors(window_batch(STATES, cfg))
    _, z_targ = agent.target_latents(obs)
    objectives = agent.critic_objectives(z_targ, actions, rewards, terminals, std=0.5)
    enc_params = list(agent.encoder.parameters())
    for role in ("q", "reward"):
        loss, _ = objectives[role]()
        grads = torch.autograd.grad(loss, enc_params + list(getattr(agent, role).parameters()), allow_unused=True)
        assert all(g is None for g in grads[:len(enc_params)]), role
        assert any(g is not None and g.abs().sum() > 0 for g in grads[len(enc_params):]), role
    # ...while the model objective (Eq. 7) does reach the encoder through Q, reward and the KL
    agent.learn(window_batch(STATES, cfg))  # sanity: learning moves the encoder
    frozen = AlmAgent(STATES, cfg)
    for group in frozen.optimizers["model"].param_groups:
        group["lr"] = 0.0
    enc_before = [p.detach().clone() for p in frozen.encoder.parameters()]
    q_before = [p.detach().clone() for p in frozen.q.parameters()]
    frozen.learn(window_batch(STATES, cfg))
    assert all(torch.equal(a, b) for a, b in zip(enc_before, frozen.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(q_before, frozen.q.parameters()))


def test_state_dict_round_trip_resumes_identically():
    cfg = AlmConfig.tiny()
    a = AlmAgent(STATES, cfg)
    a.learn(window_batch(STATES, cfg, seed=1))
    a.act(np.zeros((1, 5), np.float32), None, np.ones(1, bool), True, 10**4)
    b = AlmAgent(STATES, cfg)
    b.load_state_dict(a.state_dict())
    batch = window_batch(STATES, cfg, seed=2)
    assert a.learn(batch) == b.learn(batch)
    obs = np.ones((3, 5), np.float32)
    np.testing.assert_array_equal(a.act(obs, None, np.ones(3, bool), True, 10**4)[0],
                                  b.act(obs, None, np.ones(3, bool), True, 10**4)[0])
    with pytest.raises(ValueError, match="different AlmConfig"):
        AlmAgent(STATES, AlmConfig.tiny(hidden=16)).load_state_dict(a.state_dict())


def test_policy_weights_carry_the_acting_policy():
    cfg = AlmConfig.tiny()
    learner, worker = AlmAgent(STATES, cfg), AlmAgent(STATES, AlmConfig.tiny(), seed=7)
    learner.learn(window_batch(STATES, cfg))
    obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    first = np.ones(4, bool)
    assert not np.allclose(learner.act(obs, None, first, False, 0)[0], worker.act(obs, None, first, False, 0)[0])
    weights = learner.policy_weights()
    assert all(t.device.type == "cpu" for part in weights.values() for t in part.values())
    worker.load_policy_weights(weights)
    np.testing.assert_array_equal(learner.act(obs, None, first, False, 0)[0], worker.act(obs, None, first, False, 0)[0])


def test_policy_learning_rate_defaults_to_the_shared_one():
    agent = AlmAgent(STATES, AlmConfig.tiny(lr=1e-3))
    assert {opt.param_groups[0]["lr"] for opt in agent.optimizers.values()} == {1e-3}
    agent = AlmAgent(STATES, AlmConfig.tiny(lr=1e-3, policy_lr=3e-4))
    assert agent.optimizers["policy"].param_groups[0]["lr"] == 3e-4
    assert agent.optimizers["q"].param_groups[0]["lr"] == 1e-3
