"""Dreamer's networks: conv encoder, mirrored transposed-conv decoder, dense heads, action model."""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F


def conv_sizes(size: int, kernel: int, stride: int, layers: int) -> list[int]:
    """Spatial size after each valid (unpadded) conv, starting with the input size."""
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] - kernel) // stride + 1)
    return sizes


def mlp(in_dim: int, out_dim: int, units: int, layers: int) -> nn.Sequential:
    """`layers` dense ELU layers of `units`, then a linear output (the paper's dense models)."""
    modules: list[nn.Module] = []
    for i in range(layers):
        modules += [nn.Linear(in_dim if i == 0 else units, units), nn.ELU()]
    modules.append(nn.Linear(units if layers else in_dim, out_dim))
    return nn.Sequential(*modules)


class ConvEncoder(nn.Module):
    """uint8 images -> flat embedding (64x64 with the defaults: 256 x 2 x 2 = 1024 features)."""

    def __init__(self, image_shape: tuple[int, int, int], depth: int, layers: int, kernel: int, stride: int):
        super().__init__()
        channels, height, width = image_shape
        self.heights = conv_sizes(height, kernel, stride, layers)
        self.widths = conv_sizes(width, kernel, stride, layers)
        if min(self.heights[-1], self.widths[-1]) < 1:
            raise ValueError(f"image {height}x{width} is too small for {layers} convs of kernel {kernel}, "
                             f"stride {stride}: use fewer layers or a smaller kernel/stride")
        widths = [channels] + [depth * 2 ** i for i in range(layers)]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, kernel, stride) for a, b in itertools.pairwise(widths))
        self.out_channels = widths[-1]
        self.out_dim = widths[-1] * self.heights[-1] * self.widths[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (..., C, H, W) uint8 -> (..., out_dim)."""
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Features -> image mean in [-0.5, 0.5] units; transposed convs retrace the encoder's sizes exactly."""

    def __init__(self, feat_dim: int, encoder: ConvEncoder, kernel: int, stride: int):
        super().__init__()
        self.start = (encoder.out_channels, encoder.heights[-1], encoder.widths[-1])
        self.linear = nn.Linear(feat_dim, encoder.out_dim)
        widths = [conv.in_channels for conv in encoder.convs] + [encoder.out_channels]
        self.deconvs = nn.ModuleList()
        for i in reversed(range(len(encoder.convs))):
            sizes = (encoder.heights, encoder.widths)
            pad = tuple(size[i] - ((size[i + 1] - 1) * stride + kernel) for size in sizes)
            self.deconvs.append(nn.ConvTranspose2d(widths[i + 1], widths[i], kernel, stride, output_padding=pad))
        self.image_shape = (widths[0], encoder.heights[0], encoder.widths[0])

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, *self.start)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x if i == 0 else F.relu(x))
        return x.reshape(*lead, *self.image_shape)


class ActionModel(nn.Module):
    """Policy over latent features with reparameterised samples.

    Continuous: Normal(5 tanh(mu / 5), softplus(s) + min_std) squashed by tanh (the scaled mean lets
    the policy saturate). Discrete: categorical whose one-hot samples carry straight-through gradients.
    """

    def __init__(self, feat_dim: int, action_size: int, discrete: bool, units: int, layers: int,
                 mean_scale: float = 5.0, init_std: float = 5.0, min_std: float = 1e-4):
        super().__init__()
        self.discrete = discrete
        self.action_size = action_size
        self.net = mlp(feat_dim, action_size if discrete else 2 * action_size, units, layers)
        self.mean_scale, self.min_std = mean_scale, min_std
        self.raw_init_std = math.log(math.expm1(init_std))

    def _normal(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.net(feat).chunk(2, -1)
        mean = self.mean_scale * torch.tanh(mean / self.mean_scale)
        return mean, F.softplus(std + self.raw_init_std) + self.min_std

    def sample(self, feat: torch.Tensor) -> torch.Tensor:
        """A differentiable action sample: (..., A) in [-1, 1], or one-hot (..., A) for discrete."""
        if self.discrete:
            probs = torch.softmax(self.net(feat), -1)
            index = torch.multinomial(probs.reshape(-1, self.action_size), 1).reshape(probs.shape[:-1])
            onehot = F.one_hot(index, self.action_size).to(probs.dtype)
            return onehot + probs - probs.detach()
        mean, std = self._normal(feat)
        return torch.tanh(mean + std * torch.randn_like(mean))

    def mode(self, feat: torch.Tensor) -> torch.Tensor:
        """Deterministic action (one-hot argmax, or tanh of the Gaussian mean) for acting."""
        if self.discrete:
            return F.one_hot(self.net(feat).argmax(-1), self.action_size).float()
        return torch.tanh(self._normal(feat)[0])
