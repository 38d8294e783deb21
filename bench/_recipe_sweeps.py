"""Shared by the recipe benchmarks (glamor-layouts, glamor-dmc): run a 3-seed (--quick: 2) local
sweep of one recipe over some envs, then summarise it per env the way the issue's Table 1 needs it.

The sweep folder lives under bench/results/runs/NAME: a full run that was interrupted resumes
where it stopped on the next call (finished runs are skipped); ``--quick`` starts afresh.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from pixelplan.distributed.offline.baselines import paper_value, random_achievement
from pixelplan.distributed.offline.local_sweep import LocalSweepConfig, run_local_sweep
from pixelplan.distributed.offline.report import load_run, report

RESULTS = Path(__file__).parent / "results"
SEEDS = (0, 1, 2)
QUICK_SEEDS = (0, 1)  # two: still a spread, in a few minutes


def _mean_std(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan}


def wall_minutes(folder: Path) -> float | None:
    """First to last row of the run's metrics.csv (a resumed run's pause counts too)."""
    try:
        lines = (folder / "metrics.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return None
    return round((float(lines[-1].split(",")[0]) - float(lines[0].split(",")[0])) / 60, 1) if lines else None


def run_recipe_sweep(name: str, recipe: str, envs: tuple[str, ...], quick: bool,
                     quick_settings: tuple[str, ...], quick_steps: int) -> dict:
    out = RESULTS / "runs" / (f"{name}-quick" if quick else name)
    if quick:
        shutil.rmtree(out, ignore_errors=True)
    seeds = QUICK_SEEDS if quick else SEEDS
    cfg = LocalSweepConfig(agents=("glamor",), envs=envs, seeds=seeds, out=out, recipe=recipe,
                           steps=quick_steps if quick else None, overrides=quick_settings if quick else ())
    outcomes = run_local_sweep(cfg, progress=False)
    summary = report(out)  # also writes report.md/.csv/.png beside the runs
    per_env = {}
    for env in envs:
        row = next((r for r in summary.rows if r.env == env and r.metric == "eval/achievement"), None)
        finals = [float(v) for v in row.finals] if row else []
        chance = random_achievement(env, row.env_options or {}) if row else {}  # cached by the report
        entry = {"steps_per_run": cfg.budget(env), "achievement": _mean_std(finals), "achievement_per_seed": finals,
                 "seeds_finished": row.finished if row else 0,
                 "wall_minutes": [wall_minutes(cfg.folder("glamor", env, s)) for s in seeds],
                 "random_achievement": chance.get("eval/achievement")}
        if env.startswith("grid"):
            optimal = [load_run(cfg.folder("glamor", env, s), ("eval/optimal",)) for s in seeds]
            entry["optimal_path_per_seed"] = [float(r.final) for r in optimal if r is not None]
            entry["optimal_path"] = _mean_std(entry["optimal_path_per_seed"])
            entry["random_optimal_path"] = chance.get("eval/optimal")
        paper = paper_value(env)
        if paper is not None:
            entry["paper"] = {"mean": paper[0], "std": paper[1], "steps": 500_000}
        per_env[env] = entry
    return {"recipe": recipe, "seeds": list(seeds), "quick": quick,
            "failed": sorted(k for k, v in outcomes.items() if v.startswith("failed")),
            "report": str(out / "report.md"), "envs": per_env}
