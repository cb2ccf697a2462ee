"""Simulated entanglement-based key distribution (BBM92) for ``auth=qkd`` (simulation only).

Model
-----
Each end-to-end pair the broker delivers between a client (Alice) and the server (Bob) is
a Bell-diagonal state ``rho = sum_j p_j |B_j><B_j|`` over (Phi+, Phi-, Psi+, Psi-). Both
parties measure in Z or X (X with probability ``p_x``, independently). For Phi+ the
outcomes agree in both bases; Phi- flips X; Psi+ flips Z; Psi- flips both, so

    e_Z = p(Psi+) + p(Psi-),        e_X = p(Phi-) + p(Psi-).

Werner pairs of fidelity F (``p = (F, (1-F)/3, (1-F)/3, (1-F)/3)``) give
``e_Z = e_X = 2(1 - F)/3``; dephased pairs (``p = (F, 1-F, 0, 0)``) give e_Z = 0,
e_X = 1 - F. Outcomes are *sampled* per pair (Alice's bit uniform, Bob's flipped with the
component's error for the basis), then sifted (equal bases).

Parameter estimation. Z-sifted bits are the key basis; a random ``test_fraction`` of them is
disclosed to estimate e_Z; all X-sifted bits (k of them) are disclosed to estimate e_X,
which bounds the phase error of the n remaining Z key bits. With random sampling without
replacement (Serfling), with probability >= 1 - eps the key bits' phase-error rate is below
``e_X_hat + delta`` with

    delta(n, k, eps) = sqrt( (n + k) (k + 1) ln(1/eps) / (2 n k^2) )      ("serfling")

(``"hoeffding"``: ``sqrt(ln(1/eps) / (2k))``, i.i.d. test bits only, the optimistic
textbook margin). Abort when ``e_X_hat + delta > Q_tol`` or ``e_Z_hat > Q_tol``, where
Q_tol is the QBER at which the asymptotic rate ``1 - h(Q) - f_EC h(Q)`` vanishes
(``h(Q_tol) = 1/(1 + f_EC)``: 10.0 % at f_EC = 1.15, 11.0 % at f_EC = 1).

Error correction is modelled, not run: Bob's key bits are corrected to Alice's and the
leakage counted as ``leak_EC = ceil(f_EC n h(e_key)) + ceil(log2(2/eps))`` (syndrome at
efficiency f_EC on the actual error rate e_key, plus the verification hash).

Privacy amplification: 2-universal Toeplitz hashing of the n key bits to ``key_bits``
output bits, allowed when

    l = floor( n (1 - h(e_X_hat + delta)) - leak_EC - 2 log2(1/eps) ) >= key_bits.

If the estimate passes but l < key_bits, the pairs stay in the pool and accumulate over
rounds (no abort). eps = 1e-10 is used for each of parameter estimation, correctness
and privacy amplification. HKDF is not used here: it is no privacy amplification.

Simulation boundary
-------------------
A real Alice measures her halves; here both halves are sampled by the seeded stream
``rng(seed, "qkd", node, epoch)`` from the *public* description of the pairs (counts and
Bell weights per batch, which the server sends in the instruction's ``"fedqnn-auth"``
record as ``qkd-epoch``, ``qkd-counts``, ``qkd-bell``). The client re-runs
:func:`bbm92_exchange` on the same data and so learns the same key. The key's secrecy in
simulation is the seed's: the model measures pair cost, aborts and the protocol flow, not
security against anyone who knows the run seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from fedqnn.seeding import rng as seeded_rng

__all__ = [
    "BellState",
    "werner",
    "dephased",
    "qber",
    "binary_entropy",
    "finite_size_margin",
    "qber_threshold",
    "key_length",
    "toeplitz_hash",
    "toeplitz_matrix",
    "ExchangeResult",
    "bbm92_exchange",
    "pairs_needed",
    "QkdKeyManager",
    "client_key_from_config",
]

# --- states and rates -------------------------------------------------------------------

BellState = tuple[float, float, float, float]
"""Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-), summing to 1."""


def werner(fidelity: float) -> BellState:
    """Werner state: ``(F, (1-F)/3, (1-F)/3, (1-F)/3)``."""
    r = (1.0 - fidelity) / 3.0
    return (float(fidelity), r, r, r)


def dephased(fidelity: float) -> BellState:
    """Phase-damped Phi+: ``(F, 1-F, 0, 0)``."""
    return (float(fidelity), 1.0 - float(fidelity), 0.0, 0.0)


def qber(state: BellState) -> tuple[float, float]:
    """``(e_Z, e_X) = (p(Psi+) + p(Psi-), p(Phi-) + p(Psi-))``."""
    _, pm, sp, sm = state
    return sp + sm, pm + sm


def binary_entropy(p: float) -> float:
    """``h(p) = -p log2 p - (1-p) log2(1-p)`` (0 at 0 and 1)."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def finite_size_margin(n: int, k: int, eps: float, kind: str = "serfling") -> float:
    """delta(n, k, eps): Serfling ``sqrt((n+k)(k+1) ln(1/eps) / (2 n k^2))`` or Hoeffding
    ``sqrt(ln(1/eps)/(2k))``; +inf when n or k is 0."""
    if k <= 0 or n <= 0:
        return math.inf
    if kind == "hoeffding":
        return math.sqrt(math.log(1 / eps) / (2 * k))
    if kind != "serfling":
        raise ValueError(f"unknown margin {kind!r}")
    return math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k))


