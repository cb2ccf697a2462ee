"""``fedqnn bench scale``: a 50-QPU x 30-round run with the CEAS defaults against the floor, with
its wall time and peak memory (goal: under 10 minutes and 4 GiB on 2 cores).

The CEAS defaults are all on: heterogeneous QPU noise, fidelity stamps, the entanglement broker
(``aware``), signed updates and 20 % ALIE attackers. ``--baseline`` also runs the same
federation as plain Flower FedAvg (noiseless, no broker, no signatures, no attack) on the same
runtime, so the cost of the CEAS machinery at scale is printed as a ratio. Then the **floor**
(:mod:`fedqnn.bench.floor`): the same clients' local training for the same seed in this one process
without Flower, divided by the clients that train at once, for each config. Seconds per round are
a run's whole wall time (node discovery, the first round's actor warm-up and every checkpoint
included) / rounds, and ``steady``, the median ``wall_s`` row of rounds 2.. (the round's work, not
its checkpoint); ratios are run / floor of the same config. ``--json``: one JSON object (below).

Memory is the peak over time of the summed **PSS** (proportional set size, from
``/proc/<pid>/smaps_rollup``) of this process and all its descendants (the Ray workers and
daemons of the Simulation Engine), sampled every 0.5 s: shared pages are divided among the
processes that map them, so the sum is the tree's real footprint (RSS would count shared
pages once per process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fedqnn.config import build_config, parse_set

__all__ = ["add_arguments", "main", "tree_pss_bytes", "MemorySampler", "scale_report", "print_report"]


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
    p.add_argument("--floor-rounds", type=int, default=2, metavar="N",
                   help="rounds of local training the floor measures (its median; 0 = no floor)")
    p.add_argument("--json", action="store_true", help="print one JSON object (run output goes to stderr)")
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (e.g. simulation.ray_address=HOST:PORT)")


PLAIN = {"strategy": "fedavg", "noise": "noiseless", "broker.policy": "off", "auth": "off", "attack": "none"}


def _per_round(out: Path, wall_s: float, rounds: int, workers: int) -> dict[str, float]:
    """From a run's ``metrics.jsonl``: whole wall time / rounds; over rounds 2.. (round 1 if alone)
    the median ``wall_s`` row (steady) and the median in-run floor, ``client_train_s`` / workers
    (:class:`~fedqnn.bench.floor.ClientSecondsProbe`); the mean participants per round."""
    from fedqnn.results import read_metrics

    rows = read_metrics(out)
    later = rows[1:] or rows
    return {"s_per_round": wall_s / rounds, "steady_s_per_round": statistics.median(r["wall_s"] for r in later),
            "inrun_floor_s_per_round": statistics.median(r.get("client_train_s", 0.0) / workers for r in later),
            "participants": statistics.fmean(r["num_participants"] for r in rows)}


def _scaled(floor: Any, run: dict[str, float] | None) -> float | None:
    if floor is None:
        return None
    n = run["participants"] if run is not None else floor.participants
    return round(floor.client_s * n / floor.workers, 4)


def scale_report(cfg: dict[str, Any], runs: dict[str, dict[str, float]], floors: dict[str, Any],
                 peak_bytes: int) -> dict[str, Any]:
    """The benchmark's JSON object. ``runs``/``floors`` are keyed ``ceas`` and ``plain`` (either
    may be missing): ``runs[k]`` from :func:`_per_round`, ``floors[k]`` a :class:`Floor`.
    A ratio is a run's seconds per round over the floor of its own config (None without both).
    The floor is scaled to the clients the run instructed: mean client seconds x the run's mean
    participants / workers (the broker's lookahead sends no instruction to a node it cannot serve,
    so a CEAS round trains fewer clients than it selects)."""

    def get(d: dict[str, Any] | None, key: str) -> float | None:
        return None if d is None else round(float(d[key] if isinstance(d, dict) else getattr(d, key)), 4)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    ceas, plain = runs.get("ceas"), runs.get("plain")
    fc, fp = floors.get("ceas"), floors.get("plain")
    rep: dict[str, Any] = {
        "clients": cfg["clients"], "rounds": cfg["rounds"],
        "ceas_s_per_round": get(ceas, "s_per_round"), "fedavg_s_per_round": get(plain, "s_per_round"),
        "floor_s_per_round": _scaled(fc, ceas), "peak_gib": round(peak_bytes / 2**30, 3),
        "ceas_steady_s_per_round": get(ceas, "steady_s_per_round"),
        "fedavg_steady_s_per_round": get(plain, "steady_s_per_round"),
        "floor_fedavg_s_per_round": _scaled(fp, plain),
        "ceas_inrun_floor_s_per_round": get(ceas, "inrun_floor_s_per_round"),
        "fedavg_inrun_floor_s_per_round": get(plain, "inrun_floor_s_per_round"),
        "ceas_participants": get(ceas, "participants"), "fedavg_participants": get(plain, "participants"),
        "floor_workers": getattr(fc or fp, "workers", None), "floor_client_s": get(fc, "client_s"),
    }
    rep["ceas_over_floor"] = ratio(rep["ceas_s_per_round"], rep["floor_s_per_round"])
    rep["ceas_steady_over_floor"] = ratio(rep["ceas_steady_s_per_round"], rep["floor_s_per_round"])
    rep["fedavg_over_floor"] = ratio(rep["fedavg_s_per_round"], rep["floor_fedavg_s_per_round"])
    rep["fedavg_steady_over_floor"] = ratio(rep["fedavg_steady_s_per_round"], rep["floor_fedavg_s_per_round"])
    rep["ceas_steady_over_inrun_floor"] = ratio(rep["ceas_steady_s_per_round"], rep["ceas_inrun_floor_s_per_round"])
    rep["fedavg_steady_over_inrun_floor"] = ratio(rep["fedavg_steady_s_per_round"],
                                                  rep["fedavg_inrun_floor_s_per_round"])
    rep["ceas_over_fedavg"] = ratio(rep["ceas_s_per_round"], rep["fedavg_s_per_round"])
    return rep


def _fmt(v: float | None, spec: str = "8.3f") -> str:
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])


def print_report(rep: dict[str, Any], c: dict[str, Any], total: float, out: Path) -> None:
    """The human-readable table of :func:`scale_report`'s object."""
    print(f"\nscale: {rep['clients']} QPUs x {rep['rounds']} rounds, CEAS defaults (strategy {c['strategy']}, "
          f"noise {c['noise']}, broker {c['broker']['policy']}, auth {c['auth']}, attack {c['attack']} "
          f"{c['byzantine_fraction']:.0%}); floor over {rep['floor_workers']} workers")
    print(f"  {'':14} {'s/round':>8} {'steady':>8} {'floor':>8} {'/floor':>7} {'steady/floor':>12} "
          f"{'in-run floor':>12} {'steady/in-run':>13} {'particip.':>9}")
    for name, k, fk in (("CEAS defaults", "ceas", "floor"), ("plain FedAvg", "fedavg", "floor_fedavg")):
        print(f"  {name:14} {_fmt(rep[f'{k}_s_per_round'])} {_fmt(rep[f'{k}_steady_s_per_round'])} "
              f"{_fmt(rep[f'{fk}_s_per_round'])} {_fmt(rep[f'{k}_over_floor'], '7.2f')} "
              f"{_fmt(rep[f'{k}_steady_over_floor'], '12.2f')} {_fmt(rep[f'{k}_inrun_floor_s_per_round'], '12.3f')} "
              f"{_fmt(rep[f'{k}_steady_over_inrun_floor'], '13.2f')} {_fmt(rep[f'{k}_participants'], '9.1f')}")
    print("  (floor: the clients' training in this process after the runs; in-run floor: the clients' own "
          "train_seconds in the run / workers, same load as the run)")
    if rep["ceas_over_fedavg"] is not None:
        print(f"  ratio CEAS / plain FedAvg = {rep['ceas_over_fedavg']:.2f}")
    print(f"  goals: CEAS <= 1.2 x floor, FedAvg <= 1.1 x floor; whole CEAS run < 600 s at 50 QPUs: "
          f"{rep['ceas_s_per_round'] * rep['rounds']:.1f} s")
    print(f"  whole process (runtime start-up and floor included) {total:.1f} s; the warm-up run "
          f"(2 clients, 1 round: every actor loads the ClientApp) {rep.get('warmup_s') or 0:.1f} s")
    print(f"  peak memory (PSS of the process tree, Flower runs) {rep['peak_gib']:.2f} GiB   goal < 4 GiB: "
          f"{'met' if rep['peak_gib'] < 4 else 'NOT met'}")
    print(f"  results in {out}")


