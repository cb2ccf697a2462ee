"""``fedqnn schedule``: solve OR-Library GAP instances (docs/scheduler.md; data: benchmarks/gap).

    fedqnn schedule --gap FILE [--instance K] [--sense {max,min}]
                    [--method {auto,hybrid,qaoa,greedy,sa,random,qi-random,exact}]
                    [--time-limit S] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from fedqnn.schema import ConfigError

__all__ = ["add_arguments", "main", "solution_record"]

METHOD_CHOICES = ("auto", "hybrid", "qaoa", "greedy", "sa", "random", "qi-random", "exact")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gap", required=True, metavar="FILE", help="OR-Library GAP file")
    parser.add_argument("--instance", type=int, default=None, metavar="K",
                        help="0-based instance; default: every instance, one line each")
    parser.add_argument("--sense", choices=("max", "min"), default="max",
                        help="profits (max, OR-Library gap1-12) or costs (min)")
    parser.add_argument("--method", choices=METHOD_CHOICES, default="auto")
    parser.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                        help="seconds per instance (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def solution_record(problem, sol, instance: int) -> dict:
    """The JSON record of one solved instance."""
    rec = {
        "file": problem.meta.get("file", problem.name), "instance": instance,
        "m": problem.m, "n": problem.n, "method": sol.method,
        "objective": sol.objective, "sense": problem.sense, "feasible": sol.feasible,
        "violations": sol.violations, "seconds": round(sol.seconds, 4), "bound": sol.bound,
        "optimum": problem.optimum, "gap_pct": sol.gap_pct(problem.optimum),
        "assignment": [int(v) for v in sol.assignment],
    }
    return rec


def main(args: argparse.Namespace) -> int:
    from fedqnn.scheduling import read_gap_file, solve

    if args.time_limit is None or not args.time_limit > 0:
        raise ConfigError(f"--time-limit: must be > 0, got {args.time_limit}")
    if args.seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {args.seed}")
    try:
        problems = read_gap_file(args.gap, sense=args.sense)
    except ValueError as exc:
        raise ConfigError(f"--gap: {exc}") from None
    if args.instance is not None and not 0 <= args.instance < len(problems):
        raise ConfigError(f"--instance: {args.instance} out of range 0..{len(problems) - 1}")
    ks = range(len(problems)) if args.instance is None else [args.instance]
    worst = 0
    for k in ks:
        p = problems[k]
        sol = solve(p, method=args.method, time_limit=args.time_limit, seed=args.seed)
        rec = solution_record(p, sol, k)
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            gap = "" if rec["gap_pct"] is None else f"  gap {rec['gap_pct']:.3f}%"
            opt = "" if p.optimum is None else f"  optimum {p.optimum:g}"
            flag = "feasible" if sol.feasible else f"INFEASIBLE {sol.violations}"
            print(f"{p.name}  {p.m}x{p.n}  {args.method}: {sol.objective:g} ({p.sense}){opt}"
                  f"{gap}  {flag}  {sol.seconds:.2f}s", flush=True)
        if not sol.feasible:
            worst = 1
    if worst:
        print("warning: some assignments are infeasible (flagged above)", file=sys.stderr)
    return worst
