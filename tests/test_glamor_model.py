"""GLAMOR networks and Eq. 9: shapes, the END/PAD vocabulary, encoder sharing, loss on a fixed batch."""
import numpy as np
import pytest
import torch
from glamor_pairs import grid_batch  # noqa: E402 (tests/ is on sys.path)

from pixelplan.agents.glamor import GlamorAgent, GlamorConfig
from pixelplan.agents.glamor.loss import glamor_loss
from pixelplan.agents.glamor.nets import GlamorNet
from pixelplan.agents.nets import ImpalaEncoder, make_encoder
from pixelplan.envs import EnvSpec, make_env
from pixelplan.envs.batches import PairBatch

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(1, 9, 9), (4, 104, 80), (3, 5, 7)])
def test_impala_encoder_handles_small_and_paper_sized_frames(shape):
    enc = ImpalaEncoder(shape, channels=(4, 8, 8), out_dim=16)
    out = enc(torch.randint(0, 256, (2, *shape), dtype=torch.uint8))
    assert out.shape == (2, 16) and torch.all(out >= 0)
    assert torch.allclose(enc(torch.full((1, *shape), 255, dtype=torch.uint8)), enc(torch.ones(1, *shape)))


def test_vocabulary_end_and_pad_handling():
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny())
    batch = grid_batch(env, np.random.default_rng(0), size=5)
    lp_idm, lp_prior = net(*(torch.as_tensor(x) for x in (batch.obs, batch.goals, batch.actions)))
    n = env.spec.action_size
    for lp in (lp_idm, lp_prior):
        assert lp.shape == (5, batch.actions.shape[1], n + 2)
        probs = lp.exp()
        assert torch.allclose(probs.sum(-1), torch.ones(5, batch.actions.shape[1]), atol=1e-5)
        assert torch.all(probs[..., n + 1] == 0)  # PAD is never predicted
        assert torch.all(probs[:, 0, n] == 0)  # END cannot come first: a plan has >= 1 action
        assert torch.all(probs[:, 1:, n] > 0)


def test_prior_ignores_the_goal_and_shares_only_the_observation_encoder():
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny())
    obs = torch.as_tensor(np.stack([env.reset()] * 2))
    tokens = torch.tensor([[0, 1, 4, 5], [0, 1, 4, 5]])
    goals = torch.as_tensor(np.stack([env.render_at((1, 1)), env.render_at((7, 7))]))
    lp_idm, lp_prior = net(obs, goals, tokens)
    assert not torch.allclose(lp_idm[0], lp_idm[1])
    assert torch.allclose(lp_prior[0], lp_prior[1])
    idm_params = {id(p) for p in net.idm.parameters()}
    prior_params = {id(p) for p in net.prior.parameters()}
    assert not idm_params & prior_params


@pytest.mark.parametrize("layers", [1, 2])
def test_autoregressive_steps_match_the_teacher_forced_pass(layers):
    """The planner's Decoder and the loss's forward() must be the same model."""
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny(lstm_layers=layers))
    batch = grid_batch(env, np.random.default_rng(4), size=6)
    obs, goals, tokens = (torch.as_tensor(x) for x in (batch.obs, batch.goals, batch.actions))
    with torch.no_grad():
        lp_idm, lp_prior = net(obs, goals, tokens)
        idm_ctx, prior_ctx = net.contexts(obs, goals)
        for model, ctx, expected in ((net.idm, idm_ctx, lp_idm), (net.prior, prior_ctx, lp_prior)):
            decoder = model.decoder(ctx)
            prev = torch.full((6,), model.start_token)
            for t in range(tokens.shape[1]):
                lp = decoder.step(prev, first=t == 0)
                assert torch.allclose(lp, expected[:, t, : model.n_actions + 1], atol=1e-5)
                prev = tokens[:, t]


