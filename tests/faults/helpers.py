"""An in-process stand-in for Flower's Grid: the real ClientApp called directly (no Ray).

It runs the same ServerApp round loop (``run_server``) against the same ``ClientApp``
(mods included) in one process, so fault paths can be tested in seconds; the Simulation Engine
itself is exercised by the slow tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import Context, Error, Message, RecordDict

from clients.qpu_app import app as client_app
from fedqnn.config import build_config

SMALL: dict[str, Any] = {
    "clients": 5, "rounds": 3, "min_replies": 2, "seed": 3, "progress": False,
    "train.epochs": 1, "data.samples_per_client": 16, "data.test_samples": 20,
    "model.qubits": 3, "model.layers": 1, "ceas.probe_size": 4, "ceas.trajectories": 4,
}


class LocalGrid:
    """``get_node_ids`` and ``send_and_receive`` over in-process ClientApp calls."""

    def __init__(self, num_nodes: int, first_id: int = 9001) -> None:
        self.ids = [first_id + 37 * i for i in range(num_nodes)]  # not the partition ids
        self.contexts = {
            nid: Context(run_id=1, node_id=nid, node_config={"partition-id": pid, "num-partitions": num_nodes},
                         state=RecordDict(), run_config={})
            for pid, nid in enumerate(self.ids)
        }
        self.sent: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.ids)

    def send_and_receive(self, messages: Iterable[Message], timeout: float | None = None) -> list[Message]:
        replies = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            self.sent.append(m)
            try:
                replies.append(client_app(m, self.contexts[m.metadata.dst_node_id]))
            except Exception as exc:  # noqa: BLE001 - as the Simulation Engine does
                replies.append(Message(Error(code=2, reason=str(exc)), reply_to=m))
        return replies


def config(out: Path, **overrides: Any) -> dict[str, Any]:
    return build_config({**SMALL, "out": str(out)}, overrides)


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def strip_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "wall_s"}


def strip_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json without its timing fields, its manifest (whose config hash includes ``out``)
    and config.out (the directory differs)."""
    s = {k: v for k, v in summary.items() if k not in ("total_wall_s", "process_wall_s", "manifest")}
    s["config"] = {k: v for k, v in s["config"].items() if k != "out"}
    return s
