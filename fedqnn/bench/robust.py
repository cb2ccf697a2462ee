"""``fedqnn bench robust``: robust aggregation on synthetic update vectors, ours vs ByzFL's.

Setup (all seeded through :func:`fedqnn.seeding.rng`):

* true mean g ~ N(0, s^2 I_d), with ||g||^2 = snr x median honest tr(Sigma);
* node k (honest or not) has a QPU calibration drawn per node: shots S_k log-uniform in
  [shots_min, shots_max], gate depolarising p_k and readout error r_k uniform, shrink
  c_k = (1 - 4p/3)^gates (1 - 2r)^m; covariance Sigma_k = diag(v_k) / (S_k c_k^2) with
  v_kj ~ U(0.05, 0.5) (issue 3's model, eta^2 K / B = 1); honest x_k = g + N(0, Sigma_k);
* stamps phi_k = 4 / tr(Sigma_k) (metric G = I), honest ones with a multiplicative log-normal
  calibration error (``--stamp-noise``);
* f = round(fraction x n) Byzantine nodes send the attack's vector and report stamps per
  ``--stamps``: ``inflate`` (10x the largest honest stamp), ``honest`` (their own true stamp) or
  ``consistent`` (the adaptive liar: the stamp whose predicted spread matches its distance to the
  honest inverse-variance mean, so it is neither too far nor too near);
* oracle: the inverse-variance (true Sigma) weighted mean of the honest nodes only.

Printed per attack: sqrt(E||agg - g||^2) / sqrt(E||oracle - g||^2) over the trials, for the CEAS
robust fidelity-weighted aggregate (default filter and cap, and variants), the plain rules and
ByzFL's aggregators. The plain rules are :mod:`strategies.robust`: median, trimmed mean, Krum,
Multi-Krum and Bulyan are the run's guarded Flower strategies (the code a run with that
``strategy`` aggregates with), geometric median, centred clipping and NNM our own. ByzFL is optional (the ``bench`` extra; install it as
``pip install byzfl --no-deps``, its torchvision pin would replace the CPU torch): without it the ByzFL columns and attacks are skipped with a
message. Nothing here is asserted; goals are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import sys
import time
import types
from collections.abc import Callable

import numpy as np

from clients.attacks import get_attack
from fedqnn.seeding import derive_seed, rng
from strategies.ceas_math import fidelity_aggregate, robust_fidelity_aggregate
from strategies.robust import get_rule, precondition_holds

GOAL = 1.5

OUR_ATTACKS = ["alie", "ipm", "sign-flip", "gaussian", "scaled", "mimic", "min-max", "min-sum",
               "fang-krum", "fang-median", "stamp-inflation", "adaptive"]
BYZFL_ATTACKS = ["byzfl-alie", "byzfl-ipm", "byzfl-signflip", "byzfl-mimic", "byzfl-gaussian"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fedqnn bench robust``."""
    parser.add_argument("--clients", type=int, default=25, help="participants n (default 25)")
    parser.add_argument("--fractions", default="0.2", help="Byzantine fractions, comma-separated (default 0.2)")
    parser.add_argument("--dim", type=int, default=100, help="update dimension d (default 100)")
    parser.add_argument("--trials", type=int, default=20, help="random draws per cell (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attacks", default="all", help="comma-separated attack names, or 'all'")
    parser.add_argument("--stamps", default="inflate,consistent",
                        help="Byzantine stamp behaviours: inflate, honest, consistent (default inflate,consistent)")
    parser.add_argument("--shots", default="128,8192", help="shots range min,max (log-uniform; default 128,8192)")
    parser.add_argument("--snr", type=float, default=1.0, help="||g||^2 / median honest tr(Sigma) (default 1)")
    parser.add_argument("--stamp-noise", type=float, default=0.2,
                        help="log-normal sd of honest stamps' calibration error (default 0.2)")
    parser.add_argument("--caps", default="1,3,inf", help="cap multiples measured in the cap table (default 1,3,inf)")
    parser.add_argument("--no-byzfl", action="store_true", help="skip ByzFL even if installed")
    parser.add_argument("--compact", action="store_true",
                        help="print only the CEAS cap variants and a few ByzFL rules (all are still run)")


