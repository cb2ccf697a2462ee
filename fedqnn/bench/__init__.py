"""``fedqnn bench NAME``: benchmarks that measure side by side in one run and print ratios.

Each benchmark module exposes ``add_arguments(parser)`` and ``main(args) -> int``. Speed
goals live here, never as timed assertions in unit tests.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "spine": ("fedqnn.bench.spine", "Flower round overhead vs. plain local training; QNN device throughput vs. plain-torch floor"),
    "ceas": ("fedqnn.bench.ceas", "stamp cost and noisy-simulation cost ratios"),
    "robust": ("fedqnn.bench.robust", "robust aggregation vs. ByzFL's rules under ByzFL's attacks"),
    "broker": ("fedqnn.bench.broker", "entanglement-broker decision time for 50/200/1000 nodes"),
    "scale": ("fedqnn.bench.scale", "50 QPUs x 30 rounds with the CEAS defaults: wall time and peak memory"),
    "schedule": ("fedqnn.bench.schedule", "scheduler vs. exact solvers on OR-Library GAP and harder instances"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    for name, (module, help_text) in BENCHES.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_bench_module=module)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                sp.set_defaults(_bench_missing=f"benchmark {name!r} is not available ({exc.name} missing)")
                continue
            raise
        mod.add_arguments(sp)


def main(args: argparse.Namespace) -> int:
    if not getattr(args, "bench", None):
        print("choose a benchmark: " + ", ".join(BENCHES))
        return 2
    if getattr(args, "_bench_missing", None):
        print(f"error: {args._bench_missing}")
        return 2
    return int(importlib.import_module(args._bench_module).main(args) or 0)
