"""One simulated BBM92 exchange over a pool of Bell-diagonal pairs (see :mod:`fedqnn.security.qkd`).

Outcomes are sampled per pair (Alice's bit uniform, Bob's flipped with the component's
error for the basis: Phi- flips X, Psi+ flips Z, Psi- both), then sifted; a ``test_fraction``
of the Z-sifted bits estimates e_Z, all X-sifted bits e_X. Abort when
``e_X_hat + delta > Q_tol`` or ``e_Z_hat > Q_tol``; error correction is modelled (leakage
``leak_EC``), privacy amplification is Toeplitz hashing to ``key_bits`` when
``l = floor(n (1 - h(e_X_hat + delta)) - leak_EC - 2 log2(1/eps)) >= key_bits``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedqnn.security.qkd_hashing import toeplitz_hash
from fedqnn.security.qkd_rates import (
    BellState,
    finite_size_margin,
    key_length,
    leak_ec,
    qber_threshold,
)

__all__ = ["ExchangeResult", "bbm92_exchange"]

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
