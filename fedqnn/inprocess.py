"""Helpers for driving a Flower strategy in one process, without the Simulation Engine (the
in-process experiments: ``experiments/ceas/*.py``).

A strategy's ``configure_train`` asks a grid for its node ids, and Flower's ``Message`` needs
the task identity a running ServerApp would have set.
"""

from __future__ import annotations

__all__ = ["NodeGrid", "set_task_identity"]


class NodeGrid:
    """The part of a Flower ``Grid`` that ``configure_train`` uses: a fixed list of node ids."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = list(ids)

    def get_node_ids(self) -> list[int]:
        return list(self.ids)


def set_task_identity(task_id: int = 1, run_id: int = 1, node_id: int = 0) -> None:
    """Set Flower's task identity (``flwr.supercore.task_identity``), which building a
    ``Message`` outside a running app needs; a no-op on a Flower without it."""
    try:
        from flwr.supercore.task_identity import TaskIdentity
    except ImportError:  # pragma: no cover - other Flower versions
        return
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = task_id, run_id, node_id
