"""Simulated faults: clients that fail to reply (``faults.dropout``), see ``docs/faults.md``.

A selected client drops out of round r with probability ``faults.dropout``, decided by a coin
from the stream (seed, "dropout", r, node): the same nodes drop in a rerun or a resumed run,
whatever the process layout. The client itself answers the train instruction with a Flower
*error* reply (as a crashed ClientApp would), so the server goes through the same path as for a
real failure: the node gets an ``events`` entry ``no-reply`` and the round aggregates the others
(or is skipped with a reason below ``min_replies``).
"""

from __future__ import annotations

from typing import Any

from fedqnn.seeding import rng

__all__ = ["drops_out", "dropout_reply", "DROPOUT_REASON", "DROPOUT_CODE"]

DROPOUT_REASON = "fedqnn: simulated dropout (faults.dropout)"
DROPOUT_CODE = 2  # Flower's ErrorCode.CLIENT_APP_RAISED_EXCEPTION: the node failed


def drops_out(cfg: dict[str, Any], server_round: int, node: str) -> bool:
    """Whether ``node`` fails to reply in ``server_round`` (seeded, independent per round and node)."""
    p = float(cfg.get("faults", {}).get("dropout", 0.0))
    if p <= 0:
        return False
    return bool(rng(cfg["seed"], "dropout", int(server_round), node).random() < p)


def dropout_reply(msg: Any, cfg: dict[str, Any], server_round: int, node: str) -> Any | None:
    """The error reply of a node that drops out this round, else None."""
    if not drops_out(cfg, server_round, node):
        return None
    from flwr.app import Error, Message

    return Message(Error(code=DROPOUT_CODE, reason=DROPOUT_REASON), reply_to=msg)
