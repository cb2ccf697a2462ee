"""Flower's built-in strategies, used as they are, behind two small guards.

1. ``num-examples`` is client-reported, and FedAvg/MultiKrum weight by it: a Byzantine client
   could inflate it. Each reply's value is clamped to ``[0, data.samples_per_client]`` (the most
   any client holds) before Flower aggregates.
2. Rules that take the number of Byzantine nodes f get f = :func:`~fedqnn.byzantine_count.byzantine_count`
   (byzantine_fraction, n), i.e. ceil(byzantine_fraction x n - 1e-9), for the
   n replies of the round, and their preconditions are checked (Flower's Krum does not):
   Krum / MultiKrum n >= 2f + 3, Bulyan n >= 4f + 3, trimmed mean beta = f / n < 1/2
   (:mod:`strategies.preconditions`, which the run config also checks before a run starts).
   A failed precondition raises :class:`PreconditionError`; the server records the round as
   skipped with that reason (``n/a`` in the attack matrix), never silently aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Bulyan, FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum

from fedqnn.byzantine_count import byzantine_count
from strategies import preconditions
from strategies.errors import PreconditionError

__all__ = ["BUILTINS", "PreconditionError", "clamp_num_examples"]


def clamp_num_examples(replies: list[Message], max_examples: int) -> None:
    """Clamp each reply's ``num-examples`` to [0, max_examples] (non-finite -> 0), in place."""
    for msg in replies:
        if msg.has_error():
            continue
        for record in msg.content.metric_records.values():
            if "num-examples" in record:
                v = record["num-examples"]
                ok = isinstance(v, int | float) and math.isfinite(v)
                record["num-examples"] = int(min(max(v if ok else 0, 0), max_examples))


class _Guarded:
    """Mixin: clamp ``num-examples``, set f for this round's n, check the precondition."""

    fedqnn_cfg: dict[str, Any]
    rule = ""

    def _precondition(self, n: int, f: int) -> None:  # overridden by robust rules
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [m for m in replies if not m.has_error()]
        clamp_num_examples(replies, self.fedqnn_cfg["data"]["samples_per_client"])
        f = byzantine_count(self.fedqnn_cfg.get("byzantine_fraction", 0.0), len(replies))
        return self.aggregate_with_f(server_round, replies, f)

    def aggregate_with_f(
        self, server_round: int, replies: list[Message], f: int
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Check the precondition for (n = len(replies), f), hand f to the Flower rule, aggregate.

        ``aggregate_train`` calls it with the round's f; the vector adapters of
        :mod:`strategies.robust.flower` call it with a given f (same code path from here on)."""
        self._precondition(len(replies), f)
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]


def _kw(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(
        fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=0,
        min_available_nodes=1,
    )


class GuardedFedAvg(_Guarded, FedAvg):
    rule = "fedavg"


class GuardedFedMedian(_Guarded, FedMedian):
    rule = "median"


class GuardedTrimmedMean(_Guarded, FedTrimmedAvg):
    rule = "trimmed-mean"

    def _precondition(self, n: int, f: int) -> None:
        preconditions.check(self.rule, n, f)
        self.beta = f / n if n else 0.0


class GuardedKrum(_Guarded, Krum):
    rule = "krum"

    def _precondition(self, n: int, f: int) -> None:
        preconditions.check(self.rule, n, f)
        self.num_malicious_nodes = f


class GuardedMultiKrum(_Guarded, MultiKrum):
    rule = "multikrum"

    def _precondition(self, n: int, f: int) -> None:
        preconditions.check(self.rule, n, f)
        self.num_malicious_nodes = f
        self.num_nodes_to_select = n - f  # Blanchard et al.: average the n - f best-scored


class GuardedBulyan(_Guarded, Bulyan):
    rule = "bulyan"

    def _precondition(self, n: int, f: int) -> None:
        preconditions.check(self.rule, n, f)
        self.num_malicious_nodes = f


def _factory(cls: type) -> Any:
    def build(cfg: dict[str, Any]) -> Any:
        strategy = cls(**_kw(cfg))
        strategy.fedqnn_cfg = cfg
        return strategy

    build.__name__ = f"build_{cls.rule}"
    return build


BUILTINS = {
    cls.rule: _factory(cls)
    for cls in (GuardedFedAvg, GuardedFedMedian, GuardedTrimmedMean, GuardedKrum, GuardedMultiKrum, GuardedBulyan)
}
