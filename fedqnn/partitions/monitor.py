"""Real-time adaptation (QNet-NO 3.2.4, 4.4): a monitor that turns knobs when metrics degrade.

Each scheduling cycle it receives metrics (default: ``error`` lower is better; ``served`` and
``fidelity`` higher is better) and may change three knobs: QAOA layers p (placement quality),
the Schmidt-rank exponent k (cut gates per cut) and the optimisation steps.

Detection, per metric x_t with "worse" sign σ (+1 if higher is worse, −1 otherwise):

    fast_t  = median(x_{t−w+1}, ..., x_t)                  (w = 5: follows a step after
                                                             (w + 1)/2 cycles, ignores any
                                                             (w − 1)/2 outliers in the window)
    slow_t  = (1 − a_s) slow_{t−1} + a_s x_t               (a_s = 0.02: the baseline; frozen
                                                             while the metric is in alarm)
    scale_t = 1.4826 median(|x_s − slow_{s−1}| : the last 60 calm cycles, |z_{s−1}| < z_off)
                                                            (robust σ: unbiased for Gaussian noise;
                                                             a step or outliers do not inflate it)
    z_t     = σ (fast_t − slow_t) / max(scale_t, ε)

A *degradation* alarm is raised after ``confirm`` consecutive cycles with z_t > z_on and cleared
when z_t < z_off (hysteresis band z_off < z_on). An alarm that lasts ``accept`` cycles is
accepted as the new normal (slow := fast). ``confirm`` consecutive z_t < −z_on is an
*improvement*: one relaxation toward the nominal knobs, then slow := fast.

Actions (each knob changes at most once per ``dwell`` cycles, and reverses direction only after
``reverse_dwell`` cycles):

* fidelity or served degraded: k − 1 (fewer cut gates: less Bell-pair noise and demand);
  served degraded also p + 1 (QAOA layers: better placement);
* error degraded (and neither fidelity nor served): steps x 2 and k + 1 (more optimisation and
  expressivity);
* improvements relax toward the nominal values: fidelity -> k + 1, served -> p − 1,
  error -> steps / 2 (never past the nominal value).

Reaction time: after a step of Δ >= 2 z_on σ = 7σ, the median holds the new level from the
3rd cycle, so with ``confirm`` = 2 the first action comes at cycle 4 (3 with confirm = 1); steps
near z_on σ take longer or stay below the threshold. Stationary noise: the median of 5 has
≈ 0.54σ spread, so a false alarm needs 3 of 5 readings beyond ≈ 3.5σ in two consecutive windows.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MonitorConfig", "Knobs", "Adjustment", "AdaptationMonitor", "direction_changes"]


@dataclass(frozen=True)
class MonitorConfig:
    metrics: Mapping[str, str] = field(
        default_factory=lambda: {"error": "lower", "served": "higher", "fidelity": "higher"})
    window: int = 5
    slow: float = 0.02
    scale_window: int = 60
    z_on: float = 3.5
    z_off: float = 1.5
    confirm: int = 2
    dwell: int = 15
    reverse_dwell: int = 60
    accept: int = 45
    warmup: int = 20
    eps: float = 1e-9
    p_bounds: tuple[int, int] = (1, 8)
    k_bounds: tuple[int, int] = (1, 6)
    steps_bounds: tuple[int, int] = (10, 1000)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"monitor.window: expected >= 1, got {self.window!r}")
        if self.scale_window < 5:
            raise ValueError(f"monitor.scale_window: expected >= 5, got {self.scale_window!r}")
        for name in ("slow",):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"monitor.{name}: expected an EWMA weight in (0, 1], got {v!r}")
        if not 0 <= self.z_off < self.z_on:
            raise ValueError(f"monitor.z_off: need 0 <= z_off < z_on, got {self.z_off}, {self.z_on}")
        for name in ("confirm", "accept"):
            if getattr(self, name) < 1:
                raise ValueError(f"monitor.{name}: expected >= 1, got {getattr(self, name)!r}")
        for name in ("dwell", "reverse_dwell", "warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"monitor.{name}: expected >= 0, got {getattr(self, name)!r}")
        for m, d in self.metrics.items():
            if d not in ("lower", "higher"):
                raise ValueError(f"monitor.metrics.{m}: expected 'lower' or 'higher', got {d!r}")
        for name in ("p_bounds", "k_bounds", "steps_bounds"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"monitor.{name}: need 0 <= low <= high, got {(lo, hi)}")


@dataclass
class Knobs:
    p: int = 2
    k: int = 3
    steps: int = 50


@dataclass(frozen=True)
class Adjustment:
    cycle: int
    knob: str
    old: int
    new: int
    reason: str


class _Track:
    def __init__(self, worse: float) -> None:
        self.worse = worse
        self.n = 0
        self.fast = self.slow = self.scale = 0.0
        self.alarm = 0
        self.since = 0
        self.run_up = self.run_down = 0
        self.z = 0.0
        self.recent: deque[float] = deque()
        self.residuals: deque[float] = deque()

    def update(self, x: float, cfg: MonitorConfig) -> int:
        """Feed x; returns +1 on a new degradation alarm, −1 on an improvement event, else 0."""
        self.n += 1
        self.recent.append(x)
        if len(self.recent) > cfg.window:
            self.recent.popleft()
        if self.n == 1:
            self.fast = self.slow = x
            return 0
        dev = abs(x - self.slow)
        self.fast = statistics.median(self.recent)
        if self.alarm == 0:
            a_s = max(cfg.slow, 1.0 / self.n)
            if abs(self.z) < cfg.z_off or len(self.residuals) < 5:  # not during an excursion
                self.residuals.append(dev)
                if len(self.residuals) > cfg.scale_window:
                    self.residuals.popleft()
                self.scale = 1.4826 * statistics.median(self.residuals)
            self.slow = (1 - a_s) * self.slow + a_s * x
        floor = cfg.eps + 1e-6 * abs(self.slow)
        self.z = self.worse * (self.fast - self.slow) / max(self.scale, floor)
        if self.n <= cfg.warmup:
            return 0
        if self.alarm == 1:
            self.since += 1
            if self.z < cfg.z_off:
                self.alarm, self.run_up = 0, 0
            elif self.since >= cfg.accept:  # the new normal
                self.slow, self.alarm, self.run_up = self.fast, 0, 0
            return 0
        self.run_up = self.run_up + 1 if self.z > cfg.z_on else 0
        self.run_down = self.run_down + 1 if self.z < -cfg.z_on else 0
        if self.run_up >= cfg.confirm:
            self.alarm, self.since, self.run_up = 1, 0, 0
            return 1
        if self.run_down >= cfg.confirm:
            self.slow, self.run_down = self.fast, 0
            return -1
        return 0


class AdaptationMonitor:
    """Call :meth:`update` once per scheduling cycle with the cycle's metrics."""

    def __init__(self, config: MonitorConfig | None = None, knobs: Knobs | None = None) -> None:
        self.config = config or MonitorConfig()
        self.nominal = Knobs(**vars(knobs)) if knobs else Knobs()
        self.knobs = Knobs(**vars(self.nominal))
        self.cycle = 0
        self.tracks = {m: _Track(1.0 if d == "lower" else -1.0) for m, d in self.config.metrics.items()}
        self.history: list[Adjustment] = []
        self._last: dict[str, tuple[int, int]] = {}  # knob -> (cycle, direction)

    def _set(self, knob: str, new: int, reason: str, out: list[Adjustment]) -> None:
        lo, hi = getattr(self.config, f"{knob}_bounds")
        new = min(hi, max(lo, new))
        old = getattr(self.knobs, knob)
        if new == old:
            return
        direction = 1 if new > old else -1
        if knob in self._last:
            when, last_dir = self._last[knob]
            wait = self.config.dwell if direction == last_dir else self.config.reverse_dwell
            if self.cycle - when < wait:
                return
        setattr(self.knobs, knob, new)
        self._last[knob] = (self.cycle, direction)
        adj = Adjustment(self.cycle, knob, old, new, reason)
        out.append(adj)
        self.history.append(adj)

    def update(self, metrics: Mapping[str, float]) -> list[Adjustment]:
        """Feed one cycle's metrics (missing or NaN metrics are skipped); returns the changes."""
        self.cycle += 1
        events: dict[str, int] = {}
        for name, track in self.tracks.items():
            v = metrics.get(name)
            if v is None or not math.isfinite(float(v)):
                continue
            events[name] = track.update(float(v), self.config)
        alarm = {n for n, t in self.tracks.items() if t.alarm == 1}
        out: list[Adjustment] = []
        kb = self.knobs
        if "fidelity" in alarm or "served" in alarm:
            why = "fidelity" if "fidelity" in alarm else "served"
            self._set("k", kb.k - 1, f"{why} degraded", out)
        if "served" in alarm:
            self._set("p", kb.p + 1, "served degraded", out)
        if "error" in alarm and not alarm & {"fidelity", "served"}:
            self._set("steps", kb.steps * 2, "error degraded", out)
            self._set("k", kb.k + 1, "error degraded", out)
        nom = self.nominal
        if events.get("fidelity") == -1 and kb.k < nom.k:
            self._set("k", kb.k + 1, "fidelity improved", out)
        if events.get("served") == -1 and kb.p > nom.p:
            self._set("p", kb.p - 1, "served improved", out)
        if events.get("error") == -1 and kb.steps > nom.steps:
            self._set("steps", max(nom.steps, kb.steps // 2), "error improved", out)
        return out


def direction_changes(adjustments: list[Adjustment]) -> int:
    """Times a knob moved opposite to its previous move (the oscillation count)."""
    last: dict[str, int] = {}
    flips = 0
    for a in adjustments:
        d = 1 if a.new > a.old else -1
        if a.knob in last and last[a.knob] != d:
            flips += 1
        last[a.knob] = d
    return flips
