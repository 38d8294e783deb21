"""The run folder's metrics log: long-format CSV (always) and TensorBoard (when installed)."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path


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
