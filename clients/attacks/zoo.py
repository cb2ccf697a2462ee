"""Byzantine attacks on update vectors: pure functions, one signature.

    attack(own, honest, rng, *, n, f, **params) -> (d,) malicious update

own     the attacker's own honest update (d,) (what it would have sent)
honest  the honest updates (m, d) it knows: omniscient/colluding attacks need them (the server-side
        adversary hook passes them after the honest replies arrive); None for local attacks
rng     a seeded ``np.random.Generator`` (``fedqnn.seeding.rng(seed, "attack", round, pid)``)
n, f    participants this round and Byzantine among them (ALIE's z and Fang's Krum need them)

Nothing is mutated; the result is a new array. Colluders calling with the same inputs and
generator state get the same vector. Each docstring gives the formula and the paper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import norm

from strategies.robust.flower import krum_select

__all__ = [
    "AttackError",
    "sign_flip",
    "gaussian",
    "scaled",
    "alie_z",
    "alie",
    "ipm",
    "mimic",
    "perturbation",
    "min_max",
    "min_sum",
    "stamp_adaptive",
    "fang_krum",
    "fang_median",
    "stamp_inflation",
    "inflate_stamp",
    "inflate_calibration",
    "flip_labels",
]


class AttackError(ValueError):
    """An attack's inputs are unusable (e.g. an omniscient attack without the honest updates)."""


