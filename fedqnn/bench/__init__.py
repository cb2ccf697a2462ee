"""``fedqnn bench NAME``: benchmarks that measure side by side in one run and print ratios.

Each benchmark module exposes ``add_arguments(parser)`` and ``main(args) -> int``. Speed
goals live here, never as timed assertions in unit tests.
"""

from __future__ import annotations

import argparse
import importlib

from fedqnn.subcommands import add_subcommands

BENCHES: dict[str, tuple[str, str]] = {
    "spine": ("fedqnn.bench.spine", "Flower round overhead vs. plain local training; QNN device throughput vs. plain-torch floor"),
    "ceas": ("fedqnn.bench.ceas", "stamp cost and noisy-simulation cost ratios"),
    "robust": ("fedqnn.bench.robust", "robust aggregation vs. ByzFL's rules under ByzFL's attacks"),
    "broker": ("fedqnn.bench.broker", "entanglement-broker decision time for 50/200/1000 nodes"),
    "scale": ("fedqnn.bench.scale", "50 QPUs x 30 rounds with the CEAS defaults and plain FedAvg against the local-training floor; peak memory"),
    "schedule": ("fedqnn.bench.schedule", "scheduler vs. exact solvers on OR-Library GAP and harder instances"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One subparser per benchmark; a benchmark's module is imported when it is chosen."""
    add_subcommands(parser, BENCHES, dest="bench", metavar="BENCH", module_key="_bench_module",
                    missing_key="_bench_missing",
                    missing_text="benchmark '{name}' is not available ({missing} missing)")


def main(args: argparse.Namespace) -> int:
    if not getattr(args, "bench", None):
        print("choose a benchmark: " + ", ".join(BENCHES))
        return 2
    if getattr(args, "_bench_missing", None):
        print(f"error: {args._bench_missing}")
        return 2
    return int(importlib.import_module(args._bench_module).main(args) or 0)
