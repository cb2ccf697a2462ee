"""The ``data`` section: samples per client, the split, and the operator tasks' function grids."""

from __future__ import annotations

from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION"]

FIELDS: dict[str, Field] = {
    "data.samples_per_client": field(64, int, "training samples per client", low=1),
    "data.test_samples": field(200, int, "held-out samples evaluated on the server", low=1),
    "data.split": field("iid", str, "client partitioner", choices=("iid", "dirichlet")),
    "data.alpha": field(0.5, float, "Dirichlet concentration (data.split=dirichlet)", low=1e-6),
    "data.sensors": field(64, int, "sensor points of the input functions (operator tasks)", low=4),
    "data.queries": field(32, int, "query points of the output functions in training", low=2),
    "data.eval_queries": field(97, int, "query resolution of the unseen-resolution evaluation", low=2),
    "data.length_scale": field(0.2, float, "GRF length scale of the input functions", low=1e-3),
}

SECTION = Section(FIELDS)
