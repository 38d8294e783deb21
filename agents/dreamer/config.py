"""Dreamer's hyperparameters: the paper's Appendix A values are the defaults."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class DreamerConfig:
    # Conv encoder (Ha & Schmidhuber): `conv_layers` convs of `conv_kernel`/`conv_stride`, channels
    # conv_depth * 2**i; the decoder mirrors it with transposed convs.
    conv_depth: int = 32
    conv_layers: int = 4
    conv_kernel: int = 4
    conv_stride: int = 2
    # RSSM: GRU state `deter`, diagonal Gaussian stochastic state `stoch`.
    deter: int = 200
    stoch: int = 30
    hidden: int = 200
    min_std: float = 0.1
    # Reward, value, action and discount models: `mlp_layers` dense layers of `mlp_units`, ELU.
    mlp_units: int = 300
    mlp_layers: int = 3
    # Action model: tanh(mean / 5) * 5 and softplus std, a Normal squashed by tanh.
    action_mean_scale: float = 5.0
    action_init_std: float = 5.0
    action_min_std: float = 1e-4
    # World-model objective.
    free_nats: float = 3.0
    kl_scale: float = 1.0
    reward_transform: Literal["none", "tanh"] = "none"
    learn_discount: bool = False  # a discount head trained on soft labels gamma * (1 - terminal)
    discount_scale: float = 10.0  # weight of the discount head's loss (official code)
    # Behaviour learning.
    horizon: int = 15
    gamma: float = 0.99
    lambda_: float = 0.95
    # Optimisation.
    model_lr: float = 6e-4
    actor_lr: float = 8e-5
    value_lr: float = 8e-5
    grad_clip: float = 100.0
    batch_size: int = 50
    seq_len: int = 50
    # Data: 100 updates per 1000-frame episode at action repeat 2 = one update per 5 agent steps.
    update_every: float = 5.0
    seed_episodes: int = 5  # random-action episodes before the first update
    cross_episodes: bool = False
    # Exploration: Gaussian noise (continuous) or epsilon-greedy (discrete), epsilon decaying
    # linearly over the paper's 200k updates = 1e6 agent steps at one update per 5 steps.
    expl_noise: float = 0.3
    epsilon_start: float = 0.4
    epsilon_end: float = 0.1
    epsilon_decay_steps: int = 1_000_000
    device: str = "auto"  # "auto": CUDA when available

    def __post_init__(self) -> None:
        positive = ("conv_depth", "conv_layers", "conv_kernel", "conv_stride", "deter", "stoch", "hidden",
                    "mlp_units", "mlp_layers", "horizon", "batch_size", "seq_len")
        bad = [name for name in positive if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"DreamerConfig: {', '.join(bad)} must be >= 1")
        if not 0.0 < self.gamma <= 1.0 or not 0.0 <= self.lambda_ <= 1.0:
            raise ValueError(f"DreamerConfig: need 0 < gamma <= 1 and 0 <= lambda_ <= 1, "
                             f"got {self.gamma}, {self.lambda_}")
        if self.reward_transform not in ("none", "tanh"):
            raise ValueError(f"DreamerConfig: reward_transform must be 'none' or 'tanh', got {self.reward_transform!r}")
        if self.update_every <= 0:
            raise ValueError(f"DreamerConfig: update_every must be > 0 env steps, got {self.update_every}")

    @classmethod
    def tiny(cls, **overrides) -> DreamerConfig:
        """Small nets and batches for CPU tests (images of at least 22x22 pixels, e.g. the 36x36 grid).

        The latent is wider than a strict shrink of the paper's would be (64 + 16 units): a narrower
        bottleneck learned to place the agent in its reconstructions several times more slowly.
        The horizon stays the paper's 15: at 5 the value, bootstrapped after few imagined rewards,
        diverged on pixel cartpole-balance (imagined values 2600 where 800 is the most possible) and
        the policy collapsed to a constant push.
        """
        small = {"conv_depth": 8, "conv_layers": 3, "deter": 64, "stoch": 16, "hidden": 64, "mlp_units": 64,
                 "mlp_layers": 2, "batch_size": 16, "seq_len": 8, "free_nats": 1.0,
                 "model_lr": 1e-3, "actor_lr": 4e-4, "value_lr": 4e-4, "seed_episodes": 1}
        return cls(**{**small, **overrides})

    @classmethod
    def atari(cls, **overrides) -> DreamerConfig:
        """The paper's discrete-control settings (Appendix A)."""
        return cls(**overrides).discrete()

    @classmethod
    def tiny_discrete(cls, **overrides) -> DreamerConfig:
        """``tiny()`` with the discrete-control settings: the grid-world learning test's base."""
        return cls.tiny(**overrides).discrete()

    def discrete(self) -> DreamerConfig:
        """Atari/DMLab changes: shorter horizon, weaker KL, bounded rewards, learned discount."""
        return replace(self, horizon=10, kl_scale=0.1, reward_transform="tanh", learn_discount=True)

    def replace(self, **changes) -> DreamerConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
