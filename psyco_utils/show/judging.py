"""Figures and tables of chapter 02, "Judging": the principles, the rubric judge at work, score distributions, the
correlation between principles, the score gap of the pairs, and example pairs.

They take the result objects of :mod:`psyco_utils.judging` (duck-typed: nothing here imports a stage module).
Every figure is drawn at ``FIGURE_WIDTH_IN``; legends sit off the data.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from ..principles import PRINCIPLE_KEYS, PRINCIPLES
from .base import FIGURE_WIDTH_IN, escape_markdown, example, findings, integer, legend_below, percent, table

__all__ = ["principles_table", "rubric_demo", "rubric_features", "score_histograms", "heatmap", "principle_correlation",
           "generator_scores", "score_gap_histogram",
           "pair_examples", "judged_sets", "human_agreement", "human_labels_format", "upvote_agreement"]


def principles_table():
    """The seven principles: column stem, group, definition and the anchors of scores 1 and 5."""
    frame = pd.DataFrame([{"principle": p.name, "column": p.key, "group": p.group, "definition": p.definition,
                           "a 1 looks like": p.anchors[1], "a 5 looks like": p.anchors[5]} for p in PRINCIPLES])
    return table(frame.set_index("principle"))


def rubric_demo(demo) -> Markdown:
    """The statement, the two responses, and the rubric judge's ratings and rationale for each."""
    if demo is None:
        return findings("The rubric demonstration runs with the offline rubric judge only; this profile's judge is "
                        "an LLM, whose ratings come with their own rationales in the cache.")
    parts = [example(demo.statement, "Client statement", limit=600).data]
    for style, text in demo.responses.items():
        result = demo.results[style]
        ratings = ", ".join(f"{k} {v}" for k, v in (result.ratings or {}).items()) or "failed"
        parts.append(example(text, f"{style.capitalize()} response", limit=300).data)
        parts.append(f"Ratings: {escape_markdown(ratings)}. Rationale: {escape_markdown(result.rationale)}")
    return Markdown("\n\n".join(parts))


def rubric_features(demo):
    """The surface features the rubric judge read from each response of the demonstration: counts as integers,
    shares with two decimals."""
    if demo is None:
        return findings("No rubric features: this profile's judge is an LLM.")
    shown = demo.features.map(lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:.2f}")
    return table(shown)


def score_histograms(scored: pd.DataFrame, judge_label: str):
    """Scores 1 to 5 per principle, one small panel each (two rows, so the panels stay readable), and the overall
    score; the title names the judge."""
    title = f"Scores per principle ({judge_label}, {scored['overall'].notna().sum():,} responses)"
    fig, axes = plt.subplots(2, 4, figsize=(FIGURE_WIDTH_IN, 4.4), sharey=True)
    for ax, p in zip(axes.flat, PRINCIPLES):
        counts = scored[p.key].value_counts().reindex(range(1, 6), fill_value=0)
        ax.bar(counts.index, counts.values, color="#4C72B0")
        ax.set_title(p.key, fontsize=9)
        ax.set_xticks(range(1, 6))
    overall = scored["overall"].dropna()
    axes.flat[7].hist(overall, bins=np.arange(0.5, 5.6, 1 / 7), color="#DD8452")
    axes.flat[7].set_title("overall (mean of 7)", fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("score (1-5)")
    for ax in axes[:, 0]:
        ax.set_ylabel("responses (count)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(frame: pd.DataFrame, title: str, colorbar: str, *, vmin: float, vmax: float, cmap: str = "Blues",
            digits: int = 2, xlabel: str | None = None, ylabel: str | None = None):
    """A labelled heat map of ``frame`` (rows down, columns across) with each value written in its cell, at the page
    width; used for tables too wide for the column (chapter 01's theme labels, chapter 02's scores)."""
    values = frame.to_numpy(dtype=float)
    height = min(6.0, 1.6 + 0.42 * len(frame))
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, height))
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), [str(c) for c in frame.columns], rotation=35, ha="right")
    ax.set_yticks(range(frame.shape[0]), [str(i) for i in frame.index])
    ax.grid(False)
    middle = (vmin + vmax) / 2
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            v = values[i, j]
            dark = not np.isnan(v) and (v > middle + 0.3 * (vmax - vmin) or (cmap == "RdBu_r" and abs(v) > 0.6))
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.{digits}f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    fig.colorbar(image, ax=ax, label=colorbar)
    ax.set_title(title)
    ax.set_xlabel(xlabel or "")
    ax.set_ylabel(ylabel or "")
    fig.tight_layout()
    return fig


