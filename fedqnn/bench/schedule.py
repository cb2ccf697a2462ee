"""``fedqnn bench schedule``: the scheduler against exact solvers and baselines, side by side.

Sections (``--section``):
  gap    OR-Library gap1..12: per method mean / worst gap to the proven optimum and time;
         paired Wilcoxon tests across instances (Holm) of hybrid vs every other method, and
         the seeding ablation (same tabu refinement seeded by qaoa / uniform / greedy / sa).
  large  generated type-D GAP (5-20 agents x 100-200 jobs): auto vs HiGHS vs CP-SAT, same time.
  qaoa   QAOA alone on instances small enough to simulate: feasibility rate, approximation
         ratio f_opt / E[f | feasible] and P(optimum) against p, beside uniform sampling of
         one-hot assignments; plus a NumPy-statevector vs PennyLane timing.
Quick run:  fedqnn bench schedule --section gap --files gap1,gap12 --time-limit 2
Full run:   fedqnn bench schedule --section all  (about 1-2 hours on 2 cores)
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "main"]

# the OR-Library files ship with the repository (benchmarks/gap/README.md: source, licence)
DEFAULT_GAP_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "gap"
GAP_METHODS = "auto,hybrid,exact,exact-cpsat,sa,greedy,qi-random,random,qaoa"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--section", choices=("gap", "large", "qaoa", "all"), default="gap")
    parser.add_argument("--gap-dir", default=str(DEFAULT_GAP_DIR),
                        help="directory of OR-Library gapN.txt files (default: the repository's benchmarks/gap)")
    parser.add_argument("--files", default=",".join(f"gap{k}" for k in range(1, 13)),
                        help="comma-separated gap files (default gap1..gap12)")
    parser.add_argument("--instances", default="0,1,2,3,4", help="instances per file")
    parser.add_argument("--methods", default=GAP_METHODS)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per instance (gap)")
    parser.add_argument("--ablation", action="store_true", help="run the seeding ablation (gap)")
    parser.add_argument("--large-sizes", default="5x100,10x100,10x200,20x200",
                        help="agents x jobs of the generated type-D instances")
    parser.add_argument("--large-seeds", type=int, default=2)
    parser.add_argument("--large-time", type=float, default=30.0)
    parser.add_argument("--qaoa-sizes", default="3x4,3x5", help="agents x jobs (qubits = product)")
    parser.add_argument("--qaoa-seeds", type=int, default=3)
    parser.add_argument("--p-list", default="1,2,3,4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="write per-run rows to this CSV")


def _run(problem, method: str, tl: float, seed: int, ref=None):
    """One run.  ``hybrid-<seeding>`` (the ablation) draws as many samples as the QAOA-seeded
    ``hybrid`` run ``ref`` on the same instance did and refines them with the same tabu wall
    time ``ref`` had (equal sample count, equal refinement); without ``ref`` it gets the
    defaults of :func:`fedqnn.scheduling.methods.solve_hybrid`."""
    from fedqnn.scheduling import solve

    if method == "exact-cpsat":
        s = solve(problem, "exact", time_limit=tl, seed=seed, solver="cpsat")
        s.method = "exact-cpsat"
        return s
    if method.startswith("hybrid-"):
        kw = {}
        if ref is not None:
            kw = {"samples": ref.info["samples"], "tabu_time": ref.info["tabu_seconds"]}
        s = solve(problem, "hybrid", time_limit=tl, seed=seed, seeding=method.split("-", 1)[1], **kw)
        s.method = method
        return s
    return solve(problem, method, time_limit=tl, seed=seed)


TARGETS = (1.0, 0.5, 0.0)


def _time_to_target(sol, optimum: float) -> dict[str, float]:
    """Seconds until the hybrid's best feasible objective came within each target gap % of
    the optimum (from the refinement's improvement trace; nan = never)."""
    out = {}
    trace = sol.info.get("trace") if sol.info else None
    for t in TARGETS:
        key = f"t_gap{t:g}"
        out[key] = float("nan")
        for sec, f in trace or []:
            if 100.0 * abs(optimum - f) / max(abs(optimum), 1e-12) <= t + 1e-9:
                out[key] = float(sec)
                break
    return out


class _CsvSink:
    """Append rows to a CSV as they come (a stopped run keeps what it measured)."""

    KEYS = ["section", "instance", "method", "objective", "optimum", "bound", "gap_pct",
            "feasible", "seconds", "samples", "seed_seconds", "tabu_seconds",
            *(f"t_gap{t:g}" for t in TARGETS),
            "p", "qubits", "feasible_rate", "approx_ratio", "p_opt"]

    def __init__(self, path: str | None) -> None:
        self.fh = open(path, "w", newline="") if path else None
        if self.fh:
            self.w = csv.DictWriter(self.fh, fieldnames=self.KEYS, extrasaction="ignore")
            self.w.writeheader()
            self.fh.flush()

    def append(self, row: dict) -> None:
        if self.fh:
            self.w.writerow(row)
            self.fh.flush()


def _gap_files(gap_dir: str, names: str) -> list[tuple[str, Path]]:
    """``--files`` resolved in ``--gap-dir``; a missing file is a ConfigError (exit 2), before any solve."""
    from fedqnn.schema import ConfigError

    files = [(f, Path(gap_dir) / f"{f}.txt") for f in names.split(",") if f]
    missing = [str(p) for _, p in files if not p.is_file()]
    if missing:
        raise ConfigError(f"--gap-dir/--files: no such GAP file {missing[0]} (the OR-Library gap1..gap12 ship in "
                          f"{DEFAULT_GAP_DIR}; pass --gap-dir DIR for others)")
    return files


def _gap_section(args: argparse.Namespace, rows: _CsvSink) -> None:
    from fedqnn.scheduling import read_gap_file
    from fedqnn.scheduling.stats import paired_compare, with_holm
    from fedqnn.seeding import rng

    methods = [m for m in args.methods.split(",") if m]
    if args.ablation:
        methods += [m for m in ("hybrid-uniform", "hybrid-greedy", "hybrid-sa") if m not in methods]
    inst = [int(k) for k in args.instances.split(",")]
    res: dict[str, dict[str, list]] = {m: {"gap": [], "sec": [], "feas": [], "file": []} for m in methods}
    files = _gap_files(args.gap_dir, args.files)
    print(f"== OR-Library GAP, time limit {args.time_limit:g} s per instance, seed {args.seed} ==")
    for f, path in files:
        probs = read_gap_file(path)
        for k in inst:
            p = probs[k]
            ref = None
            for m in sorted(methods, key=lambda mm: mm.startswith("hybrid-")):
                s = _run(p, m, args.time_limit, args.seed, ref)
                if m == "hybrid":
                    ref = s
                g = s.gap_pct(p.optimum)
                gap = g if g is not None else float("nan")
                res[m]["gap"].append(gap)
                res[m]["sec"].append(s.seconds)
                res[m]["feas"].append(s.feasible)
                res[m]["file"].append(f)
                row = {"section": "gap", "instance": p.name, "method": m,
                       "objective": s.objective, "optimum": p.optimum, "gap_pct": gap,
                       "feasible": s.feasible, "seconds": round(s.seconds, 3)}
                if m.startswith("hybrid"):
                    row.update({k: s.info.get(k) for k in ("samples", "seed_seconds", "tabu_seconds")})
                    tt = _time_to_target(s, p.optimum)
                    row.update(tt)
                    res[m].setdefault("ttt", []).append(tt)
                rows.append(row)
            line = "  ".join(f"{m}={res[m]['gap'][-1]:.2f}%" for m in methods)
            print(f"  {p.name:9s} {line}", flush=True)
    print()
    hdr = f"{'file':7s} " + " ".join(f"{m:>22s}" for m in methods)
    print("per file: mean gap % / worst gap % / mean s   (inf = some infeasible)")
    print(hdr)
    for f in [name for name, _ in files] + ["ALL"]:
        cells = []
        for m in methods:
            sel = [i for i, ff in enumerate(res[m]["file"]) if f == "ALL" or ff == f]
            gaps = np.array([res[m]["gap"][i] for i in sel])
            secs = np.array([res[m]["sec"][i] for i in sel])
            gaps = np.where(np.isnan(gaps), np.inf, gaps)
            cells.append(f"{gaps.mean():7.2f}/{gaps.max():6.2f}/{secs.mean():6.2f}")
        print(f"{f:7s} " + " ".join(f"{c:>22s}" for c in cells))
    for m in methods:
        g = np.array(res[m]["gap"])
        print(f"  {m:15s} optima found {int(np.sum(g < 1e-9))}/{len(g)}, "
              f"infeasible {int(np.sum(~np.array(res[m]['feas'])))}, max time {max(res[m]['sec']):.2f}s")
    for m in methods:
        if "ttt" not in res[m]:
            continue
        parts = []
        for t in TARGETS:
            v = np.array([d[f"t_gap{t:g}"] for d in res[m]["ttt"]])
            ok = ~np.isnan(v)
            med = f"{np.median(v[ok]):.2f}s" if ok.any() else "-"
            parts.append(f"gap<={t:g}%: {int(ok.sum())}/{len(v)} reached, median {med}")
        print(f"  {m:15s} time to target (refinement trace): " + "; ".join(parts))
    if "hybrid" in methods and len(methods) > 1:
        print("\nhybrid vs others (d = gap_hybrid - gap_other per instance; infeasible = 100%):")
        g0 = np.nan_to_num(np.array(res["hybrid"]["gap"]), nan=100.0)
        comps = [paired_compare(g0, np.nan_to_num(np.array(res[m]["gap"]), nan=100.0),
                                f"hybrid - {m}", rng(args.seed, "bench-stats", m))
                 for m in methods if m != "hybrid"]
        with_holm(comps)
        print(f"  {'comparison':28s} {'n':>3s} {'mean d':>8s} {'95% CI':>18s} {'r_rb':>6s} {'p':>8s} {'p_holm':>8s}  verdict")
        for c in comps:
            v = c.verdict()
            v = {"A better": "hybrid better", "B better": "hybrid worse"}.get(v, v)
            print(f"  {c.name:28s} {c.n:3d} {c.mean_diff:8.3f} [{c.ci[0]:7.3f},{c.ci[1]:7.3f}] "
                  f"{c.rank_biserial:6.2f} {c.p:8.2g} {c.p_holm:8.2g}  {v}")


def _large_section(args: argparse.Namespace, rows: _CsvSink) -> None:
    from fedqnn.scheduling import solve
    from fedqnn.scheduling.generators import gap_instance

    tl = args.large_time
    print(f"\n== generated type-D GAP (min), {tl:g} s each, 2 cores shared: auto vs HiGHS vs CP-SAT ==")
    print(f"  {'instance':22s} {'auto':>9s} {'highs':>9s} {'cpsat':>9s} {'best bound':>11s}  auto-vs-best")
    wins = ties = losses = 0
    for size in args.large_sizes.split(","):
        m, n = (int(v) for v in size.split("x"))
        for s in range(args.large_seeds):
            p = gap_instance(m, n, "D", seed=s)
            out = {}
            for meth, kw in (("auto", {}), ("highs", {"solver": "highs"}), ("cpsat", {"solver": "cpsat"})):
                sol = solve(p, "auto" if meth == "auto" else "exact", time_limit=tl, seed=args.seed, **kw)
                out[meth] = sol
                rows.append({"section": "large", "instance": p.name, "method": meth,
                             "objective": sol.objective, "bound": sol.bound,
                             "feasible": sol.feasible, "seconds": round(sol.seconds, 3)})
            bounds = [o.bound for o in out.values() if o.bound is not None]
            lb = max(bounds) if bounds else float("nan")
            objs = {k: (o.objective if o.feasible else float("inf")) for k, o in out.items()}
            other = min(objs["highs"], objs["cpsat"])
            if objs["auto"] < other - 1e-9:
                wins += 1
                verdict = "better"
            elif objs["auto"] <= other + 1e-9:
                ties += 1
                verdict = "equal"
            else:
                losses += 1
                verdict = "worse"
            print(f"  {p.name:22s} {objs['auto']:9.0f} {objs['highs']:9.0f} {objs['cpsat']:9.0f} "
                  f"{lb:11.1f}  {verdict}  (gap to bound: auto {100 * (objs['auto'] - lb) / lb:.2f}%)",
                  flush=True)
    print(f"  auto better {wins}, equal {ties}, worse {losses} vs the better exact solver")


def _qaoa_section(args: argparse.Namespace, rows: _CsvSink) -> None:
    from fedqnn.scheduling.generators import gap_instance
    from fedqnn.scheduling.qaoa import pennylane_probs, run_qaoa, statevector
    from fedqnn.scheduling.qubo import all_bitstrings, build_qubo
    from fedqnn.seeding import rng

    print("\n== QAOA alone (exact output distribution), type-D instances, x-mixer with slack-free "
          "unbalanced penalties vs xy-mixer ==")
    print("  capacities 1.2 x mean load; ratio = f_opt / E[f | feasible]; feas = P(feasible); P(opt); uniform = same over "
          "uniform one-hot assignments")
    plist = [int(v) for v in args.p_list.split(",")]
    agg: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    uni: list[tuple[float, float, float]] = []
    for size in args.qaoa_sizes.split(","):
        m, n = (int(v) for v in size.split("x"))
        for s in range(args.qaoa_seeds):
            p = gap_instance(m, n, "D", seed=100 + s, tightness=1.2)
            q = build_qubo(p, capacity="unbalanced")
            B = all_bitstrings(q.num_vars)
            X = np.array([q.decode(b) for b in B])
            onehot = (X >= 0).all(1)
            f = np.full(len(B), np.inf)
            feas = np.zeros(len(B), bool)
            for r in np.flatnonzero(onehot):
                ev = p.evaluate(X[r])
                f[r] = ev.objective
                feas[r] = ev.feasible
            if not feas.any():
                continue
            fopt = f[feas].min()
            uw = onehot / onehot.sum()
            uni.append((float(uw[feas].sum()), float(fopt / (uw[feas] @ f[feas] / uw[feas].sum())),
                        float(uw[feas & (f <= fopt + 1e-9)].sum())))
            for mixer in ("x", "xy"):
                for pp in plist:
                    t0 = time.perf_counter()
                    res = run_qaoa(q, p=pp, mixer=mixer, shots=16, maxiter=80,
                                   rng=rng(args.seed, "bench-qaoa", s, pp))
                    dt = time.perf_counter() - t0
                    pr = res.probs
                    pf = float(pr[feas].sum())
                    ratio = float(fopt / (pr[feas] @ f[feas] / pf)) if pf > 0 else 0.0
                    popt = float(pr[feas & (f <= fopt + 1e-9)].sum())
                    agg.setdefault((mixer, pp), []).append((pf, ratio, popt))
                    rows.append({"section": "qaoa", "instance": p.name, "method": f"qaoa-{mixer}",
                                 "p": pp, "qubits": q.num_vars, "feasible_rate": pf,
                                 "approx_ratio": ratio, "p_opt": popt, "seconds": round(dt, 3)})
    u = np.array(uni)
    print(f"  {'mixer':5s} {'p':>2s} {'feas':>7s} {'ratio':>7s} {'P(opt)':>7s}   (mean over {len(uni)} instances)")
    print(f"  {'unif':5s} {'-':>2s} {u[:, 0].mean():7.3f} {u[:, 1].mean():7.3f} {u[:, 2].mean():7.3f}")
    for (mixer, pp), vals in sorted(agg.items()):
        v = np.array(vals)
        print(f"  {mixer:5s} {pp:2d} {v[:, 0].mean():7.3f} {v[:, 1].mean():7.3f} {v[:, 2].mean():7.3f}")
    # speed: statevector vs PennyLane at 12 qubits, p = 2
    p = gap_instance(3, 4, "D", seed=7)
    q = build_qubo(p, capacity="none")
    g, b = np.array([0.1, 0.2]), np.array([0.3, 0.4])
    t0 = time.perf_counter()
    for _ in range(5):
        statevector(q, g, b, "xy", scale=10.0)
    t_np = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    pennylane_probs(q, g, b, "xy", scale=10.0)
    t_pl = time.perf_counter() - t0
    print(f"  one {q.num_vars}-qubit p=2 xy-QAOA state: NumPy statevector {1e3 * t_np:.1f} ms, "
          f"PennyLane qml.qaoa default.qubit {1e3 * t_pl:.0f} ms (ratio {t_pl / t_np:.0f}x)")


def main(args: argparse.Namespace) -> int:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    rows = _CsvSink(args.csv)
    if args.section in ("gap", "all"):
        _gap_section(args, rows)
    if args.section in ("large", "all"):
        _large_section(args, rows)
    if args.section in ("qaoa", "all"):
        _qaoa_section(args, rows)
    if args.csv:
        rows.fh.close()
        print(f"wrote {args.csv}")
    return 0