def test_decoder_rows_can_be_repeated_and_dropped_mid_sequence():
    """The planner shares a row between candidates with the same prefix and drops ended ones."""
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny(lstm_layers=2))
    batch = grid_batch(env, np.random.default_rng(5), size=4)
    obs, goals, tokens = (torch.as_tensor(x) for x in (batch.obs, batch.goals, batch.actions))
    rows = torch.tensor([2, 0, 0, 3])  # after two steps: row 1 dropped, row 0 twice
    with torch.no_grad():
        expected, _ = net(obs[rows], goals[rows], tokens[rows])
        decoder = net.idm.decoder(net.contexts(obs, goals)[0])
        prev = torch.full((4,), net.idm.start_token)
        for t in range(tokens.shape[1]):
            if t == 2:
                decoder.select(rows)
                prev = prev[rows]
            lp = decoder.step(prev, first=t == 0)
            if t >= 2:
                assert torch.allclose(lp, expected[:, t, : net.n_actions + 1], atol=1e-5)
            prev = tokens[:, t] if t < 2 else tokens[rows, t]


def test_discrete_actions_are_required():
    spec = EnvSpec("cont", (1, 9, 9), 1, "continuous", 2, 10, ("x",))
    with pytest.raises(ValueError, match="discrete"):
        GlamorNet(spec, GlamorConfig.tiny())


def test_loss_decreases_on_a_fixed_batch_and_ignores_padding():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(lr=3e-3), seed=0)
    batch = grid_batch(env, np.random.default_rng(1), size=32)
    first = agent.learn(batch)
    assert set(first) == {"loss/total", "loss/idm", "loss/prior", "grad_norm/net"}
    assert first["loss/total"] == pytest.approx(first["loss/idm"] + first["loss/prior"], rel=1e-5)
    for _ in range(40):
        last = agent.learn(batch)
    assert last["loss/idm"] < 0.7 * first["loss/idm"] and last["loss/prior"] < first["loss/prior"]
    wide = PairBatch(batch.obs, batch.goals, np.pad(batch.actions, ((0, 0), (0, 5)), constant_values=5),
                     batch.lengths)
    args = [torch.as_tensor(x) for x in (batch.obs, batch.goals)]
    with torch.no_grad():
        a = glamor_loss(agent.net, *args, torch.as_tensor(batch.actions), torch.as_tensor(batch.lengths), 1.0)
        b = glamor_loss(agent.net, *args, torch.as_tensor(wide.actions), torch.as_tensor(wide.lengths), 1.0)
    assert float(a["loss/total"]) == pytest.approx(float(b["loss/total"]), rel=1e-5)
    # short IDM tokens beside long prior walks: each LSTM runs its own width, and the loss is the same
    short = batch.lengths.max() // 2 + 1
    routes, route_lengths = np.minimum(batch.actions[:, :short + 1], 4), np.minimum(batch.lengths, short)
    routes[np.arange(len(routes)), route_lengths] = 4
    routes = np.where(np.arange(short + 1)[None] > route_lengths[:, None], 5, routes)
    padded = np.pad(routes, ((0, 0), (0, batch.actions.shape[1] - short - 1)), constant_values=5)
    walks = torch.as_tensor(batch.actions), torch.as_tensor(batch.lengths)
    with torch.no_grad():
        c = glamor_loss(agent.net, *args, torch.as_tensor(routes), torch.as_tensor(route_lengths), 1.0, *walks)
        d = glamor_loss(agent.net, *args, torch.as_tensor(padded), torch.as_tensor(route_lengths), 1.0, *walks)
    assert float(c["loss/idm"]) == pytest.approx(float(d["loss/idm"]), rel=1e-5)
    assert float(c["loss/prior"]) == pytest.approx(float(a["loss/prior"]), rel=1e-5)


