"""The world model: encoder, RSSM, decoder, reward head and (optionally) a learned discount."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.profiler import record_function

from .config import DreamerConfig
from .nets import ConvDecoder, ConvEncoder, mlp
from .rssm import RSSM, State, kl_loss


class WorldModel(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], action_dim: int, config: DreamerConfig):
        super().__init__()
        c = config
        self.config = config
        self.encoder = ConvEncoder(image_shape, c.conv_depth, c.conv_layers, c.conv_kernel, c.conv_stride)
        self.rssm = RSSM(action_dim, self.encoder.out_dim, c.deter, c.stoch, c.hidden, c.min_std)
        self.decoder = ConvDecoder(self.rssm.feat_dim, self.encoder, c.conv_kernel, c.conv_stride)
        self.reward_head = mlp(self.rssm.feat_dim, 1, c.mlp_units, c.mlp_layers)
        self.discount_head = mlp(self.rssm.feat_dim, 1, c.mlp_units, c.mlp_layers) if c.learn_discount else None

    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.reward_head(feat).squeeze(-1)

    def discount(self, feat: torch.Tensor) -> torch.Tensor:
        """Per-step discount: gamma, or the predicted probability gamma * P(episode continues)."""
        if self.discount_head is None:
            return torch.full(feat.shape[:-1], self.config.gamma, device=feat.device)
        return torch.sigmoid(self.discount_head(feat).squeeze(-1))

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, terminals: torch.Tensor,
             is_first: torch.Tensor) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        """Negative ELBO on a window batch; returns (loss, posterior states (B, L+1, ...), metrics).

        obs (B, L+1, C, H, W) uint8; actions (B, L, A) float (one-hot when discrete); rewards,
        terminals (B, L); is_first (B, L+1). Posterior t sees o_t and the action before it
        (zero at the window start and at episode starts).
        """
        c = self.config
        prev_actions = torch.cat([torch.zeros_like(actions[:, :1]), actions], 1)
        with record_function("dreamer/encoder"):
            embeds = self.encoder(obs)
        with record_function("dreamer/rssm_scan"):
            posts, priors = self.rssm.observe(embeds, prev_actions, is_first)
        feat = posts.feature
        target = obs.float() / 255.0 - 0.5
        with record_function("dreamer/decoder"):
            image_loss = 0.5 * (self.decoder(feat) - target).pow(2).flatten(2).sum(-1).mean()
        # A transition into an episode's first frame joins two episodes: it has no reward to learn.
        valid = (~is_first[:, 1:]).float()
        count = valid.sum().clamp(min=1.0)
        reward_target = torch.tanh(rewards) if c.reward_transform == "tanh" else rewards
        reward_loss = (valid * 0.5 * (self.reward(feat[:, 1:]) - reward_target) ** 2).sum() / count
        kl_term, kl = kl_loss(posts, priors, c.free_nats)
        loss = image_loss + reward_loss + c.kl_scale * kl_term
        metrics = {"loss/image": image_loss, "loss/reward": reward_loss, "loss/kl": kl}
        if self.discount_head is not None:
            labels = c.gamma * (1.0 - terminals.float())
            logits = self.discount_head(feat[:, 1:]).squeeze(-1)
            bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            discount_loss = (valid * bce).sum() / count
            loss = loss + c.discount_scale * discount_loss
            metrics["loss/discount"] = discount_loss
        metrics["loss/model"] = loss
        return loss, posts, metrics