def principle_correlation(scored: pd.DataFrame, title: str = "Correlation between principles"):
    """Spearman correlation of the seven ratings over the judged responses, as a labelled heat map."""
    corr = scored[list(PRINCIPLE_KEYS)].corr(method="spearman")
    return heatmap(corr, title, "Spearman correlation", vmin=-1, vmax=1, cmap="RdBu_r")


def generator_scores(by_generator: pd.DataFrame, title: str = "Mean score per principle and pool generator"):
    """Mean rating (1 to 5) per pool generator and principle, and the overall score, best generator on top."""
    columns = [*PRINCIPLE_KEYS, "overall"]
    return heatmap(by_generator[columns], title, "mean score (1-5)", vmin=1, vmax=5, xlabel="principle",
                   ylabel="pool generator")


def score_gap_histogram(frames: dict[str, pd.DataFrame], min_gap: float,
                        title: str = "Score gap of the preference pairs"):
    """The overall score gap (chosen minus rejected) of each split's pairs, the minimum train gap marked; the
    legend sits under the axes, off the bars."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.9))
    edges = np.arange(-1 / 14, 4.1, 1 / 7)
    for split, frame in frames.items():
        ax.hist(frame["score_gap"], bins=edges, alpha=0.6, label=f"{split} (n={len(frame):,})")
    ax.axvline(min_gap - 1 / 14, color="k", ls="--", lw=1, label=f"train and dev: gap {min_gap:g} or more")
    ax.set_xlabel("overall score gap, chosen - rejected (points on the 1-5 scale)")
    ax.set_ylabel("pairs (count)")
    ax.set_title(title)
    legend_below(ax, ncol=4)
    fig.tight_layout()
    return fig


def pair_examples(rows: pd.DataFrame, max_chars: int = 300) -> Markdown:
    """Each pair as the statement, the chosen and the rejected response, and their ratings side by side."""
    if rows.empty:
        return findings("No training pair to show in this run (see the judged-set check above).")
    parts = []
    for _, row in rows.iterrows():
        ratings = ", ".join(f"{k} {row[f'chosen_{k}_rating']}/{row[f'rejected_{k}_rating']}" for k in PRINCIPLE_KEYS)
        parts += [f"**Pair {escape_markdown(row['ID'])}, overall gap {row['score_gap']:.2f}** "
                  f"(ratings chosen/rejected: {escape_markdown(ratings)})",
                  example(row["question"], "Client statement", limit=max_chars).data,
                  example(row["chosen"], f"Chosen ({row['chosen_model']})", limit=max_chars).data,
                  example(row["rejected"], f"Rejected ({row['rejected_model']})", limit=max_chars).data]
    return Markdown("\n\n".join(parts))


def judged_sets(result) -> Markdown:
    """How complete the scores and the position-swap comparisons are (each report's message, with what to run
    when judgments are missing) and the failed score judgments by reason."""
    points = [result.score_report["message"], result.swap_report["message"]]
    failures = result.failures()
    if not failures.empty:
        points.append("Failed score judgments by reason: " + ", ".join(
            f"{escape_markdown(reason)} {integer(n)}" for reason, n in failures["failed judgments"].items()) + ".")
    return findings(points)


def human_agreement(agreement: dict | None):
    """Accuracy and Cohen's kappa against the human labels, or a sentence saying no labels were given."""
    if agreement is None:
        return findings("No file of human labels is given for this profile (`judging.human_labels_path`), so "
                        "agreement with therapists is not measured here.")
    frame = pd.Series({**({"labelled by": agreement["labelled by"]} if "labelled by" in agreement else {}),
                       "pairs labelled": integer(agreement["pairs"]),
                       "accuracy": f"{agreement['accuracy']:.1%}",
                       "Cohen's kappa": f"{agreement['cohen_kappa']:.2f}",
                       **({"second labeller's accuracy": f"{agreement['second_accuracy']:.1%}",
                           "mean of the two labellers": f"{agreement['mean_accuracy']:.1%}",
                           "labellers agree with each other": f"{agreement['between_labellers']:.1%}"}
                          if "second_accuracy" in agreement else {})}, name="agreement with human labels")
    return table(frame.to_frame())


