"""Chapter 07, "Reproducibility and cost": the run manifest and the judge's cache, read into one report."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .layout import RunLayout
from .manifest import actual_cost, judge_cost_estimate, run_cost_estimate

__all__ = ["LARGER_PROFILES", "ReproducibilityReport", "reproducibility_report"]

LARGER_PROFILES = ("colab", "paper")


@dataclass(frozen=True)
class ReproducibilityReport:
    """What chapter 07 shows, read from the run manifest and the judge's cache.

    ``run``: profile, what ran, seed, commit, Python, platform, last update; ``packages``: versions; ``stages``: one
    row per chapter that ran (status, seconds, failed checks, error); ``headline_metrics``: (stage, metric) -> value;
    ``estimate``: the paid calls estimated before the run (:func:`run_cost_estimate`); ``actual``: what the cache
    records as spent (:func:`actual_cost`); ``larger_profiles``: :func:`judge_cost_estimate` of the colab and paper
    presets."""

    run: pd.Series
    packages: pd.Series
    stages: pd.DataFrame
    headline_metrics: pd.DataFrame
    estimate: dict
    actual: dict
    larger_profiles: pd.DataFrame

    @property
    def total_seconds(self) -> float:
        return float(self.stages["seconds"].fillna(0).sum())

    @property
    def stages_ok(self) -> int:
        return int((self.stages["status"] == "ok").sum())

    def headline(self) -> dict:
        """The manifest's headline metrics of chapter 07."""
        return {"chapters_recorded": len(self.stages), "estimated_cost_usd": self.estimate["total_usd"],
                "actual_cost_usd": self.actual["actual_usd"]}

    def paid_calls(self) -> pd.DataFrame:
        """The estimate by kind of call: calls and dollars."""
        rows = {name: {"estimated calls": row["calls"], "estimated cost (USD)": row["cost_usd"]}
                for name, row in self.estimate["calls"].items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("paid call")

    def spent(self, profile: str) -> pd.DataFrame:
        """The estimate beside what was spent, the requests sent (retries included) and the failed judgments in the
        judge's cache, in one row."""
        return pd.DataFrame({"estimated (USD)": [self.estimate["total_usd"]],
                             "actual (USD)": [self.actual["actual_usd"]], "requests sent": [self.actual["requests"]],
                             "failed judgments": [self.actual["failed"]]},
                            index=pd.Index([f"{profile} profile"], name="run"))


def _stage_rows(stages: dict) -> pd.DataFrame:
    rows = [{"stage": name, "status": entry.get("status", "not recorded"), "seconds": entry.get("seconds"),
             "failed checks": ", ".join(entry.get("failed_checks", [])),
             "error": " ".join(str(part) for part in (entry.get("cell"), entry.get("error")) if part),
             "headline metrics": len(entry.get("metrics", {}))} for name, entry in stages.items()]
    frame = pd.DataFrame(rows, columns=["stage", "status", "seconds", "failed checks", "error", "headline metrics"])
    frame["seconds"] = pd.to_numeric(frame["seconds"], errors="coerce")
    return frame.set_index("stage")


def _metric_rows(stages: dict) -> pd.DataFrame:
    rows = [{"stage": name, "metric": key, "value": value}
            for name, entry in stages.items() for key, value in entry.get("metrics", {}).items()]
    return pd.DataFrame(rows, columns=["stage", "metric", "value"]).set_index(["stage", "metric"])


def reproducibility_report(chapter) -> ReproducibilityReport:
    """The report of chapter 07 (a :class:`psyco_utils.runtime.Chapter`) on its run folder; the chapter's own stage
    is left out.  Raises FileNotFoundError when no other chapter has finished in this run folder."""
    from .config import profile_summary

    cfg, run_root, this_stage = chapter.cfg, chapter.run, chapter.stage

    manifest = RunLayout(run_root).load_manifest()
    stages = {name: entry for name, entry in sorted(manifest["stages"].items()) if name != this_stage}
    if not any("finished" in entry for entry in stages.values()):
        raise FileNotFoundError(f"no chapter of the {cfg.name} profile has finished in this run folder yet: run "
                                f"chapters 01 to 06 first (psyco-book run --profile {cfg.name})")
    run = pd.Series({"profile": cfg.name, "what ran": profile_summary(cfg),
                     **{key: manifest.get(key, "not recorded")
                        for key in ("seed", "git_commit", "python", "platform", "updated")}}, name="this run")
    estimate = manifest.get("cost", {}).get("estimate") or run_cost_estimate(cfg, run_root)
    larger = pd.DataFrame({name: judge_cost_estimate(name) for name in LARGER_PROFILES}).T.infer_objects()
    larger = larger.rename_axis("profile")
    return ReproducibilityReport(
        run=run.rename_axis("setting"), packages=pd.Series(manifest.get("packages", {}), name="version",
                                                           dtype=object).rename_axis("package"),
        stages=_stage_rows(stages), headline_metrics=_metric_rows(stages), estimate=estimate,
        actual=actual_cost(run_root), larger_profiles=larger)
