"""GLAMOR hyperparameters: defaults are the paper's Fig. 5 (the authors' code where Fig. 5 is silent)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar, Literal

from pixelplan.agents.nets import ENCODERS

PLAN_MODES = ("shortest", "plan-end")


@dataclass(frozen=True)
class GlamorConfig:
    # -- model (Sec. 4.2, Fig. 1) -------------------------------------------------------------
    encoder: str = "impala"  # "keypoints": spatial-softmax encoders (agents/nets.py), the dmc-cpu recipe's
    # True: the IDM sees the goal frame's embedding minus the current frame's, both under the goal
    # encoder, so a body's displacement is one subtraction away instead of two encoders to align.
    goal_relative: bool = False
    encoder_channels: tuple[int, ...] = (16, 32, 32)  # IMPALA "large" stages (keypoints: conv widths)
    encoder_dim: int = 256  # each encoder's output size
    norm_groups: int = 8  # GroupNorm groups (at most; must divide the channels or is reduced)
    state_size: int = 512  # the mixed (obs, goal) representation the LSTMs start from
    mix_hidden: int = 256  # hidden width of the mixing MLP
    lstm_hidden: int = 64
    lstm_layers: int = 1
    # -- learning (Eq. 9) ---------------------------------------------------------------------
    lr: float = 5e-4
    lr_final: float | None = None  # None: constant lr (the paper); else linear decay to this value ...
    lr_decay_updates: int = 0  # ... over this many updates (the tiny preset: a stable final model)
    weight_decay: float = 0.01  # AdamW
    grad_clip: float = 1.0  # global grad-norm clip (authors' code)
    prior_weight: float = 1.0  # alpha in Eq. 9
    batch_size: int = 200  # pairs per update (authors' code)
    max_pair_length: int | None = None  # j - i cap; None = the env's time limit T (50 Atari, 100 DMC)
    # Not the paper's: this share of the hindsight pairs is trained on its shortest route through the
    # transitions the batch's trajectories made around it (deterministic envs whose frame is the whole
    # state: the grid), so that a far goal's pairs are not only random walks.
    shortest_route_share: float = 0.0
    # Not the paper's: this share of those routed pairs starts from any frame of the batch's transition
    # graph within reach of the goal, not the pair's own start (hindsight relabeling across trajectories).
    graph_start_share: float = 0.0
    # Not the paper's: this share of the other routed pairs has its goal drawn uniformly over the distinct
    # frames the replay holds and its start over those within reach of it, along every transition the
    # replay holds (replay/state_graph.py): goals the walks rarely reach (a far room) are as common as any.
    state_pair_share: float = 0.0
    # With shortest routes: the action prior learns the walks (the behaviour) and only the IDM the
    # routes, so that the ratio p_idm / p_prior stays bounded for actions no route takes (a bump into
    # a wall: unseen under both, and scored up to +2 nats each when the prior learned routes too).
    prior_on_walks: bool = False
    replay_ratio: float = 4.0  # sampled pairs per inserted env step
    min_steps_learn: int = 50_000
    buffer_size: int = 1_000_000  # env steps the replay keeps
    # -- collection (Sec. 3.5) ----------------------------------------------------------------
    eps_initial: float = 1.0
    eps_final: float = 0.1
    eps_steps: int = 300_000  # env steps of the linear decay
    train_tasks: int = 1000  # size of the training goal set
    # Collection: end the episode when the open-loop plan runs out (the authors' "terminate"), or
    # (False) act uniformly at random until T. True collapsed learning on the grid with gamma < 1:
    # an untrained model's best plans are 1 action long, so the data holds only 1-step pairs, so
    # the model learns to end after 1 action (achievement 0.13 after 400 updates vs 1.0).
    stop_at_plan_end: bool = False
    # Not the paper's, which follows one open-loop plan from s_1: after this many steps of a plan, plan
    # again from there toward the same goal; 1 acts closed loop, as evaluation does (0: the paper's).
    # With next_goal_at_plan_end it raised four-rooms' achievement (3 seeds, 0.74 -> 0.82) and lowered
    # the maze's and comb's (0.96 -> 0.90, 1.00 -> 0.95), so no recipe sets it (README, Results).
    collect_replan_every: int = 0
    # Not the paper's: a plan that runs out before T is followed by a plan from there to another
    # training goal, instead of random actions until T.
    next_goal_at_plan_end: bool = False
    # -- planning (Eq. 8, Sec. 3.4) ------------------------------------------------------------
    policy_trials: int = 50  # N candidate sequences per request
    clip_p_actions: float = -3.15  # expand a token only if log p_idm(token) >= this
    plan_temperature: float = 1.0  # Boltzmann temperature over z
    plan_discount: float = 0.5  # gamma in Eq. 8; see planner.py for why not 0.99
    plan_mode: Literal["shortest", "plan-end"] = "shortest"
    use_prior: bool = True  # False: the no-action-prior ablation, z = log p_idm
    sparse_planning: bool = False  # True: uniform random candidates, scored by Eq. 8 afterwards
    # Not the paper's: in closed-loop evaluation, an action after which the observation did not change is
    # not planned first again from that observation (eval_policies.AgentGoalPolicy). A model that plans
    # through a wall beside a door otherwise bumps into it until the time limit.
    ban_noop_actions: bool = False

    # Fields that change only how a trained model plans, never the model: `pixelplan eval --set`
    # may change these on a trained run (Fig. 3a varies N and gamma); every other field is refused.
    PLANNING_FIELDS: ClassVar[tuple[str, ...]] = ("policy_trials", "clip_p_actions", "plan_temperature", "plan_discount",
                                                  "plan_mode", "use_prior", "sparse_planning", "ban_noop_actions")

    def __post_init__(self) -> None:
        problems = []
        if self.encoder not in ENCODERS:
            problems.append(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.plan_mode not in PLAN_MODES:
            problems.append(f"plan_mode must be one of {PLAN_MODES}, got {self.plan_mode!r}")
        if not 0.0 < self.plan_discount <= 1.0:
            problems.append(f"plan_discount must be in (0, 1], got {self.plan_discount}")
        if self.plan_temperature <= 0:
            problems.append(f"plan_temperature must be > 0, got {self.plan_temperature}")
        if self.policy_trials < 1 or self.batch_size < 1:
            problems.append("policy_trials and batch_size must be >= 1")
        if self.max_pair_length is not None and self.max_pair_length < 1:
            problems.append(f"max_pair_length must be >= 1 or None, got {self.max_pair_length}")
        if not 0.0 <= self.shortest_route_share <= 1.0:
            problems.append(f"shortest_route_share must be in [0, 1], got {self.shortest_route_share}")
        for name in ("graph_start_share", "state_pair_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {share}")
            elif share and not self.shortest_route_share:
                problems.append(f"{name} is a share of the routed pairs: it needs shortest_route_share > 0")
        if self.collect_replan_every < 0:
            problems.append(f"collect_replan_every must be >= 0 (0: one plan per episode), got {self.collect_replan_every}")
        if self.next_goal_at_plan_end and self.stop_at_plan_end:
            problems.append("next_goal_at_plan_end and stop_at_plan_end both say what follows a plan's end: pick one")
        if not 0.0 <= self.eps_final <= 1.0 or not 0.0 <= self.eps_initial <= 1.0:
            problems.append("eps_initial and eps_final must be in [0, 1]")
        if problems:
            raise ValueError("GlamorConfig: " + "; ".join(problems))

    @classmethod
    def tiny(cls, **overrides) -> GlamorConfig:
        """A CPU-sized model for the 9x9 grid world (~0.25M parameters): ~1000 updates, under a minute.

        The decaying learning rate is not the paper's: with a constant 2e-3 the final model's
        optimal-path rate swung between 0.7 and 1.0 from one evaluation to the next. The goal-relative
        IDM is not the paper's either: with it the grid recipe's achievement, mean of 3 seeds, rose to
        0.86 / 0.77 / 0.89 on four-rooms / maze / comb from 0.76 / 0.72 / 0.84, and the 7x7 room
        stayed at 1.00."""
        base = dict(encoder_channels=(16, 32), encoder_dim=64, state_size=64, mix_hidden=64, batch_size=64,
                    goal_relative=True,
                    min_steps_learn=500, buffer_size=100_000, eps_steps=5_000, eps_final=0.1, train_tasks=200,
                    lr=2e-3, lr_final=1e-4, lr_decay_updates=1000)
        base.update(overrides)
        return cls(**base)

    def replace(self, **overrides) -> GlamorConfig:
        """Copy with fields replaced; unknown names raise ValueError (typos in --set must not pass)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"GlamorConfig has no field(s) {unknown}; known fields: {sorted(known)}")
        return replace(self, **overrides)

    def learning_rate(self, updates: int) -> float:
        if self.lr_final is None or self.lr_decay_updates <= 0:
            return self.lr
        frac = min(updates / self.lr_decay_updates, 1.0)
        return self.lr + frac * (self.lr_final - self.lr)

    def pair_length(self, time_limit: int) -> int:
        """Longest relabeled pair (and longest plan) for an env with time limit T."""
        return min(self.max_pair_length or time_limit, time_limit)
