"""Atari games (ale-py) as GLAMOR sees them: 80x104 grayscale, frame-skip 4, sticky actions.

Driven through ``ALEInterface`` directly (no gymnasium wrapper stack): the emulator runs one raw
frame per ``act`` and this class does frame-skip, max-pooling of the last two raw frames, sticky
actions and no-op starts itself. Goal features are RAM bytes (AtariARI annotations, see
``data/atari_ram_labels.json``), never part of the observation.

Sticky actions and no-op starts draw from this env's own generator, seeded by ``reset(seed)``,
and ALE runs with ``repeat_action_probability=0``: the emulator is deterministic given its
inputs, so a seed reproduces an episode exactly. ALE's own sticky-action RNG is only reseeded
by ``loadROM`` (about 140 ms, against 5 ms for ``reset_game``), which every seeded reset of
random-policy range measurement would pay. The rule is ALE's: on every emulator frame, with
probability ``repeat_action_probability`` the previous frame's action is repeated.

Termination: game over only. A lost life is not terminal because the task is reaching a state
within T = 50 steps: ending at a life loss would judge the episode at the death frame and cut
short exactly the exploratory episodes that the goal buffer and hindsight relabeling feed on.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from ale_py import ALEInterface, LoggerMode, roms

from .base import PixelEnv
from .spec import EnvSpec

RAM_LABELS = json.loads((Path(__file__).parent / "data" / "atari_ram_labels.json").read_text())["games"]
GAMES = tuple(sorted(RAM_LABELS))
HEIGHT, WIDTH = 104, 80
RAW_SHAPE = (210, 160)


def rom_id(game: str) -> str:
    """Our lower-case name ('montezumarevenge') -> ale-py's ROM id ('montezuma_revenge')."""
    by_plain = {rid.replace("_", ""): rid for rid in roms.get_all_rom_ids()}
    if game not in RAM_LABELS or game not in by_plain:
        raise ValueError(f"unknown Atari game {game!r}: expected one of {', '.join(GAMES)}")
    return by_plain[game]


class AtariEnv(PixelEnv):
    """One ALE game.

    Options: ``time_limit`` (agent steps, default 50 as GLAMOR evaluates Atari), ``frame_skip``
    (4), ``repeat_action_probability`` (0.25, sticky actions), ``noop_max`` (30 raw no-op frames
    at most, drawn uniformly at reset).
    """

    def __init__(self, game: str, time_limit: int = 50, frame_skip: int = 4,
                 repeat_action_probability: float = 0.25, noop_max: int = 30) -> None:
        if frame_skip < 2:
            raise ValueError(f"frame_skip must be >= 2 (the last two raw frames are max-pooled), got {frame_skip}")
        if not 0.0 <= repeat_action_probability < 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1), got {repeat_action_probability}")
        if noop_max < 0 or time_limit < 1:
            raise ValueError(f"need noop_max >= 0 and time_limit >= 1, got {noop_max}, {time_limit}")
        self.game = game
        self.ale = ALEInterface()
        self.ale.setLoggerMode(LoggerMode.Error)
        self.ale.setInt("frame_skip", 1)
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.loadROM(roms.get_rom_path(rom_id(game)))
        self.actions = list(self.ale.getMinimalActionSet())
        labels = RAM_LABELS[game]
        self._ram_index = np.array(list(labels.values()), np.intp)
        self.frame_skip, self.sticky, self.noop_max = frame_skip, repeat_action_probability, noop_max
        self.spec = EnvSpec(
            env_id=f"atari:{game}", frame_shape=(1, HEIGHT, WIDTH), stack=4, action_kind="discrete",
            action_size=len(self.actions), time_limit=time_limit, feature_names=tuple(labels),
        )
        self._rng = np.random.default_rng()
        self._raw = np.empty((2, *RAW_SHAPE), np.uint8)
        self._last_action = self.actions[0]  # ALE's NOOP; what a sticky first frame repeats
        super().__init__()

    def _emulate(self, action) -> float:
        """Run ``frame_skip`` raw frames with sticky actions; keep the last two screens to max-pool."""
        reward, last = 0.0, self.frame_skip - 1
        repeat = self._rng.random(self.frame_skip) < self.sticky
        for k in range(self.frame_skip):
            if not repeat[k]:
                self._last_action = action
            reward += self.ale.act(self._last_action)
            if k >= last - 1:
                self.ale.getScreenGrayscale(self._raw[k - last + 1])
            if k < last and self.ale.game_over():  # ended early: pool the final screen with itself
                self.ale.getScreenGrayscale(self._raw[1])
                self._raw[0] = self._raw[1]
                break
        return reward

    def _frame(self) -> np.ndarray:
        pooled = np.maximum(self._raw[0], self._raw[1])
        return cv2.resize(pooled, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)[None]

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.ale.reset_game()
        self._last_action = self.actions[0]
        for _ in range(int(self._rng.integers(self.noop_max + 1))):
            self.ale.act(self.actions[0])
        self.ale.getScreenGrayscale(self._raw[0])
        self._raw[1] = self._raw[0]
        return self._frame()

    def _step(self, action: int) -> tuple[np.ndarray, float, bool]:
        if self.ale.game_over():
            raise RuntimeError(f"{self.spec.env_id}: step() after game over; call reset()")
        reward = self._emulate(self.actions[action])
        return self._frame(), reward, self.ale.game_over()

    def goal_features(self) -> np.ndarray:
        return self.ale.getRAM()[self._ram_index].astype(np.float64)

    def lives(self) -> int:
        return self.ale.lives()
