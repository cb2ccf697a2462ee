"""``simulation.fast_polling``: one scan per sweep hands out the messages Flower's polling does."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

flwr_state = pytest.importorskip("flwr.server.superlink.linkstate.in_memory_linkstate")


class _Sweeps:
    """An ``f_stop`` that lets the loop run ``n`` sweeps."""

    def __init__(self, n: int) -> None:
        self.left = n

    def is_set(self) -> bool:
        return self.left <= 0

    def wait(self, _timeout: float) -> None:
        self.left -= 1


def _state(plan: list[tuple[str, int, str]]):
    """An in-memory link state holding messages (id, destination node, delivered_at), in order."""
    state = flwr_state.InMemoryLinkState.__new__(flwr_state.InMemoryLinkState)
    state.lock = threading.RLock()
    state.message_ins_store = {
        mid: SimpleNamespace(metadata=SimpleNamespace(message_id=mid, dst_node_id=node, run_id=1, delivered_at=d))
        for mid, node, d in plan}
    state._check_stored_messages = lambda ids, run_id=None: None
    return state


class _Queue(list):
    put = list.append


PLAN = [("a", 5, ""), ("b", 3, ""), ("c", 5, ""), ("d", 9, "done"), ("e", 7, ""), ("f", 3, ""), ("g", 42, "")]
MAPPING = {3: 0, 5: 1, 7: 2, 9: 3}  # node 42 is not this engine's


def _run(fn, sweeps: int):
    state, queue = _state(PLAN), _Queue()
    fn(state, queue, MAPPING, _Sweeps(sweeps))
    delivered = sorted(m for m, msg in state.message_ins_store.items() if msg.metadata.delivered_at)
    return [m.metadata.message_id for m in queue], delivered


@pytest.mark.parametrize("sweeps", [1, 2, 3])
def test_one_scan_per_sweep_hands_out_what_flower_does(sweeps):
    from flwr.server.superlink.fleet.vce import vce_api

    from fedqnn.simulation import _FLOWER_POLLING, _one_scan_per_sweep, linear_message_polling

    linear_message_polling(False)  # records Flower's own function
    flower = _FLOWER_POLLING[0]
    assert vce_api.add_messages_to_queue is flower
    ours, theirs = _run(_one_scan_per_sweep, sweeps), _run(flower, sweeps)
    assert sorted(ours[0]) == sorted(theirs[0]) and ours[1] == theirs[1]
    assert ours[0] == theirs[0]  # and in the same order (by node, in the mapping's order)
    # one message per node and sweep, nodes in the mapping's order; "d" was delivered, 42 is not ours
    assert ours[0] == {1: ["b", "a", "e"], 2: ["b", "a", "e", "f", "c"], 3: ["b", "a", "e", "f", "c"]}[sweeps]


def test_install_and_remove():
    from flwr.server.superlink.fleet.vce import vce_api

    from fedqnn.simulation import _FLOWER_POLLING, _one_scan_per_sweep, linear_message_polling

    try:
        assert linear_message_polling(True) and vce_api.add_messages_to_queue is _one_scan_per_sweep
    finally:
        assert not linear_message_polling(False)
    assert vce_api.add_messages_to_queue is _FLOWER_POLLING[0]