def _warmup(cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    """A one-round plain run of two clients on the same runtime, first: its node discovery makes
    every Ray actor load the ClientApp (torch, PennyLane), which would otherwise be charged to
    whichever measured run comes first."""
    k = min(2, cfg["clients"])
    return build_config({**{f: cfg[f] for f in ("clients", "seed", "num_cpus_per_client")}, **PLAIN,
                         "rounds": 1, "progress": False, "fraction_train": k / cfg["clients"],
                         "min_replies": 1, "out": str(out / "warmup")},
                        {k2: v for k2, v in _simulation_keys(cfg).items()})


def _simulation_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    return {f"simulation.{k}": v for k, v in cfg.get("simulation", {}).items()}


def main(args: argparse.Namespace) -> int:
    from fedqnn.bench.floor import PROBE, measure_floor, workers
    from fedqnn.simulation import run_batch

    out = Path(args.out or tempfile.mkdtemp(prefix="fedqnn-scale-"))
    overrides = dict(parse_set(args.set))
    base = {"clients": args.clients, "rounds": args.rounds, "seed": args.seed, "progress": not args.json}
    probe = {"plugins": [*overrides.get("plugins", []), PROBE]}
    cfgs = {"ceas": build_config(base, overrides, probe, {"out": str(out / "ceas")})}
    if args.baseline:
        cfgs["plain"] = build_config(base, overrides, PLAIN, probe, {"out": str(out / "plain")})
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    sink = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with sink, MemorySampler() as mem:
        run_batch([_warmup(cfgs["ceas"], out)] + list(cfgs.values()),
                  lambda cfg, s: walls.__setitem__(Path(cfg["out"]).name, s["process_wall_s"]))
    runs = {k: _per_round(Path(c["out"]), walls[k], c["rounds"], workers(c)) for k, c in cfgs.items()}
    floors = {k: measure_floor(c, args.floor_rounds) for k, c in cfgs.items()} if args.floor_rounds > 0 else {}
    rep = scale_report(cfgs["ceas"], runs, floors, mem.peak)
    rep["warmup_s"] = walls.get("warmup")
    if args.json:
        print(json.dumps(rep, sort_keys=True))
    else:
        print_report(rep, cfgs["ceas"], time.perf_counter() - t0, out)
    return 0
