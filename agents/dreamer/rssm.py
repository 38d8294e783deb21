"""Recurrent state-space model (PlaNet/Dreamer): a GRU path plus a diagonal Gaussian latent."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class State(NamedTuple):
    deter: torch.Tensor  # (..., deter) GRU state
    stoch: torch.Tensor  # (..., stoch) sample
    mean: torch.Tensor
    std: torch.Tensor

    def map(self, fn) -> State:
        return State(*(fn(x) for x in self))

    @staticmethod
    def stack(states: list[State], dim: int) -> State:
        return State(*(torch.stack(xs, dim) for xs in zip(*states)))

    @property
    def feature(self) -> torch.Tensor:
        """What every head reads: [stoch, deter]."""
        return torch.cat([self.stoch, self.deter], -1)


class RSSM(nn.Module):
    def __init__(self, action_dim: int, embed_dim: int, deter: int, stoch: int, hidden: int, min_std: float):
        super().__init__()
        self.deter_size, self.stoch_size, self.min_std = deter, stoch, min_std
        self.feat_dim = deter + stoch
        self.img_in = nn.Sequential(nn.Linear(stoch + action_dim, hidden), nn.ELU())
        self.cell = nn.GRUCell(hidden, deter)
        self.img_out = nn.Sequential(nn.Linear(deter, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))
        self.obs_out = nn.Sequential(nn.Linear(deter + embed_dim, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(batch, self.deter_size, device=device)
        stoch = torch.zeros(batch, self.stoch_size, device=device)
        return State(zeros, stoch, stoch, stoch + 1.0)

    def _gaussian(self, deter: torch.Tensor, stats: torch.Tensor) -> State:
        mean, std = stats.chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return State(deter, mean + std * torch.randn_like(mean), mean, std)

    def img_step(self, prev: State, action: torch.Tensor) -> State:
        """Prior p(s_t | s_{t-1}, a_{t-1}): what imagination uses."""
        deter = self.cell(self.img_in(torch.cat([prev.stoch, action], -1)), prev.deter)
        return self._gaussian(deter, self.img_out(deter))

    def obs_step(self, prev: State, action: torch.Tensor, embed: torch.Tensor) -> tuple[State, State]:
        """(posterior q(s_t | s_{t-1}, a_{t-1}, o_t), prior)."""
        prior = self.img_step(prev, action)
        post = self._gaussian(prior.deter, self.obs_out(torch.cat([prior.deter, embed], -1)))
        return post, prior

    def observe(self, embeds: torch.Tensor, prev_actions: torch.Tensor, is_first: torch.Tensor,
                start: State | None = None) -> tuple[State, State]:
        """Filter a sequence: embeds (B, T, E), prev_actions (B, T, A) (the action before o_t),
        is_first (B, T) resets state and previous action. Returns (posts, priors), each (B, T, ...)."""
        batch = embeds.shape[0]
        state = start if start is not None else self.initial(batch, embeds.device)
        keeps = (~is_first).float().unsqueeze(-1).unbind(1)
        posts, priors = [], []
        for t, keep in enumerate(keeps):
            state = State(*(x * keep for x in state))
            state, prior = self.obs_step(state, prev_actions[:, t] * keep, embeds[:, t])
            posts.append(state)
            priors.append(prior)
        return State.stack(posts, 1), State.stack(priors, 1)


def gaussian_kl(post: State, prior: State) -> torch.Tensor:
    """KL(post || prior) of diagonal Gaussians, summed over the latent dimension."""
    var_ratio = (post.std / prior.std) ** 2
    mean_term = ((post.mean - prior.mean) / prior.std) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(-1)


def kl_loss(post: State, prior: State, free_nats: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean KL): the batch-mean KL clipped below at `free_nats`, as in PlaNet/Dreamer.

    Clipping the mean (not each element) means a model already within the budget gets no KL
    gradient at all, leaving its capacity to reconstruction and reward prediction.
    """
    kl = gaussian_kl(post, prior).mean()
    return torch.clamp(kl, min=free_nats), kl