# ----------------------------------------------------------------------------------------------
# ByzFL, imported module by module (its package __init__ pulls torchvision)


def load_byzfl() -> tuple[types.ModuleType, types.ModuleType] | None:
    """(byzfl.aggregators, byzfl.attacks) or None if byzfl is not installed."""
    spec = importlib.util.find_spec("byzfl")
    if spec is None or spec.submodule_search_locations is None:
        return None
    if "byzfl" not in sys.modules:
        pkg = types.ModuleType("byzfl")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["byzfl"] = pkg
    return importlib.import_module("byzfl.aggregators"), importlib.import_module("byzfl.attacks")


def byzfl_rules(agg: types.ModuleType, f: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """ByzFL aggregators (fresh objects per call: CenteredClipping keeps state)."""

    def nnm_then(rule_factory):
        return lambda v: rule_factory()(agg.NNM(f=f)(v))

    return {
        "B:avg": lambda v: agg.Average()(v),
        "B:med": lambda v: agg.Median()(v),
        "B:trm": lambda v: agg.TrMean(f=f)(v),
        "B:gm": lambda v: agg.GeometricMedian()(v),
        "B:krum": lambda v: agg.Krum(f=f)(v),
        "B:mkrum": lambda v: agg.MultiKrum(f=f)(v),
        "B:cc": lambda v: agg.CenteredClipping()(v),
        "B:monna": lambda v: agg.MoNNA(f=f)(v),
        "B:meamed": lambda v: agg.Meamed(f=f)(v),
        "B:caf": lambda v: agg.CAF(f=f)(v),
        "B:nnm+trm": nnm_then(lambda: agg.TrMean(f=f)),
        "B:nnm+cc": nnm_then(lambda: agg.CenteredClipping()),
    }


def byzfl_attack(batt: types.ModuleType, name: str, sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """A ByzFL attack object (ByzFL's defaults, Gaussian's sigma scaled to the honest noise)."""
    if name == "byzfl-alie":
        return batt.ALittleIsEnough(tau=1.5)
    if name == "byzfl-ipm":
        return batt.InnerProductManipulation(tau=2.0)
    if name == "byzfl-signflip":
        return batt.SignFlipping()
    if name == "byzfl-mimic":
        return batt.Mimic(epsilon=0)
    if name == "byzfl-gaussian":
        return batt.Gaussian(mu=0.0, sigma=sigma)
    raise SystemExit(f"unknown ByzFL attack {name!r}")


def adaptive_attack(honest: np.ndarray, honest_stamps: np.ndarray, f: int, lam: float, kappa: float,
                    gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """White-box attack on the stamp filter (bench only). Each Byzantine node claims
    T_b = lam x median honest tr(Sigma) (stamp 4 / T_b) and sends

        x_b = m + sqrt(kappa T_b) u + xi_b,   xi_b ~ N(0, (1 - kappa) T_b / d I) independent,

    m the honest stamp-weighted mean, u = -m / ||m||: a bias against the honest direction that
    keeps ||x_b - m||^2 = T_b (not ``far``, not ``near``) and pairwise distances
    2 (1 - kappa) T_b (only ``pair``-flagged for large kappa)."""
    d = honest.shape[1]
    t_med = float(np.median(4.0 / honest_stamps))
    w = honest_stamps / honest_stamps.sum()
    mean = w @ honest
    u = -mean / max(float(np.linalg.norm(mean)), 1e-300)
    tb = lam * t_med
    xs = mean + math.sqrt(kappa * tb) * u + gen.normal(size=(f, d)) * math.sqrt((1 - kappa) * tb / d)
    return xs, np.full(f, 4.0 / tb)


ADAPTIVE_GRID = [(lam, kappa) for lam in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0) for kappa in (0.3, 0.6)]


# ----------------------------------------------------------------------------------------------
# synthetic federation


def draw_nodes(gen: np.random.Generator, n: int, d: int, shots: tuple[float, float]) -> np.ndarray:
    """Per-node diagonal covariances (n, d) from a heterogeneous QPU calibration."""
    s = np.exp(gen.uniform(math.log(shots[0]), math.log(shots[1]), n))
    p = gen.uniform(5e-4, 5e-3, n)
    r = gen.uniform(0.01, 0.08, n)
    c = (1 - 4 * p / 3) ** 30 * (1 - 2 * r) ** 2
    v = gen.uniform(0.05, 0.5, (n, d))
    return v / (s * c * c)[:, None]


def _attack(x: np.ndarray, x_true: np.ndarray, phi: np.ndarray, phi_true: np.ndarray, tr: np.ndarray,
            w_or: np.ndarray, attack: str, f: int, n: int, d: int, t: int, seed: int, stamp_mode: str,
            byzfl: tuple | None) -> None:
    """Overwrite the last f rows of x (updates) and phi (stamps) with the attack, in place."""
    m = n - f
    honest = x_true[:m]
    agen = rng(seed, "bench-robust-attack", attack, stamp_mode, n, f, d, t)
    if attack.startswith("adaptive:"):
        _, lam, kappa = attack.split(":")
        x[m:], phi[m:] = adaptive_attack(honest, phi[:m], f, float(lam), float(kappa), agen)
        return
    if attack.startswith("byzfl-"):
        np.random.seed(derive_seed(seed, "byzfl-np", attack, t) % (2**32))
        obj = byzfl_attack(byzfl[1], attack, sigma=float(3 * math.sqrt(np.median(tr) / d)))
        for b in range(m, n):
            x[b] = obj(honest)
    else:
        spec = get_attack(attack)
        params = {}
        if attack == "gaussian":
            params = {"sigma": float(3 * math.sqrt(np.median(tr) / d))}
        for b in range(m, n):
            x[b] = spec(x_true[b], honest if spec.omniscient else None, agen, n=n, f=f, **params)
    if stamp_mode == "inflate" or attack == "stamp-inflation":
        phi[m:] = 10.0 * phi[:m].max()
    elif stamp_mode == "honest":
        phi[m:] = phi_true[m:]
    elif stamp_mode == "consistent":
        ctr = w_or @ x_true[:m]
        dist2 = np.maximum(np.sum((x[m:] - ctr) ** 2, axis=1), 1e-12 * float(np.median(tr)))
        phi[m:] = 4.0 / dist2
    else:
        raise SystemExit(f"unknown --stamps mode {stamp_mode!r}")


PLAIN_RULES = ["median", "trimmed-mean", "krum", "multikrum", "bulyan", "geometric-median",
               "centered-clipping", "nnm+trimmed-mean"]


def _aggregate_all(add: Callable[[str, np.ndarray], None], sq: dict[str, list[float]], x: np.ndarray,
                   phi: np.ndarray, f: int, n: int, mh: int, byzfl: tuple | None, caps: list[float]) -> None:
    """Every aggregator on (x, phi): ``add(name, aggregate)``; CEAS's Byzantine weight share and
    honest rejections go to ``sq`` (``@byzw`` / ``@hrej``; mh = the honest count)."""
    m = n - f
    for cap in caps:
        label = "ceas" if cap == 3 else f"ceas-c{cap:g}"
        res = robust_fidelity_aggregate(x, phi, cap_multiple=None if math.isinf(cap) else cap)
        add(label, res.aggregate)
        sq.setdefault(f"{label}@byzw", []).append(float(res.weights[m:].sum()))
        sq.setdefault(f"{label}@hrej", []).append(float(sum(1 for i in res.rejected if i < mh)))
    add("ceas-medf", robust_fidelity_aggregate(x, phi, outlier="median").aggregate)
    add("ceas-clip", robust_fidelity_aggregate(x, phi, premix="clip").aggregate)
    add("fw", fidelity_aggregate(x, phi, cap_multiple=3.0)[0])
    for name in PLAIN_RULES:
        if precondition_holds(name, n, f):
            add(name, get_rule(name, f=f)(x))
    if byzfl is not None:
        for name, rule in byzfl_rules(byzfl[0], f).items():
            try:
                add(name, np.asarray(rule(x), dtype=np.float64))
            except ValueError:
                pass


def run_cell(attack: str, f: int, n: int, d: int, trials: int, seed: int, stamp_mode: str,
             args: argparse.Namespace, byzfl: tuple | None, caps: list[float]) -> dict[str, float]:
    """Mean squared errors per aggregator (and 'oracle') over the trials."""
    shots = tuple(float(v) for v in args.shots.split(","))
    m = n - f
    sq: dict[str, list[float]] = {}
    for t in range(trials):
        gen = rng(seed, "bench-robust", attack, stamp_mode, n, f, d, t)
        var = draw_nodes(gen, n, d, shots)
        tr = var.sum(axis=1)
        g = gen.normal(size=d) * math.sqrt(args.snr * float(np.median(tr)) / d)
        x_true = g + gen.normal(size=(n, d)) * np.sqrt(var)
        phi_true = 4.0 / tr
        phi = phi_true * np.exp(args.stamp_noise * gen.normal(size=n))

        def add(name: str, agg: np.ndarray, g: np.ndarray = g) -> None:
            sq.setdefault(name, []).append(float(np.sum((agg - g) ** 2)))

        # the oracle averages every honest node: all n when nobody attacks
        mo = n if (attack == "none" or f == 0) else m
        w_or = (1 / tr[:mo]) / np.sum(1 / tr[:mo])
        add("oracle", w_or @ x_true[:mo])
        x = x_true.copy()
        if f > 0 and attack != "none":
            _attack(x, x_true, phi, phi_true, tr, w_or, attack, f, n, d, t, seed, stamp_mode, byzfl)
        _aggregate_all(add, sq, x, phi, f, n, mo, byzfl, caps)
    return {k: float(np.mean(v)) for k, v in sq.items()}


def _fmt(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _rows(attacks: list[str], f: int, n: int, d: int, mode: str, args: argparse.Namespace,
          byzfl: tuple | None, caps: list[float]) -> list[tuple[str, dict[str, float]]]:
    """Per attack: each aggregator's error ratio to the oracle (the worst over the adaptive grid),
    and the ``@`` side measures as they are."""
    rows: list[tuple[str, dict[str, float]]] = []
    for attack in attacks:
        grid = [f"adaptive:{lam}:{kap}" for lam, kap in ADAPTIVE_GRID] if attack == "adaptive" else [attack]
        ratios: dict[str, float] = {}
        for a in grid:
            res = run_cell(a, f, n, d, args.trials, args.seed, mode, args, byzfl, caps)
            for k, v in res.items():
                if k == "oracle":
                    continue
                val = v if "@" in k else math.sqrt(v / res["oracle"])
                ratios[k] = max(ratios.get(k, 0.0), val)
        rows.append((attack, ratios))
    return rows


def _print_panel(rows: list[tuple[str, dict[str, float]]], frac: float, f: int, n: int, mode: str,
                 compact: bool) -> None:
    """One table (a Byzantine fraction and stamp mode), its worst-case line and the goals."""
    cols = [c for c in rows[0][1] if "@" not in c]
    ours = [c for c in cols if not c.startswith("B:")]
    theirs = [c for c in cols if c.startswith("B:")]
    shown_ours, shown_theirs = ours, theirs
    if compact:
        shown_ours = [c for c in ours if c.startswith("ceas") and c not in ("ceas-medf", "ceas-clip")] + ["bulyan"]
        shown_theirs = [c for c in theirs if c in ("B:med", "B:trm", "B:gm", "B:krum", "B:cc", "B:caf", "B:nnm+trm")]
    print(f"\n== Byzantine fraction {frac:g} (f={f} of n={n}), Byzantine stamps: {mode} ==")
    header = ["attack"] + shown_ours + shown_theirs + (["best B"] if theirs else [])
    width = [max(16, len(header[0]))] + [max(6, len(h)) for h in header[1:]]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, width))))
    worst: dict[str, float] = {}
    for attack, r in rows:
        best = min((r[c] for c in theirs if c in r and c != "B:avg"), default=None)
        best_name = min((c for c in theirs if c in r and c != "B:avg"), key=lambda c: r[c], default="")
        for c in ours + theirs + ["best B"]:
            v = best if c == "best B" else r.get(c)
            if v is not None and attack != "none":
                worst[c] = max(worst.get(c, 0.0), v)
        vals = [r.get(c) for c in shown_ours + shown_theirs] + ([best] if theirs else [])
        cells = [_fmt(v) for v in vals]
        line = [attack.ljust(width[0])] + [c.rjust(w) for c, w in zip(cells, width[1:])]
        print("  ".join(line) + (f"   ({best_name})" if theirs else ""))
    line = ["WORST (attacks)".ljust(width[0])] + [
        _fmt(worst.get(c)).rjust(w)
        for c, w in zip(shown_ours + shown_theirs + (["best B"] if theirs else []), width[1:])]
    print("  ".join(line))
    byzw = {c: max(r.get(c, 0.0) for a, r in rows if a != "none") for c in rows[0][1] if c.endswith("@byzw")}
    print("max Byzantine weight share kept: " + ", ".join(f"{k[:-5]} {v:.2f}" for k, v in byzw.items()))
    hrej = {c: r.get(c, 0.0) for a, r in rows if a == "none" for c in r if c.endswith("@hrej")}
    if hrej:
        print("honest nodes rejected per round, no attack: "
              + ", ".join(f"{k[:-5]} {v:.2f}" for k, v in hrej.items()))
    w = worst.get("ceas")
    if w is not None:
        print(f"goal: CEAS worst case <= {GOAL}: measured {w:.2f} -> {'met' if w <= GOAL else 'NOT met'}")
    if theirs:
        bname = min((c for c in theirs if c != "B:avg"), key=lambda c: worst.get(c, np.inf))
        print(f"ByzFL: the best single rule's worst case {worst.get(bname, np.nan):.2f} ({bname}); "
              f"per-attack best rule worst case {worst.get('best B', float('nan')):.2f}")


