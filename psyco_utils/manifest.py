"""The run manifest, ``manifest.json`` in the run folder: profile, model (its tag names the run folder), seed, package
versions, git commit, and each stage's time and metrics."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .config import ProfileConfig, load_profile
from .config import _model_name as model_name
from .layout import RunLayout, model_tag
from .paper import DATASET

__all__ = [
    "TRACKED_PACKAGES", "PAPER_STATEMENTS", "POLICIES_COMPARED", "package_versions", "git_commit", "start_stage",
    "record_stage", "record_failure", "record_check", "record_cost", "actual_cost", "run_cost_estimate",
    "format_cost_estimate", "judge_cost_estimate",
]

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


def _update(run_root: Path, change) -> dict:
    """Read the run manifest, apply ``change(manifest)``, and replace the file atomically; returns the manifest."""
    layout = RunLayout(run_root)
    manifest = layout.load_manifest()
    change(manifest)
    layout.save_manifest(manifest)
    return manifest


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def start_stage(run_root: Path, stage: str) -> None:
    """Mark a stage as running, from a clean slate: its old status, metrics, checks and failure are dropped."""
    _update(run_root, lambda m: m["stages"].__setitem__(stage, {"status": "running", "started": _now(), "checks": []}))


def record_stage(cfg: ProfileConfig, run_root: Path, stage: str, seconds: float, metrics: dict) -> dict:
    """Record a stage that ran to its end: wall time, headline metrics, and its status, ``ok`` or ``checks failed``
    (with the names of the failed checks, recorded under ``checks: report``); returns the manifest."""

    def change(manifest):
        manifest.update({
            "profile": cfg.name,
            "model_tag": model_tag(cfg.models.policy),
            "policy": model_name(cfg.models.policy),
            "description": cfg.description,
            "seed": cfg.seed,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
            "git_commit": git_commit(),
            "updated": _now(),
        })
        checks = manifest["stages"].get(stage, {}).get("checks", [])
        failed = [c["name"] for c in checks if not c.get("passed")]
        manifest["stages"][stage] = {"status": "checks failed" if failed else "ok", "seconds": round(seconds, 1),
                                     "metrics": metrics, "finished": _now(), "checks": checks,
                                     **({"failed_checks": failed} if failed else {})}
        manifest["cost"] = {**manifest.get("cost", {}), **actual_cost(run_root)}

    return _update(run_root, change)


def record_failure(run_root: Path, stage: str, error: str, cell: str | None = None) -> None:
    """Record a stage that did not run to its end (``psyco-book`` calls it when papermill stops): status
    ``failed``, the cell and the error.  A failed stage is never marked finished."""

    def change(manifest):
        entry = manifest["stages"].get(stage, {})
        entry = {k: v for k, v in entry.items() if k not in ("finished", "seconds", "metrics", "failed_checks")}
        entry.update({"status": "failed", "error": error, "cell": cell, "failed_at": _now()})
        manifest["stages"][stage] = entry

    _update(run_root, change)


def record_check(run_root: Path, stage: str, record: dict) -> None:
    """Add or replace (by name) one quality check's outcome in a stage's ``checks`` list in the run manifest."""

    def change(manifest):
        entry = manifest["stages"].setdefault(stage, {})
        entry["checks"] = [*(c for c in entry.get("checks", []) if c.get("name") != record["name"]), record]

    _update(run_root, change)


def record_cost(run_root: Path, estimate: dict | None = None) -> dict:
    """Put the run's cost in the manifest: the estimate made before the run (when given) beside what the judge's
    cache says was spent; returns the manifest's ``cost`` entry."""

    def change(manifest):
        cost = manifest.get("cost", {})
        if estimate is not None:
            cost.update({"estimated_usd": estimate["total_usd"], "estimate": estimate})
        cost.update(actual_cost(run_root))
        manifest["cost"] = cost

    return _update(run_root, change)["cost"]


def actual_cost(run_root: Path) -> dict:
    """What the run folder's judge cache (``judgments.sqlite``) records as spent: every request sent, retries
    included, over every run that used this folder; with the dollars per model."""
    path = RunLayout(run_root).judgments
    if not path.exists():
        return {"actual_usd": 0.0, "actual_by_model": {}, "requests": 0, "failed": 0}
    from .judge.cache import JudgmentCache

    cache = JudgmentCache(path)
    try:
        summary = cache.summary()
    finally:
        cache.close()
    per_model = summary["per_model"]
    return {"actual_usd": round(sum(m["cost_usd"] for m in per_model.values()), 4),
            "actual_by_model": {name: round(m["cost_usd"], 4) for name, m in per_model.items()},
            "requests": sum(m["attempts"] for m in per_model.values()), "failed": summary["failed"]}


#: Statements the paper judged; the colab profile's count is its own ``data.max_statements``.
PAPER_STATEMENTS = DATASET["statements after cleaning"]
#: Policies chapter 06 compares with the reference: base, DPO and DPO-Iter.
POLICIES_COMPARED = 3
_CHARS_PER_TOKEN = 4
_FRAMING_TOKENS = 60  # chat format and labels around the texts, as in the judge's own estimate
_LABEL_TOKENS = 12  # one theme label in a JSON answer


