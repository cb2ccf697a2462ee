"""Noisy evaluation of the global model on a reference QPU (issue 15), a round plugin.

The server's ``eval`` is the noiseless model (what the parameters can do); ``eval_noisy`` is the
same metrics (same inner keys, same test sets) with the quantum layer run as a QPU would run it:
the exact noisy channel, readout confusion and S shots per sample (``fedqnn.quantum.qpu``).

Reference QPU: the componentwise median of the run's node calibrations (``calibration_for`` of
every node: the records the clients train with, whatever the profile, ``qpu.nodes`` or
``qpu.calibration_file``): p = median p, r = median r, S = the lower median of the shots (an
integer some node uses). It is a typical device of this fleet, fixed for the whole run, needs
no config field, and is noiseless exactly when the fleet is (then the plugin is off and rows
carry no ``eval_noisy``). Shots are drawn from the stream (seed, "eval-noise", round), so the
value repeats exactly, also on ``--resume``. Off as well for ``model.classical`` and for
PennyLane devices (noise is simulated on ``model.device=torch``).

Row key: ``eval_noisy`` (next to ``eval``, in rounds the server evaluates); ``summary.json``:
``eval_noisy`` {``reference`` {p, r, shots}, ``metrics`` {name: final/best as for ``eval``}}.
"""

from __future__ import annotations

import statistics
from typing import Any

from fedqnn.noise import Calibration, calibration_for
from fedqnn.plugins import RoundPlugin, RoundState, RunContext
from fedqnn.seeding import torch_generator

__all__ = ["NoisyEvalPlugin", "reference_calibration", "evaluate_noisy", "from_config"]

STREAM = "eval-noise"
_NOISE_ATTRS = ("depolarizing", "readout_error", "shots", "confusion", "channel", "shot_generator")


def reference_calibration(cfg: dict[str, Any], nodes: list[str]) -> Calibration:
    """The componentwise median of the nodes' calibrations (shots: the lower median)."""
    cals = [calibration_for(cfg, node) for node in nodes]
    return Calibration(float(statistics.median(c.p for c in cals)), float(statistics.median(c.r for c in cals)),
                       int(statistics.median_low(c.shots for c in cals)))


def evaluate_noisy(task: Any, model: Any, sets: Any, cal: Calibration, generator: Any) -> dict[str, float]:
    """``task.evaluate`` with ``model.quantum`` measured on the QPU ``cal`` (shots from
    ``generator``); the layer's noise settings and mode are restored afterwards."""
    q = model.quantum
    saved = {k: getattr(q, k) for k in _NOISE_ATTRS if hasattr(q, k)}
    was_training = q.training
    try:
        q.set_noise(cal.p, cal.r, cal.shots)
        q.shot_generator = generator
        q.train()  # the layers apply a calibration in training mode only
        return task.evaluate(model, sets)
    finally:
        for k, v in saved.items():
            setattr(q, k, v)
        q.train(was_training)


class NoisyEvalPlugin(RoundPlugin):
    """Adds ``eval_noisy`` to every row that has an ``eval``."""

    name = "noisy_eval"

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.cal: Calibration | None = None
        self._model: Any = None

    def setup(self, run: RunContext) -> None:
        self.task, self.sets = run.task, run.task.test_data(run.cfg)
        self.cal = reference_calibration(run.cfg, run.node_names)

    def before_eval(self, state: RoundState, model: Any) -> None:
        self._model = model  # evaluated in on_record, after every plugin adjusted it

    def on_record(self, state: RoundState, row: dict[str, Any]) -> None:
        model, self._model = self._model, None
        if row.get("eval") is None or model is None or self.cal is None or self.cal == Calibration(0.0, 0.0, 0):
            return
        gen = torch_generator(self.cfg["seed"], STREAM, state.round)
        row["eval_noisy"] = evaluate_noisy(self.task, model, self.sets, self.cal, gen)

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        if self.cal is None or self.cal == Calibration(0.0, 0.0, 0):
            return
        from fedqnn.results import read_metrics

        series: dict[str, list[tuple[int, float]]] = {}
        for r in read_metrics(run.cfg["out"]):
            for k, v in (r.get("eval_noisy") or {}).items():
                series.setdefault(k, []).append((r["round"], v))
        metrics = {}
        for k, s in series.items():
            direction = "max" if k == "accuracy" else "min"
            best = (max if direction == "max" else min)(s, key=lambda t: t[1])
            metrics[k] = {"final": s[-1][1], "final_round": s[-1][0], "best": best[1], "best_round": best[0],
                          "direction": direction}
        extra["eval_noisy"] = {"reference": self.cal.to_dict(), "metrics": metrics}


def from_config(cfg: dict[str, Any]) -> NoisyEvalPlugin | None:
    """On unless the fleet is noiseless, the model classical or the device not ``torch``."""
    m = cfg["model"]
    if cfg["noise"] == "noiseless" and not (cfg["qpu"].get("nodes") or cfg["qpu"].get("calibration_file")):
        return None
    if m["classical"] or m["device"] != "torch":
        return None
    return NoisyEvalPlugin(cfg)
