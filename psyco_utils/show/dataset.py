"""Figures and tables of chapter 01, "Dataset construction": sources, cleaning funnel, drops, edge cases, personal
data, crisis flags and screen, themes, lengths, the tiny world and the response pool.

The tables take the result objects of :mod:`psyco_utils.construction` (duck-typed: nothing here imports a stage
module); every figure is drawn at ``FIGURE_WIDTH_IN`` with its legend off the data.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from .base import FIGURE_WIDTH_IN, escape_markdown, example, findings, integer, legend_below, table

__all__ = [
    "filter_funnel", "length_histogram", "category_bars", "loss_curve", "grouped_boxplot", "sources",
    "theme_taxonomy", "corpus_edge_cases", "edge_case_recall", "cleaning_funnel", "scrubbed_examples",
    "theme_bars", "theme_agreement", "statement_lengths", "models_used", "warm_start_curve", "pool_example",
    "crisis_screen", "second_opinion_counts", "second_opinion", "artifacts",
]


def filter_funnel(counts: pd.DataFrame, title: str = "Statements left after each step"):
    """Horizontal bars: statements remaining after each cleaning step (chapter 01)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.4 * len(counts) + 1.2))
    ax.barh(counts["step"][::-1], counts["statements"][::-1], color="#4C72B0")
    for y, (n, removed) in enumerate(zip(counts["statements"][::-1], counts["removed"][::-1])):
        ax.text(n, y, f" {n:,}" + (f"  (-{removed:,})" if removed else ""), va="center", fontsize=9)
    ax.set_xlabel("statements (count)")
    ax.set_ylabel("cleaning step")
    ax.set_title(title)
    ax.set_xlim(0, counts["statements"].max() * 1.3)
    fig.tight_layout()
    return fig


def length_histogram(lengths: dict[str, pd.Series], window: tuple[int, int] | None = None, bins: int = 40,
                     title: str = "Length of statements", xlabel: str = "length (characters)",
                     ylabel: str = "texts (count)"):
    """Overlaid histograms of character lengths, with the kept window shaded; the legend sits under the axes."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.8))
    hi = max(float(s.max()) for s in lengths.values() if len(s))
    edges = np.linspace(0, hi, bins + 1)
    for label, series in lengths.items():
        ax.hist(series, bins=edges, alpha=0.55, label=f"{label} (n={len(series):,})")
    if window:
        ax.axvspan(*window, color="green", alpha=0.08, label=f"kept: {window[0]:,}-{window[1]:,} chars")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_below(ax)
    fig.tight_layout()
    return fig


def category_bars(counts: pd.Series, title: str, xlabel: str = "count", color: str = "#55A868",
                  ylabel: str | None = None):
    """Horizontal bar chart of counts per category (themes, generators, ...)."""
    counts = counts.sort_values()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.35 * len(counts) + 1.2))
    ax.barh(counts.index.astype(str), counts.values, color=color)
    for y, v in enumerate(counts.values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if ylabel is not None else (counts.index.name or "category"))
    ax.set_title(title)
    ax.set_xlim(0, counts.max() * 1.2)
    fig.tight_layout()
    return fig


def loss_curve(losses: list[float], title: str, xlabel: str = "optimizer step", ylabel: str = "loss (nats per token)"):
    """Loss per step and its moving mean; the legend sits under the axes."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.6))
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label="per step")
    if len(losses) >= 10:
        k = max(5, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(range(k, len(losses) + 1), smooth, lw=2, label=f"moving mean ({k} steps)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_below(ax, ncol=2)
    fig.tight_layout()
    return fig


def grouped_boxplot(frame: pd.DataFrame, value: str, group: str, title: str, ylabel: str):
    """One box per group of ``value`` (e.g. response length per pool generator)."""
    order = frame.groupby(group)[value].median().sort_values().index
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.8))
    ax.boxplot([frame.loc[frame[group] == g, value] for g in order], tick_labels=list(order), vert=True)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(group)
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    return fig


