"""Tables and findings of chapter 07, "Reproducibility and cost", from a
:class:`psyco_utils.reproducibility.ReproducibilityReport`."""

from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from .base import findings, integer, table

__all__ = ["run_table", "packages_table", "stages_table", "headline_metrics_table", "paid_calls_table",
           "spent_table", "larger_profiles_table", "reproducibility_findings"]

_COUNT_COLUMNS = ["statements", "theme label calls", "pool calls (API models)", "score calls", "compare calls",
                  "reference answers"]


def run_table(report):
    """Profile, what ran, seed, commit, Python, platform and the last update, from the manifest."""
    return table(report.run.astype(str), caption="This run, from the run manifest")


def packages_table(report):
    return table(report.packages, caption="Package versions recorded in the run manifest")


def stages_table(report):
    """Each chapter's status, wall time, failed checks and error (columns that are empty everywhere left out)."""
    stages = report.stages
    shown = stages.loc[:, [c for c in stages.columns if (stages[c].astype(str) != "").any()]]
    return table(shown, decimals=1, integer_columns=["headline metrics"],
                 caption="Stages: status, wall time (seconds) and headline metrics recorded")


def _metric_value(value) -> str:
    """One headline metric as text: counts with thousands separators, other numbers with three decimals, a mapping
    as its entries ('none' when empty)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_metric_value(v)}" for k, v in value.items()) or "none"
    return str(value)


def headline_metrics_table(report):
    metrics = report.headline_metrics.assign(value=report.headline_metrics["value"].map(_metric_value))
    return table(metrics, caption="Headline metrics each chapter recorded")


def paid_calls_table(report):
    return table(report.paid_calls(), decimals=2, integer_columns=["estimated calls"],
                 caption="Paid calls this run makes, estimated before the run (USD)")


def spent_table(report):
    spent = report.spent(report.run["profile"]).rename_axis(None)
    return table(spent, decimals=2, integer_columns=["requests sent", "failed judgments"],
                 caption="Estimated beside actual cost (USD), from the judge's cache; requests include retries")


def larger_profiles_table(report):
    """What the colab and paper presets would cost in paid calls, one column per profile and one row per quantity
    (counts with thousands separators, tokens in millions, dollars with cents)."""
    larger = report.larger_profiles
    rows = {}
    for column in larger.columns:
        values = larger[column]
        if column in _COUNT_COLUMNS:
            rows[column] = values.map(integer)
        elif column == "Batch API":
            rows[column] = values.map({True: "yes", False: "no"})
        elif column.endswith("(M)"):
            rows[column] = values.map("{:,.1f}".format)
        elif column.endswith("(USD)"):
            rows[column] = values.map("{:,.2f}".format)
        else:
            rows[column] = values.astype(str)
    frame = pd.DataFrame(rows).T.rename_axis(None).rename_axis(None, axis=1)
    return table(frame, caption="Estimated paid calls and cost of the larger profiles (tokens in millions, cost in "
                                "USD)")


def reproducibility_findings(report) -> Markdown:
    """The run's status, time and cost in a few sentences, computed from the report."""
    stages = report.stages
    not_ok = stages[stages["status"] != "ok"]
    status = (f"All {len(stages)} chapters recorded in this run folder ran to their end with every check passing"
              if not_ok.empty else f"{report.stages_ok} of {len(stages)} chapters are ok; not ok: "
              + ", ".join(f"{name} ({row['status']})" for name, row in not_ok.iterrows()))
    costs = report.larger_profiles["estimated cost (USD)"]
    points = [f"{status}, in {report.total_seconds:,.0f} seconds of chapter time.",
              f"Paid calls: estimated USD {report.estimate['total_usd']:,.2f} before the run, USD "
              f"{report.actual['actual_usd']:,.2f} recorded as spent in the judge's cache, over "
              f"{report.actual['requests']:,} judge requests (retries included)"
              + ("; the offline rubric judge's requests cost nothing." if report.estimate["judge"] ==
                 "offline rubric judge" else "."),
              "The larger profiles would cost about "
              + " and ".join(f"USD {cost:,.0f} ({name})" for name, cost in costs.items())
              + " in judge and API calls, by the estimate above; GPU time is not included."]
    return findings(points)
