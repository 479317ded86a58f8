"""``runs/<profile>/manifest.json``: profile, seed, package versions, git commit, and each stage's time and metrics."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .config import ProfileConfig

TRACKED_PACKAGES = ("torch", "transformers", "tokenizers", "trl", "peft", "datasets", "accelerate", "numpy", "pandas",
                    "scikit-learn", "openai", "papermill", "jupyter-book", "psyco-utils")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed version of each package, or "not installed"."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=repo or Path(__file__).parent, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=repo or Path(__file__).parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def record_stage(cfg: ProfileConfig, run_root: Path, stage: str, seconds: float, metrics: dict) -> dict:
    """Add or replace one stage's entry (wall time and headline metrics) in the run manifest; returns the manifest."""
    path = Path(run_root) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    manifest.update({
        "profile": cfg.name,
        "description": cfg.description,
        "seed": cfg.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "updated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    })
    manifest.setdefault("stages", {})[stage] = {"seconds": round(seconds, 1), "metrics": metrics,
                                                 "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    path.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest
