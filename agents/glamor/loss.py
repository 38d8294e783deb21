"""Eq. 9: NLL of the relabeled action sequence (END included) under the IDM + alpha x under the prior."""
from __future__ import annotations

import numpy as np
import torch

from pixelplan.envs.batches import PairBatch

from .nets import GlamorNet


def check_pair_batch(batch: PairBatch, n_actions: int, frame_shape: tuple[int, ...],
                     obs_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the batch (the walks too) follows the PairBatch token layout for this env."""
    b = len(np.asarray(batch.lengths))
    problems = ["empty batch"] if b == 0 else []
    token_sets = [("", batch.actions, batch.lengths)]
    if batch.walk_actions is not batch.actions or batch.walk_lengths is not batch.lengths:  # not checked twice
        token_sets.append(("walk_", batch.walk_actions, batch.walk_lengths))
    for name, actions, lengths in token_sets:
        problems += _token_problems(name, np.asarray(actions), np.asarray(lengths), b, n_actions)
    if tuple(np.shape(batch.obs)) != (b, *obs_shape) or tuple(np.shape(batch.goals)) != (b, *frame_shape):
        problems.append(f"obs must be (B, *{obs_shape}) and goals (B, *{frame_shape}), "
                        f"got {np.shape(batch.obs)} and {np.shape(batch.goals)}")
    if problems:
        raise ValueError("bad PairBatch: " + "; ".join(problems))


def _token_problems(name: str, actions: np.ndarray, lengths: np.ndarray, b: int, n_actions: int) -> list[str]:
    if lengths.shape != (b,):
        return [f"{name}lengths must be (B,) for B={b}, got {lengths.shape}"]
    if actions.ndim != 2 or actions.shape[0] != b:
        return [f"{name}actions must be (B, max_len + 1), got {actions.shape} for B={b}"]
    if b and (lengths.min() < 1 or lengths.max() >= actions.shape[1]):
        return [f"{name}lengths must be in [1, {actions.shape[1] - 1}], got [{lengths.min()}, {lengths.max()}]"]
    pos = np.arange(actions.shape[1])[None]
    expected_tail = np.where(pos == lengths[:, None], n_actions, n_actions + 1)
    body = pos < lengths[:, None]
    bad_body = np.any(body & ((actions < 0) | (actions >= n_actions)))
    if bad_body or np.any(~body & (actions != expected_tail)):
        return [f"{name}actions must hold real actions < {n_actions}, then END={n_actions} at "
                f"{name}lengths[b], then PAD={n_actions + 1}"]
    return []


def sequence_nll(log_probs: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per sequence: -sum log p(token) over positions 0..lengths (the actions and the END token)."""
    picked = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None] <= lengths[:, None]
    return -torch.where(valid, picked, torch.zeros_like(picked)).sum(-1)


def glamor_loss(net: GlamorNet, obs: torch.Tensor, goals: torch.Tensor, tokens: torch.Tensor,
                lengths: torch.Tensor, prior_weight: float,
                prior_tokens: torch.Tensor | None = None, prior_lengths: torch.Tensor | None = None,
                ) -> dict[str, torch.Tensor]:
    """Mean over the batch of Eq. 9; also the two NLLs separately (per sequence, for logging).
    The prior learns ``prior_tokens`` where given (GlamorConfig.prior_on_walks), else ``tokens``."""
    if prior_tokens is None:
        prior_tokens, prior_lengths = tokens, lengths
    # Drop each set's all-PAD columns (the LSTMs are causal, so the loss is the same): short routes
    # beside long walks (GlamorConfig.prior_on_walks) then cost the IDM's LSTM their own length only.
    tokens, prior_tokens = tokens[:, :int(lengths.max()) + 1], prior_tokens[:, :int(prior_lengths.max()) + 1]
    lp_idm, lp_prior = net(obs, goals, tokens, prior_tokens)
    idm = sequence_nll(lp_idm, tokens, lengths).mean()
    prior = sequence_nll(lp_prior, prior_tokens, prior_lengths).mean()
    return {"loss/total": idm + prior_weight * prior, "loss/idm": idm, "loss/prior": prior}