def main(args: argparse.Namespace) -> int:
    """Run the grid and print the tables."""
    byzfl = None
    if not args.no_byzfl:
        byzfl = load_byzfl()
        if byzfl is None:
            print("note: byzfl is not installed, so ByzFL's aggregators and attacks are skipped. "
                  "Install it with `pip install byzfl --no-deps` (the `bench` extra names it; --no-deps "
                  "keeps its torchvision pin from replacing the CPU torch).")
    caps = [float(c) for c in args.caps.split(",")]
    if 3.0 not in caps:
        caps.append(3.0)
    attacks = (["none"] + OUR_ATTACKS + (BYZFL_ATTACKS if byzfl else [])) if args.attacks == "all" \
        else args.attacks.split(",")
    if byzfl is None:
        attacks = [a for a in attacks if not a.startswith("byzfl-")]
    n, d = args.clients, args.dim
    t0 = time.perf_counter()
    print(f"fedqnn bench robust: n={n} d={d} trials={args.trials} seed={args.seed} shots={args.shots} "
          f"snr={args.snr} stamp-noise={args.stamp_noise}")
    print("cells: sqrt(E||agg - g||^2) / sqrt(E||oracle - g||^2), oracle = inverse-variance mean of the "
          "honest nodes; ceas = stamp filter + fidelity weights capped at 3x median")
    for frac in [float(v) for v in args.fractions.split(",")]:
        f = int(round(frac * n))
        for mode in args.stamps.split(","):
            rows = _rows(attacks, f, n, d, mode, args, byzfl, caps)
            _print_panel(rows, frac, f, n, mode, args.compact)
    print(f"\nwall time {time.perf_counter() - t0:.1f} s")
    return 0
