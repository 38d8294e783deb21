"""GlamorAgent: the GoalAgent contract (agents/base.py) around GlamorNet, Eq. 9 and the planner."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelplan.agents.base import PlanResult, SampleRequest, check_banned
from pixelplan.agents.config_fields import check_saved_config
from pixelplan.envs.batches import BatchQuery, PairBatch
from pixelplan.envs.files import atomic_write
from pixelplan.envs.spec import EnvSpec

from .collect import EpsilonSchedule
from .config import GlamorConfig
from .loss import check_pair_batch, glamor_loss
from .nets import GlamorNet
from .planner import PlanSettings, plan

STATE_FORMAT = 1


class GlamorAgent:
    goal_conditioned = True

    def __init__(self, spec: EnvSpec, config: GlamorConfig | None = None, device: str = "cpu",
                 seed: int = 0) -> None:
        self.spec, self.config = spec, config or GlamorConfig()
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # reproducible initial weights, global RNG untouched
            torch.manual_seed(seed)
            self.net = GlamorNet(spec, self.config).to(self.device)
        self.optim = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr,
                                       weight_decay=self.config.weight_decay)
        self.rng = np.random.default_rng(seed)  # seeds for plan() calls that bring none
        self.updates = 0  # learn() calls so far
        self.version = 0  # policy weights version: updates here, or what load_policy_weights got
        self.horizon = self.config.pair_length(spec.time_limit)
        self.epsilon = EpsilonSchedule.from_config(self.config)  # agent.epsilon(env_steps) -> ε
        self.grad_sync: Callable[[list[torch.nn.Parameter]], None] | None = None  # multi-learner all-reduce

    def modules(self) -> list[torch.nn.Module]:
        """The trained modules (a data-parallel learner broadcasts and averages their parameters)."""
        return [self.net]

    # -- learning -----------------------------------------------------------------------------
    def sample_request(self) -> SampleRequest:
        c = self.config
        query = BatchQuery("pairs", c.batch_size, self.horizon, shortest_routes=c.shortest_route_share,
                           graph_starts=c.graph_start_share, state_pairs=c.state_pair_share)
        return SampleRequest(query, replay_ratio=c.replay_ratio,
                             min_steps_learn=c.min_steps_learn)

    def learn(self, batch: PairBatch) -> dict[str, float]:
        check_pair_batch(batch, self.spec.action_size, self.spec.frame_shape, self.spec.obs_shape)
        self.net.train()
        to = dict(device=self.device)
        walk = [torch.as_tensor(x, dtype=torch.long, **to) for x in (batch.walk_actions, batch.walk_lengths)] \
            if self.config.prior_on_walks else []
        losses = glamor_loss(self.net, torch.as_tensor(batch.obs, **to), torch.as_tensor(batch.goals, **to),
                             torch.as_tensor(batch.actions, dtype=torch.long, **to),
                             torch.as_tensor(batch.lengths, dtype=torch.long, **to), self.config.prior_weight,
                             *walk)
        self.optim.zero_grad(set_to_none=True)
        losses["loss/total"].backward()
        if self.grad_sync is not None:
            self.grad_sync(list(self.net.parameters()))
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        for group in self.optim.param_groups:
            group["lr"] = self.config.learning_rate(self.updates)
        self.optim.step()
        self.updates += 1
        self.version = self.updates
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["grad_norm/net"] = float(grad_norm)
        return out

    # -- acting -------------------------------------------------------------------------------
    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: np.ndarray, seed: int | None = None,
             banned: np.ndarray | None = None, **settings: Any) -> PlanResult:
        """Plans for a batch of requests; ``banned`` (B, actions) bool: actions request b's plan may not
        start with; ``settings`` overrides PlanSettings fields (trials, mode, ...)."""
        obs, goals, steps_left = np.asarray(obs), np.asarray(goals), np.asarray(steps_left)
        self.spec.check_obs(obs)
        b = len(obs)
        if obs.shape != (b, *self.spec.obs_shape) or goals.shape != (b, *self.spec.frame_shape):
            raise ValueError(f"plan: obs must be (B, *{self.spec.obs_shape}) and goals "
                             f"(B, *{self.spec.frame_shape}), got {obs.shape} and {goals.shape}")
        if steps_left.shape != (b,) or b == 0 or steps_left.min() < 1:
            raise ValueError(f"plan: steps_left must be B={b} integers >= 1, got {steps_left!r}")
        if banned is not None:
            banned = np.asarray(banned)
            check_banned(banned, b, self.spec.action_size)
        unknown = set(settings) - {f.name for f in dataclasses.fields(PlanSettings)}
        if unknown:
            raise ValueError(f"plan: unknown settings {sorted(unknown)}")
        seed = int(self.rng.integers(2**63)) if seed is None else int(seed)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        caps = torch.as_tensor(np.minimum(steps_left, self.horizon), dtype=torch.long, device=self.device)
        self.net.eval()
        obs_t, goals_t = (torch.as_tensor(x, device=self.device) for x in (obs, goals))
        settings = PlanSettings.from_config(self.config, **settings)
        result = plan(self.net, obs_t, goals_t, caps, settings, generator,
                      None if banned is None else torch.as_tensor(banned, device=self.device))
        tokens = result.tokens.cpu().numpy()
        actions = np.where(tokens < self.spec.action_size, tokens, -1)
        return PlanResult(actions=actions, lengths=result.lengths.cpu().numpy().astype(np.int64),
                          scores=result.scores.cpu().numpy().astype(np.float64), version=self.version)

    # -- weights and state --------------------------------------------------------------------
    def policy_weights(self) -> dict[str, Any]:
        """Everything plan() needs (both encoders, IDM and prior) on CPU, tagged with its version."""
        net = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        return {"version": self.version, "net": net}

    def load_policy_weights(self, weights: dict[str, Any]) -> None:
        self.net.load_state_dict(weights["net"])
        self.version = int(weights["version"])

    def state_dict(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "config": dataclasses.asdict(self.config),
            "spec": dataclasses.asdict(self.spec),
            "net": self.net.state_dict(),
            "optim": self.optim.state_dict(),
            "updates": self.updates,
            "version": self.version,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"GLAMOR state format {state.get('format')!r}; this build reads {STATE_FORMAT}")
        if state["spec"]["env_id"] != self.spec.env_id:
            raise ValueError(f"checkpoint was saved for env {state['spec']['env_id']!r}, not {self.spec.env_id!r}")
        check_saved_config(self.config, state["config"])
        self.net.load_state_dict(state["net"])
        self.optim.load_state_dict(state["optim"])
        self.updates, self.version = int(state["updates"]), int(state["version"])
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> Path:
        """Atomic: a crash mid-write leaves the previous checkpoint intact."""
        return atomic_write(path, lambda fh: torch.save(self.state_dict(), fh))

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> GlamorAgent:
        """Rebuild spec and config from the file, then load it (resume without knowing the config)."""
        state = torch.load(path, map_location=device, weights_only=True)
        spec_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in state["spec"].items()}
        cfg_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()}
        agent = cls(EnvSpec(**spec_fields), GlamorConfig(**cfg_fields), device=device)
        agent.load_state_dict(state)
        return agent
