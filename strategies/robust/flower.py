"""The run's Flower rules on update vectors: (n, d) array in, (d,) array out.

A run with ``strategy = "krum"`` (or ``median``, ``trimmed-mean``, ``multikrum``, ``bulyan``,
``fedavg``) aggregates with the guarded Flower strategy of :mod:`strategies.flower_builtins`.
These adapters call that very strategy: each vector becomes one reply (an ArrayRecord holding it,
``num-examples`` = 1), and :meth:`~strategies.flower_builtins._Guarded.aggregate_with_f` runs the
rule's precondition check for (n, f) and Flower's aggregation, as in a round. So the benchmark
and the tests measure the code runs use; only rules Flower lacks live in
:mod:`strategies.robust.rules`.

With equal weights Flower's weighted average is sum_i x_i / n (the order of the floating-point
sum is Flower's). Flower breaks ties by ``np.argsort`` order, not by the vectors.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy.multikrum import select_multikrum

from strategies.flower_builtins import BUILTINS
from strategies.robust._checks import as_vectors, check_f

__all__ = ["mean", "coordinate_median", "trimmed_mean", "krum", "multi_krum", "bulyan", "krum_select"]

#: what the guards read from a run config; ``aggregate_with_f`` takes f itself
_CFG: dict[str, Any] = {"data": {"samples_per_client": 1}, "byzantine_fraction": 0.0}


@contextmanager
def _quiet_flower() -> Iterator[None]:
    """Flower logs every aggregation at INFO, and Bulyan runs ``gc.collect()`` per reply (20 ms
    each in a process holding torch); a benchmark aggregates thousands of times. So: the Flower
    logger at WARNING, and the objects that exist before the call frozen out of the collector
    (``gc.freeze``; the collection then only scans what the aggregation made). Neither touches
    the numbers."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        logger.setLevel(level)


def _contents(x: np.ndarray) -> list[RecordDict]:
    return [RecordDict({"arrays": ArrayRecord([row]), "metrics": MetricRecord({"num-examples": 1})}) for row in x]


def _reply(i: int, content: RecordDict) -> Message:
    """A train reply from node i + 1 (metadata given outright: no running app needed)."""
    meta = Metadata(run_id=0, message_id="", src_node_id=i + 1, dst_node_id=0, reply_to_message_id="",
                    group_id="", created_at=0.0, ttl=0.0, message_type="train")
    return Message(content, metadata=meta)


def _aggregate(strategy: str, vectors: np.ndarray, f: int) -> np.ndarray:
    x = as_vectors(vectors)
    f = check_f(f, x.shape[0], strategy, need="any")
    replies = [_reply(i, c) for i, c in enumerate(_contents(x))]
    with _quiet_flower():
        arrays, _ = BUILTINS[strategy](_CFG).aggregate_with_f(1, replies, f)
    return np.asarray(arrays.to_numpy_ndarrays()[0], dtype=np.float64)


def mean(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """FedAvg with equal weights (not robust; ``f`` is accepted for a uniform signature)."""
    return _aggregate("fedavg", vectors, f)


def coordinate_median(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Flower's FedMedian: the coordinate-wise median (Yin et al. 2018); no precondition on f."""
    return _aggregate("median", vectors, f)


def trimmed_mean(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Flower's FedTrimmedAvg with beta = f / n (int(beta n) cut each side, Yin et al. 2018).
    Precondition: f / n < 1/2."""
    return _aggregate("trimmed-mean", vectors, f)


def krum(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Flower's Krum (Blanchard et al. 2017): the vector with the smallest Krum score.
    Precondition: n >= 2f + 3."""
    return _aggregate("krum", vectors, f)


def multi_krum(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Flower's MultiKrum as runs configure it: the mean of the n - f best-scored vectors.
    Precondition: n >= 2f + 3."""
    return _aggregate("multikrum", vectors, f)


def bulyan(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Flower's Bulyan (El Mhamdi et al. 2018): Multi-Krum selects theta = n - 2f vectors, then per
    coordinate the beta = theta - 2f values closest to their median are averaged.
    Precondition: n >= 4f + 3."""
    return _aggregate("bulyan", vectors, f)


def krum_select(vectors: np.ndarray, *, f: int = 0, m: int = 1) -> np.ndarray:
    """Indices of the m vectors Flower's Krum selection (``select_multikrum``, which Krum,
    MultiKrum and Bulyan call) picks, best first. Precondition: n >= 2f + 3."""
    x = as_vectors(vectors)
    f = check_f(f, x.shape[0], "krum", need="n >= 2f + 3")
    contents = _contents(x)
    position = {id(c): i for i, c in enumerate(contents)}
    chosen = select_multikrum(contents, num_malicious_nodes=f, num_nodes_to_select=int(m))
    return np.array([position[id(c)] for c in chosen], dtype=np.int64)
