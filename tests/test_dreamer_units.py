"""Dreamer unit tests: shapes, free nats, lambda-returns, where each loss's gradient goes."""
import numpy as np
import pytest
import torch

from pixelplan.agents.base import SampleRequest
from pixelplan.agents.dreamer import DreamerAgent, DreamerConfig
from pixelplan.agents.dreamer.imagination import behavior_losses, imagine, lambda_return
from pixelplan.agents.dreamer.nets import ActionModel, ConvDecoder, ConvEncoder
from pixelplan.agents.dreamer.rssm import RSSM, State, kl_loss
from pixelplan.envs.batches import BatchQuery, SequenceBatch
from pixelplan.envs.spec import EnvSpec

torch.set_num_threads(1)
DMC = EnvSpec("dmc:test", (3, 64, 64), 1, "continuous", 2, 50, ())
GRID = EnvSpec("grid", (1, 36, 36), 1, "discrete", 4, 20, ("row", "col"))  # 9x9 cells of 4x4 pixels


def random_batch(spec: EnvSpec, batch: int, length: int, seed: int = 0) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    if spec.discrete:
        actions = rng.integers(spec.action_size, size=(batch, length))
    else:
        actions = rng.uniform(-1, 1, (batch, length, spec.action_size)).astype(np.float32)
    return SequenceBatch(
        obs=rng.integers(0, 256, (batch, length + 1, *spec.obs_shape), dtype=np.uint8), actions=actions,
        rewards=rng.normal(size=(batch, length)).astype(np.float32), terminals=rng.random((batch, length)) < 0.1,
        is_first=np.zeros((batch, length + 1), bool))


def test_paper_encoder_decoder_shapes_at_64x64():
    encoder = ConvEncoder((3, 64, 64), depth=32, layers=4, kernel=4, stride=2)
    assert encoder.heights == [64, 31, 14, 6, 2] and encoder.out_dim == 1024
    decoder = ConvDecoder(230, encoder, kernel=4, stride=2)
    obs = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    assert encoder(obs).shape == (2, 3, 1024)
    assert decoder(torch.zeros(2, 3, 230)).shape == (2, 3, 3, 64, 64)


def test_too_small_image_is_refused():
    with pytest.raises(ValueError, match="too small"):
        ConvEncoder((1, 9, 9), depth=8, layers=3, kernel=4, stride=2)


def test_rssm_observe_and_imagine_shapes():
    rssm = RSSM(action_dim=2, embed_dim=16, deter=12, stoch=5, hidden=10, min_std=0.1)
    posts, priors = rssm.observe(torch.randn(4, 7, 16), torch.randn(4, 7, 2), torch.zeros(4, 7, dtype=torch.bool))
    assert posts.deter.shape == (4, 7, 12) and priors.stoch.shape == (4, 7, 5) and posts.feature.shape == (4, 7, 17)
    assert bool((posts.std > 0.1 - 1e-6).all())
    actor = ActionModel(17, 2, discrete=False, units=8, layers=2)
    imagined = imagine(rssm, actor, posts.map(lambda x: x.reshape(28, -1)), horizon=6)
    assert imagined.feature.shape == (6, 28, 17)


def test_is_first_resets_state_like_a_fresh_start():
    rssm = RSSM(action_dim=2, embed_dim=6, deter=8, stoch=3, hidden=8, min_std=0.1)
    embeds, actions = torch.randn(1, 5, 6), torch.randn(1, 5, 2)
    is_first = torch.tensor([[False, False, True, False, False]])
    torch.manual_seed(0)
    joined, _ = rssm.observe(embeds, actions, is_first)
    torch.manual_seed(0)
    rssm.observe(embeds[:, :2], actions[:, :2], is_first[:, :2])  # consume the same noise
    fresh, _ = rssm.observe(embeds[:, 2:], torch.cat([torch.zeros(1, 1, 2), actions[:, 3:]], 1),
                            torch.zeros(1, 3, dtype=torch.bool))
    assert torch.allclose(joined.deter[:, 2:], fresh.deter, atol=1e-6)
    assert torch.allclose(joined.mean[:, 2:], fresh.mean, atol=1e-6)


