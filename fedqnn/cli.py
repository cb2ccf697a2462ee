"""The ``fedqnn`` command line: one subcommand a module, imported only when used.

Each subcommand module exposes ``add_arguments(parser)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fedqnn.cli_run", "run a federated simulation (Flower Simulation Engine)"),
    "attack-matrix": ("fedqnn.attack_matrix", "run an attack x defence grid and write results.csv"),
    "schedule": ("fedqnn.scheduling.cli", "place tasks on QPUs / solve GAP instances"),
    "bench": ("fedqnn.bench", "benchmarks that print side-by-side ratios"),
    "keys": ("fedqnn.security.cli", "node keys, CA and server certificates, SuperNode auth keys"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedqnn",
        description="Federated quantum neural operators on Flower (CEAS).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                sp.set_defaults(_missing=f"'fedqnn {name}' is not available in this build ({exc.name} missing)")
                continue
            raise
        mod.add_arguments(sp)
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
    from fedqnn.config import ConfigError

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
