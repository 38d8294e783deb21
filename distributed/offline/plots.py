"""Pictures: goal frames above achieved frames, and training curves from a run's metrics.csv."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..metrics_log import read_metrics  # noqa: E402


def _show(ax, frame: np.ndarray) -> None:
    img = frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0)
    ax.imshow(img, cmap="gray" if frame.shape[0] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_goal_grid(goal_frames: np.ndarray, final_frames: np.ndarray, achieved: np.ndarray, path: str | Path,
                   title: str = "", columns: int = 10) -> Path:
    """Like GLAMOR's Fig. 11/12: each goal above the frame the agent ended in (green = achieved)."""
    n = len(goal_frames)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(2 * rows, columns, figsize=(1.3 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, c = divmod(k, columns)
        top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
        for ax, frame in ((top, goal_frames[k]), (bottom, final_frames[k])):
            ax.axis("on")
            _show(ax, frame)
        color = "tab:green" if achieved[k] else "tab:red"
        for spine in bottom.spines.values():
            spine.set_color(color)
            spine.set_linewidth(3)
        top.set_title(f"goal {k}", fontsize=7)
    fig.suptitle(title or "goals (top) and reached frames (bottom; green = achieved)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


RUNTIME_PREFIXES = ("worker_alive/", "version/", "planner/", "replay/", "learner/")  # plumbing, not learning
CURVE_KEYS = ("env_steps_per_s", "updates_per_s", "version_lag", "replay/transitions")
SKIPPED = ("eval/episodes", "eval/return_std")


def _worth_plotting(key: str) -> bool:
    """Every namespaced key an agent or the evaluation logs, plus throughput, replay size and weight lag."""
    if key in CURVE_KEYS:
        return True
    return "/" in key and key not in SKIPPED and not key.startswith(RUNTIME_PREFIXES)


def plot_training_curves(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.csv"
    if not metrics_file.exists():
        raise FileNotFoundError(f"{metrics_file} not found: is {run_dir} a pixelplan run folder?")
    series = read_metrics(metrics_file)
    keys = sorted(k for k in series if _worth_plotting(k) and (len(series[k][0]) > 1 or k.startswith("eval/")))
    if not keys:
        raise ValueError(f"{metrics_file} holds no series to plot yet")
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        x, y = series[key]
        ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out or run_dir / "curves.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