def test_kl_below_free_nats_has_no_gradient_and_above_it_does():
    mean = torch.zeros(4, 3, requires_grad=True)
    post = State(torch.zeros(4, 1), mean, mean, torch.ones(4, 3))
    for offset, free_nats, expect_grad in ((0.5, 3.0, False), (3.0, 3.0, True)):
        prior = State(torch.zeros(4, 1), torch.zeros(4, 3), torch.full((4, 3), offset), torch.ones(4, 3))
        loss, kl = kl_loss(post, prior, free_nats)
        assert kl.item() == pytest.approx(0.5 * 3 * offset**2)
        assert loss.item() == pytest.approx(max(free_nats, kl.item()))
        (grad,) = torch.autograd.grad(loss, mean)
        assert bool((grad != 0).any()) == expect_grad


def test_lambda_return_matches_hand_computation():
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.5, -1.0])
    discounts = torch.tensor([0.9, 0.8, 0.5])
    bootstrap, lam = torch.tensor(4.0), 0.5
    # Backwards from R_3 = 4: R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}), v_3 = bootstrap.
    r2 = 2.0 + 0.5 * (0.5 * 4.0 + 0.5 * 4.0)  # 4.0
    r1 = 0.0 + 0.8 * (0.5 * -1.0 + 0.5 * r2)  # 1.2
    r0 = 1.0 + 0.9 * (0.5 * 1.5 + 0.5 * r1)  # 2.215
    got = lambda_return(rewards, values, discounts, bootstrap, lam)
    assert torch.allclose(got, torch.tensor([r0, r1, r2]))
    # lambda = 0 is the one-step TD target, lambda = 1 the discounted Monte-Carlo return.
    assert torch.allclose(lambda_return(rewards, values, discounts, bootstrap, 0.0),
                          rewards + discounts * torch.tensor([1.5, -1.0, 4.0]))
    assert lambda_return(rewards, values, discounts, bootstrap, 1.0)[0].item() == pytest.approx(
        1.0 + 0.9 * (0.0 + 0.8 * (2.0 + 0.5 * 4.0)))


@pytest.mark.parametrize("spec", [DMC, GRID], ids=["continuous", "discrete"])
def test_actor_gradient_flows_through_dynamics_but_trains_only_the_actor(spec):
    config = DreamerConfig.tiny() if spec is DMC else DreamerConfig.tiny().discrete()
    agent = DreamerAgent(spec, config)
    batch = random_batch(spec, 3, 4)
    _, posts, _ = agent.world.loss(torch.as_tensor(batch.obs), agent._action_vectors(batch.actions),
                                   torch.as_tensor(batch.rewards), torch.as_tensor(batch.terminals),
                                   torch.as_tensor(batch.is_first))
    actor_loss, value_loss, _ = behavior_losses(posts, agent.world, agent.actor, agent.value, config.horizon,
                                                config.lambda_)
    assert all(p.requires_grad for p in agent.world.parameters())  # unfrozen again afterwards
    actor_loss.backward()
    actor_grads = [p.grad for p in agent.actor.parameters()]
    assert all(g is not None for g in actor_grads) and sum(g.abs().sum() for g in actor_grads) > 0
    assert all(p.grad is None for p in agent.world.parameters())
    assert all(p.grad is None for p in agent.value.parameters())
    agent.actor.zero_grad(set_to_none=True)
    value_loss.backward()
    assert all(p.grad is None for p in agent.actor.parameters())
    assert all(p.grad is None for p in agent.world.parameters())
    assert sum(p.grad.abs().sum() for p in agent.value.parameters()) > 0


def test_actor_gradient_needs_the_dynamics():
    """With the actor's features detached, its only path to the returns is through the RSSM."""
    torch.manual_seed(0)
    rssm = RSSM(action_dim=2, embed_dim=4, deter=6, stoch=3, hidden=6, min_std=0.1)
    actor = ActionModel(9, 2, discrete=False, units=8, layers=1)
    start = rssm.initial(5)
    feat = imagine(rssm, actor, start, horizon=3).feature
    (grad_through,) = torch.autograd.grad(feat[-1].sum(), actor.net[0].weight)
    assert grad_through.abs().sum() > 0


def test_discrete_actions_are_one_hot_with_straight_through_gradients():
    torch.manual_seed(0)
    actor = ActionModel(6, 4, discrete=True, units=8, layers=1)
    feat = torch.randn(16, 6)
    sample = actor.sample(feat)
    assert torch.allclose(sample.detach(), sample.detach().round(), atol=1e-6)  # one-hot forward value
    assert torch.equal(sample.detach().round().sum(-1), torch.ones(16))
    weights = torch.arange(4.0)
    (grad,) = torch.autograd.grad((sample * weights).sum(), actor.net[-1].bias)
    probs = torch.softmax(actor.net(feat), -1).detach()
    # Straight-through: the gradient is that of sum(probs * weights), the expected value.
    expected = (probs * (weights - (probs * weights).sum(-1, keepdim=True))).sum(0)
    assert torch.allclose(grad, expected, atol=1e-5)


