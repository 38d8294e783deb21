"""The GLAMOR planner as it was before nets.Decoder (frozen copy, for tests/test_glamor_planner_speedup.py only).

Every candidate is stepped through nn.LSTM at every position until all have ended; the faster
planner must give the same plans for a seed (up to float rounding) and the same distribution.
"""
from __future__ import annotations

import math

import torch

from pixelplan.agents.glamor.nets import DecoderState, GlamorNet, mask_log_probs
from pixelplan.agents.glamor.planner import Plans, PlanSettings, allowed_tokens, expandable, gumbel


def repeat_state(state: DecoderState, n: int) -> DecoderState:
    h, c = state.hc
    return DecoderState(state.ctx_in.repeat_interleave(n, 0), (h.repeat_interleave(n, 1), c.repeat_interleave(n, 1)))


def lstm_step(model, state: DecoderState, prev: torch.Tensor, first: bool) -> tuple[torch.Tensor, DecoderState]:
    out, hc = model.lstm(model._inputs(state.ctx_in, prev.unsqueeze(1)), state.hc)
    return mask_log_probs(model.head(out[:, 0]), first, model.n_actions), DecoderState(state.ctx_in, hc)


@torch.no_grad()
def reference_plan(net: GlamorNet, obs: torch.Tensor, goals: torch.Tensor, caps: torch.Tensor,
                   settings: PlanSettings, generator: torch.Generator) -> Plans:
    n, end, pad = net.n_actions, net.end_token, net.pad_token
    b, trials, device = obs.shape[0], settings.trials, obs.device
    m = b * trials
    max_cap = int(caps.max())
    caps = caps.repeat_interleave(trials)
    idm_ctx, prior_ctx = net.contexts(obs, goals)
    idm_state = repeat_state(net.idm.start(idm_ctx), trials)
    prior_state = repeat_state(net.prior.start(prior_ctx), trials) if settings.use_prior else None
    prev = torch.full((m,), net.idm.start_token, dtype=torch.long, device=device)
    done = torch.zeros(m, dtype=torch.bool, device=device)
    score = torch.zeros(m, device=device)
    tokens = torch.full((m, max_cap + 1), pad, dtype=torch.long, device=device)
    log_gamma = math.log(settings.discount)
    for t in range(max_cap + 1):
        lp_idm, idm_state = lstm_step(net.idm, idm_state, prev, first=t == 0)
        lp_idm = lp_idm[:, : n + 1]
        z = lp_idm
        if prior_state is not None:
            lp_prior, prior_state = lstm_step(net.prior, prior_state, prev, first=t == 0)
            z = lp_idm - lp_prior[:, : n + 1]
        allowed = allowed_tokens(t, caps, n, settings.mode)
        if settings.sparse:
            keep, logits = allowed, torch.zeros_like(z)
        else:
            keep, logits = expandable(allowed, lp_idm, settings.clip_p_actions), z / settings.temperature
        logits = torch.where(keep, logits, torch.full_like(logits, -math.inf))
        token = (logits + gumbel(logits.shape, generator, device)).argmax(1)
        gain = z.gather(1, token.unsqueeze(1)).squeeze(1) + torch.where(token < n, log_gamma, 0.0)
        score = score + torch.where(done, torch.zeros_like(gain), gain)
        tokens[:, t] = torch.where(done, torch.full_like(token, pad), token)
        done = done | (token == end)
        prev = token
        if bool(done.all()):
            break
    score = torch.where(done, score, torch.full_like(score, -math.inf))
    best = score.view(b, trials).argmax(1) + torch.arange(b, device=device) * trials
    best_tokens = tokens[best]
    lengths = (best_tokens < n).sum(1)
    return Plans(best_tokens[:, : int(lengths.max()) + 1], lengths, score[best])
