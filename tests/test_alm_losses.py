"""ALM's loss terms against hand computations (Eq. 7-11)."""
import math

import pytest
import torch

from pixelplan.agents.alm import AlmConfig, losses
from pixelplan.agents.alm.nets import Gaussian, bounded_gaussian


def test_gaussian_kl_matches_the_closed_form_by_hand():
    p = Gaussian(torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.5]]))
    q = Gaussian(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]]))
    # KL per dim = log(sq/sp) + (sp^2 + (mp - mq)^2) / (2 sq^2) - 1/2
    by_hand = (math.log(2.0 / 1.0) + (1.0 + 0.25) / 8.0 - 0.5) + (math.log(1.0 / 0.5) + (0.25 + 1.0) / 2.0 - 0.5)
    assert losses.gaussian_kl(p, q).item() == pytest.approx(by_hand, rel=1e-6)
    assert losses.gaussian_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)


def test_classifier_bonus_is_c_times_log_odds():
    logits = torch.tensor([-2.0, 0.0, 0.7, 5.0])
    c = torch.sigmoid(logits)
    by_hand = 0.1 * torch.log(c / (1.0 - c))
    assert torch.allclose(losses.classifier_bonus(logits, 0.1), by_hand, atol=1e-5)


class FixedLogits(torch.nn.Module):
    """A 'classifier' whose logit is the first coordinate of z_next, to check the loss by hand."""

    def forward(self, z_next, action, z):
        return z_next[:, 0]


def test_classifier_loss_is_binary_cross_entropy_by_hand():
    z = torch.zeros(2, 3)
    action = torch.zeros(2, 1)
    z_real = torch.tensor([[1.5, 0, 0], [-0.5, 0, 0]])
    z_model = torch.tensor([[0.3, 0, 0], [-2.0, 0, 0]])
    loss, stats = losses.classifier_loss(FixedLogits(), z, action, z_real, z_model)
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    by_hand = -(math.log(sig(1.5)) + math.log(sig(-0.5))) / 2 - (math.log(1 - sig(0.3)) + math.log(1 - sig(-2.0))) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert stats["classifier/accuracy"].item() == pytest.approx(0.5)  # real: 1 of 2 right; model: 1 of 2


def test_lambda_weights_for_paper_defaults():
    w = losses.lambda_weights(3, 0.95)
    assert w == pytest.approx([0.05, 0.0475, 0.9025])
    assert sum(w) == pytest.approx(1.0)
    assert losses.lambda_weights(1, 0.95) == [1.0]


def test_noisy_action_clips_noise_and_passes_gradient_through_the_clamp():
    mean = torch.tensor([[0.0, 0.99, -0.2]], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    action = losses.noisy_action(mean, std=10.0, clip=0.3, generator=gen)
    assert torch.all((action - mean).abs() <= 0.3 + 1e-6)  # std 10, but the noise is clipped at 0.3
    assert torch.all(action.abs() <= 1.0)
    action.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))  # straight-through even where clamped


def test_bounded_gaussian_soft_clamps_std_to_its_bounds():
    raw = torch.tensor([[0.0, 0.0, -100.0, 100.0]])
    g = bounded_gaussian(raw, 0.1, 10.0)
    assert g.mean.shape == (1, 2) and g.std.shape == (1, 2)
    assert g.std.min().item() == pytest.approx(0.1, abs=1e-3)
    assert g.std.max().item() == pytest.approx(10.0, abs=1e-3)


def test_exploration_std_schedule_is_linear_from_one_to_a_tenth():
    cfg = AlmConfig()
    assert cfg.exploration_std(0) == pytest.approx(1.0)
    assert cfg.exploration_std(50_000) == pytest.approx(0.55)
    assert cfg.exploration_std(100_000) == pytest.approx(0.1)
    assert cfg.exploration_std(10**7) == pytest.approx(0.1)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="horizon"):
        AlmConfig(horizon=0)
    with pytest.raises(ValueError, match="unknown AlmConfig fields"):
        AlmConfig.from_dict({"horizn": 3})
