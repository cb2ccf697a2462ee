"""Entanglement inventory (CEAS Definition 2): per-link stored Bell pairs with their ages.

Each link keeps an age histogram ``counts[link, a]`` of stored raw pairs, where age index
``a`` means "at most ``a`` time steps old" (a pair heralded during a step has index 1 at the
step's end; bookkeeping with the upper bound of the age is conservative: fidelities are never
over-estimated). The fidelity of a stored pair is a pure function of its link and age (see
:mod:`fedqnn.network.physics`), so ages are the whole state.

Every raw pair ends in exactly one ledger column, per link and cumulative:

* ``generated``: heralded into memory;
* ``used_raw``: consumed into a delivered end-to-end pair (through swaps and purification);
* ``expired``: discarded past the link's cut-off (its fidelity would fall below what any path
  through the link needs) or found below F_min before hand-over;
* ``wasted``: lost in a failed swap or purification, handed over below F_min, or delivered to
  an update that was then rejected;
* stored: still in memory (``counts.sum(1)``).

so ``generated.sum() == used_raw.sum() + expired.sum() + wasted.sum() + stored.sum()`` holds
at every moment (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Inventory"]

IntArray = NDArray[np.int64]


class Inventory:
    """Per-link age histograms with seeded heralded generation, ageing and cut-off discards.

    ``capacity`` (slots per link), ``cutoff_steps`` (largest age index a pair may have on the
    link; 0 means nothing can be stored), ``attempts`` (attempts per step per link) and ``p``
    (success probability per attempt) are per-link arrays; ``dt`` is the step in seconds.

    Storage is a ring buffer indexed by birth step (column ``birth % n_cols``), so ageing costs
    nothing and a step is O(links): the age index of a pair born at step ``s`` is
    ``now - s + 1``.
    """

    def __init__(
        self,
        capacity: IntArray,
        cutoff_steps: IntArray,
        attempts: IntArray,
        p: NDArray[np.float64],
        dt: float,
    ) -> None:
        self.capacity = np.asarray(capacity, dtype=np.int64)
        self.cutoff = np.asarray(cutoff_steps, dtype=np.int64)
        self.attempts = np.asarray(attempts, dtype=np.int64)
        self.p = np.asarray(p, dtype=float)
        self.dt = float(dt)
        n = len(self.capacity)
        self.n_links = n
        self.n_cols = int(self.cutoff.max(initial=0)) + 2
        self.counts = np.zeros((n, self.n_cols), dtype=np.int64)
        self.now = 0  # steps taken so far
        self.stored = np.zeros(n, dtype=np.int64)
        self.head = np.zeros(n, dtype=np.int64)  # no stored pair was born before this step
        self.up = np.ones(n, dtype=bool)
        self.generated = np.zeros(n, dtype=np.int64)
        self.used_raw = np.zeros(n, dtype=np.int64)
        self.expired = np.zeros(n, dtype=np.int64)
        self.wasted = np.zeros(n, dtype=np.int64)
        self._rows = np.arange(n)
        self._row_base = self._rows * self.n_cols  # flat index of each link's column 0
        self._stores = self.cutoff >= 1  # links that can hold a pair at all

    # ------------------------------------------------------------------ state
    def valid_after(self, steps: int, rows: NDArray[np.int64] | None = None) -> IntArray:
        """Pairs per link that will still be within the cut-off after ``steps`` more steps.

        Those are the stored pairs minus the ones born in the ``steps`` oldest admissible
        birth steps (age index > cut-off - steps), so only ``steps`` columns are read.
        """
        rows = self._rows if rows is None else rows
        k = int(steps)
        cut = self.cutoff[rows]
        out = self.stored[rows].copy()
        if k <= 0:
            return out
        # only links whose oldest possible stored pair is born inside the k oldest admissible
        # birth steps can lose any (``head`` bounds the oldest stored birth from below)
        first = self.now - cut + 1  # oldest admissible birth step
        scan = np.flatnonzero((out > 0) & (cut >= k + 1) & (self.head[rows] < first + k))
        if scan.size:
            C = self.n_cols
            cols = first[scan] % C + np.arange(k)[:, None]  # (k, links); k < cut < C: one wrap
            cols[cols >= C] -= C
            # k < cut here, so all k columns are admissible births
            out[scan] -= self.counts.reshape(-1)[cols + rows[scan] * C].sum(axis=0)
        return np.where(cut >= k + 1, out, 0)

    # ------------------------------------------------------------------ dynamics
    def step(self, want: IntArray, rng: np.random.Generator) -> None:
        """One time step: age every pair, discard past cut-off, then herald new pairs.

        Link e attempts only while up and below both ``want[e]`` new pairs and its free
        capacity; successes in ``attempts`` tries are Binomial(attempts, p) (equivalently, the
        waiting times between heralds are geometric in units of the attempt period).
        """
        self.now += 1
        cut, C = self.cutoff, self.n_cols
        flat = self.counts.reshape(-1)  # a view: counts is C-contiguous
        at = self._row_base + (self.now - cut) % C  # born at now - cut: age index cut + 1 now
        leaving = np.where(self._stores, flat[at], 0)
        flat[at] -= leaving
        self.expired += leaving
        self.stored -= leaving
        limit = np.minimum(np.asarray(want, dtype=np.int64), self.capacity - self.stored)
        limit = np.where(self.up, np.maximum(limit, 0), 0)
        act = np.nonzero(limit > 0)[0]
        if act.size:
            succ = rng.binomial(self.attempts[act], self.p[act])
            new = np.minimum(succ, limit[act])
            self.generated[act] += new
            keep = self._stores[act]
            if keep.all():
                self.head[act[self.stored[act] == 0]] = self.now
                flat[self._row_base[act] + self.now % C] += new
                self.stored[act] += new
            else:
                empty = act[keep & (self.stored[act] == 0)]
                self.head[empty] = self.now
                flat[self._row_base[act[keep]] + self.now % C] += new[keep]
                self.stored[act[keep]] += new[keep]
                self.expired[act[~keep]] += new[~keep]

    def advance(self, dt: float, want: IntArray, rng: np.random.Generator) -> None:
        """Advance by ``dt`` seconds (a whole number of steps) with the same generation limits.

        ``want`` caps the new pairs per link over the whole interval.
        """
        n = int(round(dt / self.dt))
        if n < 0 or abs(n * self.dt - dt) > 1e-9 * max(1.0, dt):
            raise ValueError(f"dt={dt} is not a whole number of steps of {self.dt}")
        left = np.asarray(want, dtype=np.int64).copy()
        for _ in range(n):
            before = self.generated.copy()
            self.step(left, rng)
            left -= self.generated - before

    def take_oldest(
        self, usage: IntArray, window: int = 8
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Remove ``usage[e]`` pairs from each link, oldest first.

        Returns ``(rows, removed, ages)`` with one entry per removed batch: the link, how many
        pairs, and their age index, ordered by link and then oldest first. Scans ``window``
        birth steps from each link's oldest admissible birth step, then every later birth
        step for the links that still need pairs (most requests are met within a few birth
        steps; the result does not depend on ``window``).
        """
        usage = np.asarray(usage, dtype=np.int64)
        rows = np.nonzero(usage)[0]
        if rows.size and np.any(usage[rows] > self.stored[rows]):
            raise ValueError("take_oldest: usage exceeds the stock of a link")
        C = self.n_cols
        flat = self.counts.reshape(-1)  # a view: counts is C-contiguous
        left = usage[rows].copy()
        # oldest birth step that may hold a pair: admissible by age and not emptied before
        start = np.maximum(self.now - self.cutoff[rows] + 1, self.head[rows])
        span = int((self.now - start).max(initial=-1)) + 1  # births after `now` hold nothing
        out_r, out_n, out_a = [], [], []
        offset = 0
        act = np.arange(rows.size)
        passes = 0
        while act.size and offset < span:
            w = min(window, C, span - offset)  # distinct columns within a window
            r = rows[act]
            ar = np.arange(w)[:, None]
            first = start[act] + offset
            births = first + ar  # (w, links): birth steps down, links across
            cols = first % C + ar
            cols[cols >= C] -= C
            idx = cols + r * C
            h = flat[idx]
            h[births > self.now] = 0
            take = np.minimum(np.maximum(left[act] - (np.cumsum(h, axis=0) - h), 0), h)
            flat[idx] -= take  # the indices are distinct (distinct links, w <= C columns)
            nz_i, nz_j = np.nonzero(take.T)  # by link, then birth step
            bb = births[nz_j, nz_i]
            out_r.append(r[nz_i])
            out_n.append(take[nz_j, nz_i])
            out_a.append(self.now - bb + 1)
            # everything older than the last column taken from is now empty
            self.head[r[nz_i]] = np.maximum(self.head[r[nz_i]], bb)
            left[act] -= take.sum(axis=0)
            offset += w
            window = span  # the few links still short: everything up to now in one pass
            passes += 1
            act = act[left[act] > 0]
        self.stored[rows] -= usage[rows]
        if not out_r:
            e = np.zeros(0, dtype=np.int64)
            return e, e, e
        if passes == 1:  # one pass: already by link, then birth step
            return out_r[0], out_n[0], out_a[0]
        r, n, a = (np.concatenate(x) for x in (out_r, out_n, out_a))
        # by link, then birth step (oldest first): passes scan later births, so a stable sort
        # by link keeps each link's batches in birth order
        order = np.argsort(r, kind="stable")
        return r[order], n[order], a[order]

    def discard(self, mask: NDArray[np.bool_]) -> None:
        """Discard every pair stored on the masked links (counted as expired)."""
        self.expired[mask] += self.stored[mask]
        self.counts[mask] = 0
        self.stored[mask] = 0

    # ------------------------------------------------------------------ ledger
    def conservation_gap(self) -> int:
        """generated - (used_raw + expired + wasted + stored); zero when the ledger balances."""
        return int(
            self.generated.sum()
            - self.used_raw.sum()
            - self.expired.sum()
            - self.wasted.sum()
            - self.counts.sum()
        )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (sparse ring buffer and ledgers)."""
        li, ai = np.nonzero(self.counts)
        return {
            "now": self.now,
            "head": self.head.tolist(),
            "counts": [li.tolist(), ai.tolist(), self.counts[li, ai].tolist()],
            "up": self.up.astype(int).tolist(),
            "generated": self.generated.tolist(),
            "used_raw": self.used_raw.tolist(),
            "expired": self.expired.tolist(),
            "wasted": self.wasted.tolist(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same link layout)."""
        self.now = int(d["now"])
        self.counts[:] = 0
        li, ai, vals = d["counts"]
        self.counts[np.asarray(li, dtype=np.int64), np.asarray(ai, dtype=np.int64)] = vals
        self.stored = self.counts.sum(axis=1)
        self.head = np.asarray(d["head"], dtype=np.int64)
        self.up = np.asarray(d["up"], dtype=bool)
        for k in ("generated", "used_raw", "expired", "wasted"):
            setattr(self, k, np.asarray(d[k], dtype=np.int64))
