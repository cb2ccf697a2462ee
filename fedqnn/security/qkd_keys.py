"""QKD key lifecycle: the server's per-node :class:`QkdKeyManager` (pairs accumulate per
node across rounds, keys refresh every ``refresh_every`` rounds) and the client's
re-derivation of its key from the instruction's public data (simulation boundary: the
seeded stream ``rng(seed, "qkd", node, epoch)``, see :mod:`fedqnn.security.qkd`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fedqnn.security.qkd_bbm92 import bbm92_exchange
from fedqnn.security.qkd_rates import BellState, pairs_needed, werner
from fedqnn.seeding import rng as seeded_rng

__all__ = ["QkdKeyManager", "client_key_from_config"]

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
