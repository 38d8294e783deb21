"""ALM's networks (Appendix D): encoder, latent model, policy, twin Q, reward and classifier.

Every network is a 2-layer MLP with ELU. Q, reward and classifier start with the DrQ-v2 trunk the
paper cites for its LayerNorm (Linear -> LayerNorm -> Tanh), as the official code does. The encoder
and the model output diagonal Gaussians over the latent space with bounded std. Linear layers get
orthogonal weights and zero biases (official code, after DrQ-v2).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pixelplan.envs.spec import EnvSpec

from .config import AlmConfig


def orthogonal_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        gain = nn.init.calculate_gain("relu") if isinstance(module, nn.Conv2d) else 1.0
        nn.init.orthogonal_(module.weight, gain)
        nn.init.zeros_(module.bias)


def mlp(in_dim: int, hidden: int, out_dim: int, layer_norm: bool = False) -> nn.Sequential:
    """Two hidden layers; ``layer_norm``: the first is Linear -> LayerNorm -> Tanh (DrQ-v2 trunk)."""
    first = [nn.LayerNorm(hidden), nn.Tanh()] if layer_norm else [nn.ELU()]
    net = nn.Sequential(nn.Linear(in_dim, hidden), *first, nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, out_dim))
    net.apply(orthogonal_init)
    return net


class Gaussian(NamedTuple):
    """Diagonal Gaussian over the last axis; sampling takes the agent's generator (reproducible resumes)."""

    mean: torch.Tensor
    std: torch.Tensor

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise


def bounded_gaussian(raw: torch.Tensor, std_min: float, std_max: float) -> Gaussian:
    """Split ``raw`` into mean and std; soft clamps (official code) keep the mean within +-30 and the std
    within [std_min, std_max], so KLs stay finite."""
    mean, std = raw.chunk(2, dim=-1)
    mean = 30.0 * torch.tanh(mean / 30.0)
    std = std_max - nn.functional.softplus(std_max - std)
    std = std_min + nn.functional.softplus(std - std_min)
    return Gaussian(mean, std)


class PixelTrunk(nn.Module):
    """DrQ-v2's conv trunk (the pixel encoder of the prior work ALM builds on); uint8 in, features out."""

    def __init__(self, obs_shape: tuple[int, ...], channels: int) -> None:
        super().__init__()
        c = obs_shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2), nn.ELU(),
            nn.Conv2d(channels, channels, 3), nn.ELU(),
            nn.Conv2d(channels, channels, 3), nn.ELU(),
            nn.Conv2d(channels, channels, 3), nn.ELU(),
            nn.Flatten(),
        )
        self.convs.apply(orthogonal_init)
        with torch.no_grad():
            self.out_dim = int(self.convs(torch.zeros(1, *obs_shape)).shape[-1])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.convs(obs.float() / 255.0 - 0.5)


class Encoder(nn.Module):
    """e(z | s): observation (state vector or pixel stack) -> Gaussian over z."""

    def __init__(self, spec: EnvSpec, cfg: AlmConfig) -> None:
        super().__init__()
        if spec.pixels:
            self.trunk: nn.Module = PixelTrunk(spec.obs_shape, cfg.conv_channels)
            in_dim = self.trunk.out_dim
        else:
            self.trunk = nn.Identity()
            in_dim = spec.obs_shape[0]
        self.head = mlp(in_dim, cfg.hidden, 2 * cfg.latent_dim)
        self.std_bounds = (cfg.latent_std_min, cfg.latent_std_max)

    def forward(self, obs: torch.Tensor) -> Gaussian:
        return bounded_gaussian(self.head(self.trunk(obs)), *self.std_bounds)


class LatentModel(nn.Module):
    """m(z' | z, a)."""

    def __init__(self, cfg: AlmConfig, action_size: int) -> None:
        super().__init__()
        self.net = mlp(cfg.latent_dim + action_size, cfg.model_hidden, 2 * cfg.latent_dim)
        self.std_bounds = (cfg.latent_std_min, cfg.latent_std_max)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> Gaussian:
        return bounded_gaussian(self.net(torch.cat([z, action], -1)), *self.std_bounds)


class Policy(nn.Module):
    """Deterministic DDPG policy pi(z) in [-1, 1]; exploration noise is added outside."""

    def __init__(self, cfg: AlmConfig, action_size: int) -> None:
        super().__init__()
        self.net = mlp(cfg.latent_dim, cfg.hidden, action_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


class StateActionValue(nn.Module):
    """f(z, a) -> scalar with LayerNorm (Q and reward, Appendix D)."""

    def __init__(self, cfg: AlmConfig, action_size: int) -> None:
        super().__init__()
        self.net = mlp(cfg.latent_dim + action_size, cfg.hidden, 1, layer_norm=True)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, action], -1)).squeeze(-1)


class TwinQ(nn.Module):
    """Two Q-heads; targets and objectives use their minimum (TD3, which Appendix C cites for the target)."""

    def __init__(self, cfg: AlmConfig, action_size: int) -> None:
        super().__init__()
        self.q1 = StateActionValue(cfg, action_size)
        self.q2 = StateActionValue(cfg, action_size)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(z, action), self.q2(z, action)

    def min(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(z, action))


class Classifier(nn.Module):
    """Logit of C(z', a, z): the probability that z' came from the encoder of the real next state."""

    def __init__(self, cfg: AlmConfig, action_size: int) -> None:
        super().__init__()
        self.net = mlp(2 * cfg.latent_dim + action_size, cfg.hidden, 1, layer_norm=True)

    def forward(self, z_next: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z_next, action, z], -1)).squeeze(-1)
