"""Run configuration: defaults, layering, dotted overrides and validation.

Precedence, lowest first (see ``CONTRACTS.md``): built-in defaults < ``[tool.flwr.app.config]``
< ``--config FILE.toml`` < ``--set key=value``. Nested keys are dotted (``broker.policy=aware``).
Every value is validated before a run starts; a bad value raises :class:`ConfigError` naming
the field and what is allowed.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "DEFAULTS",
    "FIELDS",
    "build_config",
    "flatten",
    "unflatten",
    "parse_set",
    "validate",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass(frozen=True)
class Field:
    """One leaf of the configuration: type, default and what is allowed."""

    default: Any
    kind: type | tuple[type, ...]
    help: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    nullable: bool = False
    low_open: bool = False  # low is exclusive


def _f(default: Any, kind: Any, help: str, **kw: Any) -> Field:
    return Field(default, kind, help, **kw)


# The registry names are checked lazily (plug-ins may add names), see ``validate``.
FIELDS: dict[str, Field] = {
    # federation
    "clients": _f(10, int, "number of simulated QPU clients (SuperNodes)", low=1, high=10_000),
    "rounds": _f(5, int, "number of federated rounds (the total, also with --resume)", low=1),
    "strategy": _f("ceas", str, "aggregation strategy: a registry name or module:Class"),
    "task": _f("antiderivative", str, "learning task: antiderivative, heat, digits"),
    "seed": _f(0, int, "master seed: one seed makes a run repeat exactly", low=0),
    "out": _f("runs/latest", str, "output directory"),
    "fraction_train": _f(1.0, float, "fraction of eligible nodes sampled per round", low=0.0, high=1.0),
    "min_replies": _f(2, int, "fewest valid replies a round needs, else it is skipped", low=1),
    "server_eval_every": _f(1, int, "evaluate the global model on the server every N rounds", low=1),
    "num_cpus_per_client": _f(1, int, "Simulation Engine: CPUs reserved per client", low=1),
    "progress": _f(True, bool, "print one progress line per round"),
    # faults (docs/faults.md)
    "faults.dropout": _f(0.0, float, "probability that a selected client fails to reply in a round "
                         "(seeded per round and node; the client sends an error reply)", low=0.0, high=1.0),
    "faults.reply_timeout": _f(0.0, float, "seconds the server waits for a round's replies "
                               "(0 = until every selected node answered or failed)", low=0.0),
    # QPU noise (the same for every strategy)
    "noise": _f("heterogeneous", str, "QPU noise profile", choices=("heterogeneous", "homogeneous", "noiseless")),
    "qpu.p_min": _f(1e-3, float, "smallest depolarising probability per qubit per layer", low=0.0, high=0.75),
    "qpu.p_max": _f(0.05, float, "largest depolarising probability per qubit per layer", low=0.0, high=0.75),
    "qpu.r_min": _f(0.0, float, "smallest readout bit-flip probability", low=0.0, high=0.5),
    "qpu.r_max": _f(0.05, float, "largest readout bit-flip probability", low=0.0, high=0.5),
    "qpu.shots_choices": _f([64, 128, 256, 512, 1024], list, "shots per expectation a QPU may use",
                            check=lambda v: None if v and all(isinstance(x, int) and x > 0 for x in v)
                            else "expected a non-empty list of positive integers"),
    "qpu.nodes": _f({}, dict, "per-node calibration overrides: {node-3 = {p = 0.01, r = 0.02, shots = 256}}"),
    "qpu.calibration_file": _f("", str, "JSON or TOML file mapping node name (or partition id) to "
                               "{p, r, shots}: the server's calibration record of its QPUs (over the "
                               "profile; qpu.nodes overrides it)"),
    "qpu.analytic_shots": _f(1e6, float, "shots an analytic (shots = 0) QPU counts as in the stamp", low=1.0),
    # model
    "model.qubits": _f(4, int, "qubits of the quantum layer", low=1, high=20),
    "model.layers": _f(2, int, "entangling layers of the ansatz", low=1, high=50),
    "model.device": _f("torch", str, "PennyLane device name, or 'torch' (plain-torch statevector)"),
    "model.diff_method": _f("backprop", str, "PennyLane differentiation method",
                            choices=("backprop", "adjoint", "parameter-shift", "finite-diff", "best")),
    "model.shots": _f(0, int, "shots per expectation value; 0 = analytic", low=0),
    "model.features": _f(8, int, "input features fed to the encoder (basis coefficients / PCA)", low=1, high=256),
    "model.basis": _f(16, int, "output basis functions of the trunk (operator tasks)", low=1, high=256),
    "model.trunk": _f("cosine", str, "trunk of operator models: fixed cosine basis or a learnable MLP",
                      choices=("cosine", "mlp")),
    "model.classical_hidden": _f(0, int, "ablation's hidden width; 0 = match the quantum layer's parameter count",
                                 low=0, high=4096),
    "model.classical": _f(False, bool, "ablation: replace the quantum layer by a classical layer of equal parameter count"),
    # local training
    "train.epochs": _f(3, int, "local epochs per round", low=1),
    "train.lr": _f(0.03, float, "local learning rate (Adam) in round 1", low=0.0),
    "train.lr_decay": _f(0.95, float, "learning rate of round r = lr x lr_decay^(r-1)", low=0.0, high=1.0),
    "train.optimizer": _f("adam", str, "local optimiser", choices=("adam", "sgd")),
    "train.batch_size": _f(16, int, "local batch size", low=1),
    "train.threads": _f(1, int, "torch threads per client process", low=1),
    # authenticated updates
    "auth": _f("signed", str, "update authentication: signed (Ed25519 envelopes), qkd, off",
               choices=("signed", "qkd", "off")),
    "security.registry": _f("", str, "deployment: the public-key registry file (fedqnn keys node); "
                            "empty = simulation keys derived from the seed"),
    "security.max_mb": _f(64.0, float, "largest accepted reply payload (MB)", low=0.001),
    "qkd.pairs_per_round": _f(2000, int, "auth=qkd: end-to-end pairs every node requests per round while "
                              "its next key is not ready (key demand; sets broker.key_pairs_per_node)", low=1),
    "qkd.refresh_every": _f(5, int, "auth=qkd: rounds between key refreshes", low=1),
    "qkd.key_bits": _f(256, int, "auth=qkd: bits of each HMAC key after privacy amplification", low=64, high=4096),
    "qkd.eps": _f(1e-10, float, "auth=qkd: failure probability of each of parameter estimation, error "
                  "correction and privacy amplification", low=0.0, high=0.01, low_open=True),
    "qkd.f_ec": _f(1.15, float, "auth=qkd: error-correction efficiency (leak = f_ec n h(e))", low=1.0, high=2.0),
    # CEAS consensus
    "ceas.cap": _f(3.0, float, "cap each weight at this multiple of the median weight (0 = no cap)", low=0.0),
    "ceas.filter": _f("stamp", str, "outlier filter before weighting", choices=("stamp", "median", "none")),
    "ceas.premix": _f("none", str, "pre-aggregation of the kept updates", choices=("none", "nnm", "clip")),
    "ceas.scale": _f("fit", str, "absolute scale of the stamps' covariance: fit (QPU noise κσ² plus "
                     "between-node τ², Theil-Sen), median (all spread is noise), model (SGD bound)",
                     choices=("fit", "median", "model")),
    "ceas.probe_size": _f(8, int, "public probe inputs for the server's QFI", low=1, high=1024),
    "ceas.shrink": _f("simulated", str, "shrink factor c_k: simulated from the calibration on the probe "
                      "batch, or the product formula", choices=("simulated", "formula")),
    "ceas.trajectories": _f(32, int, "Pauli trajectories per probe input for the simulated shrink", low=1),
    "ceas.half_shots": _f(False, bool, "clients train twice with half the shots and report the quantum "
                          "weights' difference, so the server measures tr(F_Q Σ_k) (doubles client compute)"),
    "ceas.debias": _f("auto", str, "divide updates by the shrink factor c_k (auto: with sgd only)",
                      choices=("auto", "on", "off")),
    "byzantine_fraction": _f(0.2, float, "fraction of Byzantine clients, 0 = none (robust rules take "
                             "f = ceil(fraction x n))", low=0.0, high=0.5),
    "attack": _f("alie", str, "what the Byzantine clients do (fedqnn run --set attack=NAME; 'none' = honest); "
                 "several joined by '+' (alie+bell-drain) give the Byzantine nodes one each, in turn"),
    "drain_pairs": _f(40, int, "attack=bell-drain: extra end-to-end Bell pairs each Byzantine node asks the "
                      "broker for every round and never uses", low=1),
    # partitions (issue 9, docs/partitions.md); `--set partition=circuit` is `partition.kind`
    "partition.kind": _f("data", str, "how the circuit is spread over QPUs: data (each QPU runs the whole "
                         "circuit), unitary (layer blocks, state teleported), circuit (register split, "
                         "gate teleportation); set it as `partition`", choices=("data", "unitary", "circuit")),
    "partition.qpus": _f(2, int, "unitary: QPUs sharing the layers (<= model.layers); circuit: QPUs "
                         "sharing the register when partition.qpu_qubits is 0", low=1, high=64),
    "partition.qpu_qubits": _f(0, int, "circuit: qubits per QPU (< model.qubits); 0 = use partition.qpus",
                               low=0, high=64),
    "partition.pair_fidelity": _f(0.0, float, "Werner fidelity F of the pairs spent at the cuts; 0 = the "
                                  "broker's F_min (0.96 with broker.policy=off)",
                                  check=lambda v: None if v == 0.0 or 0.25 <= v <= 1.0
                                  else "expected 0 (use the broker's F_min) or a fidelity in [0.25, 1]"),
    "partition.method": _f("auto", str, "simulation of the cut noise: trajectory, density or auto "
                           "(density up to 6 qubits)", choices=("auto", "trajectory", "density")),
    "partition.rank": _f("adaptive", (str, int), "circuit: Schmidt-rank budget 2^k as k enabled cut gates "
                         "per cut, an integer k >= 0, or 'adaptive' (the server's rule each round)",
                         check=lambda v: None if v == "adaptive" or (isinstance(v, int) and not isinstance(v, bool)
                                                                     and v >= 0)
                         else "expected 'adaptive' or an integer k >= 0"),
    "partition.k_min": _f(1, int, "adaptive rank: smallest k the rule may choose", low=0, high=64),
    "partition.k_max": _f(6, int, "adaptive rank: largest k the rule may choose", low=0, high=64),
    "partition.memory_bytes": _f(float(2**30), float, "adaptive rank: simulation memory budget (bytes)",
                                 low=0.0, low_open=True),
    "partition.analytic_shots": _f(1000, int, "shots an analytic (shots = 0) QPU is charged in the "
                                   "Bell-pair accounting", low=1),
    "partition.rate": _f(0.0, float, "end-to-end pairs/s a client gets for the partition window D = M / "
                         "(rho r); 0 = the broker's end-to-end rate of that node (100 with the broker off)",
                         low=0.0),
    "partition.monitor": _f(False, bool, "real-time adaptation monitor: adjusts k and the local epochs "
                            "from eval error, bell.served and the delivered fidelity"),
    "partition.placement": _f("auto", str, "scheduler placing the sub-circuit tasks on QPUs each round "
                              "(a fedqnn.scheduling method) or 'off'"),
    # data
    "data.samples_per_client": _f(64, int, "training samples per client", low=1),
    "data.test_samples": _f(200, int, "held-out samples evaluated on the server", low=1),
    "data.split": _f("iid", str, "client partitioner", choices=("iid", "dirichlet")),
    "data.alpha": _f(0.5, float, "Dirichlet concentration (data.split=dirichlet)", low=1e-6),
    "data.sensors": _f(64, int, "sensor points of the input functions (operator tasks)", low=4),
    "data.queries": _f(32, int, "query points of the output functions in training", low=2),
    "data.eval_queries": _f(97, int, "query resolution of the unseen-resolution evaluation", low=2),
    "data.length_scale": _f(0.2, float, "GRF length scale of the input functions", low=1e-3),
}


# Scalar spellings of a table's main key (CONTRACTS: `partition` is data | unitary | circuit).
ALIASES: dict[str, str] = {"partition": "partition.kind"}


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": value}``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and f"{name}" not in FIELDS:
            out.update(flatten(value, prefix=f"{name}."))
        elif name in ALIASES:  # `partition = "circuit"` is the table `partition` with kind = circuit
            out[ALIASES[name]] = value
        else:
            out[name] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": value}`` -> nested dict."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: '{part}' is a value, not a table")
        node[parts[-1]] = value
    return out


def _nested_defaults() -> dict[str, Any]:
    return unflatten({k: copy.deepcopy(f.default) for k, f in FIELDS.items()})


DEFAULTS: dict[str, Any] = _nested_defaults()


def _parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value as TOML (numbers, booleans, strings, arrays), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (the CLI's ``--set``) into a flat dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.lr=0.05")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        out[key] = _parse_scalar(text.strip())
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a ``[tool.flwr.app.config]`` or ``[fedqnn]`` table is used if present."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from exc
    if "tool" in data and "flwr" in data["tool"]:
        data = data["tool"]["flwr"].get("app", {}).get("config", {})
    elif "fedqnn" in data:
        data = data["fedqnn"]
    return flatten(data)


def coerce_field(key: str, field: Field, value: Any) -> Any:
    """Coerce and check one value against its :class:`Field`; errors name ``key``."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: a value is required ({field.help})")
    kind = field.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {value!r} ({field.help})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{key}: expected one of {', '.join(map(str, field.choices))}; got {value!r}")
    if field.low is not None and (value <= field.low if field.low_open else value < field.low):
        op = ">" if field.low_open else ">="
        raise ConfigError(f"{key}: expected {op} {field.low}, got {value!r} ({field.help})")
    if field.high is not None and value > field.high:
        raise ConfigError(f"{key}: expected <= {field.high}, got {value!r} ({field.help})")
    if field.check is not None and (msg := field.check(value)):
        raise ConfigError(f"{key}: {msg}")
    return value