def test_agent_learn_act_and_sample_request():
    agent = DreamerAgent(GRID, DreamerConfig.tiny().discrete())
    request = agent.sample_request()
    assert request == SampleRequest(BatchQuery("windows", 16, 8), replay_ratio=16 / 5.0, min_steps_learn=20)
    paper = DreamerAgent(DMC, DreamerConfig(device="cpu")).sample_request()
    assert (paper.batch_size, paper.query.length, paper.replay_ratio) == (50, 50, 10.0)
    stats = agent.learn(random_batch(GRID, 16, 8))
    for key in ("loss/model", "loss/reward", "loss/kl", "loss/image", "loss/discount", "loss/actor",
                "loss/value", "imagine/return", "grad_norm/model", "grad_norm/actor", "grad_norm/value"):
        assert np.isfinite(stats[key]), key
    obs = np.zeros((3, 1, 36, 36), np.uint8)
    actions, carry = agent.act(obs, agent.initial_carry(3), np.ones(3, bool), explore=False, env_steps=10**6)
    assert actions.dtype == np.int64 and actions.shape == (3,) and carry["deter"].shape == (3, 64)
    with pytest.raises(ValueError, match="must agree"):
        agent.act(obs, carry, np.ones(2, bool), explore=False, env_steps=0)


def test_exploration_follows_env_steps():
    agent = DreamerAgent(DMC, DreamerConfig.tiny())
    obs = np.zeros((64, 3, 64, 64), np.uint8)
    first = np.ones(64, bool)
    greedy, _ = agent.act(obs, None, first, explore=False, env_steps=0)
    seed_phase, _ = agent.act(obs, None, first, explore=True, env_steps=0)
    noisy, _ = agent.act(obs, None, first, explore=True, env_steps=10**6)
    assert seed_phase.std() > 0.5  # uniform in [-1, 1]: std 0.58
    assert 0.2 < (noisy - greedy).std() < 0.4  # Gaussian noise 0.3 (a little clipping)
    discrete = DreamerAgent(GRID, DreamerConfig.tiny(epsilon_decay_steps=100))
    assert discrete.epsilon(0) == pytest.approx(0.4) and discrete.epsilon(50) == pytest.approx(0.25)
    assert discrete.epsilon(10**6) == pytest.approx(0.1)


def test_state_dict_round_trip_resumes_identically():
    config = DreamerConfig.tiny().discrete()
    agent = DreamerAgent(GRID, config)
    agent.learn(random_batch(GRID, 8, 8, seed=1))
    state = agent.state_dict()
    expected = agent.learn(random_batch(GRID, 8, 8, seed=2))
    clone = DreamerAgent(GRID, config.replace(kl_scale=0.5))  # a different config is refused
    with pytest.raises(ValueError, match="different DreamerConfig"):
        clone.load_state_dict(state)
    clone = DreamerAgent(GRID, config)
    clone.learn(random_batch(GRID, 8, 8, seed=3))  # move it away from the saved state first
    clone.load_state_dict(state)
    assert clone.updates == 1
    assert clone.learn(random_batch(GRID, 8, 8, seed=2)) == expected


def test_policy_weights_make_an_identical_actor():
    config = DreamerConfig.tiny().discrete()
    learner, worker = DreamerAgent(GRID, config), DreamerAgent(GRID, config, seed=5)
    learner.learn(random_batch(GRID, 8, 8))
    worker.load_policy_weights(learner.policy_weights())
    obs = np.random.default_rng(0).integers(0, 256, (4, 1, 36, 36), dtype=np.uint8)
    first = np.ones(4, bool)
    torch.manual_seed(1)
    a, carry_a = learner.act(obs, None, first, explore=False, env_steps=0)
    torch.manual_seed(1)
    b, carry_b = worker.act(obs, None, first, explore=False, env_steps=0)
    assert np.array_equal(a, b) and np.allclose(carry_a["deter"], carry_b["deter"])
    with pytest.raises(ValueError, match="lack"):
        worker.load_policy_weights({"actor": {}})

