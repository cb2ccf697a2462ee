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

from fedqnn.security.qkd_bbm92 import ExchangeResult, bbm92_exchange
from fedqnn.security.qkd_hashing import toeplitz_hash, toeplitz_matrix
from fedqnn.security.qkd_keys import QkdKeyManager, client_key_from_config
from fedqnn.security.qkd_rates import (
    BellState,
    binary_entropy,
    dephased,
    finite_size_margin,
    key_length,
    leak_ec,  # noqa: F401  (public, outside __all__: tests call qkd.leak_ec)
    pairs_needed,
    qber,
    qber_threshold,
    werner,
)

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