@lru_cache(maxsize=64)
def qber_threshold(f_ec: float = 1.15) -> float:
    """Q_tol with ``1 - h(Q) - f_EC h(Q) = 0``, i.e. ``h(Q_tol) = 1/(1 + f_EC)``."""
    lo, hi, target = 0.0, 0.5, 1.0 / (1.0 + f_ec)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binary_entropy(mid) < target else (lo, mid)
    return lo


def key_length(n: int, e_phase_upper: float, leak_ec: float, eps: float) -> int:
    """``l = floor(n (1 - h(e_ph^U)) - leak_EC - 2 log2(1/eps))`` (may be negative)."""
    e = min(0.5, max(0.0, e_phase_upper))
    return math.floor(n * (1 - binary_entropy(e)) - leak_ec - 2 * math.log2(1 / eps))


def leak_ec(n: int, e_key: float, f_ec: float, eps: float) -> int:
    """``ceil(f_EC n h(e_key)) + ceil(log2(2/eps))``: syndrome plus verification hash."""
    return math.ceil(f_ec * n * binary_entropy(e_key)) + math.ceil(math.log2(2 / eps))


# --- Toeplitz hashing -------------------------------------------------------------------


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8), bitorder="little").tobytes(), "little")


def toeplitz_hash(seed_bits: np.ndarray, x_bits: np.ndarray, out_len: int) -> np.ndarray:
    """``y = T x (mod 2)`` with the out_len x n Toeplitz matrix ``T[i, j] = s[i - j + n - 1]``
    defined by the ``n + out_len - 1`` bits ``s`` (a 2-universal family over the choice
    of s). Exact GF(2) arithmetic on Python integers."""
    x_bits = np.asarray(x_bits, dtype=np.uint8).ravel()
    seed_bits = np.asarray(seed_bits, dtype=np.uint8).ravel()
    n = x_bits.size
    if seed_bits.size != n + out_len - 1:
        raise ValueError("a Toeplitz seed has n + out_len - 1 bits")
    x_rev = _bits_to_int(x_bits[::-1])  # bit j' of x_rev is x[n-1-j']
    s = _bits_to_int(seed_bits)
    mask = (1 << n) - 1
    # y_i = sum_j s[i + n - 1 - j] x[j] = sum_j' s[i + j'] x_rev[j']
    return np.fromiter((((s >> i) & mask & x_rev).bit_count() & 1 for i in range(out_len)), dtype=np.uint8, count=out_len)


def toeplitz_matrix(seed_bits: np.ndarray, n: int, out_len: int) -> np.ndarray:
    """The explicit matrix (for tests): ``T[i, j] = s[i - j + n - 1]``."""
    s = np.asarray(seed_bits, dtype=np.uint8).ravel()
    i = np.arange(out_len)[:, None]
    j = np.arange(n)[None, :]
    return s[i - j + n - 1]


# --- one exchange -----------------------------------------------------------------------

_Z_ERR = np.array([0, 0, 1, 1], dtype=np.uint8)  # Phi+, Phi-, Psi+, Psi-
_X_ERR = np.array([0, 1, 0, 1], dtype=np.uint8)


@dataclass(frozen=True)
class ExchangeResult:
    """Outcome of one BBM92 run over a pool of pairs."""

    status: str  # "ok" | "abort" | "insufficient"
    key: bytes | None
    pairs: int
    n_key: int
    k_test_x: int
    k_test_z: int
    qber_z: float
    qber_x: float
    delta: float
    leak_ec: int
    max_length: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _expand(batches: Sequence[tuple[int, BellState]]) -> np.ndarray:
    probs = np.concatenate([np.tile(np.asarray(s, dtype=float), (int(c), 1)) for c, s in batches if int(c) > 0]) if batches else np.zeros((0, 4))
    return probs