def human_labels_format(labels) -> None:
    """What a labels file holds (its columns and their values), its first rows, and the error a bad row gets; a
    sentence when the profile has no labels."""
    from IPython.display import display

    from ..pairs import HUMAN_LABEL_COLUMNS

    columns = pd.DataFrame(HUMAN_LABEL_COLUMNS, index=["holds", "values"]).T.rename_axis("column")
    shown = [table(columns, caption="The columns of a labels file (CSV, one row per labelled pair)")]
    if labels is None:
        shown.append(findings("This profile has no labels file (`judging.human_labels_path`) and no bundled "
                              "responses to label from, so agreement with people is not measured here."))
    else:
        shown.append(table(labels.example, caption=f"The first rows of {labels.file_name} ({labels.source})",
                           hide_index=True))
        if labels.counts:
            shown.append(table(pd.Series(labels.counts, name="pairs").to_frame(), integer_columns=["pairs"],
                               caption="Which pairs the intended order labels"))
        error = labels.bad_row_error.replace("`", "'")  # shown verbatim in a code span
        shown.append(findings(f"A row that breaks the format stops the chapter with an error naming the file, the "
                              f"row and the column, as this one, raised for a copy whose first `human_choice` is "
                              f"'both': `{error}`"))
    for item in shown:
        display(item)


def upvote_agreement(upvotes: dict | None, profile: str):
    """The judge against therapists' upvotes beside the paper's expert agreement, or where it would be computed."""
    from .. import paper

    expert = paper.HUMAN_VALIDATION["expert agreement with the win-rate judge"]
    if upvotes is None:
        return findings(f"No statement source of the {profile} profile publishes therapists' answers with upvotes, "
                        "so this check does not run here. The colab and paper profiles read counsel-chat, whose "
                        "answers carry upvotes, and compute it; the stand-in run exercises it on a small file in "
                        "counsel-chat's format.")
    counts, r = upvotes["counts"], upvotes["result"]
    from IPython.display import display

    display(table(pd.Series(counts, name="count").to_frame(), integer_columns=["count"],
                  caption="From the sources' answers to the pairs judged"))
    if r is None:
        return findings("No two answers to one statement differ in upvotes, so there is nothing to compare.")
    frame = pd.Series({"pairs judged in both orders": integer(r["judged"]), "failed": integer(r["failed"]),
                       "judge prefers the better-voted answer (ties count half)":
                           f"{percent(r['agreement'])} ({percent(r['ci_low'])} to {percent(r['ci_high'])})",
                       "in both orders": percent(r["strict_agreement"]),
                       "ties (orders disagree or a tie)": integer(r["ties"]),
                       "Cohen's kappa": f"{r['cohen_kappa']:.2f} ({r['kappa_low']:.2f} to {r['kappa_high']:.2f})",
                       "paper: experts agree with GPT-4o's pairwise verdicts": percent(expert)},
                      name="judge against upvotes")
    display(table(frame.to_frame()))
    return findings(f"The judge preferred the better-voted answer on {percent(r['agreement'])} of "
                    f"{integer(r['judged'])} pairs (95% interval {percent(r['ci_low'])} to {percent(r['ci_high'])}; "
                    f"kappa {r['cohen_kappa']:.2f}). The paper's experts agreed with GPT-4o on {percent(expert)} of "
                    "pairs. Upvotes are a weak proxy for expert judgement: readers vote, not a panel; older answers "
                    "collect more votes; and a gap of one vote is close to noise.")
