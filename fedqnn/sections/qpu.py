"""The ``noise`` and ``qpu`` sections: QPU noise profiles and calibrations (the same for every strategy)."""

from __future__ import annotations

from typing import Any

from fedqnn.schema import ConfigError, Field, Section, field

__all__ = ["FIELDS", "SECTION", "check"]


def _positive_ints(v: Any) -> str | None:
    return (None if v and all(isinstance(x, int) and x > 0 for x in v)
            else "expected a non-empty list of positive integers")


FIELDS: dict[str, Field] = {
    "noise": field("heterogeneous", str, "QPU noise profile (devices: real-device snapshots, docs/devices.md)",
                   choices=("heterogeneous", "homogeneous", "noiseless", "devices")),
    "qpu.p_min": field(1e-3, float, "smallest depolarising probability per qubit per layer", low=0.0, high=0.75),
    "qpu.p_max": field(0.05, float, "largest depolarising probability per qubit per layer", low=0.0, high=0.75),
    "qpu.r_min": field(0.0, float, "smallest readout bit-flip probability", low=0.0, high=0.5),
    "qpu.r_max": field(0.05, float, "largest readout bit-flip probability", low=0.0, high=0.5),
    "qpu.shots_choices": field([64, 128, 256, 512, 1024], list, "shots per expectation a QPU may use",
                               check=_positive_ints),
    "qpu.nodes": field({}, dict, "per-node calibration overrides: {node-3 = {p = 0.01, r = 0.02, shots = 256}}"),
    "qpu.calibration_file": field("", str, "JSON or TOML file mapping node name (or partition id) to "
                                  "{p, r, shots}: the server's calibration record of its QPUs (over the "
                                  "profile; qpu.nodes overrides it)"),
    "qpu.analytic_shots": field(1e6, float, "shots an analytic (shots = 0) QPU counts as in the stamp", low=1.0),
}


def check(cfg: dict[str, Any]) -> None:
    q = cfg["qpu"]
    if q["p_min"] > q["p_max"] or q["r_min"] > q["r_max"]:
        raise ConfigError("qpu: expected p_min <= p_max and r_min <= r_max")
    part = cfg.get("partition")
    kind = part.get("kind", "data") if isinstance(part, dict) else (part or "data")
    if cfg["noise"] == "devices" and kind != "data":
        raise ConfigError(f"noise=devices: real-device programs run on the data-partitioned model, got "
                          f"partition.kind={kind!r} (docs/devices.md)")


SECTION = Section(FIELDS, check)