def bbm92_exchange(
    batches: Sequence[tuple[int, BellState]],
    rng: np.random.Generator,
    *,
    key_bits: int = 256,
    eps: float = 1e-10,
    f_ec: float = 1.15,
    p_x: float = 0.5,
    test_fraction: float = 0.05,
    margin: str = "serfling",
) -> ExchangeResult:
    """Run BBM92 on ``batches`` of ``(count, Bell weights)``; see the module docstring."""
    counts = [int(c) for c, _ in batches]
    N = int(sum(c for c in counts if c > 0))
    # component of each pair: sampled per batch
    comp = np.empty(N, dtype=np.int64)
    pos = 0
    for c, s in batches:
        c = int(c)
        if c <= 0:
            continue
        p = np.clip(np.asarray(s, dtype=float), 0.0, None)
        p = p / p.sum() if p.sum() > 0 else np.array([1.0, 0, 0, 0])
        comp[pos : pos + c] = rng.choice(4, size=c, p=p)
        pos += c
    basis_a = rng.random(N) < p_x  # True = X
    basis_b = rng.random(N) < p_x
    alice = rng.integers(0, 2, size=N, dtype=np.uint8)
    err = np.where(basis_a, _X_ERR[comp], _Z_ERR[comp]).astype(np.uint8)
    bob = alice ^ err
    sift = basis_a == basis_b
    zi = np.flatnonzero(sift & ~basis_a)
    xi = np.flatnonzero(sift & basis_a)
    k_x = int(xi.size)
    e_x = float(err[xi].mean()) if k_x else 1.0
    k_z = int(math.ceil(test_fraction * zi.size)) if zi.size else 0
    perm = rng.permutation(zi.size)
    z_test, z_key = zi[perm[:k_z]], zi[perm[k_z:]]
    e_z = float(err[z_test].mean()) if k_z else 1.0
    n = int(z_key.size)
    delta = finite_size_margin(n, k_x, eps, margin)
    q_tol = qber_threshold(f_ec)

    def result(status: str, key: bytes | None, leak: int = 0, lmax: int = 0) -> ExchangeResult:
        return ExchangeResult(status, key, N, n, k_x, k_z, e_z, e_x, delta, leak, lmax)

    if n == 0 or k_x == 0 or k_z == 0:
        return result("insufficient", None)
    if e_x + delta > q_tol or e_z > q_tol:
        return result("abort", None)
    e_key = float(err[z_key].mean())
    leak = leak_ec(n, e_key, f_ec, eps)
    lmax = key_length(n, e_x + delta, leak, eps)
    if lmax < key_bits:
        return result("insufficient", None, leak, lmax)
    # error correction (modelled): Bob's bits become Alice's; verified equal
    bob_corrected = bob[z_key] ^ err[z_key]
    assert np.array_equal(bob_corrected, alice[z_key])
    seed_bits = rng.integers(0, 2, size=n + key_bits - 1, dtype=np.uint8)  # public
    key_bits_out = toeplitz_hash(seed_bits, alice[z_key], key_bits)
    key = np.packbits(key_bits_out).tobytes()
    return result("ok", key, leak, lmax)


def _expected_length(
    N: float, state: BellState, key_bits: int, eps: float, f_ec: float, p_x: float, t: float, margin: str,
    sigmas: float,
) -> int:
    e_z, e_x = qber(state)
    n_z = N * (1 - p_x) ** 2
    k_x = int(N * p_x**2)
    n = int(n_z * (1 - t))
    if k_x > 0:  # planning headroom for the statistical fluctuation of the estimate
        e_x = e_x + sigmas * math.sqrt(e_x * (1 - e_x) / k_x)
    d = finite_size_margin(n, k_x, eps, margin)
    if n <= 0 or e_x + d > qber_threshold(f_ec) or e_z > qber_threshold(f_ec):
        return -1
    return key_length(n, e_x + d, leak_ec(n, e_z, f_ec, eps), eps)


