"""`pixelplan report` on a made-up sweep: the table's means and stds are those of the final values."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pixelplan.distributed.cli import main
from pixelplan.distributed.offline.report import report, seed_band

AGENT_METRICS = {"glamor": "eval/achievement", "dreamer": "eval/return"}
ENVS = ("grid", "dmc:cartpole-balance")


def write_run(folder: Path, agent: str, env: str, seed: int, rows: list[tuple[float, str, float]], done=True):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"agent": agent, "env": env, "seed": seed, "steps": 10_000}))
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["wall_time", "env_steps", "key", "value"])
        for i, (step, key, value) in enumerate(rows):
            writer.writerow([1000.0 + i, step, key, value])
    if done:
        (folder / "done").touch()


def make_sweep(root: Path, seeds=(0, 1, 2, 3), rng_seed=0) -> dict[tuple[str, str], list[float]]:
    """Random learning curves; returns the final headline value of every run per (agent, env)."""
    rng = np.random.default_rng(rng_seed)
    finals: dict[tuple[str, str], list[float]] = {}
    for agent, metric in AGENT_METRICS.items():
        for env in ENVS:
            for seed in seeds:
                n_evals = int(rng.integers(3, 8))
                steps = np.sort(rng.choice(np.arange(1, 100), n_evals, replace=False)) * 100
                values = rng.uniform(0, 1 if agent == "glamor" else 900, n_evals)
                rows = []
                for step, value in zip(steps, values):
                    rows += [(step, "loss/idm", rng.normal()), (step, metric, value), (step, "env_steps_per_s", 500.0)]
                    if agent == "glamor":  # GLAMOR logs a return too; the achievement rate is its headline
                        rows.append((step, "eval/return", 10 * value))
                finished = seed != seeds[-1] or env != "grid"  # one run still going
                write_run(root / agent / f"{agent}-{env.replace(':', '-')}-s{seed}", agent, env, seed, rows, finished)
                finals.setdefault((agent, env), []).append(float(values[-1]))
    return finals


def test_means_and_stds_over_seeds(tmp_path, capsys):
    finals = make_sweep(tmp_path / "sweep")
    assert main(["report", str(tmp_path / "sweep"), "--no-random"]) == 0
    printed = capsys.readouterr().out
    assert "| env | metric | glamor | dreamer |" in printed and "±" in printed
    with open(tmp_path / "sweep" / "report.csv", newline="") as f:
        table = {(r["agent"], r["env"]): r for r in csv.DictReader(f)}
    assert set(table) == set(finals)
    for (agent, env), values in finals.items():
        row = table[(agent, env)]
        assert row["metric"] == AGENT_METRICS[agent]
        assert int(row["seeds"]) == len(values)
        assert float(row["mean"]) == pytest.approx(np.mean(values), rel=1e-12)
        assert float(row["std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert int(row["finished"]) == len(values) - (env == "grid")
    markdown = (tmp_path / "sweep" / "report.md").read_text()
    mean, std = np.mean(finals[("glamor", "grid")]), np.std(finals[("glamor", "grid")], ddof=1)
    assert f"| grid | eval/achievement | {mean:.2f} ± {std:.2f} (n=4, 1 running) | – |" in markdown


def test_curves_png_is_written(tmp_path):
    make_sweep(tmp_path / "sweep", seeds=(0, 1))
    result = report(tmp_path / "sweep", out_dir=tmp_path / "out", random=False)
    png = tmp_path / "out" / "report.png"
    assert png in result.files and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width, _ = imread(png).shape
    assert width > 500 and height > 300


def test_single_seed_has_no_std_and_other_metrics_can_be_tabulated(tmp_path):
    make_sweep(tmp_path / "sweep", seeds=(7,))
    rows = report(tmp_path / "sweep", random=False).rows
    assert all(len(r.runs) == 1 and math.isnan(r.std) for r in rows)
    speed = report(tmp_path / "sweep", metric="env_steps_per_s", random=False).rows
    assert {r.metric for r in speed} == {"env_steps_per_s"} and all(r.mean == 500.0 for r in speed)


def test_runs_without_a_headline_metric_yet_are_skipped(tmp_path, capsys):
    make_sweep(tmp_path / "sweep", seeds=(0, 1))
    write_run(tmp_path / "sweep" / "alm-grid-s0", "alm", "grid", 0, [(100, "loss/model", 1.0)], done=False)
    assert main(["report", str(tmp_path / "sweep"), "--no-random"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert "alm" not in {r.agent for r in report(tmp_path / "sweep", random=False).rows}


@pytest.mark.parametrize("breakage, message", [
    ("empty", "no run folders"),
    ("no-config", "no config.json"),
    ("header", "header"),
    ("duplicate", "two runs of glamor on grid with seed 0"),
])
def test_bad_sweep_folders_give_clear_errors(tmp_path, capsys, breakage, message):
    root = tmp_path / "sweep"
    root.mkdir()
    if breakage != "empty":
        make_sweep(root, seeds=(0,))
        run = root / "glamor" / "glamor-grid-s0"
        if breakage == "no-config":
            (run / "config.json").unlink()
        elif breakage == "header":
            (run / "metrics.csv").write_text("step,key,value\n1,eval/achievement,0.5\n")
        else:
            write_run(root / "again" / "glamor-grid-s0", "glamor", "grid", 0, [(100, "eval/achievement", 0.1)])
    assert main(["report", str(root), "--no-random"]) == 2
    assert message in capsys.readouterr().err


def test_report_adds_the_papers_table1_value_and_budget(tmp_path):
    make_sweep(tmp_path / "sweep", seeds=(0, 1))
    report(tmp_path / "sweep", random=False)
    markdown = (tmp_path / "sweep" / "report.md").read_text()
    cartpole = next(line for line in markdown.splitlines() if line.startswith("| dmc:cartpole-balance | eval/achievement"))
    assert cartpole.endswith("| – | 0.97 ± 0.03 (500k steps) |")  # no random column asked for; Table 1's value
    grid = next(line for line in markdown.splitlines() if line.startswith("| grid | eval/achievement"))
    assert grid.endswith("| – | – |")  # the paper has no grid value
    with open(tmp_path / "sweep" / "report.csv", newline="") as f:
        rows = {(r["agent"], r["env"]): r for r in csv.DictReader(f)}
    assert (rows[("glamor", "dmc:cartpole-balance")]["paper_mean"], rows[("glamor", "dmc:cartpole-balance")]["paper_steps"]) \
        == ("0.97", "500000")
    assert rows[("dreamer", "dmc:cartpole-balance")]["paper_mean"] == ""  # returns are not achievement rates


def test_the_curves_band_is_the_tables_seed_std():
    # Three seeds; the third has not evaluated at the last step yet.
    curves = np.array([[0.2, 0.5, 0.6], [0.4, 0.7, 0.8], [0.3, 0.9, np.nan]])
    mean, std = seed_band(curves)
    np.testing.assert_allclose(mean, [0.3, 0.7, 0.7])
    np.testing.assert_allclose(std, [np.std([0.2, 0.4, 0.3], ddof=1), np.std([0.5, 0.7, 0.9], ddof=1),
                                     np.std([0.6, 0.8], ddof=1)])
    _, alone = seed_band(np.array([[0.5], [np.nan]]))
    assert alone.tolist() == [0.0]  # one seed: no band, no warning