def test_learn_rejects_batches_without_the_end_token():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny())
    batch = grid_batch(env, np.random.default_rng(2), size=4)
    bad = batch.actions.copy()
    bad[0, batch.lengths[0]] = 5  # PAD where END belongs
    with pytest.raises(ValueError, match="END"):
        agent.learn(PairBatch(batch.obs, batch.goals, bad, batch.lengths))
    with pytest.raises(ValueError, match="lengths"):
        agent.learn(PairBatch(batch.obs, batch.goals, batch.actions, np.zeros(4, np.int64)))


def test_keypoint_encoder_learns_where_a_one_pixel_dot_is():
    """The point of the keypoint encoder: a dot one pixel wide, read as a coordinate. A linear read-out
    of its features must learn the dot's position on frames it never saw."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 24, size=(600, 2))
    frames = np.zeros((600, 1, 24, 24), np.uint8)
    frames[np.arange(600), 0, pos[:, 0], pos[:, 1]] = 255
    x, y = torch.as_tensor(frames), torch.as_tensor(pos / 23.0 - 0.5, dtype=torch.float32)
    enc = make_encoder((1, 24, 24), 32, (16, 8), kind="keypoints")
    head = torch.nn.Linear(32, 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(300):
        idx = torch.as_tensor(rng.integers(0, 500, 64))
        loss = ((head(enc(x[idx])) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test_mse = ((head(enc(x[500:])) - y[500:]) ** 2).mean().item()
    assert test_mse < 0.1 * y[500:].var().item()


def test_unknown_encoder_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="impala.*keypoints"):
        GlamorConfig(encoder="resnet")
    with pytest.raises(ValueError, match="keypoints"):
        make_encoder((1, 9, 9), 16, kind="resnet")


def test_goal_relative_idm_sees_no_goal_signal_when_the_goal_is_the_current_frame():
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny(goal_relative=True))
    batch = grid_batch(env, np.random.default_rng(0), size=4)
    obs = torch.as_tensor(batch.obs)
    idm_ctx, prior_ctx = net.contexts(obs, obs[:, -env.spec.frame_shape[0]:])
    assert torch.all(idm_ctx[:, prior_ctx.shape[1]:] == 0)
    idm_ctx, _ = net.contexts(obs, torch.as_tensor(batch.goals))
    assert torch.any(idm_ctx[:, prior_ctx.shape[1]:] != 0)


def test_prior_on_walks_learns_the_walk_and_the_idm_the_route():
    env = make_env("grid")
    net = GlamorNet(env.spec, GlamorConfig.tiny())
    walk = grid_batch(env, np.random.default_rng(3), size=8)
    route = grid_batch(env, np.random.default_rng(4), size=8)  # other tokens for the same frames
    args = [torch.as_tensor(x) for x in (walk.obs, walk.goals)]
    tokens = {name: (torch.as_tensor(b.actions), torch.as_tensor(b.lengths)) for name, b in (("walk", walk), ("route", route))}
    with torch.no_grad():
        split = glamor_loss(net, *args, *tokens["route"], 1.0, *tokens["walk"])
        on_route = glamor_loss(net, *args, *tokens["route"], 1.0)
        on_walk = glamor_loss(net, *args, *tokens["walk"], 1.0)
    assert float(split["loss/idm"]) == pytest.approx(float(on_route["loss/idm"]), rel=1e-5)
    assert float(split["loss/prior"]) == pytest.approx(float(on_walk["loss/prior"]), rel=1e-5)
    assert float(on_walk["loss/prior"]) != pytest.approx(float(on_route["loss/prior"]), rel=1e-3)


def test_learn_checks_the_walk_tokens_too():
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(prior_on_walks=True))
    batch = grid_batch(env, np.random.default_rng(2), size=4)
    bad = batch.actions.copy()
    bad[0, batch.lengths[0]] = 5
    with pytest.raises(ValueError, match="walk_actions must hold"):
        agent.learn(PairBatch(batch.obs, batch.goals, batch.actions, batch.lengths, bad, batch.lengths))
