"""White-box attacks aimed at CEAS's own consensus (issue 16): boundary, fit capture, optimising.

Every attack has the zoo's signature ``fn(own, honest, rng, *, n, f, **params) -> (d,) array``;
the attacker knows the honest updates (omniscient), the filter's rules and its defaults. Each
Byzantine node keeps its *own* honest residual r_b = x_own - m (m the honest mean): a copy of an
honest node's noise, so it passes the noise-floor tests (``near``, ``pair``) by construction, and
adds a bias along one direction u shared by all colluders (default u = -m / ||m||, against the
consensus; ``direction="random"``: a fixed seeded direction, orthogonal to m).

* ``boundary``: the largest bias the distance tests let through. With E the honest nodes' median
  squared distance to m and hi the filter's chi-square far bound (z = 3.5, d_eff = d),
  x_b = m + r_b,perp + a u with a^2 = margin hi E - ||r_b,perp||^2 (just inside ``far``); with
  ``evade_direction`` the bias is also kept below the directional test, a <= margin z_dir sqrt(E/d).
* ``fit-capture``: claims to be ``factor`` times noisier than it is (its reported shots divided by
  ``factor``: always a physical claim) and sits ``stretch`` times farther (in squared distance)
  than that claim predicts, sqrt(stretch factor) x its own distance, along u: where honest noise
  factors tie (identical devices) only the attackers' claimed abscissae differ, so a fit on
  claimed variances takes its slope from them and reads kappa ~ stretch times too large (before
  issue 16 every honest node then looked ``near``); its own weight falls by the factor.
* ``optimising`` (the min-max idea aimed at our rule, Shejwalkar & Houmansadr 2021): simulates the
  server's consensus round (:func:`strategies.ceas_math.consensus_round`, equal server records,
  the default filter) on the honest updates plus f colluders x_j = m + r_j,perp + gamma u (r_j
  honest residuals with rolled coordinates, standing in for the colluders' own), and sends the gamma on a
  geometric grid that moves the simulated aggregate furthest from m.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["boundary", "fit_capture", "fit_capture_claim", "optimising"]


def _setup(own: np.ndarray, honest: np.ndarray | None, name: str, direction: str) -> tuple[np.ndarray, ...]:
    """(own, honest, m, u, own residual orthogonal to u)."""
    from clients.attacks.zoo import AttackError, _honest, _own

    v = _own(own)
    h = _honest(honest, v.shape[0], name, min_rows=2)
    m = h.mean(axis=0)
    mn = float(np.linalg.norm(m))
    if direction == "consensus":
        if mn == 0.0:
            raise AttackError(f"{name}: the honest mean is zero; use direction='random'")
        u = -m / mn
    elif direction == "random":
        u = np.random.default_rng(20261203).normal(size=v.shape[0])
        if mn > 0:
            u -= float(u @ m) / (mn * mn) * m
        u /= float(np.linalg.norm(u))
    else:
        raise AttackError(f"{name}: direction must be 'consensus' or 'random'; got {direction!r}")
    r = v - m
    return v, h, m, u, r - float(r @ u) * u


def _far_bound(d: int, z: float = 3.5, stamp_log_sd: float = 0.2) -> float:
    from strategies.ceas_tests import chi2_bounds

    return chi2_bounds(z, float(d), stamp_log_sd)[1]


def boundary(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
             *, n: int | None = None, f: int = 1, margin: float = 0.9, direction: str = "consensus",
             evade_direction: bool = False, z_dir: float = 4.0) -> np.ndarray:
    """Boundary attack: just inside the ``far`` bound, all colluders biased along u (module doc)."""
    from clients.attacks.zoo import AttackError

    if not 0.0 < margin <= 1.0:
        raise AttackError(f"boundary: margin must be in (0, 1]; got {margin}")
    v, h, m, u, r_perp = _setup(own, honest, "boundary", direction)
    d = v.shape[0]
    e = float(np.median(np.sum((h - m) ** 2, axis=1)))
    a = math.sqrt(max(margin * _far_bound(d) * e - float(r_perp @ r_perp), 0.0))
    if evade_direction:
        a = min(a, margin * z_dir * math.sqrt(e / d))
    return m + r_perp + a * u


def fit_capture_claim(calibration: dict[str, Any], factor: float = 20.0) -> dict[str, Any]:
    """The claim of ``fit-capture``: the same error rates, shots / factor (at least 1)."""
    return {**calibration, "shots": max(1, int(round(float(calibration.get("shots", 0)) / factor)))}


def fit_capture(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
                *, n: int | None = None, f: int = 1, factor: float = 20.0, stretch: float = 4.0,
                direction: str = "consensus") -> np.ndarray:
    """Fit-capture attack: a claimed ``factor`` x noisier calibration and the distance it predicts
    (module doc); pair it with :func:`fit_capture_claim`."""
    from clients.attacks.zoo import AttackError

    if not (factor >= 1.0 and stretch >= 1.0):
        raise AttackError(f"fit-capture: factor and stretch must be >= 1; got {factor}, {stretch}")
    v, h, m, u, r_perp = _setup(own, honest, "fit-capture", direction)
    own_d2 = float(np.sum((v - m) ** 2))
    a = math.sqrt(max(stretch * factor * own_d2 - float(r_perp @ r_perp), 0.0))
    return m + r_perp + a * u


def _stand_ins(h: np.ndarray, m: np.ndarray, u: np.ndarray, f: int) -> np.ndarray:
    """f honest-sized residuals for the simulated colluders: honest residuals with their
    coordinates rolled by j + 1 (the same norms, duplicating no honest node), orthogonal to u."""
    r = np.stack([np.roll(h[j % h.shape[0]] - m, j + 1) for j in range(f)])
    return r - np.outer(r @ u, u)


def optimising(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
               *, n: int | None = None, f: int = 1, grid: int = 16, direction: str = "consensus",
               max_scale: float = 4.0) -> np.ndarray:
    """Optimising attacker against CEAS's round (module doc): the most damaging gamma under the
    simulated filter, on gamma in {0} and a geometric grid up to max_scale x the honest RMS
    distance."""
    from clients.attacks.zoo import AttackError
    from strategies.ceas_math import consensus_round

    if grid < 2:
        raise AttackError(f"optimising: grid must be >= 2; got {grid}")
    v, h, m, u, r_perp = _setup(own, honest, "optimising", direction)
    ff = max(int(f), 1)
    rms = math.sqrt(float(np.mean(np.sum((h - m) ** 2, axis=1))))
    stand_in = _stand_ins(h, m, u, ff)
    gammas = np.concatenate([[0.0], rms * max_scale * np.geomspace(1e-3, 1.0, grid - 1)])
    best, best_gamma = -1.0, 0.0
    for gamma in gammas:
        sim = np.vstack([h, m + stand_in + gamma * u])
        ones = np.ones(sim.shape[0])
        agg = consensus_round(sim, ones, ones).result.aggregate
        dmg = float(np.linalg.norm(agg - m))
        if dmg > best:
            best, best_gamma = dmg, float(gamma)
    return m + r_perp + best_gamma * u
