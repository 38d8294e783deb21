"""GLAMOR's networks (Fig. 1, Sec. 4.2): inverse dynamics model and action prior.

Two convolutional encoders: one for the observation stack s_1, one for the goal frame g. The
paper shares parameters "only in the encoders for the inverse dynamics model and action prior",
so the observation encoder is used by both models, the goal encoder only by the IDM, and each
model has its own mixing MLP and LSTM decoder. Token vocabulary: actions 0..n-1, END = n,
PAD = n + 1. PAD is never predicted; END is impossible at the first step (a plan has >= 1 action).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pixelplan.agents.nets import make_encoder, mlp
from pixelplan.envs.spec import EnvSpec

from .config import GlamorConfig


class DecoderState(NamedTuple):
    ctx_in: torch.Tensor  # (B, state) the context's contribution to every LSTM input
    hc: tuple[torch.Tensor, torch.Tensor]  # LSTM (h, c), each (layers, B, hidden)


def mask_log_probs(logits: torch.Tensor, first: torch.Tensor | bool, n_actions: int) -> torch.Tensor:
    """Log-softmax over actions + END: PAD always impossible, END impossible where ``first``.

    ``logits`` (..., n + 2); ``first`` broadcasts against logits[..., 0].
    """
    neg = torch.finfo(logits.dtype).min
    logits = logits.clone()
    logits[..., n_actions + 1] = neg
    end_blocked = torch.as_tensor(first, device=logits.device)
    logits[..., n_actions] = torch.where(end_blocked, torch.full_like(logits[..., n_actions], neg),
                                         logits[..., n_actions])
    return logits.log_softmax(-1)


class ActionSequenceModel(nn.Module):
    """p(a_1, ..., a_k, END | context): an LSTM started from the context, fed the previous action."""

    def __init__(self, context_dim: int, n_actions: int, cfg: GlamorConfig) -> None:
        super().__init__()
        self.n_actions, self.layers, self.hidden = n_actions, cfg.lstm_layers, cfg.lstm_hidden
        self.mix = mlp(context_dim, [cfg.mix_hidden], cfg.state_size, layer_norm=True, out_act=True)
        self.init_hc = nn.Linear(cfg.state_size, 2 * cfg.lstm_layers * cfg.lstm_hidden)
        self.ctx_in = nn.Linear(cfg.state_size, cfg.state_size)
        self.embed = nn.Embedding(n_actions + 1, cfg.state_size)  # previous action; index n = START
        self.lstm = nn.LSTM(cfg.state_size, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True)
        self.head = nn.Linear(cfg.lstm_hidden, n_actions + 2)

    @property
    def start_token(self) -> int:
        return self.n_actions

    def start(self, context: torch.Tensor) -> DecoderState:
        state = self.mix(context)
        h, c = self.init_hc(state).view(-1, 2, self.layers, self.hidden).permute(1, 2, 0, 3).contiguous()
        return DecoderState(self.ctx_in(state), (h, c))

    def _inputs(self, ctx_in: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        prev = torch.where(prev < self.n_actions, prev, torch.full_like(prev, self.start_token))
        return torch.relu(ctx_in.unsqueeze(1) + self.embed(prev))

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probs (B, L, n + 2) of predicting ``tokens`` (B, L) position by position."""
        state = self.start(context)
        start = torch.full_like(tokens[:, :1], self.start_token)
        prev = torch.cat([start, tokens[:, :-1]], dim=1)
        out, _ = self.lstm(self._inputs(state.ctx_in, prev), state.hc)
        first = torch.zeros(tokens.shape[1], dtype=torch.bool, device=tokens.device)
        first[0] = True
        return mask_log_probs(self.head(out), first.unsqueeze(0), self.n_actions)

    def decoder(self, context: torch.Tensor) -> Decoder:
        """Autoregressive sampling from B contexts; rows start one per context."""
        return Decoder(self, context)


