"""``fedqnn bench robust``: robust aggregation on synthetic update vectors, ours vs ByzFL's, with
CEAS on the path a run takes (:func:`strategies.ceas_math.consensus_round`: the scale fit on the
server's calibration record, claims, data sizes, the default filter and capped weights).

Setup (all seeded through :func:`fedqnn.seeding.rng`):

* node k has a QPU calibration: shots S_k log-uniform in [shots_min, shots_max], gate
  depolarising p_k and readout r_k uniform, shrink c_k = (1 - 4p/3)^30 (1 - 2r)^2, so
  sigma_k^2 = 1 / (S_k c_k^2); ``--factors tied`` gives every node the same calibration
  (identical devices); covariance Sigma_k = sigma_k^2 diag(v_k), v_kj ~ U(0.05, 0.5);
* the server's record of sigma_k^2 carries a log-normal calibration error (``--stamp-noise``);
* data heterogeneity (``--het`` = tau2 / median tr(Sigma_k)): three clusters of honest means
  (nodes with similar label mixtures), delta_k = centre + within-cluster spread (90% / 10% of
  tau2); data sizes n_k uniform in [20, 80]; honest x_k = g + delta_k + N(0, Sigma_k), with
  ||g||^2 = snr x median tr(Sigma);
* target: the n_k-weighted mean of the honest nodes' means g + delta_k (FedAvg's); oracle: the
  honest nodes only, random-effects weights with the true Sigma_k and tau2
  (:func:`strategies.ceas_weights.random_effects_weights`);
* f = round(fraction x n) Byzantine nodes send the attack's vector and claim per ``--stamps``:
  ``honest`` (their server record), ``consistent`` (the sigma^2 whose predicted spread matches
  their distance to the honest mean), or the attack's own claim (``fit-capture``); a claim can only
  raise sigma^2 (sigma^2 = max(record, claim)), as in a run.

Printed per attack: sqrt(E||agg - target||^2) / sqrt(E||oracle - target||^2) over the trials, for
CEAS (default, cap variants, without the directional test), FedAvg (n_k-weighted), the plain rules
and ByzFL's aggregators. The plain rules are :mod:`strategies.robust`: median, trimmed mean, Krum,
Multi-Krum and Bulyan are the run's guarded Flower strategies, geometric median, centred clipping
and NNM our own. ByzFL is optional (the ``bench`` extra; install it as ``pip install byzfl
--no-deps``, its torchvision pin would replace the CPU torch): without it the ByzFL columns and
attacks are skipped with a message. Nothing here is asserted; goals are printed beside the numbers.
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
from strategies.ceas_math import consensus_round
from strategies.ceas_weights import random_effects_weights
from strategies.robust import get_rule, precondition_holds

GOAL = 1.5

OUR_ATTACKS = ["alie", "ipm", "sign-flip", "gaussian", "scaled", "mimic", "min-max", "min-sum",
               "fang-krum", "fang-median", "stamp-inflation", "stamp-adaptive", "boundary",
               "boundary-evasive", "fit-capture", "optimising"]
BYZFL_ATTACKS = ["byzfl-alie", "byzfl-ipm", "byzfl-signflip", "byzfl-mimic", "byzfl-gaussian"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fedqnn bench robust``."""
    parser.add_argument("--clients", type=int, default=25, help="participants n (default 25)")
    parser.add_argument("--fractions", default="0.2", help="Byzantine fractions, comma-separated (default 0.2)")
    parser.add_argument("--dim", type=int, default=100, help="update dimension d (default 100)")
    parser.add_argument("--trials", type=int, default=20, help="random draws per cell (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attacks", default="all", help="comma-separated attack names, or 'all'")
    parser.add_argument("--stamps", default="honest,consistent",
                        help="Byzantine claims: honest, consistent (default honest,consistent)")
    parser.add_argument("--het", default="0,1",
                        help="data heterogeneity tau2 / median tr(Sigma), comma-separated (default 0,1)")
    parser.add_argument("--factors", default="distinct,tied",
                        help="honest noise factors: distinct (heterogeneous QPUs) and/or tied (default both)")
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


# ----------------------------------------------------------------------------------------------
# synthetic federation


