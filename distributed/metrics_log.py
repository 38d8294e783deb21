"""The run folder's metrics log: long-format CSV (always) and TensorBoard (when installed).

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
