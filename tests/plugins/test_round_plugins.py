"""Round plugins (fedqnn.plugins): an outside plugin, named by a dotted path, takes part in every
hook in order, adds to the instructions, the rows and the summary, and is checkpointed under its
name so a cut run resumes to the uninterrupted result; bad plugins fail with the reason.

The negative control is the same plugin without a ``state_dict``: after the cut its running total
restarts, and the resumed rows differ from the uninterrupted ones.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from fedqnn import checkpoint
from fedqnn.plugins import HOOKS, PluginError, RoundPlugin, build_plugins
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config, rows, strip_timing

MODULE = "fedqnn_outside_tally"  # imported from a temporary directory, not from the repo
ROUND_HOOKS = ["filter_eligible", "round_start", "before_send", "after_replies", "before_eval", "on_record",
               "round_end"]


@pytest.fixture()
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pkg = tmp_path / "site"
    pkg.mkdir()
    shutil.copy(Path(__file__).with_name("outside.py"), pkg / f"{MODULE}.py")
    monkeypatch.syspath_prepend(str(pkg))
    sys.modules.pop(MODULE, None)
    mod = importlib.import_module(MODULE)
    mod.CALLS.clear()
    yield mod
    sys.modules.pop(MODULE, None)


def _cfg(out: Path, plugins: list[str], **kw: Any) -> dict[str, Any]:
    return config(out, plugins=plugins, **kw)


def _run(cfg: dict[str, Any], resume: bool = False, first_id: int = 9001) -> dict[str, Any]:
    return run_server(LocalGrid(cfg["clients"], first_id=first_id), cfg, resume=resume)


def _cut_and_resume(out: Path, plugins: list[str]) -> list[dict[str, Any]]:
    _run(_cfg(out, plugins, rounds=2))
    cfg = checkpoint.config_for_resume(out, rounds=3)
    _run(cfg, resume=True, first_id=77)
    return [strip_timing(r) for r in rows(out)]


def test_an_outside_plugin_takes_part_in_every_hook_in_order(tmp_path: Path, outside: Any) -> None:
    grid = LocalGrid(5)
    cfg = _cfg(tmp_path / "run", [f"{MODULE}:Tally"], rounds=2)
    summary = run_server(grid, cfg)
    assert outside.CALLS == ["setup", *ROUND_HOOKS * 2, "run_end"]  # rounds 1, 2 both evaluate (every 1)
    got = rows(tmp_path / "run")
    accepted = [len(r.get("weights") or []) or r["num_participants"] - len(r["rejected"]) for r in got]
    assert [r["tally"]["rounds"] for r in got] == [1, 2]
    assert got[-1]["tally"]["accepted_total"] == sum(accepted) == summary["tally"]["accepted_total"]
    sent = [m for m in grid.sent if "fedqnn" in m.content]
    assert sent and all(m.content["fedqnn"]["tally-round"] == m.content["fedqnn"]["server-round"] for m in sent)
    assert set(HOOKS) == {"setup", "on_resume", "run_end", "teardown", *ROUND_HOOKS}


def test_an_outside_plugin_is_checkpointed_and_survives_a_cut(tmp_path: Path, outside: Any) -> None:
    _run(_cfg(tmp_path / "full", [f"{MODULE}:Tally"]))
    full = [strip_timing(r) for r in rows(tmp_path / "full")]
    ck, _, _ = checkpoint.load(tmp_path / "full")
    assert ck.plugins["tally"] == {"accepted": full[-1]["tally"]["accepted_total"], "rounds": 3}
    outside.CALLS.clear()
    assert _cut_and_resume(tmp_path / "cut", [f"{MODULE}:Tally"]) == full
    assert "on_resume" in outside.CALLS


def test_negative_control_a_plugin_without_state_does_not_survive(tmp_path: Path, outside: Any) -> None:
    _run(_cfg(tmp_path / "full", [f"{MODULE}.Forgetful"]))
    full = [strip_timing(r) for r in rows(tmp_path / "full")]
    cut = _cut_and_resume(tmp_path / "cut", [f"{MODULE}.Forgetful"])
    assert cut[:2] == full[:2] and cut[2]["forgetful"]["rounds"] == 1 != full[2]["forgetful"]["rounds"]
    assert "forgetful" not in checkpoint.load(tmp_path / "cut")[0].plugins


def test_the_builtins_run_in_pipeline_order_and_off_ones_are_left_out(tmp_path: Path, outside: Any) -> None:
    names = [p.name for p in build_plugins(_cfg(tmp_path, [f"{MODULE}:Tally", f"{MODULE}:off"], progress=True))]
    assert names == ["manifest", "adversary", "broker", "verifier", "noisy_eval", "tally", "progress"]  # no qkd, partitions
    names = [p.name for p in build_plugins(_cfg(tmp_path, [], auth="qkd", **{"partition.kind": "unitary", "model.layers": 2}))]
    assert names == ["manifest", "adversary", "qkd", "broker", "partitions", "verifier", "noisy_eval"]
    assert [p.name for p in build_plugins(_cfg(tmp_path, [], auth="off", **{"broker.policy": "off"}))] == ["manifest", "adversary", "noisy_eval"]


@pytest.mark.parametrize(("paths", "match"), [
    ([f"{MODULE}:Tally", f"{MODULE}:Tally"], "share the name 'tally'"),
    ([f"{MODULE}:NotAPlugin"], "expected a fedqnn.plugins.RoundPlugin"),
    ([f"{MODULE}:Nope"], "has no attribute 'Nope'"),
    (["no_such_module_xyz:Tally"], "cannot import module 'no_such_module_xyz'"),
])
def test_bad_plugins_fail_before_the_run_with_the_reason(tmp_path: Path, outside: Any, paths: list[str],
                                                          match: str) -> None:
    cfg = {**_cfg(tmp_path, []), "plugins": paths}  # past the config's shape check
    with pytest.raises(PluginError, match=match):
        build_plugins(cfg)


def test_a_checkpointed_state_that_no_plugin_claims_is_an_error(tmp_path: Path, outside: Any) -> None:
    _run(_cfg(tmp_path / "run", [f"{MODULE}:Tally"], rounds=1))
    ck, _, _ = checkpoint.load(tmp_path / "run")
    plugins = build_plugins(_cfg(tmp_path / "run", []))
    with pytest.raises(checkpoint.CheckpointError, match="plugin 'tally'"):
        checkpoint.load_plugin_states(plugins, ck.plugins)


def test_the_base_plugin_does_nothing() -> None:
    p = RoundPlugin()
    assert p.filter_eligible(None, ["a", "b"]) == ["a", "b"]  # type: ignore[arg-type]
    assert p.state_dict() is None
    assert all(getattr(p, h) is not None for h in HOOKS)