def _own(own: object) -> np.ndarray:
    v = np.asarray(own, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise AttackError(f"own update must be a finite 1-D vector; got shape {v.shape}")
    return v


def _honest(honest: object, d: int | None, attack: str, *, min_rows: int = 1) -> np.ndarray:
    if honest is None:
        raise AttackError(f"{attack} is omniscient: it needs the honest updates (honest=None given)")
    h = np.asarray(honest, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] < min_rows or (d is not None and h.shape[1] != d):
        raise AttackError(f"{attack}: honest updates must be ({'>=' + str(min_rows)}, {d}); got {h.shape}")
    if not np.all(np.isfinite(h)):
        raise AttackError(f"{attack}: honest updates must be finite")
    return h


# ----------------------------------------------------------------------------------------------
# local (non-omniscient) attacks


def sign_flip(own: np.ndarray, honest: np.ndarray | None = None, rng: np.random.Generator | None = None,
              *, n: int | None = None, f: int = 1, scale: float = 1.0) -> np.ndarray:
    """Sign flip: x_byz = -scale x_own, minus the attacker's own honest update (scale 1 by default)."""
    return -float(scale) * _own(own)


def gaussian(own: np.ndarray, honest: np.ndarray | None = None, rng: np.random.Generator | None = None,
             *, n: int | None = None, f: int = 1, sigma: float = 1.0, mu: float = 0.0,
             mode: str = "replace") -> np.ndarray:
    """Gaussian attack: x_byz ~ N(mu, sigma^2 I) (``mode="replace"``, as in ByzFL), or
    x_own + N(mu, sigma^2 I) (``mode="add"``). Needs ``rng``."""
    v = _own(own)
    if rng is None:
        raise AttackError("gaussian needs a seeded rng")
    noise = rng.normal(loc=float(mu), scale=float(sigma), size=v.shape)
    if mode == "replace":
        return noise
    if mode == "add":
        return v + noise
    raise AttackError(f"gaussian: mode must be 'replace' or 'add'; got {mode!r}")


def scaled(own: np.ndarray, honest: np.ndarray | None = None, rng: np.random.Generator | None = None,
           *, n: int | None = None, f: int = 1, factor: float = 10.0) -> np.ndarray:
    """Scaled (boosted) update: x_byz = factor x_own (model-replacement style boosting,
    Bagdasaryan et al., AISTATS 2020)."""
    return float(factor) * _own(own)


def stamp_inflation(own: np.ndarray, honest: np.ndarray | None = None, rng: np.random.Generator | None = None,
                    *, n: int | None = None, f: int = 1) -> np.ndarray:
    """Stamp/calibration inflation leaves the update honest (a copy of x_own); the lie is in the
    claim: see :func:`inflate_calibration` / :func:`inflate_stamp`, which the client applies to
    what it reports."""
    return _own(own).copy()


def inflate_stamp(stamp: float | np.ndarray, factor: float = 10.0) -> float | np.ndarray:
    """The claimed stamp: phi_claim = factor x phi (claims factor-times less noise)."""
    if not factor > 0:
        raise AttackError("inflate_stamp: factor must be > 0")
    return np.asarray(stamp, dtype=np.float64) * float(factor) if np.ndim(stamp) else float(stamp) * float(factor)


_ERROR_HINTS = ("depol", "readout", "error", "noise", "p_gate", "p1", "p2", "gamma", "rate")
_SHOT_HINTS = ("shot",)


def inflate_calibration(calibration: Mapping[str, Any], factor: float = 10.0, *,
                        error_keys: tuple[str, ...] | None = None,
                        shot_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The calibration a stamp-inflating node declares: error rates / factor, shots x factor.

    Keys are matched by name (``error_keys`` / ``shot_keys``, default: any key containing one of
    depol, readout, error, noise, rate, gamma, p1, p2, p_gate / shot); other entries and nested
    mappings are handled recursively; the input is not mutated. With c_k ~ prod(1 - 4p/3)(1 - 2r)^m
    and Sigma_k ~ 1/(S_k c_k^2) the server-side stamp rises accordingly (unless the server caps or
    measures it)."""
    if not factor >= 1:
        raise AttackError("inflate_calibration: factor must be >= 1")

    def is_err(k: str) -> bool:
        kl = k.lower()
        return kl in error_keys if error_keys is not None else any(h in kl for h in _ERROR_HINTS)

    def is_shot(k: str) -> bool:
        kl = k.lower()
        return kl in shot_keys if shot_keys is not None else any(h in kl for h in _SHOT_HINTS)

    def walk(m: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in m.items():
            if isinstance(v, Mapping):
                out[k] = walk(v)
            elif isinstance(v, bool) or not isinstance(v, int | float | np.ndarray | list | tuple):
                out[k] = v
            elif is_shot(str(k)):
                arr = np.asarray(v) * float(factor)
                out[k] = int(round(float(arr))) if isinstance(v, int) else (arr.tolist() if isinstance(v, list | tuple) else (float(arr) if np.ndim(arr) == 0 else arr))
            elif is_err(str(k)):
                arr = np.asarray(v, dtype=np.float64) / float(factor)
                out[k] = arr.tolist() if isinstance(v, list | tuple) else (float(arr) if np.ndim(arr) == 0 else arr)
            else:
                out[k] = v
        return out

    return walk(calibration)


def flip_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label flipping helper (data level): y -> num_classes - 1 - y (a new array)."""
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.integer) or np.any(y < 0) or np.any(y >= num_classes):
        raise AttackError(f"labels must be integers in [0, {num_classes})")
    return (int(num_classes) - 1 - y).astype(y.dtype)


# ----------------------------------------------------------------------------------------------
# omniscient / colluding attacks


def alie_z(n: int, f: int) -> float:
    """Baruch et al. (NeurIPS 2019), "A little is enough", Algorithm 1:

        s = floor(n/2 + 1) - f,   z = Phi^-1((n - s) / n)

    with n the number of workers and f the Byzantine count (s: the supporters the attackers need).
    Other papers use other z: e.g. (n - f - s)/(n - f) inside Phi^-1, or a fixed z (ByzFL's tau=1.5)."""
    n, f = int(n), int(f)
    if n < 1 or f < 0 or f > n:
        raise AttackError(f"alie_z needs 0 <= f <= n, n >= 1; got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    q = (n - s) / n
    if not 0.0 < q < 1.0:
        raise AttackError(f"alie_z: (n - s)/n = {q:.3g} is outside (0, 1) for n={n}, f={f} (s={s})")
    return float(norm.ppf(q))


def alie(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
         *, n: int | None = None, f: int = 1, z: float | None = None, sign: float = 1.0) -> np.ndarray:
    """A Little Is Enough (Baruch et al. 2019): x_byz,j = mu_j + sign z sigma_j per coordinate, mu and
    sigma the honest mean and standard deviation (ddof 1), z = :func:`alie_z` (n, f) by default
    (n defaults to honest count + f)."""
    h = _honest(honest, _own(own).shape[0], "alie", min_rows=2)
    nn = h.shape[0] + int(f) if n is None else int(n)
    zz = alie_z(nn, f) if z is None else float(z)
    return h.mean(axis=0) + float(sign) * zz * h.std(axis=0, ddof=1)


def ipm(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
        *, n: int | None = None, f: int = 1, epsilon: float = 0.5) -> np.ndarray:
    """Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020, "Fall of empires"):
    x_byz = -epsilon mean(honest); for epsilon > 0 its inner product with the honest mean is
    -epsilon ||mean||^2 < 0."""
    h = _honest(honest, _own(own).shape[0], "ipm")
    if not epsilon > 0:
        raise AttackError("ipm: epsilon must be > 0")
    return -float(epsilon) * h.mean(axis=0)


def mimic(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
          *, n: int | None = None, f: int = 1, index: int | None = 0) -> np.ndarray:
    """Mimic (Karimireddy, He, Jaggi, ICLR 2022): every Byzantine node copies one honest update,
    over-representing it. ``index`` picks it (None: the honest update with the largest projection
    on the honest updates' top principal direction, the paper's heuristic in one round)."""
    h = _honest(honest, _own(own).shape[0], "mimic")
    if index is None:
        c = h - h.mean(axis=0)
        _, _, vt = np.linalg.svd(c, full_matrices=False)
        index = int(np.argmax(np.abs(c @ vt[0])))
    if not 0 <= int(index) < h.shape[0]:
        raise AttackError(f"mimic: index {index} out of range for {h.shape[0]} honest updates")
    return h[int(index)].copy()


def perturbation(honest: np.ndarray, kind: str = "std") -> np.ndarray:
    """Shejwalkar & Houmansadr's perturbation vectors p (NDSS 2021, "Manipulating the Byzantine"):
    ``unit``: -mu/||mu|| (inverse unit vector), ``std``: -sigma (inverse standard deviation),
    ``sign``: -sign(mu) (inverse sign); mu, sigma the honest mean and coordinate-wise std."""
    h = np.asarray(honest, dtype=np.float64)
    mu = h.mean(axis=0)
    if kind == "unit":
        nrm = float(np.linalg.norm(mu))
        return -mu / nrm if nrm > 0 else np.zeros_like(mu)
    if kind == "std":
        return -h.std(axis=0)
    if kind == "sign":
        return -np.sign(mu)
    raise AttackError(f"perturbation kind must be 'unit', 'std' or 'sign'; got {kind!r}")


def _gamma_search(ok, gamma_hi: float, tol: float, max_iter: int = 200) -> float:
    """Largest gamma in [0, gamma_hi] with ok(gamma) (ok(0) holds and the feasible set is an
    interval), by bisection to ``tol`` (relative)."""
    if ok(gamma_hi):
        return gamma_hi
    lo, hi = 0.0, gamma_hi
    for _ in range(max_iter):
        if hi - lo <= tol * max(gamma_hi, 1e-300):
            break
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _pairwise_sq(h: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", h, h)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * h @ h.T, 0.0)


def min_max(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
            *, n: int | None = None, f: int = 1, kind: str = "std", tol: float = 1e-5) -> np.ndarray:
    """Min-max (Shejwalkar & Houmansadr 2021): x_byz = mu + gamma p with the largest gamma such that

        max_i ||x_byz - x_i|| <= max_{i,j} ||x_i - x_j||     (i, j over the honest updates).

    gamma is found by the paper's halving search, done as a bisection on [0, 2 D / ||p||]
    (D the max honest distance; no larger gamma can be feasible) to relative tolerance ``tol``."""
    h = _honest(honest, _own(own).shape[0], "min-max", min_rows=2)
    mu, p = h.mean(axis=0), perturbation(h, kind)
    bound = float(np.sqrt(_pairwise_sq(h).max()))
    pn = float(np.linalg.norm(p))
    if pn == 0 or bound == 0:
        return mu

    def ok(g: float) -> bool:
        return float(np.linalg.norm(mu + g * p - h, axis=1).max()) <= bound

    return mu + _gamma_search(ok, 2.0 * bound / pn, tol) * p


def stamp_adaptive(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
                   *, n: int | None = None, f: int = 1, kappa: float = 0.6) -> np.ndarray:
    """White-box attack on CEAS's stamp-consistency filter (fedqnn; cf. the bench's ``adaptive``).

    The filter judges ||x_k - c||^2 against the node's own predicted spread T_k (from its declared
    calibration) and flags updates that are too far, too near, or too close to another. The
    attacker keeps its honest calibration and its own honest distance r = ||x_own - m|| to the
    honest mean m, so its ratio looks honest, but turns a share kappa of it against m:

        x_byz = m + r (sqrt(kappa) u + sqrt(1 - kappa) v),   u = -m / ||m||,

    v the unit part of x_own - m orthogonal to u (its own noise direction, so colluders stay as
    far apart as honest nodes; a seeded random one if x_own - m is parallel to u). Hence
    ||x_byz - m|| = r and <x_byz - m, m> = -sqrt(kappa) r ||m|| < 0."""
    v_own = _own(own)
    h = _honest(honest, v_own.shape[0], "stamp-adaptive")
    if not 0.0 <= kappa <= 1.0:
        raise AttackError(f"stamp-adaptive: kappa must be in [0, 1]; got {kappa}")
    m = h.mean(axis=0)
    mn = float(np.linalg.norm(m))
    delta = v_own - m
    r = float(np.linalg.norm(delta))
    if mn == 0.0 or r == 0.0:
        return v_own.copy()
    u = -m / mn
    w = delta - float(delta @ u) * u
    if float(np.linalg.norm(w)) <= 1e-12 * r:
        if rng is None:
            raise AttackError("stamp-adaptive: own update parallel to the mean; needs a seeded rng")
        w = rng.normal(size=v_own.shape)
        w -= float(w @ u) * u
    v = w / float(np.linalg.norm(w))
    return m + r * (math.sqrt(kappa) * u + math.sqrt(1.0 - kappa) * v)


def min_sum(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
            *, n: int | None = None, f: int = 1, kind: str = "std", tol: float = 1e-5) -> np.ndarray:
    """Min-sum (Shejwalkar & Houmansadr 2021): x_byz = mu + gamma p with the largest gamma such that

        sum_i ||x_byz - x_i||^2 <= max_i sum_j ||x_i - x_j||^2    (honest i, j),

    gamma by bisection as in :func:`min_max`."""
    h = _honest(honest, _own(own).shape[0], "min-sum", min_rows=2)
    mu, p = h.mean(axis=0), perturbation(h, kind)
    bound = float(_pairwise_sq(h).sum(axis=1).max())
    pn = float(np.linalg.norm(p))
    if pn == 0 or bound == 0:
        return mu
    m = h.shape[0]

    def ok(g: float) -> bool:
        return float(np.sum((mu + g * p - h) ** 2)) <= bound

    # sum_i ||mu + g p - x_i||^2 = m g^2 ||p||^2 + sum_i ||mu - x_i||^2, so the bound is explicit
    return mu + _gamma_search(ok, math.sqrt(bound / m) / pn * 1.0000001, tol) * p


def fang_krum(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
              *, n: int | None = None, f: int = 1, lambda_min: float = 1e-5,
              max_halvings: int = 60) -> np.ndarray:
    """Fang, Cao, Jia, Gong (USENIX Security 2020), full-knowledge attack on Krum, on updates:

        x_byz = -lambda s,   s = sign(mean(honest)) (the honest direction of change),

    lambda from the paper's upper bound
        lambda_0 = min_i sum_{l in N_i} ||x_l - x_i|| / ((m - 2f - 1) sqrt(d)) + max_i ||x_i|| / sqrt(d)
    (m honest, N_i the m - f - 2 honest nearest to x_i), halved until Krum (with this f) over the
    honest updates plus f copies of x_byz selects a Byzantine one, or lambda < lambda_min. The
    selection is Flower's, the one runs aggregate with (:func:`strategies.robust.flower.krum_select`)."""
    h = _honest(honest, _own(own).shape[0], "fang-krum", min_rows=2)
    m, d = h.shape
    f = int(f)
    nn = m + f if n is None else int(n)
    s = np.sign(h.mean(axis=0))
    dist = np.sqrt(_pairwise_sq(h))
    k = max(m - f - 2, 1)
    near = np.sort(dist + np.diag(np.full(m, np.inf)), axis=1)[:, :k].sum(axis=1)
    denom = max(m - 2 * f - 1, 1)
    lam = float(near.min()) / (denom * math.sqrt(d)) + float(np.linalg.norm(h, axis=1).max()) / math.sqrt(d)
    if nn < 2 * f + 3:
        return -lam * s
    while lam >= lambda_min and max_halvings > 0:
        byz = -lam * s
        allv = np.vstack([h, np.tile(byz, (f, 1))])
        if int(krum_select(allv, f=f)[0]) >= m:
            return byz
        lam *= 0.5
        max_halvings -= 1
    return -lam * s


def fang_median(own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None = None,
                *, n: int | None = None, f: int = 1, b: float = 2.0) -> np.ndarray:
    """Fang et al. (2020), full-knowledge attack on trimmed mean / median, on updates. With
    s_j = sign(mean_j) (the honest direction), w_max,j / w_min,j the honest max / min:
    if s_j = -1 draw x_j uniformly in [w_max,j, b w_max,j] (w_max,j > 0) or [w_max,j / b, w_max,j];
    if s_j = +1 draw x_j in [w_min,j / b, w_min,j] (w_min,j > 0) or [b w_min,j, w_min,j]
    (b = 2 in the paper). Needs ``rng``."""
    h = _honest(honest, _own(own).shape[0], "fang-median", min_rows=1)
    if rng is None:
        raise AttackError("fang-median needs a seeded rng")
    if not b > 1:
        raise AttackError("fang-median: b must be > 1")
    s = np.sign(h.mean(axis=0))
    wmax, wmin = h.max(axis=0), h.min(axis=0)
    lo_neg = np.where(wmax > 0, wmax, wmax / b)
    hi_neg = np.where(wmax > 0, b * wmax, wmax)
    lo_pos = np.where(wmin > 0, wmin / b, b * wmin)
    hi_pos = np.where(wmin > 0, wmin, wmin)
    lo = np.where(s < 0, lo_neg, lo_pos)
    hi = np.where(s < 0, hi_neg, hi_pos)
    u = rng.random(h.shape[1])
    return lo + u * (hi - lo)

