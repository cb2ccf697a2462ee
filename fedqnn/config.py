"""Run configuration: the subsystems' sections composed, layering, dotted overrides, validation.

Precedence, lowest first (README, "Using it"): built-in defaults < ``[tool.flwr.app.config]``
< ``--config FILE.toml`` < ``--set key=value``. Nested keys are dotted (``broker.policy=aware``).
Every value is validated before a run starts; a bad value raises :class:`ConfigError` naming
the field and what is allowed.

Each subsystem owns its section (fields, defaults, cross checks) in a light module that imports
only :mod:`fedqnn.schema` (the schema language) and :mod:`fedqnn.registry` (names of the
plug-in points); this module composes them, so validating a config imports neither torch nor
Flower nor PennyLane. ``ConfigError``, ``Field`` and ``coerce_field`` are re-exported from
:mod:`fedqnn.schema`.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from clients import config as _attacks
from fedqnn import schema
from fedqnn.network import config as _broker
from fedqnn.partitions import config as _partitions
from fedqnn.schema import ConfigError, Field, Section, coerce_field
from fedqnn.sections import data as _data
from fedqnn.sections import faults as _faults
from fedqnn.sections import model as _model
from fedqnn.sections import qpu as _qpu
from fedqnn.sections import run as _run
from fedqnn.sections import simulation as _simulation
from fedqnn.sections import tracking as _tracking
from fedqnn.sections import train as _train
from fedqnn.security import config as _security
from strategies import config as _ceas

__all__ = [
    "ConfigError",
    "DEFAULTS",
    "FIELDS",
    "Field",
    "RUN_CONTROLS",
    "split_run_controls",
    "SECTIONS",
    "build_config",
    "coerce_field",
    "config_hash",
    "flatten",
    "load_toml",
    "unflatten",
    "parse_set",
    "validate",
    "without_run_controls",
]

#: Run-config keys that steer a deployment run (``flwr run --run-config``) and are not part of
#: the fedqnn config: ``resume = true`` continues the fedqnn run in ``out`` from its checkpoint
#: (a new Flower run with the same run config; ``rounds`` may be a new total), ``overwrite =
#: true`` starts over in an ``out`` that already holds a run. Without either such an ``out`` is
#: refused. The staged app declares both (``fedqnn.deploy.stage_app``), so does the repository's
#: ``[tool.flwr.app.config]``; config layers read from such a table drop them.
RUN_CONTROLS: dict[str, bool] = {"resume": False, "overwrite": False}

# The sections in the order the built config lists their keys (the ``broker`` table comes last).
SECTIONS: tuple[Section, ...] = (
    _run.SECTION,  # federation: clients, rounds, strategy, task, seed, out, ..., plugins
    _faults.SECTION,  # faults.* (docs/faults.md)
    _qpu.SECTION,  # noise, qpu.*: QPU noise, the same for every strategy
    _model.SECTION,  # model.*
    _train.SECTION,  # train.*: local training
    _security.SECTION,  # auth, security.*, qkd.*: authenticated updates
    _ceas.SECTION,  # ceas.*: CEAS consensus
    _attacks.SECTION,  # byzantine_fraction, attack, drain_pairs
    _partitions.SECTION,  # partition.* (issue 9, docs/partitions.md)
    _data.SECTION,  # data.*
    _tracking.SECTION,  # tracking (experiment trackers, docs/workflow.md)
    _simulation.SECTION,  # simulation.* (where the Simulation Engine runs; absent unless given)
)

FIELDS: dict[str, Field] = {k: f for s in SECTIONS for k, f in s.fields.items()}

# Scalar spellings of a table's main key (docs/partitions.md: `partition` is data | unitary | circuit).
ALIASES: dict[str, str] = {k: v for s in SECTIONS for k, v in s.aliases.items()}

# The cross checks, in the order they run (the first failing one is reported).
CHECKS: tuple[Callable[[dict[str, Any]], None], ...] = (
    _run.check,  # task and strategy names, min_replies <= clients
    _model.check,  # model.device
    _attacks.check,  # attack names and mixtures
    _broker.check,  # broker.quota
    _security.check,  # auth=qkd
    _qpu.check,  # qpu ranges
    _partitions.check,  # the partition table
    _tracking.check,  # tracking = none drops the table
)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": value}`` (table-valued fields such as ``qpu.nodes`` stay whole)."""
    return schema.flatten(cfg, FIELDS, ALIASES, prefix)


unflatten = schema.unflatten


def _nested_defaults() -> dict[str, Any]:
    return unflatten({k: copy.deepcopy(f.default) for k, f in FIELDS.items() if not f.omit_empty})


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


def without_run_controls(table: Mapping[str, Any]) -> dict[str, Any]:
    """A ``[tool.flwr.app.config]`` table as a config layer: :data:`RUN_CONTROLS` left out."""
    return {k: v for k, v in table.items() if k not in RUN_CONTROLS}


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a ``[tool.flwr.app.config]`` or ``[fedqnn]`` table is used if present.

    A file holding one JSON object (what ``fedqnn run --print-config`` prints) is read as JSON:
    no TOML document starts with ``{``.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = p.read_text()
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config {path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"--config {path}: expected a JSON object")
        return flatten(data)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from exc
    if "tool" in data and "flwr" in data["tool"]:
        data = without_run_controls(data["tool"]["flwr"].get("app", {}).get("config", {}))
    elif "fedqnn" in data:
        data = data["fedqnn"]
    return flatten(data)


def validate(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check every field; returns a nested, coerced copy or raises :class:`ConfigError`."""
    flat = flatten(cfg)
    broker = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("broker.")}
    flat = {k: v for k, v in flat.items() if not k.startswith("broker.")}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in FIELDS:
            raise ConfigError(f"{key}: unknown config key{schema.did_you_mean(key, FIELDS)}")
        out[key] = coerce_field(key, FIELDS[key], value)
    for key, field in FIELDS.items():
        out.setdefault(key, copy.deepcopy(field.default))
    for key, field in FIELDS.items():
        if field.omit_empty and not out[key]:
            del out[key]  # e.g. `plugins`: absent unless given, so config hashes stay as they were
    nested = unflatten(out)
    nested["broker"] = _broker.broker_section(broker, out)
    for check in CHECKS:
        check(nested)
    return nested


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


def split_run_controls(run_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """(the fedqnn config layer, :data:`fedqnn.config.RUN_CONTROLS` as given) of a Flower run config."""
    rest = dict(run_config)
    controls = {k: rest.pop(k, v) for k, v in RUN_CONTROLS.items()}
    bad = {k: v for k, v in controls.items() if not isinstance(v, bool)}
    if bad:
        raise ConfigError(f"{next(iter(bad))}: expected true or false, got {next(iter(bad.values()))!r}")
    if controls["resume"] and controls["overwrite"]:
        raise ConfigError("resume and overwrite: set one of them, not both")
    return rest, controls
