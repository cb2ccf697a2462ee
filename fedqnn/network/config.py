"""The broker's own configuration: defaults, documentation and validation.

The run config's ``broker`` sub-dict is passed to :meth:`Broker.from_config`; every key is
optional and validated here. Errors raise :class:`fedqnn.schema.ConfigError` naming the
field as ``broker.<key>``. ``BROKER_FIELDS`` lists every key with its default and meaning;
:func:`broker_section` validates the run config's ``broker`` table in the context of the run
(``broker.policy=off``, the QKD key demand) and :func:`check` is the broker's cross check.
Light: imports :mod:`fedqnn.schema` and :mod:`fedqnn.registry` only.

The default is a documented, non-trivial regime (see ``docs/broker.md``): trapped-ion-like
links (F0 = 0.96, p = 2e-4 per attempt at 1 MHz, i.e. r = 200 pairs/s), depolarising
memories whose time constant is calibrated so that R = r t_c = 10 pairs per cut-off window
(``target_R``), and a round duration calibrated so that the load rho = 0.7 at the expected
participation (``target_rho``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fedqnn.registry import POLICIES
from fedqnn.schema import ConfigError, Field, coerce_field, did_you_mean

__all__ = ["BrokerField", "BROKER_FIELDS", "DEFAULTS", "validate_broker_config", "broker_section", "check"]


BrokerField = Field  # the run config's field type: one schema language for every key


def _b(default: Any, kind: Any, help: str, **kw: Any) -> BrokerField:
    return Field(default, kind, help, **kw)


BROKER_FIELDS: dict[str, BrokerField] = {
    "policy": _b("lookahead", str, "scheduling policy: lookahead (default), aware, oblivious, random, "
                 "oracle, jit, full, or a plug-in from the fedqnn.broker_policies entry-point group"),
    # network
    "topology": _b("ring", str, "ring (ring with random chords), grid, star, geometric or file",
                   choices=("ring", "grid", "star", "geometric", "file")),
    "topology_file": _b("", str, "GraphML or edge-list file (topology=file); attributes F0, B0, p, "
                        "tau, capacity on edges, T on nodes; nodes node-<i> and 'server'"),
    "chords": _b(1.0, float, "ring: random chords per node", low=0.0, high=10.0),
    "radius": _b(None, float, "geometric: connection radius in the unit square (None: smallest "
                 "that connects the graph)", low=0.0, low_open=True, nullable=True),
    "routing": _b("fidelity", str, "path choice: fidelity (max fresh end-to-end fidelity) or hops",
                  choices=("fidelity", "hops")),
    "provision": _b("load", str, "load: a link gets one channel (attempt stream and memory block) "
                    "per client path through it; uniform: one channel per link",
                    choices=("load", "uniform")),
    "heterogeneity": _b(0.2, float, "log-normal spread of p and T, and +-0.05*h spread of F0",
                        low=0.0, high=2.0),
    # physics
    "noise": _b("depolarising", str, "memory noise model", choices=("depolarising", "dephasing")),
    "F0": _b(0.96, float, "fidelity of a fresh link pair", low=0.25, high=1.0, low_open=True),
    "B0": _b(None, float, "weight of |Phi-> in a fresh pair (None: Werner, (1-F0)/3)",
             low=0.0, high=1.0, nullable=True),
    "p": _b(2e-4, float, "heralding success probability per attempt", low=0.0, high=1.0, low_open=True),
    "tau": _b(1e-6, float, "attempt period in seconds", low=0.0, low_open=True),
    "capacity": _b(8, int, "memory slots per channel of a link (pairs it can store)", low=1),
    "memory_T": _b(None, float, "memory coherence time of a node in seconds (T, or T_phi for "
                   "dephasing); set this or target_R", low=0.0, low_open=True, nullable=True),
    "target_R": _b(10.0, float, "calibrate memory_T so that R = r t_c (pairs per cut-off window, "
                   "rate-weighted over links) equals this", low=0.0, low_open=True, nullable=True),
    "F_min": _b(0.8, float, "least end-to-end fidelity of a delivered pair", low=0.25, high=1.0,
                low_open=True),
    "swap_success": _b(1.0, float, "success probability of one entanglement swap", low=0.0,
                       high=1.0, low_open=True),
    "purify": _b(True, bool, "purify (one recurrence round per hop) paths that fresh pairs "
                 "cannot serve at F_min"),
    "admission": _b(0.3, float, "a path is served only if its cut-off budget is at least this "
                    "fraction of the median path's (else purified, else unusable)", low=0.0, high=1.0),
    "purify_protocol": _b("dejmps", str, "purification protocol", choices=("dejmps", "bbpssw")),
    # time and demand
    "round_duration": _b(None, float, "simulated seconds per round; set this or target_rho",
                         low=0.0, low_open=True, nullable=True),
    "target_rho": _b(0.7, float, "calibrate round_duration so that the expected load rho = "
                     "demand rate / generation rate equals this", low=0.0, low_open=True,
                     nullable=True),
    "pairs_per_node": _b(4, int, "end-to-end pairs each participant needs per round", low=0),
    "key_pairs_per_node": _b(0, int, "end-to-end pairs every node may request per round for key "
                             "distribution (auth=qkd sets it); delivered after the update pairs and "
                             "counted in the load that calibrates round_duration", low=0),
    "participation": _b(0.5, float, "expected fraction of nodes selected per round (planning "
                        "prior and rho calibration; the broker learns the real rate)",
                        low=0.0, high=1.0, low_open=True),
    "deadline_fraction": _b(1.0, float, "deadline of a round's deliveries, as a fraction of the "
                            "round duration", low=0.0, high=1.0, low_open=True),
    "steps_per_round": _b(16, int, "simulation steps per round (time resolution)", low=1, high=1000),
    "quota": _b(None, int, "most end-to-end pairs one node may receive per round (None: no "
                "quota); requests above it stay requested and unserved", low=0, nullable=True),
    "outage_prob": _b(0.01, float, "probability per round that an up link goes down", low=0.0,
                      high=1.0),
    "outage_recovery": _b(0.5, float, "probability per round that a down link comes back",
                          low=0.0, high=1.0, low_open=True),
    "service_level": _b(0.95, float, "aware/oracle: target probability that stock plus in-window "
                        "generation covers a round's demand", low=0.5, high=0.9999),
    "max_age_steps": _b(1024, int, "pairs older than this many steps are discarded (bounds the "
                        "memory of infinite cut-offs)", low=2, high=100_000),
    "server": _b("server", str, "name of the server node"),
}

DEFAULTS: dict[str, Any] = {k: copy.deepcopy(f.default) for k, f in BROKER_FIELDS.items()}


def _coerce(key: str, field: BrokerField, value: Any) -> Any:
    return coerce_field(f"broker.{key}", field, value)


def validate_broker_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in, types coerced, ranges and cross-field rules checked.

    Raises :class:`ConfigError` naming ``broker.<key>``.
    """
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(BROKER_FIELDS))
    if unknown:
        raise ConfigError(f"broker.{unknown[0]}: unknown broker key{did_you_mean(unknown[0], BROKER_FIELDS)}")
    out = {k: _coerce(k, f, cfg.get(k, copy.deepcopy(f.default))) for k, f in BROKER_FIELDS.items()}
    # exactly one of memory_T / target_R, round_duration / target_rho
    if "memory_T" in cfg and cfg["memory_T"] is not None and "target_R" not in cfg:
        out["target_R"] = None
    if "round_duration" in cfg and cfg["round_duration"] is not None and "target_rho" not in cfg:
        out["target_rho"] = None
    if (out["memory_T"] is None) == (out["target_R"] is None):
        raise ConfigError("broker.memory_T: set exactly one of broker.memory_T and broker.target_R")
    if (out["round_duration"] is None) == (out["target_rho"] is None):
        raise ConfigError(
            "broker.round_duration: set exactly one of broker.round_duration and broker.target_rho"
        )
    if out["B0"] is not None and out["B0"] + out["F0"] > 1.0:
        raise ConfigError(f"broker.B0: expected B0 + F0 <= 1, got {out['B0']} + {out['F0']}")
    if out["F_min"] >= out["F0"]:
        raise ConfigError(
            f"broker.F_min: expected below the fresh-pair fidelity F0 = {out['F0']}, got {out['F_min']}"
        )
    if out["noise"] == "dephasing":
        B0 = (1.0 - out["F0"]) / 3.0 if out["B0"] is None else out["B0"]
        if out["F0"] - B0 <= 0.0:
            raise ConfigError("broker.B0: dephasing needs F0 > B0")
    if out["topology"] == "file" and not out["topology_file"]:
        raise ConfigError("broker.topology_file: required when broker.topology = 'file'")
    if not out["server"]:
        raise ConfigError("broker.server: expected a non-empty node name")
    return out