def _closest(key: str) -> str:
    import difflib

    hits = difflib.get_close_matches(key, FIELDS.keys(), n=3)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""


BROKER_POLICIES_EXTRA = ("off",)


def _validate_broker(section: dict[str, Any], cfg_flat: Mapping[str, Any]) -> dict[str, Any]:
    """The ``broker`` table, validated by the broker's own schema (``fedqnn.network.config``).

    ``broker.policy=off`` runs without entanglement. ``broker.participation`` (the planning
    prior of the load calibration) defaults to ``fraction_train``.
    """
    from fedqnn.network.config import validate_broker_config

    section = dict(section)
    off = section.get("policy") == "off"
    if off:
        section["policy"] = "aware"
    section.setdefault("participation", float(cfg_flat.get("fraction_train", FIELDS["fraction_train"].default)))
    auth = cfg_flat.get("auth", FIELDS["auth"].default)
    if auth == "qkd":
        section.setdefault("key_pairs_per_node", cfg_flat.get("qkd.pairs_per_round", FIELDS["qkd.pairs_per_round"].default))
    elif section.get("key_pairs_per_node"):
        raise ConfigError("broker.key_pairs_per_node: key demand exists only with auth=qkd (got auth="
                          f"{auth!r}); leave it 0")
    out = validate_broker_config(section)
    if off:
        out["policy"] = "off"
    else:
        from fedqnn.network.policies import get_policy

        try:
            get_policy(out["policy"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"broker.policy: {exc}") from exc
    return out


def validate(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check every field; returns a nested, coerced copy or raises :class:`ConfigError`."""
    flat = flatten(cfg)
    broker = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("broker.")}
    flat = {k: v for k, v in flat.items() if not k.startswith("broker.")}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown config key{_closest(key)}")
        out[key] = coerce_field(key, FIELDS[key], value)
    for key, field in FIELDS.items():
        out.setdefault(key, copy.deepcopy(field.default))
    nested = unflatten(out)
    nested["broker"] = _validate_broker(broker, out)
    _cross_checks(nested)
    return nested


def _cross_checks(cfg: dict[str, Any]) -> None:
    from fedqnn.tasks import TASKS

    if cfg["task"] not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(sorted(TASKS))}; got {cfg['task']!r}")
    from strategies.registry import resolve_strategy_name

    resolve_strategy_name(cfg["strategy"])  # raises ConfigError naming 'strategy'
    if cfg["min_replies"] > cfg["clients"]:
        raise ConfigError(
            f"min_replies: expected <= clients ({cfg['clients']}), got {cfg['min_replies']}"
        )
    if cfg["model"]["device"] != "torch":
        _check_device(cfg["model"]["device"])
        if cfg["noise"] != "noiseless":
            raise ConfigError(
                f"model.device: QPU noise (noise={cfg['noise']!r}) is simulated on model.device='torch' "
                "(Pauli trajectories); use --set noise=noiseless with other devices"
            )
    from clients.byzantine import attack_names, split_attack

    parts = split_attack(cfg["attack"])
    bad = [a for a in parts if a not in attack_names()]
    if bad or ("none" in parts and len(parts) > 1):
        raise ConfigError(f"attack: expected one of {', '.join(attack_names())}, or several joined by '+' "
                          f"(one per Byzantine node, in turn); got {cfg['attack']!r}")
    cfg["attack"] = "+".join(parts)  # normalised: no stray spaces
    n_byz = math.ceil(cfg["byzantine_fraction"] * cfg["clients"] - 1e-9)
    if len(parts) > 1 and 0 < n_byz < len(parts):
        raise ConfigError(f"attack: the mixture {cfg['attack']!r} needs at least {len(parts)} Byzantine nodes, "
                          f"but byzantine_fraction x clients gives {n_byz}")
    if cfg["security"]["registry"] and cfg["byzantine_fraction"] > 0 and cfg["attack"] != "none":
        raise ConfigError(
            "byzantine_fraction: the simulated Byzantine clients re-sign with simulation keys; with "
            "security.registry (a deployment) set byzantine_fraction=0 or attack=none")
    if "bell-drain" in parts and cfg["byzantine_fraction"] > 0 and cfg["broker"]["policy"] == "off":
        raise ConfigError("attack: 'bell-drain' drains the entanglement broker's pairs; broker.policy must not "
                          "be 'off'")
    b = cfg["broker"]
    need = b.get("pairs_per_node", 0) + (b.get("key_pairs_per_node") or 0)
    if b.get("quota") is not None and b.get("policy") != "off" and b["quota"] < need:
        raise ConfigError(f"broker.quota: expected >= {need} (broker.pairs_per_node"
                          f"{' + broker.key_pairs_per_node' if b.get('key_pairs_per_node') else ''}: a smaller "
                          f"quota never serves a participant in full), got {b['quota']}")
    if cfg["auth"] == "qkd":
        if cfg["broker"]["policy"] == "off":
            raise ConfigError("auth: 'qkd' draws its key pairs from the entanglement broker; "
                              "broker.policy must not be 'off'")
        if cfg["security"]["registry"]:
            raise ConfigError("auth: 'qkd' is simulation only (deployments use signatures and TLS); "
                              "unset security.registry or use auth=signed")
    q = cfg["qpu"]
    if q["p_min"] > q["p_max"] or q["r_min"] > q["r_max"]:
        raise ConfigError("qpu: expected p_min <= p_max and r_min <= r_max")
    _check_partition(cfg)


def _check_partition(cfg: dict[str, Any]) -> None:
    """Cross checks of the ``partition`` table (issue 9; docs/partitions.md)."""
    part = cfg["partition"]
    kind = part["kind"]
    if kind == "data":
        if part["rank"] != "adaptive":
            raise ConfigError("partition.rank: a rank budget applies to partition=circuit only (got partition=data)")
        if part["monitor"]:
            raise ConfigError("partition.monitor: adapts a partitioned circuit; needs partition=unitary or circuit")
        return
    m = cfg["model"]
    if m["device"] != "torch":
        raise ConfigError(f"partition: {kind!r} is simulated on model.device='torch' (Bell-pair noise at the "
                          f"cuts); got model.device={m['device']!r}")
    if m["classical"]:
        raise ConfigError(f"partition: {kind!r} splits the quantum layer, but model.classical=true replaces it")
    if kind != "circuit" and part["rank"] != "adaptive":
        raise ConfigError(f"partition.rank: a rank budget applies to partition=circuit only (got {kind!r})")
    if part["k_min"] > part["k_max"]:
        raise ConfigError(f"partition.k_min: expected <= partition.k_max ({part['k_max']}), got {part['k_min']}")
    if part["placement"] != "off":
        from fedqnn.scheduling.registry import available_methods

        if part["placement"] not in available_methods():
            raise ConfigError(f"partition.placement: expected off or one of {', '.join(available_methods())}; "
                              f"got {part['placement']!r}")
    from fedqnn.partitions.federated import spec_from_config

    try:
        spec_from_config(cfg)
    except ValueError as exc:  # make_partition's messages name partition.*
        raise ConfigError(str(exc)) from exc


def _check_device(name: str) -> None:
    import pennylane as qml

    try:
        qml.device(name, wires=1)
    except Exception as exc:  # noqa: BLE001 - PennyLane raises many kinds
        raise ConfigError(
            f"model.device: {name!r} is not an installed PennyLane device ({exc.__class__.__name__}); "
            "try default.qubit, lightning.qubit or torch"
        ) from exc


def build_config(
    *layers: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Merge flat or nested override layers (lowest first) over the defaults and validate."""
    flat: dict[str, Any] = {}
    for layer in layers:
        if layer:
            flat.update(flatten(layer))
    return validate(flat)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Stable short hash of a config (for caches and checkpoints)."""
    import hashlib

    blob = json.dumps(flatten(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
