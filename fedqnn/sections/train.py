"""The ``train`` section: local training on each client."""

from __future__ import annotations

from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION"]

FIELDS: dict[str, Field] = {
    "train.epochs": field(3, int, "local epochs per round", low=1),
    "train.lr": field(0.03, float, "local learning rate (Adam) in round 1", low=0.0),
    "train.lr_decay": field(0.95, float, "learning rate of round r = lr x lr_decay^(r-1)", low=0.0, high=1.0),
    "train.optimizer": field("adam", str, "local optimiser", choices=("adam", "sgd")),
    "train.batch_size": field(16, int, "local batch size", low=1),
    "train.threads": field(1, int, "torch threads per client process", low=1),
}

SECTION = Section(FIELDS)
