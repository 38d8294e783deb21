"""Evaluation videos: every frame annotated so a viewer can judge the episode without the logs.

Goal agents: the goal frame beside the agent's view, the step counter and whether the agent is at
the goal (the last frame says whether the goal was reached). Reward agents: the view and the
running return. Small frames (the grid world is 7x7 pixels) are enlarged without smoothing.
Files are MP4 through imageio's ffmpeg plugin (imageio-ffmpeg ships the binary), or GIF where no
ffmpeg can be found.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from pixelplan.envs import Film
from pixelplan.envs.base import rgb_image

MIN_HEIGHT = 192  # panels are enlarged by a whole factor to at least this height
HEADER = 30  # pixels of text above the panels
GAP = 4  # pixels between goal and view
BLOCK = 16  # H.264 encodes whole 16x16 macro blocks: the canvas is padded to multiples of it
GREEN, RED, WHITE = (80, 220, 80), (235, 80, 80), (235, 235, 235)


def goal_video(film: Film, goal: np.ndarray, time_limit: int) -> np.ndarray:
    """(T + 1, H, W, 3) uint8: goal | view, 'step t/T' and at-goal status; the last frame's verdict."""
    last = len(film.frames) - 1
    goal_image = rgb_image(goal)
    out = []
    for t, (frame, at_goal) in enumerate(zip(film.frames, film.at_goal)):
        status, colour = ("at the goal", GREEN) if at_goal else ("", WHITE)
        if t == last:
            status, colour = ("goal reached", GREEN) if at_goal else ("goal not reached", RED)
        out.append(_canvas([goal_image, frame], [f"goal | agent   step {t}/{time_limit}", status], colour))
    return np.stack(out)


def return_video(film: Film) -> np.ndarray:
    """(T + 1, H, W, 3) uint8: the view with the step and the return so far."""
    running = np.concatenate([[0.0], np.cumsum(film.rewards)])
    return np.stack([_canvas([frame], [f"step {t}", f"return {running[t]:.1f}"], WHITE)
                     for t, frame in enumerate(film.frames)])


def _canvas(panels: list[np.ndarray], texts: list[str], colour: tuple[int, int, int]) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    height *= math.ceil(MIN_HEIGHT / height)
    scaled = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_NEAREST)
              for p in panels]
    width = sum(p.shape[1] for p in scaled) + GAP * (len(scaled) - 1)
    canvas = np.zeros((_round_up(HEADER + height), _round_up(width), 3), np.uint8)
    x = 0
    for panel in scaled:
        canvas[HEADER:HEADER + height, x:x + panel.shape[1]] = panel
        x += panel.shape[1] + GAP
    cv2.putText(canvas, texts[0], (4, HEADER - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
    size = cv2.getTextSize(texts[1], cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0]
    cv2.putText(canvas, texts[1], (canvas.shape[1] - size - 4, HEADER - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour,
                1, cv2.LINE_AA)
    return canvas


def _round_up(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()  # the wheel's binary, or $IMAGEIO_FFMPEG_EXE, or one on the PATH
        return True
    except (ImportError, RuntimeError):
        return False


def write_video(stem: str | Path, frames: np.ndarray, fps: int = 10) -> Path:
    """``stem``.mp4 (H.264) if ffmpeg is available, else ``stem``.gif; returns the path written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if ffmpeg_available():
        path = stem.with_suffix(".mp4")
        iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=BLOCK)
    else:
        path = stem.with_suffix(".gif")
        path.write_bytes(gif_bytes(frames, fps))
    return path


def gif_bytes(frames: np.ndarray, fps: int = 10) -> bytes:
    """An endlessly looping GIF (what TensorBoard's image plugin animates)."""
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
