"""Crash-safe checkpoints of a run (``DIR/checkpoint/state.zip``), see ``docs/faults.md``.

The server writes one checkpoint before round 1 and one after every round, *after* the round's
row is in ``metrics.jsonl`` (fsynced). The file is a zip written to a temporary name, fsynced and
renamed over the previous one, so a kill at any instant leaves either the old or the new
checkpoint whole. It holds:

* ``state.json``: the format, the last completed round, the config the run used, the byte length
  and SHA-256 of ``metrics.jsonl`` up to that round, the process RNG states (Python ``random``,
  NumPy's legacy global generator), the strategy-state kind, and ``plugins``: each round plugin's
  ``state_dict()`` under its name (:mod:`fedqnn.plugins`; the broker's, the verifier's, QKD's, the
  adversary's replay history, and those of plugins from outside the repository);
* ``arrays/<i>``: the global model's arrays, exactly as Flower serialises them (dtype, shape,
  stype and the raw bytes), in order;
* ``torch_rng``: ``torch.get_rng_state()``;
* ``plugins/<name>/...``: the arrays inside plugin states (e.g. each Byzantine node's remembered
  update, replayed by the ``replay`` attack);
* ``strategy.pkl``: only for strategies from outside the repository that keep state across rounds
  and offer no ``state_dict()`` (pickled attributes; see :func:`strategy_state`).

Resuming truncates ``metrics.jsonl`` to the recorded length after checking its SHA-256, so the
rows already written stay byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

__all__ = [
    "FORMAT", "Checkpoint", "checkpoint_path", "save", "load", "config_for_resume",
    "strategy_state", "load_strategy_state", "CheckpointError", "RESUMABLE_DIFFS", "plugin_states",
    "load_plugin_states",
]

FORMAT = "fedqnn-checkpoint/2"
_FORMAT_1 = "fedqnn-checkpoint/1"  # fixed fields per subsystem; still read
RESUMABLE_DIFFS = ("rounds", "out", "progress")  # config keys a resume may change


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not match the run or its metrics file."""


def checkpoint_path(out: str | Path) -> Path:
    return Path(out) / "checkpoint" / "state.zip"


@dataclass
class Checkpoint:
    round: int
    config: dict[str, Any]
    arrays: ArrayRecord
    metrics_bytes: int
    metrics_sha256: str
    plugins: dict[str, Any] = field(default_factory=dict)  # plugin name -> its state_dict()
    rng: dict[str, Any] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- records <-> zip
def _arrays_out(zf: zipfile.ZipFile, prefix: str, rec: ArrayRecord) -> list[dict[str, Any]]:
    meta = []
    for i, (key, arr) in enumerate(rec.items()):
        zf.writestr(f"{prefix}/{i}", arr.data)
        meta.append({"key": key, "dtype": arr.dtype, "shape": list(arr.shape), "stype": arr.stype})
    return meta


def _arrays_in(zf: zipfile.ZipFile, prefix: str, meta: list[dict[str, Any]]) -> ArrayRecord:
    items = {
        m["key"]: Array(dtype=m["dtype"], shape=tuple(m["shape"]), stype=m["stype"], data=zf.read(f"{prefix}/{i}"))
        for i, m in enumerate(meta)
    }
    return ArrayRecord(items)  # type: ignore[arg-type]


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"__bytes__": v.hex()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _unplain(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"__bytes__"}:
        return bytes.fromhex(v["__bytes__"])
    if isinstance(v, list):
        return [_unplain(x) for x in v]
    return v


