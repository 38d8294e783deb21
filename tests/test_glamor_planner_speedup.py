"""The restructured GLAMOR planner plans what the nn.LSTM planner did (tests/glamor_reference_planner.py).

The model: a tiny grid agent with a fixed seed, trained a little on random-walk pairs (so plans are
longer than one action and candidates end at different positions), saved and loaded back.
Both planners draw the same noise in the same order, so a seed must give the same plans; float
rounding differs (gathered input projections, tanh via sigmoid), so scores agree to 1e-4 and a
plan may differ only at a near-tie, which ``MIN_IDENTICAL`` allows for. Independent seeds must also
give the same distribution of plan lengths and scores (two-sample tests).
"""
import numpy as np
import pytest
import torch
from glamor_pairs import grid_batch  # noqa: E402 (tests/ is on sys.path)
from glamor_reference_planner import reference_plan
from scipy import stats

from pixelplan.agents.glamor import GlamorAgent, GlamorConfig
from pixelplan.agents.glamor.planner import PlanSettings, plan
from pixelplan.envs import make_env

torch.set_num_threads(1)
MIN_IDENTICAL = 0.99


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    env = make_env("grid")
    agent = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=3)
    rng = np.random.default_rng(3)
    for _ in range(30):
        agent.learn(grid_batch(env, rng, size=64, max_len=10))
    path = tmp_path_factory.mktemp("glamor") / "agent.pt"
    torch.save(agent.state_dict(), path)
    loaded = GlamorAgent(env.spec, GlamorConfig.tiny(), seed=0)
    loaded.load_state_dict(torch.load(path, weights_only=True))
    return env, loaded


def requests(env, horizon: int, b: int, rng: np.random.Generator):
    cells = [tuple(c) for c in np.argwhere(~env.walls)]
    obs = [env.render_at(cells[i]) for i in rng.integers(len(cells), size=b)]  # the grid's obs is one frame
    goals = [env.render_at(cells[i]) for i in rng.integers(len(cells), size=b)]
    caps = rng.integers(1, horizon + 1, size=b)
    return torch.as_tensor(np.stack(obs)), torch.as_tensor(np.stack(goals)), torch.as_tensor(caps)


def both(agent, obs, goals, caps, settings, seed):
    out = []
    for planner in (plan, reference_plan):
        out.append(planner(agent.net.eval(), obs, goals, caps, settings, torch.Generator().manual_seed(seed)))
    return out


VARIANTS = {"default": {}, "no_prior": {"use_prior": False}, "sparse": {"sparse": True},
            "plan_end": {"mode": "plan-end"}, "hot": {"temperature": 3.0, "discount": 0.9}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_seed_gives_the_reference_plans(saved_model, variant):
    env, agent = saved_model
    settings = PlanSettings.from_config(agent.config, trials=50, **VARIANTS[variant])
    obs, goals, caps = requests(env, agent.horizon, 64, np.random.default_rng(1))
    same, total = 0, 0
    for seed in range(3):
        new, ref = both(agent, obs, goals, caps, settings, seed)
        assert torch.equal(new.lengths <= caps, torch.ones_like(caps, dtype=torch.bool))
        width = max(new.tokens.shape[1], ref.tokens.shape[1])
        pad = agent.net.pad_token
        a, r = (torch.nn.functional.pad(p.tokens, (0, width - p.tokens.shape[1]), value=pad) for p in (new, ref))
        identical = (a == r).all(1)
        same, total = same + int(identical.sum()), total + len(caps)
        assert torch.allclose(new.scores[identical], ref.scores[identical], atol=1e-4)
    assert same / total >= MIN_IDENTICAL, f"{variant}: only {same}/{total} plans identical"


def test_independent_seeds_give_the_reference_distribution(saved_model):
    env, agent = saved_model
    settings = PlanSettings.from_config(agent.config, trials=10, temperature=2.0)
    obs, goals, caps = requests(env, agent.horizon, 32, np.random.default_rng(2))
    lengths, scores = {"new": [], "ref": []}, {"new": [], "ref": []}
    for seed in range(20):  # different seeds on each side: independent samples
        new, _ = both(agent, obs, goals, caps, settings, seed)
        _, ref = both(agent, obs, goals, caps, settings, 1000 + seed)
        for name, p in (("new", new), ("ref", ref)):
            lengths[name].append(p.lengths.numpy())
            scores[name].append(p.scores.numpy())
    new_len, ref_len = np.concatenate(lengths["new"]), np.concatenate(lengths["ref"])
    assert len(np.unique(ref_len)) > 2  # the test can fail: plans of several lengths
    table = np.array([[np.sum(x == k) for k in np.unique(np.concatenate([new_len, ref_len]))]
                      for x in (new_len, ref_len)])
    assert stats.chi2_contingency(table[:, table.sum(0) > 0]).pvalue > 1e-3
    assert stats.ks_2samp(np.concatenate(scores["new"]), np.concatenate(scores["ref"])).pvalue > 1e-3
