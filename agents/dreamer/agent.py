"""Dreamer as a `PolicyAgent`: world-model and behaviour updates on window batches, recurrent acting."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.utils import clip_grad_norm_
from torch.profiler import record_function

from pixelplan.agents.base import SampleRequest
from pixelplan.agents.config_fields import check_saved_config
from pixelplan.agents.nets import resolve_device
from pixelplan.envs.batches import BatchQuery, SequenceBatch
from pixelplan.envs.spec import EnvSpec

from .config import DreamerConfig
from .imagination import behavior_losses
from .nets import ActionModel, mlp
from .rssm import State
from .world_model import WorldModel

Carry = dict[str, np.ndarray]  # per env: RSSM state ("deter", "stoch") and the previous action vector


class DreamerAgent:
    goal_conditioned = False

    def __init__(self, spec: EnvSpec, config: DreamerConfig | None = None, device: str | None = None,
                 seed: int = 0) -> None:
        """``device`` (the runtime's choice) overrides ``config.device``; ``seed``: initial weights and acting noise."""
        if not spec.pixels:
            raise ValueError(f"Dreamer learns from pixels; {spec.env_id} has {spec.frame_dtype} state observations")
        self.spec = spec
        self.config = c = config or DreamerConfig()
        self.device = resolve_device(str(device) if device is not None else c.device)
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=[]):  # reproducible initial weights, global RNG untouched
            torch.manual_seed(seed)
            self.world = WorldModel(spec.obs_shape, spec.action_size, c).to(self.device)
            feat_dim = self.world.rssm.feat_dim
            self.actor = ActionModel(feat_dim, spec.action_size, spec.discrete, c.mlp_units, c.mlp_layers,
                                     c.action_mean_scale, c.action_init_std, c.action_min_std).to(self.device)
            self.value = mlp(feat_dim, 1, c.mlp_units, c.mlp_layers).to(self.device)
        self.model_opt = torch.optim.Adam(self.world.parameters(), lr=c.model_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.value_lr)
        self.updates = 0
        self.grad_sync: Callable[[list[torch.nn.Parameter]], None] | None = None  # multi-learner all-reduce

    def modules(self) -> list[torch.nn.Module]:
        """The trained modules (a data-parallel learner broadcasts and averages their parameters)."""
        return [self.world, self.actor, self.value]

    # -- data --------------------------------------------------------------------------------
    @property
    def prefill_steps(self) -> int:
        """Env steps of random seed episodes before learning (and before the policy acts)."""
        return self.config.seed_episodes * self.spec.time_limit

    def sample_request(self) -> SampleRequest:
        c = self.config
        return SampleRequest(BatchQuery("windows", c.batch_size, c.seq_len, c.cross_episodes),
                             replay_ratio=c.batch_size / c.update_every, min_steps_learn=self.prefill_steps)

    def _action_vectors(self, actions: np.ndarray) -> torch.Tensor:
        """Env actions -> what the RSSM reads (one-hot for discrete)."""
        actions = torch.as_tensor(actions, device=self.device)
        if self.spec.discrete:
            return F.one_hot(actions.long(), self.spec.action_size).float()
        return actions.float()

    # -- acting ------------------------------------------------------------------------------
    def initial_carry(self, batch: int) -> Carry:
        c = self.config
        return {"deter": np.zeros((batch, c.deter), np.float32), "stoch": np.zeros((batch, c.stoch), np.float32),
                "action": np.zeros((batch, self.spec.action_size), np.float32)}

    def epsilon(self, env_steps: int) -> float:
        c = self.config
        progress = min(1.0, env_steps / max(1, c.epsilon_decay_steps))
        return c.epsilon_start + (c.epsilon_end - c.epsilon_start) * progress

    @torch.no_grad()
    def act(self, obs: np.ndarray, carry: Carry | None, first: np.ndarray, explore: bool,
            env_steps: int) -> tuple[np.ndarray, Carry]:
        """Filter o_t through the posterior with the previous action, then act on the latent state.

        With `explore`: uniform random actions for the seed episodes (env_steps < prefill_steps),
        then Gaussian noise (continuous) or epsilon-greedy (discrete). Without it: the mode.
        """
        self.spec.check_obs(obs)
        n = len(obs)
        carry = carry if carry is not None else self.initial_carry(n)
        first = np.asarray(first, bool)
        if first.shape != (n,) or carry["deter"].shape[0] != n:
            raise ValueError(f"act: obs batch {n}, first {first.shape} and carry {carry['deter'].shape[0]} must agree")
        keep = torch.as_tensor(~first, device=self.device).float().unsqueeze(-1)
        deter, stoch, prev_action = (torch.as_tensor(carry[k], device=self.device) * keep
                                     for k in ("deter", "stoch", "action"))
        prev = State(deter, stoch, stoch, torch.ones_like(stoch))
        embed = self.world.encoder(torch.as_tensor(obs, device=self.device))
        post, _ = self.world.rssm.obs_step(prev, prev_action, embed)
        greedy = self.actor.mode(post.feature)
        if self.spec.discrete:
            actions = greedy.argmax(-1).cpu().numpy()
            if explore:
                eps = 1.0 if env_steps < self.prefill_steps else self.epsilon(env_steps)
                random = self.rng.random(n) < eps
                actions = np.where(random, self.rng.integers(self.spec.action_size, size=n), actions)
            vectors = np.eye(self.spec.action_size, dtype=np.float32)[actions]
        else:
            actions = greedy.cpu().numpy()
            if explore and env_steps < self.prefill_steps:
                actions = self.rng.uniform(-1.0, 1.0, actions.shape)
            elif explore:
                actions = np.clip(actions + self.config.expl_noise * self.rng.standard_normal(actions.shape), -1.0, 1.0)
            actions = vectors = actions.astype(np.float32)
        new_carry = {"deter": post.deter.cpu().numpy(), "stoch": post.stoch.cpu().numpy(), "action": vectors}
        return actions.astype(np.int64) if self.spec.discrete else actions, new_carry

    # -- learning ----------------------------------------------------------------------------
    def _step(self, name: str, loss: torch.Tensor) -> float:
        """Backward, (all-reduce), clip and step one of the three models; returns its grad norm."""
        optimiser, module = getattr(self, f"{name}_opt"), self.modules()[("model", "actor", "value").index(name)]
        with record_function(f"dreamer/{name}_backward_step"):
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            params = list(module.parameters())
            if self.grad_sync is not None:
                self.grad_sync(params)
            norm = clip_grad_norm_(params, self.config.grad_clip)
            optimiser.step()
        return float(norm)

    def learn(self, batch: SequenceBatch) -> dict[str, float]:
        if not isinstance(batch, SequenceBatch):
            raise TypeError(f"Dreamer learns from SequenceBatch windows, got {type(batch).__name__}")
        self.spec.check_obs(batch.obs)
        dev = self.device
        model_loss, posts, metrics = self.world.loss(
            torch.as_tensor(batch.obs, device=dev), self._action_vectors(batch.actions),
            torch.as_tensor(batch.rewards, device=dev).float(), torch.as_tensor(batch.terminals, device=dev),
            torch.as_tensor(batch.is_first, device=dev))
        stats = {k: float(v.detach()) for k, v in metrics.items()}
        stats["grad_norm/model"] = self._step("model", model_loss)
        with record_function("dreamer/imagination"):
            actor_loss, value_loss, imagined = behavior_losses(posts, self.world, self.actor, self.value,
                                                               self.config.horizon, self.config.lambda_)
        stats["grad_norm/actor"] = self._step("actor", actor_loss)
        stats["grad_norm/value"] = self._step("value", value_loss)
        self.updates += 1
        stats.update(imagined, **{"loss/actor": float(actor_loss.detach()), "loss/value": float(value_loss.detach())})
        return stats

    # -- weights and checkpoints -------------------------------------------------------------
    def policy_weights(self) -> dict[str, Any]:
        """What acting needs: encoder, RSSM and actor (CPU tensors)."""
        modules = {"encoder": self.world.encoder, "rssm": self.world.rssm, "actor": self.actor}
        return {name: {k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}

    def load_policy_weights(self, weights: dict[str, Any]) -> None:
        missing = {"encoder", "rssm", "actor"} - set(weights)
        if missing:
            raise ValueError(f"Dreamer policy weights lack {sorted(missing)}")
        self.world.encoder.load_state_dict(weights["encoder"])
        self.world.rssm.load_state_dict(weights["rssm"])
        self.actor.load_state_dict(weights["actor"])

    def state_dict(self) -> dict:
        """A deep copy: later updates (in place) must not change a checkpoint already taken."""
        state = {"config": self.config.to_dict(), "updates": self.updates,
                 "torch_rng": torch.get_rng_state(), "numpy_rng": self.rng.bit_generator.state}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        for name in ("world", "actor", "value", "model_opt", "actor_opt", "value_opt"):
            state[name] = getattr(self, name).state_dict()
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict) -> None:
        check_saved_config(self.config, state["config"], ignore=("device",))
        for name in ("world", "actor", "value", "model_opt", "actor_opt", "value_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
