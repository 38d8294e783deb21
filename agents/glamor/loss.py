"""Eq. 9: NLL of the relabeled action sequence (END included) under the IDM + alpha x under the prior."""
from __future__ import annotations

import numpy as np
import torch

from pixelplan.envs.batches import PairBatch

from .nets import GlamorNet


def check_pair_batch(batch: PairBatch, n_actions: int, frame_shape: tuple[int, ...],
                     obs_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the batch follows the PairBatch token layout for this env."""
    lengths, actions = np.asarray(batch.lengths), np.asarray(batch.actions)
    b = len(lengths)
    problems = []
    if b == 0:
        problems.append("empty batch")
    if actions.ndim != 2 or actions.shape[0] != b:
        problems.append(f"actions must be (B, max_len + 1), got {actions.shape} for B={b}")
    elif b and (lengths.min() < 1 or lengths.max() >= actions.shape[1]):
        problems.append(f"lengths must be in [1, {actions.shape[1] - 1}], "
                        f"got [{lengths.min()}, {lengths.max()}]")
    else:
        pos = np.arange(actions.shape[1])[None]
        expected_tail = np.where(pos == lengths[:, None], n_actions, n_actions + 1)
        body = pos < lengths[:, None]
        bad_body = np.any(body & ((actions < 0) | (actions >= n_actions)))
        if bad_body or np.any(~body & (actions != expected_tail)):
            problems.append(f"actions must hold real actions < {n_actions}, then END={n_actions} at "
                            f"lengths[b], then PAD={n_actions + 1}")
    if tuple(np.shape(batch.obs)) != (b, *obs_shape) or tuple(np.shape(batch.goals)) != (b, *frame_shape):
        problems.append(f"obs must be (B, *{obs_shape}) and goals (B, *{frame_shape}), "
                        f"got {np.shape(batch.obs)} and {np.shape(batch.goals)}")
    if problems:
        raise ValueError("bad PairBatch: " + "; ".join(problems))


def sequence_nll(log_probs: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per sequence: -sum log p(token) over positions 0..lengths (the actions and the END token)."""
    picked = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None] <= lengths[:, None]
    return -torch.where(valid, picked, torch.zeros_like(picked)).sum(-1)


def glamor_loss(net: GlamorNet, obs: torch.Tensor, goals: torch.Tensor, tokens: torch.Tensor,
                lengths: torch.Tensor, prior_weight: float) -> dict[str, torch.Tensor]:
    """Mean over the batch of Eq. 9; also the two NLLs separately (per sequence, for logging)."""
    width = int(lengths.max()) + 1  # drop all-PAD columns
    tokens = tokens[:, :width]
    lp_idm, lp_prior = net(obs, goals, tokens)
    idm = sequence_nll(lp_idm, tokens, lengths).mean()
    prior = sequence_nll(lp_prior, tokens, lengths).mean()
    return {"loss/total": idm + prior_weight * prior, "loss/idm": idm, "loss/prior": prior}
