"""Building blocks shared by the agents: the IMPALA "large" ResNet encoder and MLPs.

Pixel inputs arrive as uint8 and are scaled to [0, 1] inside the encoder, so every caller
(learner, planner service, worker) can hand over raw frames without agreeing on a convention.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def resolve_device(name: str) -> torch.device:
    """"auto" -> the GPU when there is one; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def group_norm(channels: int, max_groups: int) -> nn.GroupNorm:
    """GroupNorm with at most ``max_groups`` groups of >= 2 channels each (one channel per group would
    be instance norm, which zeroes a 1x1 feature map)."""
    return nn.GroupNorm(math.gcd(channels, max(1, min(max_groups, channels // 2))), channels)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: type[nn.Module] = nn.ReLU,
        layer_norm: bool = False, out_act: bool = False) -> nn.Sequential:
    """Linear -> [LayerNorm] -> act for each hidden size, then a linear output (activated if asked)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden:
        layers.append(nn.Linear(dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(act())
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    if out_act:
        layers.append(act())
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm_groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels, norm_groups),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels, norm_groups),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ImpalaEncoder(nn.Module):
    """IMPALA "large" ResNet (Espeholt et al. 2018) with GroupNorm: per stage conv -> max-pool /2
    -> two residual blocks; then ReLU -> linear -> ReLU. Pooling rounds up, so small frames work
    too (9x9 grid frames become 5x5, 3x3, 2x2; 104x80 Atari frames 52x40, 26x20, 13x10)."""

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int] = (16, 32, 32), out_dim: int = 256,
                 norm_groups: int = 8) -> None:
        super().__init__()
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"ImpalaEncoder needs an input shape (C, H, W) with positive sizes, "
                             f"got {tuple(in_shape)}")
        if not channels:
            raise ValueError("ImpalaEncoder needs at least one stage (channels is empty)")
        c, h, w = in_shape
        stages: list[nn.Module] = []
        for out_c in channels:
            stages += [nn.Conv2d(c, out_c, 3, padding=1), group_norm(out_c, norm_groups),
                       nn.MaxPool2d(3, stride=2, padding=1),
                       ResidualBlock(out_c, norm_groups), ResidualBlock(out_c, norm_groups)]
            c, h, w = out_c, (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(c * h * w, out_dim), nn.ReLU())
        self.in_shape, self.out_dim = tuple(in_shape), out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.head(self.stages(x))


class KeypointEncoder(nn.Module):
    """Convolutions -> spatial softmax -> the expected (x, y) of each feature map (Levine et al. 2016,
    "End-to-End Training of Deep Visuomotor Policies"; Finn et al. 2016's deep spatial autoencoder).

    Made for DM Control from pixels on a CPU, where the goal is a few bodies' positions: a body one or
    two pixels wide (point_mass's ball at 64x64) lands in the features as a coordinate, read to
    sub-pixel precision by the softmax's expectation, instead of as a few active cells of a
    flattened map that a linear layer has to find. ``channels``: the conv widths; the last is the
    number of keypoints (two coordinates each). The first conv halves the frame."""

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int] = (32, 32, 16), out_dim: int = 256) -> None:
        super().__init__()
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"KeypointEncoder needs an input shape (C, H, W) with positive sizes, got {tuple(in_shape)}")
        if len(channels) < 2:
            raise ValueError(f"KeypointEncoder needs at least two conv widths (the last = keypoints), got {channels}")
        c = in_shape[0]
        layers: list[nn.Module] = []
        for i, out_c in enumerate(channels):
            layers += [nn.Conv2d(c, out_c, 5 if i == 0 else 3, stride=2 if i == 0 else 1, padding=2 if i == 0 else 1)]
            if i < len(channels) - 1:
                layers.append(nn.ReLU())
            c = out_c
        self.convs = nn.Sequential(*layers)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.head = nn.Sequential(nn.Linear(2 * c, out_dim), nn.ReLU())
        self.in_shape, self.out_dim = tuple(in_shape), out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        maps = self.convs(x)  # (B, K, h, w)
        b, k, h, w = maps.shape
        attention = (maps.flatten(2) / self.log_temperature.exp()).softmax(-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=maps.dtype)
        points = torch.cat([(attention.sum(3) * ys).sum(2), (attention.sum(2) * xs).sum(2)], dim=1)  # (B, 2K)
        return self.head(points)


ENCODERS = ("impala", "keypoints")


class VectorEncoder(nn.Module):
    """The encoder for state (non-pixel) observations: a two-layer MLP with LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp(in_dim, [hidden], out_dim, layer_norm=True, out_act=True)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


def make_encoder(in_shape: Sequence[int], out_dim: int, channels: Sequence[int] = (16, 32, 32),
                 norm_groups: int = 8, kind: str = "impala") -> nn.Module:
    """``kind``'s encoder (IMPALA or keypoints) for (C, H, W) pixels, an MLP for (D,) state vectors."""
    if kind not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {kind!r}")
    if len(in_shape) == 3:
        if kind == "keypoints":
            return KeypointEncoder(in_shape, channels, out_dim)
        return ImpalaEncoder(in_shape, channels, out_dim, norm_groups)
    if len(in_shape) == 1:
        return VectorEncoder(in_shape[0], out_dim)
    raise ValueError(f"observation shape must be (C, H, W) pixels or (D,) states, got {tuple(in_shape)}")
