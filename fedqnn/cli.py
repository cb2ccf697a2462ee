"""The ``fedqnn`` command line: one subcommand a module, imported only when used.

Each subcommand module exposes ``add_arguments(parser)`` and ``main(args) -> int``; ``fedqnn
--help`` imports none of them (:mod:`fedqnn.subcommands`), so it loads no torch or Flower.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fedqnn.subcommands import add_subcommands

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fedqnn.cli_run", "run a federated simulation (Flower Simulation Engine)"),
    "attack-matrix": ("fedqnn.attack_matrix", "run an attack x defence grid and write results.csv"),
    "sweep": ("fedqnn.sweep", "run a grid of configs x seeds and write results.csv"),
    "schedule": ("fedqnn.scheduling.cli", "place tasks on QPUs / solve GAP instances"),
    "bench": ("fedqnn.bench", "benchmarks that print side-by-side ratios"),
    "broker": ("fedqnn.network.cli", "the entanglement broker alone: fixed-demand runs and the solved MDP"),
    "devices": ("fedqnn.devices_cli", "real-device calibration snapshots: list them, export a qpu.calibration_file"),
    "keys": ("fedqnn.security.cli", "node keys, CA and server certificates, SuperNode auth keys"),
    "superlink": ("fedqnn.superlink", "a Flower SuperLink serving the Fleet API apart from its loopback-only "
                  "Control API (deployments)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``fedqnn`` parser; a subcommand's module is imported when that subcommand is parsed."""
    parser = argparse.ArgumentParser(
        prog="fedqnn",
        description="Federated quantum neural operators on Flower (CEAS).",
    )
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND", module_key="_module",
                    missing_key="_missing",
                    missing_text="'fedqnn {name}' is not available in this build ({missing} missing)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"error: {args._missing}", file=sys.stderr)
        return 2
    mod = importlib.import_module(args._module)
    from fedqnn.schema import ConfigError

    try:
        return int(mod.main(args) or 0)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