class Decoder:
    """Many sequences sampled from a few contexts, one step at a time: the planner's inner loop.

    The same LSTM as ``ActionSequenceModel.forward``, computed for less. The first layer's input
    depends only on (context, previous token), so its input projection is computed once per context
    for every token ((n + 1) rows per context instead of one per sequence) and gathered each step;
    that halves the work of a 1-layer step. Rows can be repeated or dropped (``select``), so the
    planner steps each distinct unfinished prefix once.
    """

    def __init__(self, model: ActionSequenceModel, context: torch.Tensor) -> None:
        state = model.start(context)
        lstm, n = model.lstm, model.n_actions
        self.n_actions = n
        self.head_weight, self.head_bias = model.head.weight[: n + 1], model.head.bias[: n + 1]  # PAD: never
        # Gates reordered from PyTorch's (input, forget, cell, output) to (input, forget, output, cell),
        # the cell gate's rows doubled: one sigmoid over all gates then gives tanh(x) = 2 sigmoid(2x) - 1
        # for the cell gate (torch's CPU tanh measured 6x slower than its sigmoid, AVX-512, 1 thread).
        i, f, g, o = torch.arange(4 * lstm.hidden_size, device=context.device).chunk(4)
        order = torch.cat([i, f, o, g])
        scale = torch.ones(4 * lstm.hidden_size, device=context.device)
        scale[3 * lstm.hidden_size:] = 2.0
        weights = [[getattr(lstm, f"{name}_l{k}")[order] * (scale if name.startswith("bias") else scale[:, None])
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")] for k in range(lstm.num_layers)]
        self.w_ih = [w_ih for w_ih, _, _, _ in weights]
        self.w_hh = [w_hh.t() for _, w_hh, _, _ in weights]
        self.bias = [b_ih + b_hh for _, _, b_ih, b_hh in weights]
        inputs = torch.relu(state.ctx_in.unsqueeze(1) + model.embed.weight)  # (B, n + 1 tokens incl. START, state)
        self.table = nn.functional.linear(inputs, self.w_ih[0], self.bias[0]).flatten(0, 1)
        self.context = torch.arange(context.shape[0], device=context.device)  # each row's context
        h, c = state.hc
        self.h, self.c = list(h.unbind(0)), list(c.unbind(0))

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and repeat) the sequences at ``rows``, in that order."""
        self.context = self.context.index_select(0, rows)  # index_select: faster than [rows] on CPU
        self.h = [h.index_select(0, rows) for h in self.h]
        self.c = [c.index_select(0, rows) for c in self.c]

    def step(self, prev: torch.Tensor, first: bool) -> torch.Tensor:
        """Feed each row its previous token; log-probs (rows, n + 1) of the next one (actions, END)."""
        n = self.n_actions
        prev = torch.where(prev < n, prev, torch.full_like(prev, n))  # END/PAD read as START, as in training
        gates_in = self.table.index_select(0, self.context * (n + 1) + prev)
        for k in range(len(self.h)):
            if k > 0:
                gates_in = nn.functional.linear(self.h[k - 1], self.w_ih[k], self.bias[k])
            gates = torch.addmm(gates_in, self.h[k], self.w_hh[k]).sigmoid_()
            i, f, o, cell = gates.chunk(4, 1)
            self.c[k] = torch.addcmul(f * self.c[k], i, cell.mul(2.0).sub_(1.0))
            self.h[k] = o * (self.c[k] * 2.0).sigmoid_().mul_(2.0).sub_(1.0)
        logits = torch.addmm(self.head_bias, self.h[-1], self.head_weight.t())
        if first:
            logits[:, n] = torch.finfo(logits.dtype).min
        return logits.log_softmax(1)


class GlamorNet(nn.Module):
    """Encoders + IDM p(a | s_1, g) + action prior p(a | s_1)."""

    def __init__(self, spec: EnvSpec, cfg: GlamorConfig) -> None:
        super().__init__()
        if not spec.discrete:
            raise ValueError(f"GLAMOR needs discrete actions (discretise continuous control to 3^A); "
                             f"{spec.env_id} has {spec.action_kind} actions")
        self.n_actions = spec.action_size
        self.goal_relative, self.frame_channels = cfg.goal_relative, spec.frame_shape[0]
        enc = (cfg.encoder_dim, cfg.encoder_channels, cfg.norm_groups, cfg.encoder)
        self.obs_encoder = make_encoder(spec.obs_shape, *enc)
        self.goal_encoder = make_encoder(spec.frame_shape, *enc)
        self.idm = ActionSequenceModel(2 * cfg.encoder_dim, self.n_actions, cfg)
        self.prior = ActionSequenceModel(cfg.encoder_dim, self.n_actions, cfg)

    @property
    def end_token(self) -> int:
        return self.n_actions

    @property
    def pad_token(self) -> int:
        return self.n_actions + 1

    def contexts(self, obs: torch.Tensor, goals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(IDM context, prior context) from raw observations and goal frames."""
        obs_rep, goal_rep = self.obs_encoder(obs), self.goal_encoder(goals)
        if self.goal_relative:
            goal_rep = goal_rep - self.goal_encoder(obs[:, -self.frame_channels:])
        return torch.cat([obs_rep, goal_rep], dim=-1), obs_rep

    def forward(self, obs: torch.Tensor, goals: torch.Tensor, tokens: torch.Tensor,
                prior_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probs (B, L, n + 2) of ``tokens`` under the IDM and of ``prior_tokens``
        (default: the same tokens) under the prior."""
        idm_ctx, prior_ctx = self.contexts(obs, goals)
        return self.idm(idm_ctx, tokens), self.prior(prior_ctx, tokens if prior_tokens is None else prior_tokens)
