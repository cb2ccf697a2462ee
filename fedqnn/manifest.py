"""The reproducibility manifest (``summary.json`` ``manifest``) as a round plugin.

``fedqnn`` (version), ``git`` (``commit`` and ``dirty`` when the package runs from a git
checkout, else null), ``python``, ``platform``, ``packages`` (versions of flwr, torch, pennylane,
numpy, scipy, cryptography; null when not installed) and ``config_sha256`` (SHA-256 of the
canonical validated config, :func:`fedqnn.config.config_hash`). The manifest is also the plugin's
checkpoint state: ``--resume`` on other software logs a warning naming what differs.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from logging import WARNING
from pathlib import Path
from typing import Any

from fedqnn.plugins import RoundPlugin, RunContext

__all__ = ["ManifestPlugin", "manifest", "from_config", "PACKAGES"]

PACKAGES = ("flwr", "torch", "pennylane", "numpy", "scipy", "cryptography")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path) -> dict[str, Any] | None:
    """Commit and dirtiness of the checkout holding ``root`` (None outside git)."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def manifest(cfg: dict[str, Any]) -> dict[str, Any]:
    """The software this run runs on (see the module docstring)."""
    from fedqnn.config import config_hash

    return {
        "fedqnn": _version("fedqnn"),
        "git": _git(Path(__file__).resolve().parent),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "config_sha256": config_hash(cfg),
    }


class ManifestPlugin(RoundPlugin):
    name = "manifest"

    def setup(self, run: RunContext) -> None:
        self.manifest = manifest(run.cfg)
        self.before: dict[str, Any] | None = None

    def on_resume(self, run: RunContext) -> None:
        if self.before is None:
            return
        diff = sorted(k for k in set(self.manifest) | set(self.before)
                      if k != "config_sha256" and self.manifest.get(k) != self.before.get(k))
        if diff:
            from flwr.common.logger import log

            log(WARNING, "fedqnn: --resume on other software than the run began on (%s): %s", ", ".join(diff),
                "; ".join(f"{k}: {self.before.get(k)} -> {self.manifest.get(k)}" for k in diff))

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        extra["manifest"] = self.manifest

    def state_dict(self) -> dict[str, Any]:
        return self.manifest

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = state


def from_config(cfg: dict[str, Any]) -> ManifestPlugin:
    return ManifestPlugin()
