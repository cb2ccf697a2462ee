"""``fedqnn run``: a federated simulation from defaults, pyproject, a TOML file and flags."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from fedqnn.config import ConfigError, build_config, load_toml, parse_set, without_run_controls

__all__ = ["add_arguments", "main", "config_from_args", "resume_config_from_args", "done_line"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, help="number of QPU clients")
    p.add_argument("--rounds", type=int, help="number of rounds (the total, with --resume too)")
    p.add_argument("--strategy", help="registry name (fedavg, krum, ...) or module:Class")
    p.add_argument("--task", help="antiderivative (default), heat, digits")
    p.add_argument("--seed", type=int, help="master seed")
    p.add_argument("--config", metavar="FILE.toml", help="config file ([fedqnn] table or flat keys)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, dotted for nested (e.g. --set train.lr=0.05); repeatable")
    p.add_argument("--out", help="output directory (default runs/latest; the out of [tool.flwr.app.config] when run from this repository)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last completed round")
    again.add_argument("--overwrite", action="store_true",
                       help="start over in an --out that already holds a run (its metrics.jsonl and "
                       "checkpoint are replaced); without it such an --out is refused")
    p.add_argument("--print-config", action="store_true", help="print the validated config as TOML (a [fedqnn] table --config reads back) and exit")


def _pyproject_layer(path: Path = Path("pyproject.toml")) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        return {}
    if data.get("project", {}).get("name") != "fedqnn":
        return {}  # another project's pyproject: not ours to read
    return without_run_controls(data.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {}))


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    flags = {k: getattr(args, k) for k in ("clients", "rounds", "strategy", "task", "seed", "out")}
    flags = {k: v for k, v in flags.items() if v is not None}
    layers = [_pyproject_layer()]
    if args.config:
        layers.append(load_toml(args.config))
    layers.append(flags)
    layers.append(parse_set(args.sets))
    return build_config(*layers)


def resume_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--resume DIR [--rounds R]``: the config stored in DIR's checkpoint, R the new total.

    The run's config is the stored one: ``--config`` and ``--set`` are refused, and ``--clients``,
    ``--strategy``, ``--task``, ``--seed``, ``--out`` only if they differ from it.
    """
    from fedqnn.checkpoint import CheckpointError, config_for_resume

    if args.config or args.sets:
        raise ConfigError("--resume: the config is the one stored in the run's checkpoint; "
                          "--config and --set cannot change it (only --rounds, the new total)")
    try:
        cfg = config_for_resume(args.resume, args.rounds)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from exc
    for key in ("clients", "strategy", "task", "seed"):
        given = getattr(args, key)
        if given is not None and given != cfg[key]:
            raise ConfigError(f"--resume: --{key} {given} differs from the run's {key}={cfg[key]!r}; "
                              "a resumed run keeps its config (only --rounds may change)")
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ConfigError("--resume: --out must be the resumed directory (or left out)")
    return cfg


def main(args: argparse.Namespace) -> int:
    cfg = resume_config_from_args(args) if args.resume else config_from_args(args)
    if args.print_config:
        from fedqnn.toml_text import dumps

        print(dumps(cfg), end="")
        return 0
    from fedqnn.results import all_skipped
    from fedqnn.simulation import run_simulation_from_config

    summary = run_simulation_from_config(cfg, validated=True, resume=bool(args.resume),
                                         overwrite=bool(getattr(args, "overwrite", False)))
    failed = all_skipped(cfg["out"])
    if failed:
        print(f"[fedqnn] FAILED: {failed}; outputs in {cfg['out']}/", file=sys.stderr)
        return 1
    print(done_line(summary, cfg["out"]))
    return 0


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def done_line(summary: dict[str, Any], out: str) -> str:
    """The last line of ``fedqnn run``: rounds, the headline metric (4 significant digits), where."""
    m = summary["metrics"].get(summary["metric"], {})
    skipped = f" ({summary['rounds_skipped']} skipped)" if summary.get("rounds_skipped") else ""
    wall = summary.get("process_wall_s")
    took = f" in {wall:.0f} s" if isinstance(wall, int | float) else ""
    return (f"[fedqnn] done: {summary['rounds_completed']} rounds{skipped}{took}, {summary['metric']} final "
            f"{_num(m.get('final'))} (best {_num(m.get('best'))} in round {m.get('best_round')}), "
            f"results in {out}/")