def pairs_needed(
    state: BellState | float,
    key_bits: int = 256,
    *,
    eps: float = 1e-10,
    f_ec: float = 1.15,
    p_x: float = 0.5,
    test_fraction: float = 0.05,
    margin: str = "serfling",
    headroom_sigmas: float = 3.0,
    max_pairs: int = 10**8,
) -> int | None:
    """Smallest pair count that yields ``key_bits`` when the X-basis estimate comes out
    ``headroom_sigmas`` standard deviations above its mean ``e_X`` (so an exchange
    planned with it rarely falls short); float ``state`` = Werner fidelity. None if
    impossible (QBER at or above the threshold)."""
    if not isinstance(state, tuple):
        state = werner(float(state))
    args = (state, key_bits, eps, f_ec, p_x, test_fraction, margin, float(headroom_sigmas))
    if _expected_length(max_pairs, *args) < key_bits:
        return None
    lo, hi = 1, max_pairs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _expected_length(mid, *args) >= key_bits:
            hi = mid
        else:
            lo = mid
    return hi


# --- per-node key lifecycle (server side) ------------------------------------------------


@dataclass
class _NodeKey:
    epoch: int = 0
    key: bytes | None = None
    since: int | None = None  # round the key was established
    batches: list[tuple[int, BellState]] | None = None  # public data of the current key


class QkdKeyManager:
    """Pairs accumulate per node across rounds; keys refresh every ``refresh_every`` rounds.

    Per round the integrator calls :meth:`demand` (pairs to request from the broker),
    :meth:`deposit` (pairs delivered), then :meth:`step` (attempt exchanges, returns
    ``events``), :meth:`sync_verifier`, :meth:`public_config` (instruction entries) and
    reads :meth:`round_stats` (``key_pairs``).
    """

    def __init__(
        self,
        seed: int,
        *,
        refresh_every: int = 5,
        key_bits: int = 256,
        eps: float = 1e-10,
        f_ec: float = 1.15,
        p_x: float = 0.5,
        test_fraction: float = 0.05,
        margin: str = "serfling",
        min_attempt_pairs: int = 2000,
    ) -> None:
        self.seed = int(seed)
        self.refresh_every = max(1, int(refresh_every))
        self.params = dict(key_bits=key_bits, eps=eps, f_ec=f_ec, p_x=p_x, test_fraction=test_fraction, margin=margin)
        self.min_attempt_pairs = int(min_attempt_pairs)
        self._pool: dict[str, list[tuple[int, BellState]]] = {}
        self._keys: dict[str, _NodeKey] = {}
        self._deposited = 0
        self._consumed = 0
        self.total_pairs = 0

    def _due(self, node: str, server_round: int) -> bool:
        k = self._keys.get(node)
        return k is None or k.key is None or k.since is None or server_round - k.since >= self.refresh_every

    def _pool_size(self, node: str) -> int:
        return sum(c for c, _ in self._pool.get(node, []))

    def _attempt_size(self, node: str) -> int:
        pool = self._pool.get(node, [])
        total = self._pool_size(node)
        if total == 0:
            return self.min_attempt_pairs
        mean = tuple(float(sum(c * s[i] for c, s in pool) / total) for i in range(4))
        need = pairs_needed(mean, **self.params)  # type: ignore[arg-type]
        return self.min_attempt_pairs if need is None else max(need, 1)

    def demand(self, node: str, server_round: int, fidelity: float | None = None) -> int:
        """Pairs still wanted from the broker for ``node``'s next key: non-zero from one
        round before the key is due (so a refresh can happen on time) until it is made.
        ``fidelity`` (Werner) sizes the request; else the pool's mean state does."""
        k = self._keys.get(node)
        if k is not None and k.key is not None and k.since is not None and server_round + 1 - k.since < self.refresh_every:
            return 0
        if fidelity is not None:
            need = pairs_needed(float(fidelity), **self.params)  # type: ignore[arg-type]
            need = self.min_attempt_pairs if need is None else need
        else:
            need = self._attempt_size(node)
        return max(0, need - self._pool_size(node))

    def deposit(self, node: str, count: int, state: BellState | float) -> None:
        """Add ``count`` delivered pairs of ``state`` (float = Werner fidelity)."""
        if int(count) <= 0:
            return
        st = werner(float(state)) if not isinstance(state, tuple) else tuple(float(x) for x in state)
        self._pool.setdefault(node, []).append((int(count), st))  # type: ignore[arg-type]
        self._deposited += int(count)

    def step(self, server_round: int, nodes: Iterable[str]) -> list[dict[str, str]]:
        """Attempt key exchanges for nodes whose key is due and whose pool is large enough.
        Returns ``events`` entries (``{"node", "event": "qkd-abort"}``)."""
        events = []
        for node in sorted(nodes):
            if not self._due(node, server_round):
                continue
            size = self._pool_size(node)
            if size == 0 or size < self._attempt_size(node):
                continue  # keep accumulating; a current key stays in use meanwhile
            nk = self._keys.setdefault(node, _NodeKey())
            batches = self._pool.pop(node)
            res = bbm92_exchange(batches, seeded_rng(self.seed, "qkd", node, nk.epoch + 1), **self.params)  # type: ignore[arg-type]
            if res.status == "insufficient":
                self._pool[node] = batches  # keep accumulating
                continue
            self._consumed += res.pairs
            self.total_pairs += res.pairs
            nk.epoch += 1
            if res.ok:
                nk.key, nk.since, nk.batches = res.key, server_round, batches
            else:
                nk.key, nk.since, nk.batches = None, None, None
                events.append({"node": node, "event": "qkd-abort"})
        return events

    def key(self, node: str) -> tuple[int, bytes] | None:
        k = self._keys.get(node)
        return (k.epoch, k.key) if k is not None and k.key is not None else None

    def sync_verifier(self, verifier: Any) -> None:
        """Tell a :class:`~fedqnn.security.verifier.Verifier` which nodes must MAC."""
        for node, k in self._keys.items():
            verifier.set_qkd_key(node, k.epoch, k.key)

    def public_config(self, node: str) -> dict[str, Any]:
        """Instruction entries from which the client re-derives its key ({} if none)."""
        k = self._keys.get(node)
        if k is None or k.key is None or not k.batches:
            return {}
        return {
            "qkd-epoch": int(k.epoch),
            "qkd-counts": [int(c) for c, _ in k.batches],
            "qkd-bell": [float(x) for _, s in k.batches for x in s],
            "qkd-params": [float(self.params["key_bits"]), float(self.params["eps"]), float(self.params["f_ec"]),
                           float(self.params["p_x"]), float(self.params["test_fraction"])],
            "qkd-margin": str(self.params["margin"]),
        }

    def round_stats(self) -> dict[str, int]:
        """Pairs deposited into key pools and consumed by exchanges since the last call."""
        out = {"key_pairs": self._deposited, "consumed": self._consumed}
        self._deposited = self._consumed = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "fedqnn-qkd/1",
            "pool": {n: [[c, list(s)] for c, s in b] for n, b in self._pool.items()},
            "keys": {
                n: {"epoch": k.epoch, "key": k.key.hex() if k.key else None, "since": k.since,
                    "batches": [[c, list(s)] for c, s in k.batches] if k.batches else None}
                for n, k in self._keys.items()
            },
            "total_pairs": self.total_pairs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def b(lst: Any) -> list[tuple[int, BellState]]:
            return [(int(c), tuple(float(x) for x in s)) for c, s in lst]  # type: ignore[misc]

        self._pool = {n: b(v) for n, v in state["pool"].items()}
        self._keys = {
            n: _NodeKey(int(v["epoch"]), bytes.fromhex(v["key"]) if v["key"] else None, v["since"],
                        b(v["batches"]) if v["batches"] else None)
            for n, v in state["keys"].items()
        }
        self.total_pairs = int(state.get("total_pairs", 0))