def sources(source_configs) -> object:
    """The profile's statement sources: kind, name, and where each comes from (file names only, never a path)."""
    from pathlib import Path

    rows = [{"source": s.name or ("bundled corpus" if s.kind == "bundled" else "-"), "kind": s.kind,
             "from": s.hub_id or (Path(s.path).name if s.path else "shipped with the book"),
             "text column": getattr(s, "text_column", None) or "-"} for s in source_configs]
    return table(pd.DataFrame(rows), hide_index=True)


def theme_taxonomy(corpus_statements: pd.DataFrame) -> object:
    """The book's themes: definition, statements in the bundled corpus, and the sub-themes written for each."""
    from ..data import THEME_DESCRIPTIONS

    grouped = corpus_statements.groupby("theme")
    frame = pd.DataFrame({"definition": pd.Series(THEME_DESCRIPTIONS),
                          "statements": grouped.size(),
                          "sub-themes in the corpus": grouped["subtheme"].agg(
                              lambda s: ", ".join(sorted(set(s.dropna()))))}).rename_axis("theme")
    return table(frame.dropna(subset=["definition"]), integer_columns=["statements"])


def corpus_edge_cases(corpus_statements: pd.DataFrame, corpus_responses: pd.DataFrame) -> object:
    """Statements of the bundled corpus per edge case written into it, with the corpus's size in the caption."""
    counts = corpus_statements["edge_case"].fillna("ordinary").str.replace("_", " ").value_counts()
    caption = (f"{len(corpus_statements):,} statements and {len(corpus_responses):,} responses in "
               f"{corpus_responses['style'].nunique()} styles")
    return table(counts.rename("statements").rename_axis("edge case").to_frame(), caption=caption,
                 integer_columns=["statements"])


def edge_case_recall(cleaned):
    """Per edge case written into the bundled corpus, how many the filters caught; a sentence when this profile
    reads no bundled statement."""
    recall = cleaned.edge_case_recall()
    if recall is None:
        return findings("This profile reads no bundled statement, so there are no written edge cases to check the "
                        "filters against; the drop counts above are what they did on its sources.")
    return table(recall, integer_columns=["written", "caught"], hide_index=True)


def scrubbed_examples(cleaned, n: int = 2):
    """Kept statements (no crisis flag) whose personal data was replaced, as the judge and the page see them."""
    shown = cleaned.scrubbed_examples(n)
    if not shown:
        return findings("No kept statement without a crisis flag had personal data to replace.")
    return Markdown("\n\n".join(example(text, f"Scrubbed statement {i}").data for i, text in enumerate(shown, 1)))


def cleaning_funnel(cleaned, profile: str):
    """The cleaning funnel of chapter 01's :class:`~psyco_utils.construction.CleanedStatements`."""
    return filter_funnel(cleaned.funnel, title=f"Statements left after each cleaning step ({profile} profile)")


def theme_bars(cleaned):
    """Kept statements per theme, titled with the labeller that chose them."""
    return category_bars(cleaned.theme_counts(), title=f"Statements per theme ({cleaned.theme_labeller} labeller)",
                         xlabel="statements (count)", ylabel="theme")


def theme_agreement(cleaned):
    """Bundled statements by the theme they were written for (rows) and the theme the labeller chose (columns), as a
    heat map titled with the share that agree; a sentence when no bundled statement was labelled."""
    from .judging import heatmap

    agreement = cleaned.theme_agreement()
    if agreement is None:
        return findings("No statement of this profile comes from the bundled corpus, so there is no written theme "
                        "to check the labels against.")
    share, confusion = agreement
    title = f"{cleaned.theme_labeller.capitalize()} labels against the written theme: {share:.1%} agree"
    return heatmap(confusion, title, "statements (count)", vmin=0, vmax=float(confusion.values.max()), digits=0,
                   xlabel="labelled as", ylabel="written as")


