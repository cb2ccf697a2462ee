"""The aggregation sections: the ``strategy`` name check and the ``ceas`` table (light).

Imports :mod:`fedqnn.schema` and :mod:`fedqnn.registry` only; a strategy that is not a
registered name (an entry point or ``module:Class``) is resolved by :mod:`strategies.registry`,
which needs Flower to check the class.
"""

from __future__ import annotations

from fedqnn.registry import STRATEGIES
from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION", "check_strategy"]

FIELDS: dict[str, Field] = {
    "ceas.cap": field(3.0, float, "cap each weight at this multiple of the median weight (0 = no cap)", low=0.0),
    "ceas.filter": field("stamp", str, "outlier filter before weighting", choices=("stamp", "median", "none")),
    "ceas.premix": field("none", str, "pre-aggregation of the kept updates", choices=("none", "nnm", "clip")),
    "ceas.scale": field("fit", str, "absolute scale of the stamps' covariance: fit (QPU noise κσ² plus "
                        "between-node τ², Theil-Sen), median (all spread is noise), model (SGD bound)",
                        choices=("fit", "median", "model")),
    "ceas.probe_size": field(8, int, "public probe inputs for the server's QFI", low=1, high=1024),
    "ceas.shrink": field("simulated", str, "shrink factor c_k: simulated from the calibration on the probe "
                         "batch, or the product formula", choices=("simulated", "formula")),
    "ceas.trajectories": field(32, int, "Pauli trajectories per probe input for the simulated shrink", low=1),
    "ceas.half_shots": field(False, bool, "clients train twice with half the shots and report the quantum "
                             "weights' difference, so the server measures tr(F_Q Σ_k) (doubles client compute)"),
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


SECTION = Section(FIELDS)
