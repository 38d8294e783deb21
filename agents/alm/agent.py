"""AlmAgent: the agents/base.py PolicyAgent contract for Aligned Latent Models (Algorithm 1).

One ``learn`` call is one iteration of Algorithm 1 on a batch of K-step replay windows: update
encoder + model (Eq. 7), then the policy (Eq. 8), then classifier, Q and reward (Eq. 9-11) on each
window's first transition, then the Polyak targets. Each role has its own Adam and its own gradient
clipping, and a role's loss is differentiated w.r.t. that role's parameters only: gradients flow
*through* the other networks but never *into* them (Q shapes the encoder in Eq. 7 but is trained
only by Eq. 10).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelplan.agents.base import SampleRequest
from pixelplan.agents.config_fields import check_saved_config
from pixelplan.agents.nets import resolve_device
from pixelplan.envs.batches import BatchQuery, SequenceBatch
from pixelplan.envs.spec import EnvSpec

from . import losses
from .config import AlmConfig
from .nets import Classifier, Encoder, Gaussian, LatentModel, Policy, StateActionValue, TwinQ

ROLES = ("model", "policy", "q", "reward", "classifier")


class AlmAgent:
    goal_conditioned = False

    def __init__(self, spec: EnvSpec, config: AlmConfig | None = None, device: str | torch.device = "auto",
                 seed: int = 0) -> None:
        """``seed``: initial weights and the agent's own noise (the run's seed tree hands each process one)."""
        if spec.discrete:
            raise ValueError(f"ALM needs continuous actions in [-1, 1]; {spec.env_id} has {spec.action_size} "
                             "discrete actions (make the env with actions='continuous')")
        self.spec = spec
        self.config = cfg = config or AlmConfig()
        self.device = resolve_device(str(device))
        a = spec.action_size
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
            torch.manual_seed(seed)
            self.encoder = Encoder(spec, cfg)
            self.model = LatentModel(cfg, a)
            self.policy = Policy(cfg, a)
            self.q = TwinQ(cfg, a)
            self.reward = StateActionValue(cfg, a)
            self.classifier = Classifier(cfg, a)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        for net in self._nets().values():
            net.to(self.device)
        role_modules: dict[str, tuple[nn.Module, ...]] = {
            "model": (self.encoder, self.model), "policy": (self.policy,), "q": (self.q,),
            "reward": (self.reward,), "classifier": (self.classifier,)}
        self._role_params = {role: [p for m in mods for p in m.parameters()] for role, mods in role_modules.items()}
        lrs = {"policy": cfg.lr if cfg.policy_lr is None else cfg.policy_lr}
        self.optimizers = {role: torch.optim.Adam(params, lr=lrs.get(role, cfg.lr), fused=True)
                           for role, params in self._role_params.items()}
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.updates = 0
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None  # multi-learner all-reduce

    def modules(self) -> list[nn.Module]:
        """Every network, targets included (the learners broadcast them so replicas start equal)."""
        return list(self._nets().values())

    def _nets(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "model": self.model, "policy": self.policy, "q": self.q,
                "reward": self.reward, "classifier": self.classifier, "target_encoder": self.target_encoder,
                "q_target": self.q_target}

    # -- contract: replay and acting ----------------------------------------------------------
    def sample_request(self) -> SampleRequest:
        cfg = self.config
        return SampleRequest(BatchQuery("windows", cfg.batch_size, cfg.horizon),
                             replay_ratio=cfg.batch_size * cfg.updates_per_env_step,
                             min_steps_learn=cfg.warmup_steps)

    def initial_carry(self, batch: int) -> None:
        return None

    def act(self, obs: np.ndarray, carry: Any, first: np.ndarray, explore: bool,
            env_steps: int) -> tuple[np.ndarray, None]:
        """pi(mean of e(s)) plus, when exploring, unclipped Gaussian noise with the scheduled std (the
        official code samples z instead of taking its mean); uniform random actions during warmup."""
        obs = np.asarray(obs)
        self.spec.check_obs(obs)
        if obs.ndim != len(self.spec.obs_shape) + 1:
            raise ValueError(f"act() takes a batch of observations (B, {self.spec.obs_shape}), got {obs.shape}")
        batch, size = obs.shape[0], self.spec.action_size
        if explore and env_steps < self.config.warmup_steps:
            return self.rng.uniform(-1.0, 1.0, (batch, size)).astype(np.float32), None
        with torch.no_grad():
            z = self.encoder(torch.as_tensor(obs, device=self.device)).mean
            action = self.policy(z).cpu().numpy()
        if explore:
            action = action + self.config.exploration_std(env_steps) * self.rng.standard_normal(action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32), None

    # -- contract: learning -------------------------------------------------------------------
    def learn(self, batch: SequenceBatch) -> dict[str, float]:
        cfg, gen = self.config, self.generator
        obs, actions, rewards, terminals = self.tensors(batch)
        std = self.learner_std()
        targ, z_targ = self.target_latents(obs)
        alive = torch.cat([torch.ones_like(terminals[:, :1]), torch.cumprod(1.0 - terminals, 1)], 1)
        objectives = {
            "model": lambda: losses.model_loss(self.encoder(obs[:, 0]), self.model, self.reward, self.q, self.policy,
                                               actions, Gaussian(targ.mean[:, 1:], targ.std[:, 1:]), alive, cfg,
                                               std, gen),
            "policy": lambda: losses.policy_loss(z_targ[:, 0], self.model, self.reward, self.q, self.policy,
                                                 self.classifier, cfg, std, gen),
            **self.critic_objectives(z_targ, actions, rewards, terminals, std),
        }
        metrics: dict[str, torch.Tensor] = {}
        for role in ROLES:  # Algorithm 1's order: encoder+model, policy, then classifier, Q, reward
            metrics.update(self._update(role, objectives[role]))
        self._polyak(self.encoder, self.target_encoder)
        self._polyak(self.q, self.q_target)
        self.updates += 1
        names = list(metrics)
        values = torch.stack([metrics[n].float() for n in names]).tolist()  # one device sync
        return dict(zip(names, values)) | {"explore/std": std}

    def target_latents(self, obs: torch.Tensor) -> tuple[Gaussian, torch.Tensor]:
        """Target-encoder posteriors and samples for every observation of the windows, (B, K+1, Z)."""
        with torch.no_grad():
            targ = self.target_encoder(obs.flatten(0, 1))
            targ = Gaussian(*(t.unflatten(0, obs.shape[:2]) for t in targ))
            return targ, targ.rsample(self.generator)

    def critic_objectives(self, z_targ: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                          terminals: torch.Tensor, std: float) -> dict[str, Callable[[], tuple[torch.Tensor, dict]]]:
        """Eq. 9-11 on each window's first transition, from target-encoder latents (Appendix D), so no
        gradient path leads from them into the online encoder."""
        z, z_next, a, r = z_targ[:, 0], z_targ[:, 1], actions[:, 0], rewards[:, 0]

        def classifier():
            with torch.no_grad():
                z_model = self.model(z, a).rsample(self.generator)
            return losses.classifier_loss(self.classifier, z, a, z_next, z_model)

        return {
            "classifier": classifier,
            "q": lambda: losses.q_loss(self.q, self.q_target, self.policy, z, a, r, z_next, 1.0 - terminals[:, 0],
                                       self.config, std, self.generator),
            "reward": lambda: (losses.reward_loss(self.reward, z, a, r), {}),
        }

    def learner_std(self) -> float:
        """The learner does not see env steps; with a fixed replay ratio they are warmup + updates/ratio."""
        cfg = self.config
        return cfg.exploration_std(cfg.warmup_steps + int(self.updates / cfg.updates_per_env_step))

    def _update(self, role: str, objective: Callable[[], tuple[torch.Tensor, dict]]) -> dict[str, torch.Tensor]:
        """One optimiser step of ``role``: gradients are taken w.r.t. its own parameters only."""
        params = self._role_params[role]
        loss, extra = objective()
        for p, g in zip(params, torch.autograd.grad(loss, params)):
            p.grad = g
        if self.grad_sync is not None:
            self.grad_sync(params)
        norm = nn.utils.clip_grad_norm_(params, self.config.max_grad_norm, foreach=True)
        self.optimizers[role].step()
        return {f"loss/{role}": loss.detach(), f"grad_norm/{role}": norm, **extra}

    def _polyak(self, online: nn.Module, target: nn.Module) -> None:
        with torch.no_grad():
            for p, t in zip(online.parameters(), target.parameters()):
                t.lerp_(p, self.config.tau)

    def tensors(self, batch: SequenceBatch) -> tuple[torch.Tensor, ...]:
        k, spec = self.config.horizon, self.spec
        b = len(batch)
        expected = {"obs": (b, k + 1, *spec.obs_shape), "actions": (b, k, spec.action_size),
                    "rewards": (b, k), "terminals": (b, k), "is_first": (b, k + 1)}
        for name, shape in expected.items():
            got = getattr(batch, name).shape
            if got != shape:
                raise ValueError(f"ALM needs windows of length K={k}: batch.{name} must have shape {shape}, got {got}")
        if np.any(batch.is_first[:, 1:]):
            raise ValueError("ALM windows must not cross episode boundaries (is_first inside a window); "
                             "ask the replay for cross_episodes=False")
        dev = self.device
        return (torch.as_tensor(batch.obs, device=dev),
                torch.as_tensor(batch.actions, dtype=torch.float32, device=dev),
                torch.as_tensor(batch.rewards, dtype=torch.float32, device=dev),
                torch.as_tensor(batch.terminals, dtype=torch.float32, device=dev))

    # -- contract: weights and checkpoints ----------------------------------------------------
    def policy_weights(self) -> dict[str, Any]:
        """Encoder and policy on CPU: all a worker needs to act."""
        return {name: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                for name, net in (("encoder", self.encoder), ("policy", self.policy))}

    def load_policy_weights(self, weights: dict[str, Any]) -> None:
        missing = {"encoder", "policy"} - set(weights)
        if missing:
            raise ValueError(f"ALM policy weights need keys 'encoder' and 'policy', missing {sorted(missing)}")
        self.encoder.load_state_dict(weights["encoder"])
        self.policy.load_state_dict(weights["policy"])

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "nets": {name: net.state_dict() for name, net in self._nets().items()},
            "optimizers": {role: opt.state_dict() for role, opt in self.optimizers.items()},
            "updates": self.updates,
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        check_saved_config(self.config, state["config"])
        for name, net in self._nets().items():
            net.load_state_dict(state["nets"][name])
        for role, opt in self.optimizers.items():  # deep copy: Adam would share the saved moment tensors
            opt.load_state_dict(copy.deepcopy(state["optimizers"][role]))
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
