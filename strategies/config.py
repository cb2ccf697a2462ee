"""The aggregation sections: the ``strategy`` name check and the ``ceas`` table (light).

Imports :mod:`fedqnn.schema` and :mod:`fedqnn.registry` only; a strategy that is not a
registered name (an entry point or ``module:Class``) is resolved by :mod:`strategies.registry`,
which needs Flower to check the class.
"""

from __future__ import annotations

from typing import Any

from fedqnn.byzantine_count import byzantine_count
from fedqnn.nodes import participants_per_round
from fedqnn.registry import STRATEGIES
from fedqnn.schema import ConfigError, Field, Section, field
from strategies import preconditions

__all__ = ["FIELDS", "SECTION", "check_strategy", "check_preconditions", "round_shape"]

FIELDS: dict[str, Field] = {
    "ceas.cap": field(3.0, float, "cap each weight at this multiple of the median weight (0 = no cap)", low=0.0),
    "ceas.filter": field("stamp", str, "outlier filter before weighting", choices=("stamp", "median", "none")),
    "ceas.premix": field("none", str, "pre-aggregation of the kept updates", choices=("none", "nnm", "clip")),
    "ceas.scale": field("fit", str, "absolute scale of the stamps' covariance: fit (QPU noise κσ² plus "
                        "between-node τ², repeated median on the server's calibration record), median (all spread is "
                        "noise), model (SGD bound)",
                        choices=("fit", "median", "model")),
    "ceas.probe_size": field(8, int, "public probe inputs for the server's QFI", low=1, high=1024),
    "ceas.shrink": field("simulated", str, "shrink factor c_k: simulated from the calibration on the probe "
                         "batch, or the product formula", choices=("simulated", "formula")),
    "ceas.trajectories": field(32, int, "Pauli trajectories per probe input for the simulated shrink", low=1),
    "ceas.half_shots": field(False, bool, "clients train twice with half the shots and report the quantum "
                             "weights' difference, so the server measures tr(F_Q Σ_k) (doubles client compute)"),
    "ceas.metric": field("qfi", str, "metric G of the update errors (stamps, outlier filter): qfi (F_Q on the "
                         "quantum weights, identity elsewhere), identity, or gauss-newton (J^T J of the model's "
                         "outputs on the probe batch, all parameters)", choices=("qfi", "identity", "gauss-newton")),
    "ceas.debias": field("auto", str, "divide updates by the shrink factor c_k (auto: with sgd only)",
                         choices=("auto", "on", "off")),
}


def check_strategy(name: str) -> None:
    """A registered name passes without importing it; anything else is resolved as the server
    would (:func:`strategies.registry.resolve_strategy_name`, ConfigError naming ``strategy``)."""
    if name in STRATEGIES:
        return
    from strategies.registry import resolve_strategy_name

    resolve_strategy_name(name)


def round_shape(cfg: dict[str, Any], clients: int | None = None) -> tuple[int, int]:
    """(n, f) of a round in which every selected node's update is accepted: the most replies a
    robust rule can get, and the f it then assumes."""
    n = participants_per_round(cfg["fraction_train"], cfg["clients"] if clients is None else clients)
    return n, byzantine_count(cfg["byzantine_fraction"], n)


def check_preconditions(cfg: dict[str, Any]) -> None:
    """ConfigError if the strategy's (n, f) precondition fails even when every selected node's
    update is accepted: every round would be skipped. Checked before a run starts (``fedqnn
    run``, ``flwr run``); not part of :func:`fedqnn.config.validate`, because ``fedqnn
    attack-matrix`` writes such cells as ``n/a``."""
    n, f = round_shape(cfg)
    why = preconditions.failed(cfg["strategy"], n, f)
    if why is None:
        return
    enough = next((c for c in range(cfg["clients"] + 1, 10_001)
                   if preconditions.failed(cfg["strategy"], *round_shape(cfg, c)) is None), None)
    fix = (f"use clients >= {enough}, a lower byzantine_fraction, or another strategy" if enough else
           f"no number of clients helps at byzantine_fraction={cfg['byzantine_fraction']:g}: use a lower "
           "byzantine_fraction or another strategy")
    raise ConfigError(
        f"strategy: {why}, so every round would be skipped: a round has at most n = {n} replies "
        f"(clients={cfg['clients']} x fraction_train={cfg['fraction_train']:g}) and f = "
        f"ceil(byzantine_fraction={cfg['byzantine_fraction']:g} x {n}) = {f}; {fix}")


SECTION = Section(FIELDS)
