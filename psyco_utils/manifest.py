"""``runs/<profile>/manifest.json``: profile, seed, package versions, git commit, and each stage's time and metrics."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .config import ProfileConfig, load_profile

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
    entry = manifest.setdefault("stages", {}).get(stage, {})
    manifest["stages"][stage] = {"seconds": round(seconds, 1), "metrics": metrics,
                                 "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                 "checks": entry.get("checks", [])}
    path.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def record_check(run_root: Path, stage: str, record: dict) -> None:
    """Add or replace (by name) one quality check's outcome in a stage's ``checks`` list in the run manifest."""
    path = Path(run_root) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    entry = manifest.setdefault("stages", {}).setdefault(stage, {})
    checks = [c for c in entry.get("checks", []) if c.get("name") != record["name"]]
    entry["checks"] = [*checks, record]
    path.write_text(json.dumps(manifest, indent=2, default=str))


#: Statements the paper judged (paper.md); the colab profile's count is its own ``data.max_statements``.
PAPER_STATEMENTS = 26_483


def judge_cost_estimate(profile_name: str) -> dict:
    """What a profile's judge calls would cost, from token counts (the reproducibility appendix and the README).

    Counted: every pool response scored once (statements x responses per statement); chapter 2's swap check, each
    pair compared in both orders; chapter 6, three policies against the reference in both orders and both settings.
    Not counted: the LLM theme labeller, pool responses from OpenAI-compatible models and chapter 6's reference
    answers, which are chat calls whose length depends on the model's answers.  Tokens come from the rubric's
    length and the mean lengths of the bundled statements and responses (4 characters per token); prices are the
    profile's judge prices; with ``judge.use_batch_api`` both kinds of call are priced at the Batch API's half price.
    """
    from .data import load_bundled_corpus
    from .judge import estimate_judge_cost

    statements, responses = load_bundled_corpus()
    avg_statement = int(statements["text"].str.len().mean())
    avg_response = int(responses["text"].str.len().mean())
    profile = load_profile(profile_name)
    n = profile.data.max_statements or PAPER_STATEMENTS
    n_score = n * profile.pool.responses_per_statement
    n_compare = 2 * profile.judging.swap_check_pairs + profile.eval.n_statements * 3 * 2 * 2
    price = "cost_usd_batch" if profile.judge.use_batch_api else "cost_usd"
    score = estimate_judge_cost(profile.judge, n_score=n_score, avg_statement_chars=avg_statement,
                                avg_response_chars=avg_response)
    compare = estimate_judge_cost(profile.judge, n_compare=n_compare, avg_statement_chars=avg_statement,
                                  avg_response_chars=avg_response)
    return {"judge": profile.judge.model, "statements": n, "score calls": n_score, "compare calls": n_compare,
            "Batch API": profile.judge.use_batch_api,
            "prompt tokens (M)": (score["prompt_tokens"] + compare["prompt_tokens"]) / 1e6,
            "completion tokens (M)": (score["completion_tokens"] + compare["completion_tokens"]) / 1e6,
            "estimated cost (USD)": score[price] + compare[price]}
