"""Batched random shooting (Sec. 3.4, Eq. 8) for many (obs, goal) requests at once.

All B x N candidates advance together: one IDM step and one prior step per position, on one
device, so the cost is ~max plan length batched forwards whatever B and N are. Encoders, the
mixing MLPs and the first step run once per request, not per candidate, and candidates that have
ended are no longer stepped (nets.Decoder). Each next token is
drawn (Gumbel-max, from a seeded torch.Generator) from the Boltzmann distribution over
z = log p_idm - log p_prior (z = log p_idm without the prior), restricted to tokens the search may
expand:
  * a real action only while the plan is shorter than its cap (steps left, at most the horizon);
  * END never first, always forced at the cap; a request's banned actions never first
    (GlamorConfig.ban_noop_actions); in "shortest" mode allowed from the 2nd position,
    in "plan-end" mode only at the cap;
  * tokens with log p_idm < clip_p_actions are not expanded (A.3). When that leaves nothing to
    expand, the IDM's most likely allowed token is kept, so every candidate still ends.
Sparse planning samples uniformly among the allowed tokens (no clip, no z) and only scores.

Score (Eq. 8, log form): sum of z over the tokens including END, plus k log(gamma) for k actions.
gamma matters more than its size suggests. In a deterministic world every action sequence that
reaches g has the same exact sum of z (-log p(g | s)), so gamma is what prefers the short ones; a
learned model's errors (it overrates e.g. an extra bump into the wall next to a goal by ~0.9 nats)
must be outweighed by -log(gamma) per step. Measured on the 7x7 grid (bench/glamor.py, N = 50, four
trained models): gamma = 0.99 gives optimal-path rates near 0 that *fall* as N grows; 0.6 gives
0.76-0.93, 0.5 gives 0.89-0.96, 0.4 gives 0.94-1.0, achievement 1.0 for all three. The default
(GlamorConfig.plan_discount) is 0.5: it keeps a margin against stopping short where the goal is
less certain than on the grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import GlamorConfig
from .nets import GlamorNet


@dataclass(frozen=True)
class PlanSettings:
    trials: int
    temperature: float
    discount: float
    clip_p_actions: float
    mode: str
    use_prior: bool
    sparse: bool

    @classmethod
    def from_config(cls, cfg: GlamorConfig, **overrides) -> PlanSettings:
        base = dict(trials=cfg.policy_trials, temperature=cfg.plan_temperature, discount=cfg.plan_discount,
                    clip_p_actions=cfg.clip_p_actions, mode=cfg.plan_mode, use_prior=cfg.use_prior,
                    sparse=cfg.sparse_planning)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class Plans:
    tokens: torch.Tensor  # (B, L) actions, then END, then PAD
    lengths: torch.Tensor  # (B,) number of actions
    scores: torch.Tensor  # (B,) Eq. 8 log-score


def gumbel(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def allowed_tokens(t: int, caps: torch.Tensor, n_actions: int, mode: str) -> torch.Tensor:
    """(M, n + 1) bool: which of actions + END the search may pick at position t."""
    actions = (t < caps).unsqueeze(1).expand(-1, n_actions)
    at_cap = t == caps
    end = at_cap if mode == "plan-end" else at_cap | ((t >= 1) & (t < caps))
    return torch.cat([actions, end.unsqueeze(1)], dim=1)


def expandable(allowed: torch.Tensor, lp_idm: torch.Tensor, clip: float) -> torch.Tensor:
    """Allowed tokens above the clip; where none is, the IDM's most likely allowed token."""
    keep = allowed & (lp_idm >= clip)
    empty = ~keep.any(1, keepdim=True)
    best = torch.where(allowed, lp_idm, torch.full_like(lp_idm, -math.inf)).argmax(1, keepdim=True)
    fallback = torch.zeros_like(keep).scatter_(1, best, True)
    return torch.where(empty, fallback, keep)


@torch.no_grad()
def plan(net: GlamorNet, obs: torch.Tensor, goals: torch.Tensor, caps: torch.Tensor, settings: PlanSettings,
         generator: torch.Generator, banned: torch.Tensor | None = None) -> Plans:
    """Best of ``settings.trials`` sampled sequences per request; plan b has at most caps[b] actions.

    Candidates with the same prefix share one decoder row (at t = 0 all N of a request do), and
    candidates that have picked END are no longer stepped. Every step still draws noise for all
    B x N candidates, so a seed gives the plans that stepping every candidate to its cap gave.
    """
    n, end, pad = net.n_actions, net.end_token, net.pad_token
    b, trials, device = obs.shape[0], settings.trials, obs.device
    m = b * trials
    max_cap = int(caps.max())
    caps = caps.repeat_interleave(trials)
    idm_ctx, prior_ctx = net.contexts(obs, goals)
    decoders = [net.idm.decoder(idm_ctx)] + ([net.prior.decoder(prior_ctx)] if settings.use_prior else [])
    live = torch.arange(m, device=device)  # candidates that have not picked END
    rows = live // trials  # each live candidate's decoder row
    prev = torch.full((b,), net.idm.start_token, dtype=torch.long, device=device)  # each row's last token
    score = torch.zeros(m, device=device)
    tokens = torch.full((m, max_cap + 1), pad, dtype=torch.long, device=device)
    log_gamma = math.log(settings.discount)
    for t in range(max_cap + 1):
        log_probs = [d.step(prev, first=t == 0)[rows] for d in decoders]
        lp_idm = log_probs[0]
        z = lp_idm - log_probs[1] if settings.use_prior else lp_idm
        allowed = allowed_tokens(t, caps[live], n, settings.mode)
        if t == 0 and banned is not None:  # (B, n) bool: actions no plan of request b may start with
            allowed[:, :n] &= ~banned.repeat_interleave(trials, 0)
        if settings.sparse:
            keep, logits = allowed, torch.zeros_like(z)
        else:
            keep, logits = expandable(allowed, lp_idm, settings.clip_p_actions), z / settings.temperature
        logits = torch.where(keep, logits, torch.full_like(logits, -math.inf))
        token = (logits + gumbel((m, n + 1), generator, device)[live]).argmax(1)
        score[live] += z.gather(1, token.unsqueeze(1)).squeeze(1) + torch.where(token < n, log_gamma, 0.0)
        tokens[live, t] = token
        going = token != end  # END is forced at the cap, so every candidate ends
        live = live[going]
        if live.numel() == 0:
            break
        prefixes, rows = torch.unique(rows[going] * (n + 1) + token[going], return_inverse=True)
        prev = prefixes % (n + 1)
        for d in decoders:
            d.select(prefixes // (n + 1))
    best = score.view(b, trials).argmax(1) + torch.arange(b, device=device) * trials
    best_tokens = tokens[best]
    lengths = (best_tokens < n).sum(1)
    return Plans(best_tokens[:, : int(lengths.max()) + 1], lengths, score[best])
