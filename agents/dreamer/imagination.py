"""Behaviour learning in imagination: latent rollouts, lambda-returns, actor and value losses."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from .nets import ActionModel
from .rssm import RSSM, State

if TYPE_CHECKING:
    from .world_model import WorldModel


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Gradients pass through these modules' computations but never reach their parameters."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def imagine(rssm: RSSM, actor: ActionModel, start: State, horizon: int) -> State:
    """Roll the prior forward `horizon` steps from `start` (N, ...) with the actor's samples.

    The actor reads detached features (as in the official code): its gradient comes only through
    the dynamics, i.e. through how its actions change later states, rewards and values.
    Returns the imagined states after each action, (H, N, ...).
    """
    states, state = [], start
    for _ in range(horizon):
        state = rssm.img_step(state, actor.sample(state.feature.detach()))
        states.append(state)
    return State.stack(states, 0)


def lambda_return(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor,
                  bootstrap: torch.Tensor, lambda_: float) -> torch.Tensor:
    """V_lambda along time axis 0: R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}), R_H = bootstrap.

    rewards, values, discounts: (H, ...) with values[t] = v(s_t); bootstrap = v(s_H).
    """
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    returns, last = [], bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + discounts[t] * ((1 - lambda_) * next_values[t] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], 0)


def behavior_losses(start: State, world: WorldModel, actor: ActionModel, value: nn.Module, horizon: int,
                    lambda_: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """(actor loss, value loss, metrics) from imagined trajectories starting at posterior states.

    The world model and the value model are frozen while the actor's loss is built, so the actor
    loss's gradient reaches only the actor; the value model regresses detached lambda-returns from
    detached features, so its loss never reaches the actor.
    """
    start = start.map(lambda x: x.detach().reshape(-1, x.shape[-1]))
    with frozen(world, value):
        feat = imagine(world.rssm, actor, start, horizon).feature
        rewards, values, discounts = world.reward(feat), value(feat).squeeze(-1), world.discount(feat)
        returns = lambda_return(rewards[:-1], values[:-1], discounts[:-1], values[-1], lambda_)
        # Weight step t by the probability that the imagined episode is still running.
        weights = torch.cumprod(torch.cat([torch.ones_like(discounts[:1]), discounts[:-2]], 0), 0).detach()
        actor_loss = -(weights * returns).mean()
    value_pred = value(feat.detach()[:-1]).squeeze(-1)
    value_loss = (weights * 0.5 * (value_pred - returns.detach()) ** 2).mean()
    metrics = {"imagine/return": returns[0].mean().item(), "imagine/reward": rewards.mean().item(),
               "imagine/value": values.mean().item()}
    return actor_loss, value_loss, metrics
