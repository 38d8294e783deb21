"""Collect a sweep's run folders into one table (mean ± std over seeds per agent and env, the shape
of the papers' Table 1) and one PNG of learning curves.

A run folder is any folder holding ``metrics.csv`` (long format: wall_time,env_steps,key,value)
and ``config.json`` (agent, env, seed, ...); ``done`` marks a finished run. Unfinished runs count
with their latest value and are flagged, so a report can be read while the sweep still runs.
Achievement rows also show a random policy on the same evaluation goals and, where the paper has
one, GLAMOR's Table 1 value with its budget (``baselines.py``).
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..metrics_log import read_metrics
from .baselines import PAPER_SOURCE, PAPER_STEPS, paper_value, random_achievement

HEADLINE_KEYS = ("eval/achievement", "eval/return")  # GLAMOR's achievement rate, else the episode return
AGENT_ORDER = ("glamor", "dreamer", "alm")
CURVE_POINTS = 100


@dataclass(frozen=True)
class Run:
    path: Path
    agent: str
    env: str
    seed: int
    done: bool
    metric: str
    steps: np.ndarray  # increasing env steps at which `metric` was logged
    values: np.ndarray
    env_options: dict = field(default_factory=dict)

    @property
    def final(self) -> float:
        return float(self.values[-1])


@dataclass(frozen=True)
class Row:
    agent: str
    env: str
    metric: str
    runs: tuple[Run, ...]

    @property
    def finals(self) -> np.ndarray:
        return np.array([r.final for r in self.runs])

    @property
    def mean(self) -> float:
        return float(self.finals.mean())

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (NaN for a single seed)."""
        return float(self.finals.std(ddof=1)) if len(self.runs) > 1 else math.nan

    @property
    def finished(self) -> int:
        return sum(r.done for r in self.runs)

    @property
    def env_options(self) -> dict | None:
        """The runs' shared env options; None when seeds ran with different ones (no one baseline fits)."""
        distinct = {json.dumps(r.env_options, sort_keys=True) for r in self.runs}
        return json.loads(distinct.pop()) if len(distinct) == 1 else None


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    skipped: list[Path]  # run folders with no headline metric logged yet
    files: list[Path]
    random: dict[tuple[str, str], float] = field(default_factory=dict)  # (env, metric) -> random policy's value


def load_run(folder: Path, keys: tuple[str, ...] = HEADLINE_KEYS) -> Run | None:
    """The run's first headline key in `keys` order, or None while it has logged none of them."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder} has metrics.csv but no config.json: cannot tell its agent, env and seed")
    config = json.loads(config_path.read_text())
    missing = [k for k in ("agent", "env", "seed") if k not in config]
    if missing:
        raise ValueError(f"{config_path} lacks {', '.join(missing)}")
    curves = read_metrics(folder / "metrics.csv", keys)
    metric = next((k for k in keys if k in curves), None)
    if metric is None:
        return None
    return Run(folder, str(config["agent"]), str(config["env"]), int(config["seed"]), (folder / "done").exists(),
               metric, *curves[metric], env_options=dict(config.get("env_options") or {}))


def collect(runs: list[Run]) -> list[Row]:
    groups: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    seen: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        key = (run.agent, run.env, run.seed)
        if key in seen:
            raise ValueError(f"two runs of {run.agent} on {run.env} with seed {run.seed}: {seen[key]} and {run.path}")
        seen[key] = run.path
        groups[(run.agent, run.env, run.metric)].append(run)
    return [Row(a, e, m, tuple(sorted(rs, key=lambda r: r.seed))) for (a, e, m), rs in sorted(groups.items())]


def _agents(rows: list[Row]) -> list[str]:
    names = {r.agent for r in rows}
    return [a for a in AGENT_ORDER if a in names] + sorted(names - set(AGENT_ORDER))


def _number(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def _cell(row: Row | None) -> str:
    if row is None:
        return "–"
    running = len(row.runs) - row.finished
    note = f"n={len(row.runs)}" + (f", {running} running" if running else "")
    return f"{_number(row.mean)} ± {_number(row.std)} ({note})"


def _paper_cell(env: str, metric: str) -> str:
    value = paper_value(env) if metric == "eval/achievement" else None
    return "–" if value is None else f"{value[0]:.2f} ± {value[1]:.2f} ({PAPER_STEPS // 1000}k steps)"


def format_table(rows: list[Row], random: dict[tuple[str, str], float] | None = None) -> str:
    """Markdown: one line per (env, metric), one column per agent, cells 'mean ± std (n=seeds)', then
    the random policy on the same goals and GLAMOR's published value."""
    agents = _agents(rows)
    random = random or {}
    by_key = {(r.env, r.metric, r.agent): r for r in rows}
    lines = ["| env | metric | " + " | ".join(agents) + " | random policy | GLAMOR paper |",
             "|---|---|" + "---|" * (len(agents) + 2)]
    for env, metric in sorted({(r.env, r.metric) for r in rows}):
        cells = [_cell(by_key.get((env, metric, a))) for a in agents]
        chance = _number(random[(env, metric)]) if (env, metric) in random else "–"
        lines.append(f"| {env} | {metric} | " + " | ".join(cells) + f" | {chance} | {_paper_cell(env, metric)} |")
    return "\n".join(lines)


def random_baselines(rows: list[Row]) -> dict[tuple[str, str], float]:
    """The random policy's achievement (and optimal-path rate) for every goal-env row, cached per env."""
    out = {}
    for row in rows:
        if row.metric in ("eval/achievement", "eval/optimal") and row.env_options is not None:
            value = random_achievement(row.env, row.env_options).get(row.metric)
            if value is not None:
                out[(row.env, row.metric)] = value
    return out