def broker_section(section: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The run config's ``broker`` table, validated; ``run`` is the rest of the run config, flat.

    ``broker.policy=off`` runs without entanglement. ``broker.participation`` (the planning
    prior of the load calibration) defaults to ``fraction_train``; with ``auth=qkd``,
    ``broker.key_pairs_per_node`` defaults to ``qkd.pairs_per_round``.
    """
    section = dict(section)
    off = section.get("policy") == "off"
    if off:
        section["policy"] = BROKER_FIELDS["policy"].default
    section.setdefault("participation", float(run["fraction_train"]))
    auth = run["auth"]
    if auth == "qkd":
        section.setdefault("key_pairs_per_node", run["qkd.pairs_per_round"])
    elif section.get("key_pairs_per_node"):
        raise ConfigError("broker.key_pairs_per_node: key demand exists only with auth=qkd (got auth="
                          f"{auth!r}); leave it 0")
    out = validate_broker_config(section)
    if off:
        out["policy"] = "off"
    elif out["policy"] not in POLICIES:  # a built-in passes unimported; a plug-in is loaded and checked
        from fedqnn.network.policies import get_policy

        try:
            get_policy(out["policy"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"broker.policy: {exc}") from exc
    return out


def check(cfg: dict[str, Any]) -> None:
    """``broker.quota`` must cover one participant's demand (update and key pairs)."""
    b = cfg["broker"]
    need = b.get("pairs_per_node", 0) + (b.get("key_pairs_per_node") or 0)
    if b.get("quota") is not None and b.get("policy") != "off" and b["quota"] < need:
        raise ConfigError(f"broker.quota: expected >= {need} (broker.pairs_per_node"
                          f"{' + broker.key_pairs_per_node' if b.get('key_pairs_per_node') else ''}: a smaller "
                          f"quota never serves a participant in full), got {b['quota']}")