def statement_lengths(cleaned, min_chars: int, max_chars: int):
    """Lengths of the kept statements beside those the length filter dropped, with the kept window shaded."""
    dropped = cleaned.report.dropped
    too = dropped.loc[dropped["step"] == "length filter", "text"].str.len()
    return length_histogram({"kept": cleaned.statements["chars"], "dropped by the length filter": too},
                            window=(min_chars, max_chars), title="Length of client statements",
                            ylabel="statements (count)")


def models_used(cfg, world) -> Markdown:
    """What the tiny world is (sizes, reuse) or, in other profiles, which models the chapters load."""
    if world is None:
        from ..config import profile_summary

        return findings(f"The {escape_markdown(cfg.name)} profile builds no tiny world; the chapters load "
                        f"{escape_markdown(profile_summary(cfg))}.")
    info = world.info
    return findings([
        f"Tokenizer: byte-level BPE with {integer(info['vocab_size'])} tokens and a chat template.",
        f"Policy: a Llama of {integer(info['parameters'])} parameters, warm-started for {integer(info['sft_steps'])} "
        f"steps on {integer(info['sft_examples'])} bundled conversations; its loss fell from "
        f"{info['sft_loss_first']:.2f} to {info['sft_loss_last']:.2f} nats per token (mean of the last 10 steps).",
        "Reused from an earlier run with the same corpus, sizes and seed." if info.get("reused")
        else f"Built in {info['build_seconds']:.0f} s.",
    ])


def warm_start_curve(world):
    """The tiny policy's supervised warm-start loss, or nothing when the profile builds no tiny world."""
    if world is None:
        return None
    return loss_curve(world.info["sft_losses"], title="Supervised warm start of the tiny policy")


def pool_example(example_pair, max_chars: int = 400) -> Markdown:
    """One statement (no crisis flag) and every response the pool holds for it, as labelled block quotes."""
    if example_pair is None:
        return findings("No statement without a crisis flag has pool responses in this run.")
    statement, responses = example_pair
    parts = [example(statement, "Client statement", limit=1000).data]
    parts += [example(r, f"{g} ({c:,} characters)", limit=max_chars).data
              for g, c, r in zip(responses["generator"], responses["chars"], responses["response"])]
    return Markdown("\n\n".join(parts))


def crisis_screen(screen) -> object:
    """Recall, precision and tags of the pattern screen per category of its labelled set (the counts that follow
    from others, flagged and missed, are left out so that the table fits the page)."""
    names = {"first_person_current": "first person, current", "first_person_past": "first person, past",
             "third_person": "third person", "passive_ideation": "passive ideation", "harm_to_others":
             "harm to others"}
    frame = screen.table.rename(index=names).rename(columns={"tagged as expected": "tagged right"})
    frame = frame[["statements", "must flag", "caught", "false flags", "recall", "precision", "tagged right"]]
    return table(frame, percent_columns=["recall", "precision", "tagged right"],
                 integer_columns=["statements", "must flag", "caught", "false flags"])


def second_opinion_counts(cleaned):
    """Kept statements by the patterns' flag and the LLM's label; a sentence when the profile asks for no LLM."""
    if cleaned.second_opinion is None:
        return findings("This profile asks no LLM for a second opinion (`data.crisis_second_opinion` is off): the "
                        "pattern screen alone sets the flag.")
    return table(cleaned.second_opinion, integer_columns=list(cleaned.second_opinion.columns))


def second_opinion(cleaned, screen) -> object:
    """With the profile's crisis second opinion: the labelled set scored by the patterns, the LLM and either;
    without it, a sentence saying so."""
    if screen.with_second_opinion is None:
        return findings("This profile asks no LLM for a second opinion (`data.crisis_second_opinion` is off): the "
                        "pattern screen alone sets the flag.")
    return table(screen.with_second_opinion, percent_columns=["recall", "precision"],
                 integer_columns=["caught", "missed", "false flags", "failed judgments"],
                 caption="the labelled set, screened by the patterns, the LLM, and either")


def artifacts(result) -> Markdown:
    """The files the chapter wrote, relative to the run folder."""
    return findings([f"`runs/{result.profile}/{path}`" for path in result.artifacts])
