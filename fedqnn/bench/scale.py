"""``fedqnn bench scale``: a 50-QPU x 30-round run with the CEAS defaults, its wall time and peak
memory (goal: under 10 minutes and 4 GiB on 2 cores), optionally beside a plain run.

The CEAS defaults are all on: heterogeneous QPU noise, fidelity stamps, the entanglement broker
(``aware``), signed updates and 20 % ALIE attackers. ``--baseline`` also runs the same
federation as plain Flower FedAvg (noiseless, no broker, no signatures, no attack) on the same
runtime, so the cost of the CEAS machinery at scale is printed as a ratio.

Memory is the peak over time of the summed **PSS** (proportional set size, from
``/proc/<pid>/smaps_rollup``) of this process and all its descendants (the Ray workers and
daemons of the Simulation Engine), sampled every 0.5 s: shared pages are divided among the
processes that map them, so the sum is the tree's real footprint (RSS would count shared
pages once per process).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fedqnn.config import build_config, parse_set

__all__ = ["add_arguments", "main", "tree_pss_bytes", "MemorySampler"]


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def tree_pss_bytes(root: int | None = None) -> int:
    """Summed PSS of ``root`` (default: this process) and all its descendants, in bytes."""
    root = os.getpid() if root is None else root
    kids = _children_map()
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _pss(pid)
        stack.extend(kids.get(pid, []))
    return total


class MemorySampler:
    """Samples :func:`tree_pss_bytes` in a background thread; ``peak`` is the largest sample."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss_bytes())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", action="store_true", help="also run plain Flower FedAvg of the same size")
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def main(args: argparse.Namespace) -> int:
    from fedqnn.simulation import run_batch

    out = Path(args.out or tempfile.mkdtemp(prefix="fedqnn-scale-"))
    overrides = dict(parse_set(kv) for kv in args.set)
    base = {"clients": args.clients, "rounds": args.rounds, "seed": args.seed, "progress": True}
    cfgs = [build_config(base, overrides, {"out": str(out / "ceas")})]
    if args.baseline:
        cfgs.append(build_config(base, {"strategy": "fedavg", "noise": "noiseless", "broker.policy": "off",
                                        "auth": "off", "attack": "none", "out": str(out / "plain")}))
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    with MemorySampler() as mem:
        run_batch(cfgs, lambda cfg, s: walls.__setitem__(Path(cfg["out"]).name, s["process_wall_s"]))
    total = time.perf_counter() - t0
    gib = mem.peak / 2**30
    c = cfgs[0]
    print(f"\nscale: {c['clients']} QPUs x {c['rounds']} rounds, CEAS defaults (strategy {c['strategy']}, "
          f"noise {c['noise']}, broker {c['broker']['policy']}, auth {c['auth']}, attack {c['attack']} "
          f"{c['byzantine_fraction']:.0%})")
    print(f"  CEAS run        {walls['ceas']:8.1f} s   ({walls['ceas'] / c['rounds']:.2f} s/round)   goal < 600 s: "
          f"{'met' if walls['ceas'] < 600 else 'NOT met'}")
    if "plain" in walls:
        print(f"  plain FedAvg    {walls['plain']:8.1f} s   ratio CEAS / plain = {walls['ceas'] / walls['plain']:.2f}")
    print(f"  whole process (runtime start-up included) {total:.1f} s")
    print(f"  peak memory (PSS of the process tree) {gib:.2f} GiB   goal < 4 GiB: {'met' if gib < 4 else 'NOT met'}")
    print(f"  results in {out}")
    return 0
