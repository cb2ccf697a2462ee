"""The ``faults`` section (docs/faults.md): client dropout and the round's reply timeout."""

from __future__ import annotations

from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION"]

FIELDS: dict[str, Field] = {
    "faults.dropout": field(0.0, float, "probability that a selected client fails to reply in a round "
                            "(seeded per round and node; the client sends an error reply)", low=0.0, high=1.0),
    "faults.reply_timeout": field(0.0, float, "seconds the server waits for a round's replies "
                                  "(0 = until every selected node answered or failed)", low=0.0),
}

SECTION = Section(FIELDS)
