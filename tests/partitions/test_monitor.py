"""Real-time adaptation: reacts to a step degradation within 3–5 cycles, and does not oscillate."""

from __future__ import annotations

import numpy as np
import pytest

from fedqnn.partitions.monitor import (
    AdaptationMonitor,
    Adjustment,
    Knobs,
    MonitorConfig,
    direction_changes,
)

SIGMA = 0.005  # noise of every metric
BASE = {"error": 0.10, "served": 0.90, "fidelity": 0.90}


def _run(cfg, seed, cycles, step_at=None, metric="error", size=10 * SIGMA, dist="normal",
         spike_at=None):
    rng = np.random.default_rng(seed)
    mon = AdaptationMonitor(cfg)
    for t in range(1, cycles + 1):
        noise = rng.standard_normal(3) if dist == "normal" else rng.standard_t(3, 3)
        m = {k: v + SIGMA * z for (k, v), z in zip(BASE.items(), noise, strict=True)}
        worse = +1 if metric == "error" else -1
        if step_at is not None and t >= step_at:
            m[metric] += worse * size
        if spike_at is not None and t == spike_at:
            m[metric] += worse * 40 * SIGMA
        mon.update(m)
    return mon


def _first_after(mon, step_at):
    late = [a for a in mon.history if a.cycle >= step_at]
    return late[0].cycle - step_at + 1 if late else None


@pytest.mark.parametrize("metric,knob,direction", [
    ("error", "steps", +1), ("error", "k", +1), ("served", "p", +1), ("served", "k", -1),
    ("fidelity", "k", -1),
])
@pytest.mark.parametrize("seed", range(6))
def test_adapts_within_3_to_5_cycles_of_a_step(metric, knob, direction, seed):
    """A step of 10σ at cycle 200: the first change comes 3–5 cycles after it (cycle 200 counts
    as the first), and it moves the knob the way the rule says."""
    mon = _run(MonitorConfig(), seed, 260, step_at=200, metric=metric)
    assert all(a.cycle >= 200 for a in mon.history)  # nothing before the step
    lag = _first_after(mon, 200)
    assert lag is not None and 3 <= lag <= 5
    first = [a for a in mon.history if a.knob == knob][0]
    assert (first.new - first.old) * direction > 0 and first.cycle - 200 + 1 <= 5


@pytest.mark.parametrize("dist", ["normal", "student-t3"])
@pytest.mark.parametrize("seed", range(5))
def test_no_oscillation_over_1000_stationary_cycles(dist, seed):
    """Stationary noisy metrics for 1000 cycles: at most 2 knob changes and no direction change
    (a change followed by its reversal)."""
    mon = _run(MonitorConfig(), seed, 1000, dist="normal" if dist == "normal" else "t")
    assert len(mon.history) <= 2
    assert direction_changes(mon.history) == 0


def test_the_oscillation_count_can_fail():
    """The same data through a monitor without hysteresis, confirmation or dwell flips often."""
    naive = MonitorConfig(window=1, z_on=0.5, z_off=0.4, confirm=1, dwell=0, reverse_dwell=0, accept=5)
    mon = _run(naive, 0, 1000)
    assert direction_changes(mon.history) > 50


def test_a_single_spike_is_ignored():
    mon = _run(MonitorConfig(), 0, 300, spike_at=150)
    assert mon.history == []


def test_escalation_is_bounded_and_a_recovery_relaxes_nothing_backwards():
    cfg = MonitorConfig()
    mon = AdaptationMonitor(cfg, Knobs(p=2, k=3, steps=50))
    rng = np.random.default_rng(0)
    for t in range(1, 400):
        m = {k: v + SIGMA * z for (k, v), z in zip(BASE.items(), rng.standard_normal(3), strict=True)}
        if 100 <= t < 200:
            m["fidelity"] -= 0.1  # a long fidelity drop, then recovery
        mon.update(m)
    moves = [(a.knob, a.old, a.new) for a in mon.history]
    # k down at once, once more after the dwell, bounded by k_min; the drop is accepted as the
    # new normal after `accept` cycles; the recovery is one relaxation back toward nominal
    assert moves == [("k", 3, 2), ("k", 2, 1), ("k", 1, 2)]
    c = [a.cycle for a in mon.history]
    assert 100 < c[0] <= 104 and c[1] - c[0] == cfg.dwell and 200 < c[2] <= 205
    assert mon.knobs.k >= cfg.k_bounds[0]
    assert direction_changes(mon.history) == 1


def test_direction_changes_counts_reversals():
    h = [Adjustment(1, "k", 3, 4, ""), Adjustment(2, "k", 4, 5, ""), Adjustment(3, "k", 5, 4, ""),
         Adjustment(4, "p", 2, 3, ""), Adjustment(5, "k", 4, 5, "")]
    assert direction_changes(h) == 2


def test_config_validation():
    with pytest.raises(ValueError, match="z_off"):
        MonitorConfig(z_on=1.0, z_off=2.0)
    with pytest.raises(ValueError, match="monitor.metrics.error"):
        MonitorConfig(metrics={"error": "smaller"})
