"""Privacy amplification for QKD keys: 2-universal Toeplitz hashing over GF(2).

The n key bits x are hashed to ``out_len`` bits ``y = T x (mod 2)`` with the Toeplitz matrix
``T[i, j] = s[i - j + n - 1]`` of ``n + out_len - 1`` public seed bits s (see
:mod:`fedqnn.security.qkd` for the length the leftover hash lemma allows).
"""

from __future__ import annotations

import numpy as np

__all__ = ["toeplitz_hash", "toeplitz_matrix"]


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
