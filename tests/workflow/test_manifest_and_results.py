"""The reproducibility manifest in summary.json, its warning on --resume with other software,
and the results API (``load_runs``, ``compare``) reading what runs write (issue 20)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedqnn import checkpoint
from fedqnn.config import config_hash
from fedqnn.manifest import PACKAGES
from fedqnn.results import compare, load_runs
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config, rows

pd = pytest.importorskip("pandas", reason="the 'track' extra is not installed")


def test_summary_carries_the_manifest(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", rounds=1)
    summary = run_server(LocalGrid(5), cfg)
    m = summary["manifest"]
    assert set(m) == {"fedqnn", "git", "python", "platform", "packages", "config_sha256"}
    assert set(m["packages"]) == set(PACKAGES) and m["packages"]["flwr"] and m["packages"]["torch"]
    assert m["config_sha256"] == config_hash(cfg)
    assert m["git"] is None or len(m["git"]["commit"]) == 40


def test_resume_on_other_software_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    out = tmp_path / "run"
    run_server(LocalGrid(5), config(out, rounds=1))
    import fedqnn.manifest as manifest

    real = manifest.manifest
    monkeypatch.setattr(manifest, "manifest", lambda cfg: {**real(cfg), "python": "2.7.18"})
    with caplog.at_level(logging.WARNING):
        run_server(LocalGrid(5), checkpoint.config_for_resume(out, rounds=2), resume=True)
    assert any("other software" in r.getMessage() and "python" in r.getMessage() for r in caplog.records)


def test_control_resume_on_the_same_software_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    run_server(LocalGrid(5), config(out, rounds=1))
    with caplog.at_level(logging.WARNING):
        run_server(LocalGrid(5), checkpoint.config_for_resume(out, rounds=2), resume=True)
    assert not any("other software" in r.getMessage() for r in caplog.records)


def test_load_runs_and_compare_read_what_runs_write(tmp_path: Path) -> None:
    for strategy in ("fedavg", "median"):
        for seed in (1, 2):
            cfg = config(tmp_path / f"{strategy}-{seed}", rounds=2, seed=seed, strategy=strategy,
                         byzantine_fraction=0.0, attack="none", **{"broker.policy": "off"})
            run_server(LocalGrid(5), cfg)
    df = load_runs(tmp_path)
    assert len(df) == 8 and df["run"].nunique() == 4
    one = df[df["run"] == str(tmp_path / "median-2")]
    assert list(one["round"]) == [1, 2]
    assert list(one["eval.rel_l2"]) == [r["eval"]["rel_l2"] for r in rows(tmp_path / "median-2")]
    assert set(one["config.strategy"]) == {"median"} and one["final.rel_l2"].iloc[0] == one["eval.rel_l2"].iloc[-1]
    table = compare(df, by="config.strategy", metric="rel_l2", baseline="fedavg")
    finals = df.drop_duplicates("run").set_index(["config.strategy", "config.seed"])["final.rel_l2"]
    diffs = [finals["median", s] - finals["fedavg", s] for s in (1, 2)]
    assert list(table["config.strategy"]) == ["median"] and int(table["n"].iloc[0]) == 2
    assert table["mean"].iloc[0] == pytest.approx(sum(diffs) / 2)
    assert table["low"].iloc[0] <= table["mean"].iloc[0] <= table["high"].iloc[0]
    with pytest.raises(KeyError, match="no column 'config.nope'"):
        compare(df, by="config.nope", metric="rel_l2")