def write_csv(rows: list[Row], path: Path, random: dict[tuple[str, str], float] | None = None) -> None:
    random = random or {}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "env", "metric", "seeds", "finished", "mean", "std", "finals", "random",
                         "paper_mean", "paper_std", "paper_steps"])
        for r in rows:
            finals = ";".join(f"{run.seed}:{run.final!r}" for run in r.runs)
            paper = paper_value(r.env) if r.metric == "eval/achievement" else None
            writer.writerow([r.agent, r.env, r.metric, len(r.runs), r.finished, repr(r.mean), repr(r.std), finals,
                             repr(random[(r.env, r.metric)]) if (r.env, r.metric) in random else "",
                             *(paper if paper else ("", "")), PAPER_STEPS if paper else ""])


def plot_curves(rows: list[Row], path: Path, random: dict[tuple[str, str], float] | None = None) -> None:
    """A row of panels per env, one per headline metric there; per agent the mean over the seeds
    that have evaluated around each step, with a ± std band (ddof=1, as in the table); dashed: the
    random policy, dotted: GLAMOR's published value (reached at its budget, usually far to the right
    of a CPU run)."""
    random = random or {}
    from matplotlib.figure import Figure  # no pyplot: no global backend, works headless

    envs = sorted({r.env for r in rows})
    metrics = {env: sorted({r.metric for r in rows if r.env == env}) for env in envs}
    cols = max(len(m) for m in metrics.values())
    fig = Figure(figsize=(5.5 * cols, 3.6 * len(envs)), layout="constrained")
    axes = fig.subplots(len(envs), cols, squeeze=False)
    for i, env in enumerate(envs):
        for j in range(cols):
            if j >= len(metrics[env]):
                axes[i, j].set_visible(False)
                continue
            ax, metric = axes[i, j], metrics[env][j]
            for row in (r for r in rows if (r.env, r.metric) == (env, metric)):
                _plot_row(ax, row)
            if (env, metric) in random:
                ax.axhline(random[(env, metric)], color="gray", linestyle="--", label="random policy")
            paper = paper_value(env) if metric == "eval/achievement" else None
            if paper is not None:
                ax.axhline(paper[0], color="black", linestyle=":", label=f"GLAMOR paper ({PAPER_STEPS // 1000}k steps)")
            ax.set(title=env, xlabel="env steps", ylabel=metric)
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def seed_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds (rows; NaN where a seed has not evaluated yet) at each step, with the
    table's ddof=1 so that a curve's band and its table cell agree; a step one seed has seen: no band."""
    mean = np.nanmean(curves, axis=0)
    count = (~np.isnan(curves)).sum(axis=0)
    return mean, np.sqrt(np.nansum((curves - mean) ** 2, axis=0) / np.maximum(count - 1, 1))


def _plot_row(ax, row: Row) -> None:
    grid = np.linspace(0, max(run.steps[-1] for run in row.runs), CURVE_POINTS)
    curves = np.array([np.where((grid >= run.steps[0]) & (grid <= run.steps[-1]),
                                np.interp(grid, run.steps, run.values), np.nan) for run in row.runs])
    seen = ~np.isnan(curves).all(axis=0)
    if seen.sum() < 2:  # one evaluation per run (eval_every=0): a point, the seed spread as its error bar
        ax.errorbar([np.mean([run.steps[-1] for run in row.runs])], [row.finals.mean()], yerr=[np.nan_to_num(row.std)],
                    fmt="o", capsize=4, label=f"{row.agent} (n={len(row.runs)})")
        return
    mean, std = seed_band(curves[:, seen])
    (line,) = ax.plot(grid[seen], mean, label=f"{row.agent} (n={len(row.runs)})")
    ax.fill_between(grid[seen], mean - std, mean + std, color=line.get_color(), alpha=0.2)


def report(sweep_dir: Path, out_dir: Path | None = None, metric: str | None = None, random: bool = True) -> Report:
    """``random``: add the random policy's value on each goal env (computed once per env, then cached)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder at {sweep_dir}")
    folders = sorted(p.parent for p in sweep_dir.rglob("metrics.csv"))
    if not folders:
        raise ValueError(f"no run folders (folders with metrics.csv) under {sweep_dir}")
    keys = (metric,) if metric else HEADLINE_KEYS
    loaded = {folder: load_run(folder, keys) for folder in folders}
    runs = [run for run in loaded.values() if run is not None]
    if not runs:
        raise ValueError(f"none of the {len(folders)} runs under {sweep_dir} has logged {' or '.join(keys)} yet")
    rows = collect(runs)
    chance = random_baselines(rows) if random else {}
    out_dir = Path(out_dir or sweep_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = format_table(rows, chance)
    skipped = [folder for folder, run in loaded.items() if run is None]
    notes = [f"{len(runs)} runs, {sum(r.done for r in runs)} finished; std is over seeds (ddof=1).",
             "random policy: uniform random actions until the time limit, on the same evaluation goals "
             f"(3 episodes per goal). GLAMOR paper: {PAPER_SOURCE}, mean ± std over 3 seeds."]
    notes += [f"skipped (no {' or '.join(keys)} yet): {folder}" for folder in skipped]
    files = [out_dir / "report.md", out_dir / "report.csv", out_dir / "report.png"]
    files[0].write_text(f"# Sweep {sweep_dir.resolve().name}\n\n{table}\n\n" + "\n\n".join(notes) + "\n")
    write_csv(rows, files[1], chance)
    plot_curves(rows, files[2], chance)
    return Report(rows, skipped, files, chance)
