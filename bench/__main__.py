"""Benchmark runner: ``python -m pixelplan.bench NAME [--quick] [--profile]``.

Imports ``pixelplan.bench.NAME`` (a ``-`` in NAME is a ``_`` in the module: glamor-layouts is
glamor_layouts.py), calls its ``run(quick) -> dict``, writes ``bench/results/NAME.json`` and prints
the result as the last stdout line (one JSON object). ``--profile`` calls the module's
``profile(quick)`` instead (where it has one) and writes ``NAME-profile.json`` and its tables as
``NAME-profile.md``. ``NAME=all`` runs every benchmark module here in turn but the hours-long recipe
sweeps in ``BY_NAME_ONLY``, keeps going past a failing one (its entry becomes ``{"error": ...}``)
and exits non-zero at the end if any failed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).parent
RESULTS_DIR = BENCH_DIR / "results"


BY_NAME_ONLY = ("glamor-atari", "glamor-dmc", "glamor-layouts")  # multi-seed training sweeps: hours on a CPU machine


def available() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(BENCH_DIR)]) if not m.name.startswith("_"))


def run_one(name: str, quick: bool, profile: bool = False) -> dict:
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}: expected one of {', '.join(available())} or 'all'")
    module = importlib.import_module(f"pixelplan.bench.{name.replace('-', '_')}")
    if profile and not hasattr(module, "profile"):
        raise SystemExit(f"benchmark {name!r} has no --profile")
    start = time.perf_counter()
    result = module.profile(quick) if profile else module.run(quick)
    print(f"[{name}] done in {time.perf_counter() - start:.1f} s", flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-profile" if profile else name
    if "markdown" in result:  # a profile's tables, also readable without the JSON
        (RESULTS_DIR / f"{stem}.md").write_text(result.pop("markdown"))
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelplan.bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"one of {', '.join(available())}, or 'all'")
    parser.add_argument("--quick", action="store_true", help="short run (smoke test; noisier numbers)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the benchmark, its per-component CPU profile (runtime; writes NAME-profile.md)")
    args = parser.parse_args(argv)
    if args.name != "all":
        print(json.dumps(run_one(args.name, args.quick, args.profile)), flush=True)
        return 0
    if args.profile:
        raise SystemExit("--profile takes one benchmark's name, not 'all'")
    results, failed = {}, []
    for name in [n for n in available() if n not in BY_NAME_ONLY]:
        print(f"[{name}] running", flush=True)
        try:
            results[name] = run_one(name, args.quick)
        except Exception as exc:  # noqa: BLE001 (keep going: one broken benchmark must not hide the others)
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr, flush=True)
    print(json.dumps(results), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
