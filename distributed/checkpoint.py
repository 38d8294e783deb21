"""Checkpoints that survive crashes and never run code when they are loaded.

Each checkpoint is written to a temporary file, fsynced, renamed into place and the folder fsynced,
so a crash mid-write never leaves a broken newest checkpoint. Loading uses
``torch.load(weights_only=True)``: only tensors and plain Python containers come back, a crafted
pickle cannot run anything (run folders travel between people and pods). ``load_checkpoint`` on a
folder falls back to the newest checkpoint that loads and says which one it skipped. Replay
contents are not in checkpoints (they survive through the Redis backend instead), so checkpoints
stay small.
"""
from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelplan.envs.files import atomic_write

_NAME = re.compile(r"ckpt-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded safely (corrupt, truncated, or not plain data)."""


def save_checkpoint(folder: str | Path, state: dict, step: int, keep: int = 3) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = atomic_write(folder / f"ckpt-{step:09d}.pt", lambda fh: torch.save(plain_state(state), fh))
    for old in checkpoints(folder)[keep:]:
        old.unlink(missing_ok=True)
    return path


def plain_state(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers: what weights_only loads."""
    if isinstance(obj, dict):
        return {key: plain_state(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_state(value) for value in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, newest first."""
    return sorted((p for p in Path(folder).glob("ckpt-*.pt") if _NAME.search(p.name)), reverse=True)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = checkpoints(folder)
    return found[0] if found else None


def read_checkpoint(path: str | Path) -> dict:
    """One checkpoint file, as plain data; CheckpointError (one line) if it is unsafe or broken."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        wants_code = next((line for line in lines if "GLOBAL" in line), None)  # weights_only refused a global
        if wants_code:
            raise CheckpointError(f"checkpoint {path} holds more than tensors and plain data; refusing to load "
                                  f"it ({wants_code[:200]})") from None
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({lines[-1][:120] if lines else 'unpickling'})"
                              ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not {"config", "learner"} <= state.keys():
        raise CheckpointError(f"checkpoint {path} is not a pixelplan checkpoint (no config/learner entries)")
    return state


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint file, or the newest loadable one of a run folder (or its ``checkpoints/``)."""
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        return read_checkpoint(path)
    found = checkpoints(path / "checkpoints") or checkpoints(path)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {path}")
    skipped = []
    for candidate in found:
        try:
            state = read_checkpoint(candidate)
        except CheckpointError as exc:
            skipped.append(str(exc))
            continue
        newer = f"; skipped newer unusable checkpoints: {'; '.join(skipped)}" if skipped else ""
        print(f"using checkpoint {candidate}{newer}", file=sys.stderr, flush=True)
        return state
    raise CheckpointError(f"no loadable checkpoint in {path}: {'; '.join(skipped)}")

