"""ALM hyperparameters: Table 3 and Appendix D of the paper are the defaults."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class AlmConfig:
    # Objective (Table 3)
    gamma: float = 0.99
    lam: float = 0.95  # weight of the exponentially-weighted average over rollout lengths 1..K (Eq. 8)
    horizon: int = 3  # K: model unroll length for encoder/model (Eq. 7) and policy (Eq. 8)
    classifier_coef: float = 0.1  # c in c * log(C / (1 - C)); the theory says 1, the paper uses 0.1
    tau: float = 0.005  # Polyak rate of the target encoder and target Q-networks

    # Optimisation (Table 3)
    lr: float = 1e-4
    policy_lr: float | None = None  # None: lr. A slower policy than critic avoids early tanh saturation
    max_grad_norm: float = 100.0
    batch_size: int = 512
    updates_per_env_step: float = 1.0  # Algorithm 1: one update per environment step
    warmup_steps: int = 5000  # uniform random actions and no updates before this many env steps
    replay_size: int = 100_000

    # Exploration (Table 3): std linear(1.0 -> 0.1 over 100000 env steps); noise clipped at 0.3 in
    # the learner's action samples (TD target, model rollouts), unclipped when acting.
    std_start: float = 1.0
    std_end: float = 0.1
    std_steps: int = 100_000
    std_clip: float = 0.3

    # Networks (Appendix D): 2-layer ELU MLPs, 512 units (model 1024), LayerNorm on Q and reward.
    latent_dim: int = 50
    hidden: int = 512
    model_hidden: int = 1024
    latent_std_min: float = 0.1  # bounds on the Gaussian std of encoder and model (official code):
    latent_std_max: float = 10.0  # they keep the KL finite and the latents from collapsing to points
    conv_channels: int = 32  # pixel encoder only (DrQ-v2-style trunk, as in the prior work ALM cites)


    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon (K) must be >= 1, got {self.horizon}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.batch_size < 1 or self.updates_per_env_step <= 0:
            raise ValueError("batch_size must be >= 1 and updates_per_env_step > 0, "
                             f"got {self.batch_size} and {self.updates_per_env_step}")
        if not 0.0 < self.latent_std_min < self.latent_std_max:
            raise ValueError(f"need 0 < latent_std_min < latent_std_max, got {self.latent_std_min}, "
                             f"{self.latent_std_max}")

    def exploration_std(self, env_steps: int) -> float:
        """Linear schedule std_start -> std_end over std_steps env steps (DrQ-v2's linear(...))."""
        frac = min(max(env_steps, 0) / self.std_steps, 1.0) if self.std_steps > 0 else 1.0
        return self.std_start + frac * (self.std_end - self.std_start)

    @classmethod
    def tiny(cls, **overrides) -> AlmConfig:
        """Small nets and short schedules so unit tests run in milliseconds on a CPU."""
        base = dict(latent_dim=8, hidden=32, model_hidden=64, batch_size=16, warmup_steps=100,
                    std_steps=1000, conv_channels=8, replay_size=10_000)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_dict(cls, values: dict) -> AlmConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown AlmConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