def _statement_counts(cfg: ProfileConfig, run_root: Path | None) -> tuple[int, int, str]:
    """(statements labelled, statements kept, where the counts come from): chapter 01's filter counts when it has
    run; else the bundled corpus's size for a bundled-only profile, or the profile's ``max_statements`` (or the
    paper's count) for both."""
    counts = RunLayout(run_root).load_filter_counts() if run_root else None
    if counts is not None:
        cleaned = counts[~counts["step"].str.startswith("sampled")]["statements"].iloc[-1]
        return int(cleaned), int(counts["statements"].iloc[-1]), "chapter 01's counts"
    if all(src.kind == "bundled" for src in cfg.data.sources):
        from .data import load_bundled_corpus

        n = len(load_bundled_corpus()[0])
        return n, min(n, cfg.data.max_statements or n), "the bundled corpus's statements before cleaning"
    if cfg.data.max_statements:
        return cfg.data.max_statements, cfg.data.max_statements, (
            "assumed: max_statements; the labeller labels every cleaned statement before sampling, more if the "
            "sources hold more")
    return PAPER_STATEMENTS, PAPER_STATEMENTS, "assumed: the paper's 26,483 statements"


def _online_cost(judge, prompt_tokens: float, completion_tokens: float) -> float:
    """Dollars for online chat calls at the judge's prices, no prompt cache assumed (the chat client and the theme
    labeller record their cost at the judge's prices too)."""
    return (prompt_tokens * judge.price_input_per_mtok + completion_tokens * judge.price_output_per_mtok) / 1e6


def _row(calls: int, prompt: float, completion: float, cost: float) -> dict:
    return {"calls": int(calls), "prompt_tokens": int(prompt), "completion_tokens": int(completion),
            "cost_usd": round(cost, 2)}


def _crisis_evaluation_statements() -> int:
    from .crisis import load_evaluation_set

    return len(load_evaluation_set())


def run_cost_estimate(cfg: ProfileConfig, run_root: Path | None = None) -> dict:
    """Every paid call a run of ``cfg`` makes, by kind, with tokens and US dollars (printed by ``psyco-book run``
    before a paid run, recorded in the manifest beside the actual cost, shown in the reproducibility chapter).

    * theme labels (chapter 01, ``theme_labeller: llm``): one call per cleaned statement, before ``max_statements``
      samples them down;
    * pool responses from API models (chapter 01): each statement's responses are drawn from the generators able to
      answer it, so each ``openai`` generator answers a share of them;
    * scores (chapter 02): every pool response once; compares: chapter 02's swap check in both orders, and chapter
      06's three policies against the reference in both orders and both settings;
    * reference answers (chapter 06, ``eval.reference: openai``): one per evaluation statement and setting;
    * crisis second opinions (chapter 01, ``data.crisis_second_opinion``): one per kept statement and one per
      statement of the crisis evaluation set.

    Lengths are the bundled corpus's mean statement and response (about 4 characters per token); chat answers are
    priced at their token cap, an upper bound.  Score and compare calls use the judge's own estimate (prompt cache
    for the rubric, or the Batch API's half price); everything is priced at the judge's prices, as the cache records
    it.  Calls already in the run's cache are not paid again; the estimate counts them all.
    """
    from .data import load_bundled_corpus

    statements, responses = load_bundled_corpus()
    lengths = {"statement": float(statements["text"].str.len().mean()),
               "response": float(responses["text"].str.len().mean())}
    labelled, n, basis = _statement_counts(cfg, run_root)
    statement_tokens = lengths["statement"] / _CHARS_PER_TOKEN + _FRAMING_TOKENS
    label_calls = labelled if cfg.data.theme_labeller == "llm" else 0
    rows = {"theme labels (01)": _theme_label_row(cfg, label_calls, statement_tokens),
            "crisis second opinions (01)": _second_opinion_row(cfg, n, statement_tokens),
            "pool responses (01)": _pool_row(cfg, n, statement_tokens),
            **_judged_rows(cfg, n, lengths),
            "reference answers (06)": _reference_row(cfg, n, statement_tokens)}
    judge = cfg.judge
    return {"judge": judge.model if judge.backend == "openai" else "offline rubric judge",
            "Batch API": judge.use_batch_api, "statements": n, "labelled statements": label_calls,
            "statement counts": basis, "calls": rows,
            "total_calls": sum(r["calls"] for r in rows.values()),
            "total_usd": round(sum(r["cost_usd"] for r in rows.values()), 2)}


def _theme_label_row(cfg: ProfileConfig, label_calls: int, statement_tokens: float) -> dict:
    """Chapter 01's LLM theme labels: the statement plus the labeller's instruction (the themes and their
    descriptions) per call, a short JSON label back."""
    from .data import theme_instructions

    instructions = len(theme_instructions())
    label_prompt = label_calls * (statement_tokens + instructions / _CHARS_PER_TOKEN)
    return _row(label_calls, label_prompt, label_calls * _LABEL_TOKENS,
                _online_cost(cfg.judge, label_prompt, label_calls * _LABEL_TOKENS))


