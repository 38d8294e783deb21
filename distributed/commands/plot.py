"""`pixelplan plot RUN`: training curves of a run folder as PNG."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw a run's training curves (PNG)")
    p.add_argument("run", help="run folder (holds metrics.csv)")
    p.add_argument("--out", default=None, help="PNG path (default RUN/curves.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..offline.plots import plot_training_curves

    print(plot_training_curves(args.run, args.out))
    return 0
