"""ALM's objectives as pure functions of networks and tensors (Eq. 7-11 of the paper).

Losses are negated objectives, averaged over the batch. Which parameters a loss updates is the
caller's business (the agent differentiates each loss w.r.t. one role's parameters); gradients
still flow *through* the other networks, e.g. from Q into the encoder in Eq. 7 or from the model
into the policy in Eq. 8.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .config import AlmConfig
from .nets import Classifier, Gaussian, LatentModel, Policy, StateActionValue, TwinQ


def gaussian_kl(p: Gaussian, q: Gaussian) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the last axis."""
    var_ratio = (p.std / q.std) ** 2
    mahalanobis = ((p.mean - q.mean) / q.std) ** 2
    return 0.5 * (var_ratio + mahalanobis - 1.0 - var_ratio.log()).sum(-1)


def classifier_bonus(logits: torch.Tensor, coef: float) -> torch.Tensor:
    """c * log(C / (1 - C)) for C = sigmoid(logits): the log-odds *are* the logits, so no 0/0 near C = 1."""
    return coef * logits


def lambda_weights(horizon: int, lam: float) -> list[float]:
    """Weights of the rollout lengths 1..K: (1 - lam) lam^(k-1), the rest lam^(K-1) on K (they sum to 1)."""
    return [(1.0 - lam) * lam ** (k - 1) for k in range(1, horizon)] + [lam ** (horizon - 1)]


def noisy_action(mean: torch.Tensor, std: float, clip: float, generator: torch.Generator | None) -> torch.Tensor:
    """DDPG/DrQ-v2 action sample: clipped Gaussian noise, clamped to [-1, 1] with a straight-through
    gradient so a saturated action still passes the value gradient back to the policy."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    action = mean + (std * noise).clamp(-clip, clip)
    return action - action.detach() + action.detach().clamp(-1.0, 1.0)


def model_loss(encoder_dist: Gaussian, model: LatentModel, reward: StateActionValue, q: TwinQ, policy: Policy,
               actions: torch.Tensor, target_next: Gaussian, alive: torch.Tensor, cfg: AlmConfig, std: float,
               generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negated Eq. 7: unroll the model from z_0 ~ e(s_0) with the replay actions a_0..a_{K-1},
    sum_i gamma^i (r(z_i, a_i) - KL(m(z_{i+1}|z_i, a_i) || e_targ(z_{i+1}|s_{i+1}))) + gamma^K Q(z_K, pi(z_K)).

    actions (B, K, A); target_next: target-encoder posteriors of s_1..s_K, (B, K, Z) each;
    alive (B, K+1): 1 until the env terminated (no reward, KL or bootstrap after a terminal).
    """
    z = encoder_dist.rsample(generator)
    objective = torch.zeros_like(alive[:, 0])
    kls = []
    for i in range(cfg.horizon):
        prior = model(z, actions[:, i])
        kl = gaussian_kl(prior, Gaussian(target_next.mean[:, i], target_next.std[:, i]))
        objective = objective + cfg.gamma ** i * alive[:, i] * (reward(z, actions[:, i]) - kl)
        kls.append(kl.mean())
        z = prior.rsample(generator)
    value = q.min(z, noisy_action(policy(z), std, cfg.std_clip, generator))
    objective = objective + cfg.gamma ** cfg.horizon * alive[:, cfg.horizon] * value
    kl_mean = torch.stack(kls).mean()
    return -objective.mean(), {"model/kl": kl_mean.detach(), "model/value": value.mean().detach()}


def policy_loss(z0: torch.Tensor, model: LatentModel, reward: StateActionValue, q: TwinQ, policy: Policy,
                classifier: Classifier, cfg: AlmConfig, std: float,
                generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negated Eq. 8, lambda-weighted over rollout lengths k = 1..K:
    L^k = sum_{i<k} gamma^i (r(z_i, a_i) + c log C/(1-C)) + gamma^k Q(z_k, pi(z_k)), a_i = pi(z_i) + noise,
    z_{i+1} ~ m(z_i, a_i). z0 comes from the target encoder (Appendix D), so only pi gets gradients here.
    """
    z = z0
    action = noisy_action(policy(z), std, cfg.std_clip, generator)
    partial = torch.zeros_like(z0[:, 0])
    objective = torch.zeros_like(partial)
    bonuses = []
    for k, weight in enumerate(lambda_weights(cfg.horizon, cfg.lam), start=1):
        z_next = model(z, action).rsample(generator)
        bonus = classifier_bonus(classifier(z_next, action, z), cfg.classifier_coef)
        partial = partial + cfg.gamma ** (k - 1) * (reward(z, action) + bonus)
        bonuses.append(bonus.mean())
        z = z_next
        action = noisy_action(policy(z), std, cfg.std_clip, generator)
        objective = objective + weight * (partial + cfg.gamma ** k * q.min(z, action))
    return -objective.mean(), {"policy/objective": objective.mean().detach(),
                               "policy/classifier_bonus": torch.stack(bonuses).mean().detach()}


def q_loss(q: TwinQ, q_target: TwinQ, policy: Policy, z: torch.Tensor, action: torch.Tensor, rew: torch.Tensor,
           z_next: torch.Tensor, not_done: torch.Tensor, cfg: AlmConfig, std: float,
           generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 10 with twin Q: (Q_j(z, a) - (r + gamma min_j Q_targ(z', pi(z') + clipped noise)))^2."""
    with torch.no_grad():
        next_action = noisy_action(policy(z_next), std, cfg.std_clip, generator)
        target = rew + cfg.gamma * not_done * q_target.min(z_next, next_action)
    q1, q2 = q(z, action)
    return F.mse_loss(q1, target) + F.mse_loss(q2, target), {"q/mean": q1.mean().detach()}


def reward_loss(reward: StateActionValue, z: torch.Tensor, action: torch.Tensor, rew: torch.Tensor) -> torch.Tensor:
    """Eq. 11."""
    return F.mse_loss(reward(z, action), rew)


def classifier_loss(classifier: Classifier, z: torch.Tensor, action: torch.Tensor, z_real: torch.Tensor,
                    z_model: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negated Eq. 9: binary cross-entropy, real next latents (encoder) = 1, model samples = 0."""
    real = classifier(z_real, action, z)
    fake = classifier(z_model, action, z)
    loss = F.softplus(-real).mean() + F.softplus(fake).mean()  # -log C(real) - log(1 - C(fake))
    accuracy = 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
    return loss, {"classifier/accuracy": accuracy.detach()}
