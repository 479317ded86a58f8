"""Tables and findings of chapter 07, "Reproducibility and cost", from a
:class:`psyco_utils.reproducibility.ReproducibilityReport`."""

from __future__ import annotations

import html

import pandas as pd
from IPython.display import Markdown

from .base import escape_markdown, findings, integer, table

__all__ = ["run_table", "packages_table", "stages_table", "headline_metrics_table", "paid_calls_table",
           "spent_table", "larger_profiles_table", "reproducibility_findings", "fidelity_results",
           "fidelity_settings", "fidelity_gaps", "book_choices", "fidelity_findings"]

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


def _breakable(text: str) -> str:
    """``text`` as HTML with break opportunities after dots, commas, brackets, equals signs and slashes, so that a
    long setting or call wraps inside a narrow column."""
    escaped = html.escape(text)
    for mark in (".", ",", "(", "=", "/"):
        escaped = escaped.replace(mark, mark + "<wbr>")
    return escaped


def _code(text: str) -> str:
    """``text`` in code type, breakable (:func:`_breakable`); '-' for nothing."""
    return f"<code>{_breakable(text)}</code>" if text and text != "-" else "-"


def _by_number(fidelity: pd.DataFrame, kind: str, columns: list[str]) -> pd.DataFrame:
    rows = fidelity[fidelity["kind"] == kind]
    return rows.set_index(["section", "number"])[columns].rename_axis([None, None])


def fidelity_results(fidelity: pd.DataFrame):
    """The paper's reported results, grouped by the chapter call that computes them at paper scale (with the setting
    that decides them and how the paper profile's run differs), one row per number."""
    rows = fidelity[fidelity["kind"] == "result"]
    where = [f"{html.escape(c.split(': ', 1)[0][:2])}: {_code(c.split(': ', 1)[1])}<br>setting {_code(s)}"
             for c, s in zip(rows["computed in"], rows["setting"])]
    shown = pd.DataFrame({"chapter: call, setting": where,
                          "how the run differs": [_breakable(w) if w else "-" for w in rows["why"]],
                          "number": rows["section"] + ": " + rows["number"], "paper": rows["paper"]})
    shown = shown.sort_values("chapter: call, setting", kind="stable")
    shown = shown.set_index(["chapter: call, setting", "how the run differs", "number"])
    styler = table(shown, caption="The paper's results, by the chapter call that computes them at paper scale")
    return styler.format_index(lambda label: label, axis=0, level=[0, 1]).format_index(html.escape, axis=0, level=2)


def fidelity_settings(fidelity: pd.DataFrame):
    """The paper's stated settings beside the paper profile's value of each, and why they differ where they do."""
    rows = _by_number(fidelity, "setting", ["paper", "paper profile", "as the paper", "setting", "why"])
    shown = pd.DataFrame({"paper": rows["paper"], "paper profile": rows["paper profile"],
                          "same": rows["as the paper"],
                          "setting, and why it differs": [_code(s) + (f"<br>{_breakable(w)}" if w else "")
                                                          for s, w in zip(rows["setting"], rows["why"])]})
    return table(shown, html_columns=["setting, and why it differs"],
                 caption="The paper's settings beside the paper profile's (values read from the preset)")


def fidelity_gaps(fidelity: pd.DataFrame):
    """The paper's numbers the book has no code path for, and why."""
    rows = _by_number(fidelity, "no code path", ["paper", "why"])
    return table(rows, caption="The paper's numbers without a code path here")


def book_choices(choices: pd.DataFrame):
    """What the paper leaves open, the paper profile's choice and the reason for it."""
    shown = choices.assign(setting=choices["setting"].map(_code))
    return table(shown, html_columns=["setting"], hide_index=True,
                 caption="Settings the paper does not state: the paper profile's choice")


def fidelity_findings(fidelity: pd.DataFrame) -> Markdown:
    """How many of the paper's numbers the book computes, uses as settings, or cannot reach, and which settings of
    the paper profile differ from the paper's."""
    counts = fidelity["kind"].value_counts()
    differing = fidelity[(fidelity["kind"] == "setting") & (fidelity["as the paper"] == "no")]
    points = [f"Of the paper's {len(fidelity)} numbers, {counts.get('result', 0)} are results a chapter computes at "
              f"paper scale, {counts.get('setting', 0)} are settings of the paper profile, and "
              f"{counts.get('no code path', 0)} have no code path here (their reasons are in the last table)."]
    if differing.empty:
        points.append("Every stated setting of the paper profile has the paper's value.")
    else:
        points.append("The paper profile differs from the paper on " + "; ".join(
            f"{escape_markdown(r['number'])} ({escape_markdown(r['paper'])} in the paper, "
            f"{escape_markdown(r['paper profile'])} here)" for _, r in differing.iterrows())
            + ": the tables give the reason for each.")
    return findings(points)