def draw_nodes(gen: np.random.Generator, n: int, d: int, shots: tuple[float, float],
               tied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(sigma^2 (n,), per-node diagonal covariances (n, d)) from QPU calibrations (one shared
    calibration when ``tied``)."""
    k = 1 if tied else n
    s = np.exp(gen.uniform(math.log(shots[0]), math.log(shots[1]), k))
    p = gen.uniform(5e-4, 5e-3, k)
    r = gen.uniform(0.01, 0.08, k)
    c = (1 - 4 * p / 3) ** 30 * (1 - 2 * r) ** 2
    sigma2 = np.broadcast_to(1.0 / (s * c * c), (n,)).copy()
    v = gen.uniform(0.05, 0.5, (n, d))
    return sigma2, v * sigma2[:, None]


def clustered_means(gen: np.random.Generator, n: int, d: int, tau2: float, clusters: int = 3) -> np.ndarray:
    """delta_k: a cluster centre (90% of tau2) plus within-cluster spread (10%), E||delta||^2 = tau2."""
    if tau2 <= 0:
        return np.zeros((n, d))
    centres = gen.normal(size=(clusters, d)) * math.sqrt(0.9 * tau2 / d)
    return centres[gen.integers(0, clusters, n)] + gen.normal(size=(n, d)) * math.sqrt(0.1 * tau2 / d)


_SPECIAL = {"boundary-evasive": ("boundary", {"evade_direction": True})}


def _attack(x: np.ndarray, claims: np.ndarray, server: np.ndarray, kappa: float, attack: str, f: int,
            n: int, d: int, t: int, seed: int, stamp_mode: str, byzfl: tuple | None) -> None:
    """Overwrite the last f rows of x (updates) and claims (claimed sigma^2) with the attack."""
    m = n - f
    honest = x[:m].copy()
    agen = rng(seed, "bench-robust-attack", attack, stamp_mode, n, f, d, t)
    spec = None
    if attack.startswith("byzfl-"):
        np.random.seed(derive_seed(seed, "byzfl-np", attack, t) % (2**32))
        tr = server * kappa
        obj = byzfl_attack(byzfl[1], attack, sigma=float(3 * math.sqrt(np.median(tr) / d)))
        for b in range(m, n):
            x[b] = obj(honest)
    else:
        name, params = _SPECIAL.get(attack, (attack, {}))
        spec = get_attack(name)
        if name == "gaussian":
            params = {"sigma": float(3 * math.sqrt(np.median(server * kappa) / d))}
        for b in range(m, n):
            x[b] = spec(x[b], honest if spec.omniscient else None, agen, n=n, f=f, **params)
    if spec is not None and spec.claim is not None:  # the attack's own claim: shots -> sigma^2
        for b in range(m, n):
            told = spec.claim({"p": 0.0, "r": 0.0, "shots": 1_000_000})
            claims[b] = server[b] * 1_000_000 / max(float(told["shots"]), 1.0)
    elif stamp_mode == "consistent":
        dist2 = np.maximum(np.sum((x[m:] - honest.mean(axis=0)) ** 2, axis=1), 1e-300)
        claims[m:] = np.maximum(dist2 / kappa, server[m:])
    elif stamp_mode != "honest":
        raise SystemExit(f"unknown --stamps mode {stamp_mode!r}")


PLAIN_RULES = ["median", "trimmed-mean", "krum", "multikrum", "bulyan", "geometric-median",
               "centered-clipping", "nnm+trimmed-mean"]


def _aggregate_all(add: Callable[[str, np.ndarray], None], sq: dict[str, list[float]], x: np.ndarray,
                   claims: np.ndarray, server: np.ndarray, sizes: np.ndarray, f: int, n: int, mh: int,
                   byzfl: tuple | None, caps: list[float]) -> None:
    """Every aggregator: ``add(name, aggregate)``; CEAS (on the run's path) also reports its
    Byzantine weight share and honest rejections to ``sq`` (``@byzw`` / ``@hrej``)."""
    m = n - f
    factors = np.maximum(server, claims)
    for cap in caps:
        label = "ceas" if cap == 3 else f"ceas-c{cap:g}"
        res = consensus_round(x, factors, server, sizes=sizes, f=f,
                              cap_multiple=None if math.isinf(cap) else cap).result
        add(label, res.aggregate)
        sq.setdefault(f"{label}@byzw", []).append(float(res.weights[m:].sum()))
        sq.setdefault(f"{label}@hrej", []).append(float(sum(1 for i in res.rejected if i < mh)))
    add("ceas-nodir", consensus_round(x, factors, server, sizes=sizes, f=f,
                                      outlier_params={"directional": False}).result.aggregate)
    add("fedavg", (sizes / sizes.sum()) @ x)
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
             args: argparse.Namespace, byzfl: tuple | None, caps: list[float], het: float = 0.0,
             tied: bool = False) -> dict[str, float]:
    """Mean squared errors to the target per aggregator (and 'oracle') over the trials."""
    shots = tuple(float(v) for v in args.shots.split(","))
    m = n - f
    sq: dict[str, list[float]] = {}
    for t in range(trials):
        gen = rng(seed, "bench-robust", attack, stamp_mode, n, f, d, t, het, tied)
        sigma2, var = draw_nodes(gen, n, d, shots, tied)
        tr = var.sum(axis=1)
        kappa = float(np.median(tr / sigma2))
        tau2 = het * float(np.median(tr))
        g = gen.normal(size=d) * math.sqrt(args.snr * float(np.median(tr)) / d)
        delta = clustered_means(gen, n, d, tau2)
        sizes = gen.integers(20, 81, n).astype(np.float64)
        x = g + delta + gen.normal(size=(n, d)) * np.sqrt(var)
        server = sigma2 * np.exp(args.stamp_noise * gen.normal(size=n))
        mo = n if (attack == "none" or f == 0) else m
        pi = sizes[:mo] / sizes[:mo].sum()
        target = pi @ (g + delta[:mo])

        def add(name: str, agg: np.ndarray, target: np.ndarray = target) -> None:
            sq.setdefault(name, []).append(float(np.sum((agg - target) ** 2)))

        add("oracle", random_effects_weights(tr[:mo], tau2, sizes[:mo]) @ x[:mo])
        claims = server.copy()
        if f > 0 and attack != "none":
            _attack(x, claims, server, kappa, attack, f, n, d, t, seed, stamp_mode, byzfl)
        _aggregate_all(add, sq, x, claims, server, sizes, f, n, mo, byzfl, caps)
    return {k: float(np.mean(v)) for k, v in sq.items()}


def _fmt(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _rows(attacks: list[str], f: int, n: int, d: int, mode: str, args: argparse.Namespace,
          byzfl: tuple | None, caps: list[float], het: float, tied: bool) -> list[tuple[str, dict[str, float]]]:
    """Per attack: each aggregator's error ratio to the oracle, and the ``@`` side measures."""
    rows: list[tuple[str, dict[str, float]]] = []
    for attack in attacks:
        res = run_cell(attack, f, n, d, args.trials, args.seed, mode, args, byzfl, caps, het, tied)
        rows.append((attack, {k: (v if "@" in k else math.sqrt(v / res["oracle"]))
                              for k, v in res.items() if k != "oracle"}))
    return rows


def _print_panel(rows: list[tuple[str, dict[str, float]]], frac: float, f: int, n: int, mode: str,
                 compact: bool, het: float = 0.0, factors: str = "distinct") -> None:
    """One table (a Byzantine fraction and stamp mode), its worst-case line and the goals."""
    cols = [c for c in rows[0][1] if "@" not in c]
    ours = [c for c in cols if not c.startswith("B:")]
    theirs = [c for c in cols if c.startswith("B:")]
    shown_ours, shown_theirs = ours, theirs
    if compact:
        shown_ours = [c for c in ours if c.startswith("ceas")] + ["fedavg", "bulyan"]
        shown_theirs = [c for c in theirs if c in ("B:med", "B:trm", "B:gm", "B:krum", "B:cc", "B:caf", "B:nnm+trm")]
    print(f"\n== Byzantine fraction {frac:g} (f={f} of n={n}), Byzantine claims: {mode}, heterogeneity "
          f"tau2/tr = {het:g}, honest noise factors {factors} ==")
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
    print("cells: sqrt(E||agg - target||^2) / sqrt(E||oracle - target||^2), target = the n_k-weighted mean "
          "of the honest means, oracle = random-effects weights on the honest nodes with the true variances; "
          "ceas = the run's consensus_round (scale fit on server records, claims, sizes, default filter, "
          "cap 3x)")
    for het in [float(v) for v in args.het.split(",")]:
        for factors in args.factors.split(","):
            if factors not in ("distinct", "tied"):
                raise SystemExit(f"--factors: expected distinct or tied, got {factors!r}")
            for frac in [float(v) for v in args.fractions.split(",")]:
                f = int(round(frac * n))
                for mode in args.stamps.split(","):
                    rows = _rows(attacks, f, n, d, mode, args, byzfl, caps, het, factors == "tied")
                    _print_panel(rows, frac, f, n, mode, args.compact, het, factors)
    print(f"\nwall time {time.perf_counter() - t0:.1f} s")
    return 0
