"""Atomic checkpoints: a crash mid-write never leaves a broken checkpoint behind.

Each checkpoint is written to a temporary file, fsynced and renamed into place; ``latest``
picks the newest file that loads. Replay contents are not in checkpoints (they survive through
the Redis backend instead), so checkpoints stay small.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from pixelplan.envs.files import atomic_write

_NAME = re.compile(r"ckpt-(\d+)\.pt$")


def save_checkpoint(folder: str | Path, state: dict, step: int, keep: int = 3) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = atomic_write(folder / f"ckpt-{step:09d}.pt", lambda fh: torch.save(state, fh))
    for old in sorted(folder.glob("ckpt-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    folder = Path(folder)
    found = sorted((p for p in folder.glob("ckpt-*.pt") if _NAME.search(p.name)), reverse=True)
    return found[0] if found else None


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {path}")
        path = found
    return torch.load(path, map_location="cpu", weights_only=False)

