"""NNM + centred clipping: a state-of-the-art robust rule that Flower lacks, as a Flower strategy.

Nearest-neighbour mixing (Allouah et al., AISTATS 2023) replaces each update x_i by the mean of
its n - f nearest updates; centred clipping (Karimireddy, He & Jaggi, ICML 2021) then iterates

    v <- v + (1/n) sum_i (y_i - v) min(1, tau / ||y_i - v||)

from the coordinate-wise median with tau = the median distance to it (3 iterations). Both
steps are translation-equivariant, so applying them to the flattened parameter vectors equals
applying them to the updates (parameter - global) and adding the global model back. The maths
is :func:`strategies.robust.rules.nnm` and :func:`strategies.robust.rules.centered_clipping`;
preconditions: n > 2f (checked; a failure skips the round with its reason).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from fedqnn.byzantine_count import byzantine_count
from strategies import preconditions
from strategies.flower_builtins import PreconditionError, _Guarded, _kw
from strategies.robust import rules

__all__ = ["NnmCenteredClipping", "build_nnm_cc"]


def _vector(rec: ArrayRecord) -> tuple[np.ndarray, OrderedDict[str, torch.Tensor]]:
    sd = rec.to_torch_state_dict()
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in sd.values()]).numpy(), sd


class NnmCenteredClipping(_Guarded, FedAvg):
    """``strategy = "nnm-cc"``: NNM pre-aggregation, then centred clipping."""

    rule = "nnm-cc"

    def _precondition(self, n: int, f: int) -> None:
        preconditions.check(self.rule, n, f)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [m for m in replies if not m.has_error()]
        _, metrics = super().aggregate_train(server_round, replies)  # guards, checks, metric means
        if not replies:
            return None, metrics
        vecs, template = [], None
        for m in replies:
            recs = list(m.content.array_records.values())
            if len(recs) != 1:
                raise PreconditionError("nnm-cc expects exactly one ArrayRecord per reply")
            v, sd = _vector(recs[0])
            if template is not None and [t.shape for t in sd.values()] != [t.shape for t in template.values()]:
                raise PreconditionError("nnm-cc: replies carry differently shaped arrays")
            template = template or sd
            vecs.append(v)
        x = np.stack(vecs)
        f = byzantine_count(self.fedqnn_cfg.get("byzantine_fraction", 0.0), len(x))
        agg = rules.centered_clipping(rules.nnm(x, f=f), f=f)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        i = 0
        assert template is not None
        for k, t in template.items():
            size = t.numel()
            out[k] = torch.from_numpy(agg[i : i + size].copy()).reshape(t.shape).to(t.dtype)
            i += size
        return ArrayRecord(out), metrics


def build_nnm_cc(cfg: dict[str, Any]) -> NnmCenteredClipping:
    strategy = NnmCenteredClipping(**_kw(cfg))
    strategy.fedqnn_cfg = cfg
    return strategy
