"""The run folder's metrics log: long-format CSV (always) and TensorBoard (when installed), which
also gets the evaluation videos.

This module owns metrics.csv: ``MetricsLog`` writes it, ``read_metrics`` reads it for the plots and
the report.
"""
from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .videos import gif_bytes


class MetricsLog:
    HEADER = ("wall_time", "env_steps", "key", "value")

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / "metrics.csv"
        new = not self.path.exists()
        self._fh = open(self.path, "a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(self.HEADER)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(folder) / "tb"))
        except ImportError:
            self._tb = None

    def write(self, env_steps: int, scalars: dict[str, float]) -> None:
        now = time.time()
        for key, value in sorted(scalars.items()):
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._csv.writerow((f"{now:.3f}", env_steps, key, f"{value:.6g}"))
                if self._tb is not None:
                    self._tb.add_scalar(key, value, env_steps)
        self._fh.flush()

    def video(self, tag: str, frames: np.ndarray, env_steps: int, fps: int = 10) -> None:
        """(T, H, W, 3) uint8 frames as an animated GIF in TensorBoard's images tab. Encoded here:
        torch's ``add_video`` needs moviepy 1.x (``moviepy.editor`` is gone from moviepy 2)."""
        if self._tb is None:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        _, height, width, channels = frames.shape
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=gif_bytes(frames, fps))
        self._tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), env_steps)
        self._tb.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path, keys: tuple[str, ...] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metrics.csv -> key -> (env_steps, values), sorted by env steps; a later row at the same step wins.

    ``keys``: only these series (default: all). A file that is not a metrics log is refused.
    """
    points: dict[str, dict[float, float]] = defaultdict(dict)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != MetricsLog.HEADER:
            raise ValueError(f"{path}: header {header} is not {','.join(MetricsLog.HEADER)}")
        for line, row in enumerate(reader, start=2):
            if len(row) != 4:
                raise ValueError(f"{path}:{line}: expected 4 fields, got {len(row)}")
            if keys is None or row[2] in keys:
                points[row[2]][float(row[1])] = float(row[3])
    return {key: (np.array(sorted(p)), np.array([p[s] for s in sorted(p)])) for key, p in points.items()}
