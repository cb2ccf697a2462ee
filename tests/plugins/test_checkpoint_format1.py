"""Checkpoints written before round plugins (``fedqnn-checkpoint/1``: one fixed field per
subsystem) still resume: the fields map onto the plugins of the same names, and the resumed run
equals the uninterrupted one. The control: the same file without the broker's field resumes to
different rows (the broker's Bell-pair inventory is what crosses the cut)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from fedqnn import checkpoint
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config, rows, strip_timing

SETTINGS: dict[str, Any] = {"attack": "replay", "byzantine_fraction": 0.2, "broker.outage_prob": 0.3}


def _to_format_1(out: Path, keep_broker: bool = True) -> None:
    """Rewrite ``out``'s checkpoint as the format-1 writer laid it out."""
    path = checkpoint.checkpoint_path(out)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    state = json.loads(entries.pop("state.json"))
    plugins = state.pop("plugins")
    adversary = plugins.get("adversary", {})
    state.update(format="fedqnn-checkpoint/1", broker=plugins.get("broker") if keep_broker else None, verifier=plugins.get("verifier"),
                 qkd=plugins.get("qkd"), adversary={n: v["__recorddict__"] for n, v in adversary.items()})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name.replace("plugins/adversary/", "adversary/", 1), data)
        zf.writestr("state.json", json.dumps(state, sort_keys=True))


def _resumed(out: Path, keep_broker: bool) -> list[dict[str, Any]]:
    short = config(out, rounds=2, **SETTINGS)
    run_server(LocalGrid(5), short)
    _to_format_1(out, keep_broker)
    assert checkpoint.load(out)[0].plugins.keys() >= {"verifier", "adversary", *(["broker"] * keep_broker)}
    run_server(LocalGrid(5, first_id=77), checkpoint.config_for_resume(out, rounds=3), resume=True)
    return [strip_timing(r) for r in rows(out)]


def test_a_format_1_checkpoint_resumes_to_the_uninterrupted_run(tmp_path: Path) -> None:
    run_server(LocalGrid(5), config(tmp_path / "full", **SETTINGS))
    full = [strip_timing(r) for r in rows(tmp_path / "full")]
    assert checkpoint.load(tmp_path / "full")[0].plugins["adversary"], "the replaying node remembers an update"
    assert _resumed(tmp_path / "v1", keep_broker=True) == full
    assert _resumed(tmp_path / "v1-no-broker", keep_broker=False) != full  # the control
