"""CEAS: fidelity-weighted, outlier-filtered consensus as a Flower ``Strategy``.

The Flower part is thin (FedAvg's message building is reused); the maths lives in
:mod:`fedqnn.stamps` (stamps), :mod:`fedqnn.qfi` (the QFI metric) and :mod:`strategies.ceas_math`
(filter, capped fidelity weights). Per round:

1. the server's calibration record of each replying node and the node's own claim (``cal_p``,
   ``cal_r``, ``cal_shots`` in its metrics) give σ_k² = 1/(S_k c_k²); a claim can only lower a
   node's stamp (σ² = max(server, claim));
2. G = F_Q(θ_t) ⊕ I is computed once at the broadcast parameters on a public probe batch;
3. updates D_k = θ_k - θ_t (debiased by 1/c_k with plain SGD; Adam normalises the shrink away);
4. φ_k = 4 / (σ_k² κ), κ estimated by a median (see :mod:`fedqnn.stamps`);
5. outlier filter (``ceas.filter``), rejected nodes reported as ``outlier:<rule>``;
6. capped fidelity weights (w_k <= ``ceas.cap`` x median weight), θ_{t+1} = θ_t + Σ w_k D_k.

``round_report(server_round)`` returns the contract's ``weights``, ``stamps`` and ``rejected``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedqnn.byzantine_count import byzantine_count
from fedqnn.noise import Calibration, calibration_for, shrink_factor, simulated_shrink
from fedqnn.param_vectors import flatten_state, unflatten_state
from fedqnn.qfi import quantum_fisher
from fedqnn.seeding import derive_seed
from fedqnn.stamps import (
    metric_matrix,
    model_kappa,
    node_variance_factor,
)
from strategies import ceas_math
from strategies.flower_builtins import PreconditionError, clamp_num_examples
from strategies.registry import register

__all__ = ["CEAS"]


_CLAIM_KEYS = ("cal_p", "cal_r", "cal_shots")


def _claimed_calibration(metrics: Any) -> tuple[Calibration | None, str | None]:
    """(the node's claimed calibration, None), (None, None) if it claims nothing, or
    (None, "claim:invalid") for a claim outside the physical ranges 0 <= p <= 3/4 (3/4 is the
    fully depolarising channel), 0 <= r <= 1/2, shots >= 0, or one that is not three numbers."""
    if not any(k in metrics for k in _CLAIM_KEYS):
        return None, None
    try:
        p, r, s = (float(metrics[k]) for k in _CLAIM_KEYS)
    except (KeyError, TypeError, ValueError):
        return None, "claim:invalid"
    if not all(math.isfinite(v) for v in (p, r, s)) or not (0 <= p <= 0.75 and 0 <= r <= 0.5 and s >= 0):
        return None, "claim:invalid"
    return Calibration(p, r, int(s)), None


class CEAS(FedAvg):
    """Consensus-Entanglement-Aware Scheduling's aggregation (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1,
                         min_evaluate_nodes=0, min_available_nodes=1)
        from fedqnn.tasks import get_task

        self.fedqnn_cfg = cfg
        self.task = get_task(cfg["task"])
        self.model = self.task.build_model(cfg)
        self.probe = self.task.probe_inputs(cfg, cfg["ceas"]["probe_size"])
        self.node_names: dict[int, str] = {}
        self._current: ArrayRecord | None = None
        self._reports: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_fedqnn_config(cls, cfg: dict[str, Any]) -> CEAS:
        return cls(cfg)

    # -- hooks the fedqnn server calls ---------------------------------------------------------
    def bind_nodes(self, names: dict[int, str]) -> None:
        """The server's trusted map from Flower node ids to ``node-<partition-id>``."""
        self.node_names = dict(names)

    def round_report(self, server_round: int) -> dict[str, Any]:
        return self._reports.get(server_round, {})

    # -- Flower Strategy -------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._current = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def _name(self, msg: Message) -> str:
        nid = msg.metadata.src_node_id
        if nid in self.node_names:
            return self.node_names[nid]
        return f"node-{int(msg.content['metrics'].get('partition-id', nid))}"

    def _metric(self, base: dict[str, torch.Tensor]) -> tuple[np.ndarray, float]:
        """G and tr(G) at θ_t (``ceas.metric``, :mod:`fedqnn.update_metrics`): ``qfi`` F_Q(θ_t) on
        the quantum weights ⊕ I, ``identity``, or ``gauss-newton`` J^T J / N of the model's outputs
        on the probe batch."""
        self.model.load_state_dict(base)
        keys = list(base)
        sizes = [base[k].numel() for k in keys]
        dim = sum(sizes)
        kind = self.fedqnn_cfg["ceas"].get("metric", "qfi")
        if kind == "identity":
            return np.eye(dim), float(dim)
        if kind == "gauss-newton":
            from fedqnn.update_metrics import gauss_newton_metric, probe_queries

            g = gauss_newton_metric(self.model, keys, self.probe, probe_queries(self.task, self.fedqnn_cfg))
            return g, float(np.trace(g))
        quantum = getattr(self.model, "quantum", None)
        if quantum is None or not hasattr(quantum, "weights") or "quantum.weights" not in keys:
            return np.eye(dim), float(dim)  # classical ablation: Euclidean
        start = sum(sizes[: keys.index("quantum.weights")])
        sl = slice(start, start + base["quantum.weights"].numel())
        with torch.no_grad():
            angles = self.model.angles(self.probe)
        fq = quantum_fisher(angles, base["quantum.weights"]).numpy()
        g = metric_matrix(fq, sl, dim)
        return g, float(np.trace(g))

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        cfg, c = self.fedqnn_cfg, self.fedqnn_cfg["ceas"]
        replies = [m for m in replies if not m.has_error()]
        clamp_num_examples(replies, cfg["data"]["samples_per_client"])
        if not replies or self._current is None:
            return None, None
        base = self._current.to_torch_state_dict()
        keys = list(base)
        theta = flatten_state(base, keys)
        names, x, factors_arr, measured, bad_claims, server_f, sizes = self._node_inputs(
            replies, base, keys, theta, server_round)
        claim_rows = [{"node": nm, "reason": why} for nm, why in bad_claims]
        if not names:  # every reply's claim was refused: nothing to aggregate, the reasons reported
            self._reports[server_round] = {"rejected": claim_rows}
            return None, None
        g, trace_g = self._metric(base)
        f = byzantine_count(cfg.get("byzantine_fraction", 0.0), len(replies))
        try:
            rnd = ceas_math.consensus_round(
                x, factors_arr, server_f, sizes=sizes if sizes.sum() > 0 else None, metric=g,
                scale=self._scale(trace_g), outlier=c["filter"],
                premix=None if c["premix"] == "none" else c["premix"], f=f,
                cap_multiple=c["cap"] if c["cap"] > 0 else None)
        except ceas_math.PreconditionError as exc:
            raise PreconditionError(f"ceas: {exc}") from exc
        res, kappa, tau2, stamps = rnd.result, rnd.kappa, rnd.tau2, rnd.stamps
        if measured:
            measured = self._measured_traces(base, measured)
        self._reports[server_round] = {
            "measured_noise": measured,
            "weights": {nm: float(w) for nm, w in zip(names, res.weights)},
            "stamps": {nm: float(s) for nm, s in zip(names, stamps)},
            "rejected": claim_rows + [
                {"node": names[j], "reason": reason if reason.startswith("outlier:") else f"outlier:{reason}"}
                for j, reason in sorted(res.rejected.items())],
            "kappa": kappa,
            "tau2": tau2,
        }
        n_ex = sum(int(msg.content["metrics"].get("num-examples", 0)) for msg in replies)
        return ArrayRecord(unflatten_state(theta + res.aggregate, base, keys)), MetricRecord({"num-examples": n_ex})

    def _node_inputs(
        self, replies: list[Message], base: dict[str, torch.Tensor], keys: list[str], theta: np.ndarray,
        server_round: int,
    ) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, list[float]], list[tuple[str, str]], np.ndarray,
               np.ndarray]:
        """(names, updates D_k (debiased if on), variance factors, measured half-shot differences,
        (node, reason) of the replies refused for their claim, the server's own factors (its
        calibration record, for the scale fit), data sizes n_k (``num-examples``, clamped)).

        A claim that is not physical (``claim:invalid``) or that makes the node's measurements
        carry no information (``claim:useless``: shrink c = 0, so σ² = 1/(S c²) is infinite, e.g.
        p = 3/4 or r = 1/2) rejects that node; it never reaches the weights, so no single claim
        can zero a stamp and stop the round."""
        cfg = self.fedqnn_cfg
        names, deltas, factors, shrinks, measured, refused, server_f, sizes = [], [], [], [], {}, [], [], []
        shrink_of = self._shrink_fn(base, server_round)
        for msg in replies:
            name = self._name(msg)
            claim, why = _claimed_calibration(msg.content["metrics"])
            server_cal = calibration_for(cfg, name)
            c_server = shrink_of(server_cal)
            f_server = node_variance_factor(server_cal, cfg, c_server)
            f_claim = node_variance_factor(claim, cfg, shrink_of(claim)) if claim is not None else f_server
            if why is None and not math.isfinite(f_claim):
                why = "claim:useless"
            if why is not None:
                refused.append((name, why))
                continue
            vec = flatten_state(msg.content["arrays"].to_torch_state_dict(), keys)
            names.append(name)
            deltas.append(vec - theta)
            hd = msg.content["metrics"].get("half_diff")
            if isinstance(hd, list) and hd:
                measured[name] = hd
            factors.append(max(f_server, f_claim))  # a claim can only lower the stamp
            server_f.append(f_server)
            sizes.append(float(msg.content["metrics"].get("num-examples", 0)))
            shrinks.append(c_server)
        if not names:
            return names, np.zeros((0, theta.size)), np.zeros(0), measured, refused, np.zeros(0), np.zeros(0)
        x = np.stack(deltas)
        if self._debias():
            x = x / np.asarray(shrinks)[:, None]
        return names, x, np.asarray(factors), measured, refused, np.asarray(server_f), np.asarray(sizes)

    def _scale(self, trace_g: float) -> str | float:
        """``ceas.scale``: "fit" (on the server's records, :func:`strategies.ceas_scale.fit_noise_scale`),
        "median", or with "model" the SGD bound kappa = eta^2 K tr(G) / (2B)."""
        cfg = self.fedqnn_cfg
        scale = cfg["ceas"]["scale"]
        if scale in ("fit", "median"):
            return scale
        data_n = cfg["data"]["samples_per_client"]
        steps = cfg["train"]["epochs"] * math.ceil(data_n / cfg["train"]["batch_size"])
        return model_kappa(cfg, trace_g, steps, cfg["train"]["batch_size"])

    def _measured_traces(self, base: dict[str, torch.Tensor], diffs: dict[str, list[float]]) -> dict[str, float]:
        """tr(F_Q Σ_k) measured from the half-shot difference δ: E[δᵀ F_Q δ] / 4 (quantum block)."""
        if "quantum.weights" not in base:
            return {}
        self.model.load_state_dict(base)
        with torch.no_grad():
            angles = self.model.angles(self.probe)
        fq = quantum_fisher(angles, base["quantum.weights"]).numpy()
        out = {}
        for name, d in diffs.items():
            v = np.asarray(d, dtype=np.float64)
            if v.shape == (fq.shape[0],) and np.all(np.isfinite(v)):
                out[name] = float(v @ fq @ v) / 4.0
        return out

    def _shrink_fn(self, base: dict[str, torch.Tensor], server_round: int):
        """c_k from a calibration: simulated on the probe batch at θ_t (``ceas.shrink=simulated``,
        cached per calibration) or the product formula."""
        cfg = self.fedqnn_cfg
        m = cfg["model"]
        quantum = getattr(self.model, "quantum", None)
        if cfg["ceas"]["shrink"] == "formula" or quantum is None or "quantum.weights" not in base:
            return lambda cal: shrink_factor(cal, m["layers"], m["qubits"], weight=1.5)
        self.model.load_state_dict(base)
        with torch.no_grad():
            angles = self.model.angles(self.probe)
        weights = base["quantum.weights"]
        cache: dict[tuple[float, float], float] = {}

        def shrink(cal: Calibration) -> float:
            key = (cal.p, cal.r)
            if key not in cache:
                cache[key] = simulated_shrink(angles, weights, cal, cfg["ceas"]["trajectories"],
                                              seed=derive_seed(cfg["seed"], "shrink", server_round))
            return cache[key]

        return shrink

    def _debias(self) -> bool:
        mode = self.fedqnn_cfg["ceas"]["debias"]
        if mode == "auto":
            return self.fedqnn_cfg["train"]["optimizer"] == "sgd"
        return mode == "on"


register("ceas", CEAS.from_fedqnn_config)