# --- client side --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _client_key(
    seed: int, node: str, epoch: int, counts: tuple[int, ...], bell: tuple[float, ...],
    params: tuple[float, ...], margin: str,
) -> bytes | None:
    batches = [(c, tuple(bell[4 * i : 4 * i + 4])) for i, c in enumerate(counts)]
    kw: dict[str, Any] = {"margin": margin}
    if len(params) == 5:
        kw.update(key_bits=int(params[0]), eps=params[1], f_ec=params[2], p_x=params[3], test_fraction=params[4])
    res = bbm92_exchange(batches, seeded_rng(seed, "qkd", node, epoch), **kw)  # type: ignore[arg-type]
    return res.key


def client_key_from_config(auth: Any, context: Any, name: str, seed: int) -> tuple[int, bytes] | None:
    """The client's half of the key from the instruction's public QKD data (simulation
    boundary: re-runs the seeded exchange). None when the entries are absent/bad.

    The exchange parameters come from ``qkd-params`` (``[key_bits, eps, f_ec, p_x,
    test_fraction]``) and ``qkd-margin``; defaults when absent."""
    try:
        epoch = int(auth["qkd-epoch"])
        counts = tuple(int(c) for c in auth["qkd-counts"])
        bell = tuple(float(x) for x in auth["qkd-bell"])
        params = tuple(float(x) for x in auth.get("qkd-params", []) or [])
        margin = str(auth.get("qkd-margin", "serfling"))
        if len(bell) != 4 * len(counts) or margin not in ("serfling", "hoeffding"):
            return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    key = _client_key(int(seed), name, epoch, counts, bell, params, margin)
    return (epoch, key) if key is not None else None
