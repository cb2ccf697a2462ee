"""Sub-circuits as placement tasks, accepted by the scheduler's problem builder."""

from __future__ import annotations

import pytest

from fedqnn.partitions.adaptive import mask_for_rank
from fedqnn.partitions.circuit import make_partition
from fedqnn.partitions.tasks import subcircuit_tasks
from fedqnn.scheduling.placement import QPU, Network, to_problem


def _net():
    return Network([QPU(4), QPU(4), QPU(8)], {(0, 1): 0.95, (1, 2): 0.9})


def test_tasks_per_partition():
    assert len(subcircuit_tasks(make_partition("data", 4, 3))) == 1
    u = subcircuit_tasks(make_partition("unitary", 4, 5, qpus=2), fmin=0.8)
    assert [t.duration for t in u] == [3.0, 2.0] and u[1].predecessors == (0,) and u[1].fmin == 0.8
    spec = make_partition("circuit", 4, 2, qpu_qubits=2)
    c = subcircuit_tasks(spec, fmin=0.8)
    assert len(c) == 4 and all(t.qubits == 2 for t in c)
    assert c[2].predecessors == (0, 1) and c[2].fmin == 0.8  # coupled by a cut gate at layer 0
    none = subcircuit_tasks(spec, fmin=0.8, cut_mask=mask_for_rank(spec, 0))
    assert none[2].predecessors == (0,) and none[2].fmin == 0.0  # no cut gate: no coupling
    problem = to_problem(c, _net())
    assert problem.n == 4 and problem.m == 3 and len(problem.edges) == 4


def test_task_validation():
    with pytest.raises(ValueError, match="layer_seconds"):
        subcircuit_tasks(make_partition("data", 4, 3), layer_seconds=0)
    with pytest.raises(ValueError, match="fmin"):
        subcircuit_tasks(make_partition("data", 4, 3), fmin=2)