def _record_out(zf: zipfile.ZipFile, prefix: str, content: RecordDict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in content.items():
        if isinstance(v, ArrayRecord):
            out[k] = {"kind": "arrays", "arrays": _arrays_out(zf, f"{prefix}/{k}", v)}
        elif isinstance(v, MetricRecord):
            out[k] = {"kind": "metrics", "items": [[kk, _plain(vv)] for kk, vv in v.items()]}
        elif isinstance(v, ConfigRecord):
            out[k] = {"kind": "config", "items": [[kk, _plain(vv)] for kk, vv in v.items()]}
    return out


def _record_in(zf: zipfile.ZipFile, prefix: str, meta: dict[str, Any]) -> RecordDict:
    content = RecordDict()
    for k, m in meta.items():
        if m["kind"] == "arrays":
            content[k] = _arrays_in(zf, f"{prefix}/{k}", m["arrays"])
        elif m["kind"] == "metrics":
            content[k] = MetricRecord({kk: _unplain(vv) for kk, vv in m["items"]})
        else:
            content[k] = ConfigRecord({kk: _unplain(vv) for kk, vv in m["items"]})
    return content


def _state_out(zf: zipfile.ZipFile, prefix: str, obj: Any, where: str) -> Any:
    """A plugin state as JSON: Flower records go to zip entries under ``prefix``; bytes to hex."""
    if isinstance(obj, RecordDict):
        return {"__recorddict__": _record_out(zf, prefix, obj)}
    if isinstance(obj, ArrayRecord):
        return {"__arrays__": _arrays_out(zf, prefix, obj)}
    if isinstance(obj, bytes):
        return {"__bytes__": obj.hex()}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise CheckpointError(f"{where}: state keys must be strings, got {sorted(map(repr, obj))[:3]}")
        return {k: _state_out(zf, f"{prefix}/{k}", v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_state_out(zf, f"{prefix}/{i}", v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"{where}: cannot checkpoint a {type(obj).__name__} (expected JSON values, bytes or "
                          "Flower records)")


def _state_in(zf: zipfile.ZipFile, prefix: str, obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__recorddict__"}:
            return _record_in(zf, prefix, obj["__recorddict__"])
        if set(obj) == {"__arrays__"}:
            return _arrays_in(zf, prefix, obj["__arrays__"])
        if set(obj) == {"__bytes__"}:
            return bytes.fromhex(obj["__bytes__"])
        return {k: _state_in(zf, f"{prefix}/{k}", v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_state_in(zf, f"{prefix}/{i}", v) for i, v in enumerate(obj)]
    return obj


def plugin_states(plugins: list[Any]) -> dict[str, Any]:
    """name -> ``state_dict()`` of every plugin that keeps something (``None`` = nothing)."""
    return {p.name: st for p in plugins if (st := p.state_dict()) is not None}


def load_plugin_states(plugins: list[Any], states: dict[str, Any]) -> None:
    """Hand each plugin its saved state; a saved state no plugin of this run claims is an error."""
    names = {p.name for p in plugins}
    orphan = sorted(set(states) - names)
    if orphan:
        raise CheckpointError(f"--resume: the checkpoint holds the state of plugin {orphan[0]!r}, which this "
                              f"run does not have (plugins: {', '.join(sorted(names))})")
    for p in plugins:
        if p.name in states:
            p.load_state_dict(states[p.name])


# ---------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """Process-wide RNG states (the run derives its streams per round; these are a safety net)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any], torch_state: bytes | None) -> None:
    if "python" in state:
        v, internal, gauss = state["python"]
        random.setstate((v, tuple(internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if torch_state is not None:
        import torch

        torch.set_rng_state(torch.frombuffer(bytearray(torch_state), dtype=torch.uint8))


# ---------------------------------------------------------------------------- strategies
def _stateless(strategy: Any) -> bool:
    """The repository's strategies keep nothing across rounds that the checkpoint must carry:
    CEAS recomputes everything from the broadcast arrays (``_current`` is set by every
    ``configure_train``, ``_reports`` is read in the same round), the guarded Flower built-ins
    (FedAvg, median, trimmed mean, Krum, Multi-Krum, Bulyan) aggregate each round afresh."""
    return type(strategy).__module__.startswith("strategies.")


def strategy_state(strategy: Any) -> tuple[dict[str, Any], bytes | None]:
    """(JSON part, optional pickle) of a strategy's cross-round state.

    ``state_dict()`` (JSON-able) wins if the strategy has one; the repository's strategies are
    stateless across rounds; any other strategy's attributes are pickled (those that cannot be
    pickled are listed in ``unsaved``)."""
    if hasattr(strategy, "state_dict") and callable(strategy.state_dict):
        return {"kind": "state_dict", "state": strategy.state_dict()}, None
    if _stateless(strategy):
        return {"kind": "none"}, None
    saved: dict[str, Any] = {}
    unsaved: list[str] = []
    for k, v in vars(strategy).items():
        try:
            pickle.dumps(v)
        except Exception:  # noqa: BLE001 - anything unpicklable is left out, and named
            unsaved.append(k)
            continue
        saved[k] = v
    return {"kind": "pickle", "unsaved": sorted(unsaved)}, pickle.dumps(saved)


def load_strategy_state(strategy: Any, meta: dict[str, Any], blob: bytes | None) -> None:
    kind = meta.get("kind", "none")
    if kind == "state_dict":
        strategy.load_state_dict(meta["state"])
    elif kind == "pickle" and blob is not None:
        vars(strategy).update(pickle.loads(blob))  # noqa: S301 - the run's own checkpoint


# ---------------------------------------------------------------------------- save / load
def _metrics_digest(path: Path, nbytes: int | None = None) -> tuple[int, str]:
    data = path.read_bytes() if path.exists() else b""
    if nbytes is not None:
        data = data[:nbytes]
    return len(data), hashlib.sha256(data).hexdigest()


def save(
    out: str | Path, server_round: int, cfg: dict[str, Any], arrays: ArrayRecord, *,
    strategy: Any = None, plugins: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``server_round`` (0 = before round 1) atomically; ``plugins`` is
    :func:`plugin_states` of the run's plugins."""
    import torch

    path = checkpoint_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbytes, sha = _metrics_digest(Path(out) / "metrics.jsonl")
    strat_meta, strat_blob = strategy_state(strategy) if strategy is not None else ({"kind": "none"}, None)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        state: dict[str, Any] = {
            "format": FORMAT,
            "round": int(server_round),
            "config": cfg,
            "metrics_bytes": nbytes,
            "metrics_sha256": sha,
            "arrays": _arrays_out(zf, "arrays", arrays),
            "plugins": {n: _state_out(zf, f"plugins/{n}", st, f"plugin {n!r}") for n, st in (plugins or {}).items()},
            "rng": rng_state(),
            "strategy": strat_meta,
        }
        zf.writestr("torch_rng", torch.get_rng_state().numpy().tobytes())
        if strat_blob is not None:
            zf.writestr("strategy.pkl", strat_blob)
        zf.writestr("state.json", json.dumps(state, sort_keys=True))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.zip.")
    from fedqnn.results import file_mode

    os.fchmod(fd, file_mode())  # as metrics.jsonl and summary.json, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    finally:
        os.close(dfd)
    return path


def load(out: str | Path) -> tuple[Checkpoint, bytes | None, bytes | None]:
    """(checkpoint, torch RNG state, strategy pickle) of the run in ``out``."""
    path = checkpoint_path(out)
    if not path.is_file():
        raise CheckpointError(f"--resume {out}: no checkpoint ({path} is missing); nothing to resume")
    try:
        with zipfile.ZipFile(path) as zf:
            state = json.loads(zf.read("state.json"))
            if state.get("format") not in (FORMAT, _FORMAT_1):
                raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
            ck = Checkpoint(
                round=int(state["round"]), config=state["config"],
                arrays=_arrays_in(zf, "arrays", state["arrays"]),
                metrics_bytes=int(state["metrics_bytes"]), metrics_sha256=str(state["metrics_sha256"]),
                plugins=_plugins_in(zf, state), rng=state["rng"], strategy=state["strategy"],
            )
            torch_rng = zf.read("torch_rng")
            blob = zf.read("strategy.pkl") if "strategy.pkl" in zf.namelist() else None
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from exc
    return ck, torch_rng, blob


def _plugins_in(zf: zipfile.ZipFile, state: dict[str, Any]) -> dict[str, Any]:
    if state["format"] == FORMAT:
        return {n: _state_in(zf, f"plugins/{n}", st) for n, st in state["plugins"].items()}
    out = {k: state.get(k) for k in ("broker", "verifier", "qkd") if state.get(k) is not None}  # format 1
    adv = {n: _record_in(zf, f"adversary/{n}", m) for n, m in state["adversary"].items()}
    return {**out, "adversary": adv}


def truncate_metrics(out: str | Path, ck: Checkpoint) -> None:
    """Cut ``metrics.jsonl`` back to the checkpointed round, byte for byte (checked by SHA-256)."""
    path = Path(out) / "metrics.jsonl"
    n, sha = _metrics_digest(path, ck.metrics_bytes)
    if n != ck.metrics_bytes or sha != ck.metrics_sha256:
        raise CheckpointError(
            f"{path}: its first {ck.metrics_bytes} bytes are not those the checkpoint of round {ck.round} "
            "recorded (the file was edited or replaced); cannot resume")
    with path.open("r+b") as fh:
        fh.truncate(ck.metrics_bytes)
        fh.flush()
        os.fsync(fh.fileno())


def config_for_resume(out: str | Path, rounds: int | None = None) -> dict[str, Any]:
    """The config stored in ``out``'s checkpoint, with ``rounds`` (the new total) if given."""
    from fedqnn.config import ConfigError, validate

    ck, _, _ = load(out)
    cfg = json.loads(json.dumps(ck.config))
    if rounds is not None:
        if rounds < ck.round:
            raise ConfigError(f"rounds: expected >= {ck.round} (the rounds {out} already completed), got {rounds}")
        cfg["rounds"] = int(rounds)
    if Path(cfg["out"]).resolve() != Path(out).resolve():
        cfg["out"] = str(out)  # the directory was moved: write where it is now
    return validate(cfg)


def check_same_run(stored: dict[str, Any], cfg: dict[str, Any]) -> None:
    """A resume may change only :data:`RESUMABLE_DIFFS`; anything else is a different run."""
    from fedqnn.config import FIELDS, flatten

    a, b = flatten(stored), flatten(cfg)
    # a key added to the config after the checkpoint was written counts as its default
    a.update({k: v for k, v in b.items() if k not in a and k in FIELDS and v == FIELDS[k].default})
    diff = sorted(k for k in set(a) | set(b) if k.split(".")[0] not in RESUMABLE_DIFFS and a.get(k) != b.get(k))
    if diff:
        raise CheckpointError(
            "--resume: the checkpoint was written by a run with a different config "
            f"({', '.join(diff[:6])}); only {', '.join(RESUMABLE_DIFFS)} may change on resume")
