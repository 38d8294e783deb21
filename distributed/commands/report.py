"""`pixelplan report SWEEP_DIR`: one table of mean ± std over seeds (beside a random policy and the
paper), and a PNG of the curves."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="summarise a sweep's runs: table (mean ± std over seeds) + curves",
        description="Reads every run folder (metrics.csv + config.json) under SWEEP_DIR and writes "
                    "report.md, report.csv and report.png.")
    p.add_argument("sweep_dir", type=Path, help="folder holding the sweep's run folders (searched recursively)")
    p.add_argument("--out", type=Path, help="where to write the report files (default: SWEEP_DIR)")
    p.add_argument("--metric", help="tabulate this key instead of eval/achievement (else eval/return)")
    p.add_argument("--no-random", action="store_true",
                   help="leave out the random-policy column (90 random episodes per goal env, once: then cached)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..offline.report import format_table, report

    result = report(args.sweep_dir, args.out, args.metric, random=not args.no_random)
    print(format_table(result.rows, result.random))
    for folder in result.skipped:
        print(f"skipped (nothing to tabulate yet): {folder}")
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0