def _second_opinion_row(cfg: ProfileConfig, n: int, statement_tokens: float) -> dict:
    from .crisis import SECOND_OPINION_INSTRUCTIONS

    calls = (n + _crisis_evaluation_statements()) if cfg.data.crisis_second_opinion else 0
    prompt = calls * (statement_tokens + len(SECOND_OPINION_INSTRUCTIONS) / _CHARS_PER_TOKEN)
    return _row(calls, prompt, calls * _LABEL_TOKENS, _online_cost(cfg.judge, prompt, calls * _LABEL_TOKENS))


def _pool_row(cfg: ProfileConfig, n: int, statement_tokens: float) -> dict:
    """Pool responses from API models: each answers its share of the statements, priced at its token cap."""
    answering = [g for g in cfg.pool.generators if g.kind != "bundled"] or cfg.pool.generators
    share = min(1.0, cfg.pool.responses_per_statement / max(1, len(answering)))
    api_generators = [g for g in answering if g.kind == "openai"]
    calls = round(n * share * len(api_generators))
    completion = sum(n * share * g.max_new_tokens for g in api_generators)
    return _row(calls, calls * statement_tokens, completion,
                _online_cost(cfg.judge, calls * statement_tokens, completion))


def _evaluation_statements(cfg: ProfileConfig, n: int) -> int:
    return min(cfg.eval.n_statements, max(1, round(n * cfg.splits.test_fraction)))


def _judged_rows(cfg: ProfileConfig, n: int, lengths: dict) -> dict:
    """Score and compare calls, at the judge's own estimate (prompt cache, or the Batch API's half price)."""
    from .judge import estimate_judge_cost

    price = "cost_usd_batch" if cfg.judge.use_batch_api else "cost_usd"
    n_eval = _evaluation_statements(cfg, n)
    judged = {"scores (02)": {"n_score": n * cfg.pool.responses_per_statement},
              "swap-check compares (02)": {"n_compare": 2 * cfg.judging.swap_check_pairs},
              "win-rate compares (06)": {"n_compare": n_eval * POLICIES_COMPARED * 2 * 2}}
    rows = {}
    for name, calls in judged.items():
        est = estimate_judge_cost(cfg.judge, **calls, avg_statement_chars=lengths["statement"],
                                  avg_response_chars=lengths["response"])
        rows[name] = _row(est["requests"], est["prompt_tokens"], est["completion_tokens"], est[price])
    return rows


def _reference_row(cfg: ProfileConfig, n: int, statement_tokens: float) -> dict:
    """Chapter 06's reference answers from an API model: one per evaluation statement and setting."""
    n_eval = _evaluation_statements(cfg, n)
    calls = 2 * n_eval if cfg.eval.reference == "openai" else 0
    completion = n_eval * (cfg.eval.max_new_tokens + cfg.eval.constrained_max_new_tokens) if calls else 0
    return _row(calls, calls * statement_tokens, completion,
                _online_cost(cfg.judge, calls * statement_tokens, completion))


def format_cost_estimate(estimate: dict) -> str:
    """The estimate as the lines ``psyco-book run`` prints before a paid run."""
    lines = [f"psyco-book: paid calls this run makes (judge {estimate['judge']}"
             f"{', score and compare through the Batch API' if estimate['Batch API'] else ''}; "
             f"statements: {estimate['statement counts']}):"]
    for name, row in estimate["calls"].items():
        if row["calls"]:
            lines.append(f"  {name:<26}{row['calls']:>10,} calls  ${row['cost_usd']:>10,.2f}")
    lines.append(f"  {'total':<26}{estimate['total_calls']:>10,} calls  ${estimate['total_usd']:>10,.2f}"
                 "  (chat answers at their token cap; calls already cached are not paid again)")
    return "\n".join(lines)


def judge_cost_estimate(profile_name: str) -> dict:
    """One row of the reproducibility chapter's budget table (and the README's costs): a preset's paid calls by
    kind and its estimated cost, from :func:`run_cost_estimate`."""
    estimate = run_cost_estimate(load_profile(profile_name))
    calls = estimate["calls"]
    return {"judge": estimate["judge"], "statements": estimate["statements"],
            "theme label calls": calls["theme labels (01)"]["calls"],
            "pool calls (API models)": calls["pool responses (01)"]["calls"],
            "score calls": calls["scores (02)"]["calls"],
            "compare calls": calls["swap-check compares (02)"]["calls"] + calls["win-rate compares (06)"]["calls"],
            "reference answers": calls["reference answers (06)"]["calls"],
            "Batch API": estimate["Batch API"],
            "prompt tokens (M)": sum(r["prompt_tokens"] for r in calls.values()) / 1e6,
            "completion tokens (M)": sum(r["completion_tokens"] for r in calls.values()) / 1e6,
            "estimated cost (USD)": estimate["total_usd"]}

