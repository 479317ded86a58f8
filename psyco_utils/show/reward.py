"""Figures, tables and findings of chapter 03, "The reward model".

Figures are drawn at the content column's width with their legends below the axes, off the data.  Tables go through
:func:`.base.table`.  Findings are Markdown built from the stage's result objects (``psyco_utils.reward``), so the
page cannot say something the numbers do not.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from .base import (FIGURE_WIDTH_IN, beside_the_paper, by_hand_check, escape_markdown, example, findings, integer,
                   percent, table)

__all__ = [
    "reward_training_curve", "reliability_diagram", "margin_histogram", "accuracy_by_group", "reward_splits",
    "reward_trl_record", "reward_chat", "reward_length_drops", "reward_sources", "reward_config_table",
    "reward_training_summary", "reward_epochs", "reward_scoring", "reward_loss_check", "reward_predictions",
    "reward_comparison", "reward_with_paper",
    "reward_check_findings", "reward_errors", "reward_artifacts", "reward_beside_the_paper", "reward_findings",
    "reward_general_models", "reward_ablations", "reward_ablation_with_paper", "reward_ranker", "rewardbench",
]

_PREVIEW = 60


def _legend_below(fig, ax, ncol: int = 2) -> None:
    """The legend under the axes (never over the data), in a constrained layout that makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


# ------------------------------------------------------------------------------------------------------------ figures


def reward_training_curve(steps: pd.DataFrame, epochs: pd.DataFrame, title: str = "Reward-model training"):
    """Bradley-Terry loss per logging step (train) and after each epoch (dev), against the optimizer step."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.6), layout="constrained")
    if len(steps):
        ax.plot(steps["step"], steps["loss"], marker=".", lw=1.2, label="train (mean over logging window)")
    if len(epochs):
        ax.plot(epochs["step"], epochs["dev loss"], marker="o", lw=2, label="dev (after each epoch)")
        if "kept" in epochs:
            kept = epochs[epochs["kept"] == "yes"]
            ax.scatter(kept["step"], kept["dev loss"], s=160, facecolors="none", edgecolors="black",
                       label="checkpoint kept", zorder=3)
    ax.axhline(np.log(2), color="grey", ls=":", lw=1, label="chance (log 2)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("Bradley-Terry loss\n(nats per pair)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    _legend_below(fig, ax, ncol=2)
    return fig


def reliability_diagram(tables: dict[str, pd.DataFrame], title: str = "Reliability diagram"):
    """Observed frequency against mean predicted probability per equal-width bin, one line per model, with the
    number of pairs per bin underneath (tables from ``metrics.reliability_table``)."""
    fig, (ax, counts_ax) = plt.subplots(2, 1, figsize=(FIGURE_WIDTH_IN, 5.6), sharex=True, layout="constrained",
                                        gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    n_models = max(1, len(tables))
    for k, (name, frame) in enumerate(tables.items()):
        filled = frame[frame["count"] > 0]
        ax.plot(filled["mean_predicted"], filled["observed"], marker="o", lw=1.5, label=name)
        width = (frame["bin_high"] - frame["bin_low"]).to_numpy() / (n_models + 1)
        counts_ax.bar(frame["bin_low"] + width * (k + 0.5), frame["count"], width=width, align="edge")
    n_bins = len(next(iter(tables.values()))) if tables else 0
    ax.set_ylabel("observed frequency\n(first response preferred)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title} ({n_bins} equal-width bins)")
    counts_ax.set_xlabel("predicted probability that the first response is preferred, sigmoid(r_first - r_second)")
    counts_ax.set_ylabel("pairs")
    _legend_below(fig, ax, ncol=2)
    return fig


def margin_histogram(margins: dict[str, np.ndarray], title: str = "Reward margin on the test pairs", bins: int = 30,
                     xlabel: str = "reward margin r(chosen) - r(rejected) (reward units)"):
    """Histogram of r(chosen) - r(rejected) per model; mass right of zero is pairs ranked correctly."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.6), layout="constrained")
    values = np.concatenate([np.asarray(m, float) for m in margins.values()]) if margins else np.zeros(1)
    edges = np.linspace(min(values.min(), -1e-6), max(values.max(), 1e-6), bins + 1)
    for name, m in margins.items():
        m = np.asarray(m, float)
        ax.hist(m, bins=edges, alpha=0.6, label=f"{name}: {(m > 0).mean():.0%} of {len(m):,} pairs right of zero")
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs (count)")
    ax.set_title(title)
    _legend_below(fig, ax, ncol=1)
    return fig


def accuracy_by_group(frame: pd.DataFrame, title: str, ylabel: str = "", chance: float | None = 0.5):
    """Horizontal bars of accuracy per group with 95% intervals; each bar's accuracy and pair count are written
    right of its interval (``reward.accuracy_by`` tables)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.42 * len(frame) + 1.5), layout="constrained")
    acc = frame["accuracy"].astype(float).to_numpy()
    high = frame["ci_high"].astype(float).to_numpy()
    err = np.vstack([acc - frame["ci_low"].astype(float).to_numpy(), high - acc])
    y = np.arange(len(frame))
    ax.barh(y, acc, xerr=err, color="#4C72B0", alpha=0.85, capsize=3)
    for yi, a, h, n in zip(y, acc, high, frame["pairs"]):
        ax.text(h + 0.02, yi, f"{a:.0%} (n={int(n):,})", va="center", fontsize=8)
    if chance is not None:
        ax.axvline(chance, color="grey", ls=":", lw=1)
        ax.text(chance, -0.65, " chance", color="grey", fontsize=8, va="center")
    ax.set_yticks(y, [str(i) for i in frame.index])
    ax.set_ylim(len(frame) - 0.4, -1.0)  # first group on top, a line of room above it for the chance label
    ax.set_xlim(0, 1.3)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("pairwise accuracy (share of pairs with r(chosen) > r(rejected)), 95% bootstrap interval")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


# ------------------------------------------------------------------------------------------------- data and training


def reward_splits(splits) -> object:
    """Pairs and distinct statements per split of the preference data (a ``DatasetDict`` or a mapping of frames)."""
    frame = pd.DataFrame({"pairs": {s: len(splits[s]) for s in splits},
                          "statements": {s: len(set(splits[s]["ID"])) for s in splits}})
    frame.index.name = "split"
    return table(frame, integer_columns=["pairs", "statements"])


def reward_trl_record(pair: pd.Series) -> object:
    """One pair as TRL's conversational record: the field, the role of its one message, and the message's start."""
    rows = [("prompt", "user", pair["question"]), ("chosen", "assistant", pair["chosen"]),
            ("rejected", "assistant", pair["rejected"])]
    frame = pd.DataFrame([{"field": f, "role": r, "content (start)": _preview(text)} for f, r, text in rows])
    return table(frame, hide_index=True)


def _preview(text: str, limit: int = _PREVIEW) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def reward_length_drops(drops: pd.DataFrame) -> object:
    """:func:`reward.length_drop_table` as a styled table: counts with separators, the dropped share in percent,
    the limit (the same on every row) in the caption."""
    limits = drops["max_length (tokens)"].dropna().unique()
    limit = f"{int(limits[0]):,} tokens" if len(limits) else "no limit"
    frame = drops.drop(columns=["max_length (tokens)"]).assign(
        **{"dropped (%)": drops["dropped (%)"].astype(float) / 100}).rename(columns={"dropped (%)": "dropped (share)"})
    counts = [c for c in frame.columns if c != "dropped (share)"]
    return table(frame, integer_columns=counts, percent_columns=["dropped (share)"],
                 caption=f"Pairs with a chat over max_length = {limit}, by split")


_TEMPLATE_TOKEN = re.compile(r"(<\|[^|>\s]+\|>|<\|?[a-z_]+\|?>|\[/?INST\])")


def reward_chat(text: str, label: str, limit: int = 600) -> Markdown:
    """A chat rendered with its template, as the model reads it: line breaks kept, the template's special tokens in
    code type so they stand apart from the text, cut at ``limit`` characters."""
    shown = text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " [...]"
    lines = []
    for line in shown.splitlines():
        parts = _TEMPLATE_TOKEN.split(line)
        joined = "".join(f"`{part}`" if i % 2 else escape_markdown(part) for i, part in enumerate(parts))
        lines.append(joined.replace("``", "` `"))  # two tokens in a row: two code spans, not one
    quoted = "\\\n".join(f"> {line}" for line in lines)
    return Markdown(f"**{label}**\n\n{quoted}")


def reward_sources(train_pairs: pd.DataFrame) -> object:
    """Training pairs per source (PsyCoPref, and HelpSteer2 when the profile mixes it in)."""
    counts = train_pairs["source"].value_counts().rename("training pairs").to_frame()
    counts.index.name = "source"
    return table(counts, integer_columns=["training pairs"])


def reward_config_table(args) -> object:
    """The ``RewardConfig`` values the chapter shows (``reward.shown_config``)."""
    from ..reward import shown_config

    return table(shown_config(args))


def reward_training_summary(training, length_drops: pd.DataFrame) -> Markdown:
    """What the training did, from its result: time or reuse, the pairs TRL dropped against our count, the kept
    weights and where they were saved (relative to the run folder)."""
    counted = int(length_drops.loc["train", "dropped"]) if "train" in length_drops.index else 0
    agree = "as counted above" if counted == training.dropped_by_trl else f"while our count above said {counted:,}"
    points = [
        f"Trained on {_pairs(training.train_pairs)} for {training.epochs:g} "
        f"epoch{'' if training.epochs == 1 else 's'} in {training.seconds:,.1f} s "
        f"({training.pairs_per_second:,.1f} pairs per second); this process peaked at "
        f"{training.peak_memory_mb:,.0f} MiB of memory.",
        f"`RewardTrainer` dropped {training.dropped_by_trl:,} train pairs for length, {agree}.",
        f"Kept: {training.kept}, selected by {training.selected_by}; saved with its tokenizer to "
        "`reward_model/model/` in the run folder.",
    ]
    if training.reused:
        points.insert(0, "This run reused the model an earlier run trained on exactly these pairs, settings, seed "
                         "and backbone (its fingerprint matched); the numbers below describe that training. "
                         "Set `reuse_trained_models=false` to train again.")
    return findings(points)


def reward_epochs(training) -> object:
    """Dev loss, accuracy and margin after each epoch, and the kept checkpoint."""
    epochs = training.epochs_table()
    epochs["epoch"] = [f"{e:g}" for e in epochs["epoch"]]
    return table(epochs, integer_columns=["step"], percent_columns=["dev accuracy"], hide_index=True)


def reward_scoring(stats, max_length: int | None) -> object:
    """What scoring the test pairs cost, from ``RewardScorer.stats``."""
    frame = pd.DataFrame([{"chats": stats.sequences, "tokens": stats.tokens, "seconds": stats.seconds,
                           "chats per second": stats.sequences_per_second,
                           f"cut to {max_length or 'no limit'} tokens": stats.truncated}])
    return table(frame, decimals=1, integer_columns=["chats", "tokens", frame.columns[-1]], hide_index=True)


def reward_loss_check(check):
    """The reward-model loss, accuracy and mean margin computed by hand against TRL's logged values
    (:class:`psyco_utils.by_hand.ByHandCheck`)."""
    return by_hand_check(check, f"one batch of {check.items} training pairs, the trained reward model")


def reward_predictions(predictions: pd.DataFrame, rows: int = 5) -> object:
    """The first rows of ``test_predictions.parquet``."""
    return table(predictions.head(rows), integer_columns=["prefID"], hide_index=True)


# ----------------------------------------------------------------------------------------------------------- results


def _with_interval(value: float, low: float, high: float, share: bool) -> str:
    """A value over its interval in small type, on two lines that never break inside: '80.6%' over '[64.5, 93.5]'
    for a share, '0.925' over '[0.81, 1.00]' otherwise."""
    if not np.isfinite(value):
        return "-"
    shown = percent(value) if share else f"{value:.3f}"
    if not (np.isfinite(low) and np.isfinite(high)):
        return shown
    interval = f"[{100 * low:.1f}, {100 * high:.1f}]" if share else f"[{low:.2f}, {high:.2f}]"
    return f'{shown}<br><small style="white-space: nowrap">{interval}</small>'


def reward_comparison(comparison: pd.DataFrame) -> object:
    """One row per model: accuracy, AUC, ECE and Brier, each over its 95% bootstrap interval in brackets."""
    pairs = comparison["pairs"].unique()
    if len(pairs) != 1:
        raise ValueError(f"the models were evaluated on different numbers of pairs: {sorted(pairs)}")
    frame = pd.DataFrame(index=comparison.index)
    for name in ("accuracy", "AUC", "ECE", "Brier"):
        frame[name] = [_with_interval(v, lo, hi, share=name == "accuracy") for v, lo, hi in
                       zip(comparison[name], comparison[f"{name} low"], comparison[f"{name} high"])]
    return table(frame, html_columns=list(frame.columns), caption=f"The same {int(pairs[0]):,} test pairs for every model; under each value its 95% "
                                "bootstrap interval (accuracy in percent)")


def reward_with_paper(stacked: pd.DataFrame) -> object:
    """``reward.with_paper``: this run's rows stacked on the paper's table."""
    return table(stacked, percent_columns=["accuracy"])


def reward_check_findings(evaluation, check) -> Markdown:
    """What the check tested and what the paired interval adds, in one consistent statement."""
    ours, d = evaluation.ours, evaluation.versus_length
    verdict = "passed" if check.passed else "failed"
    tested = (f"The check {verdict}. It asks two things. Does the accuracy's 95% interval "
              f"({percent(ours['accuracy low'])} to {percent(ours['accuracy high'])}) lie above chance at 50%? "
              f"{'Yes' if evaluation.beats_chance else 'No'}. Is the accuracy ({percent(ours['accuracy'])}) above "
              f"the length baseline's ({percent(evaluation.length_baseline['accuracy'])})? "
              f"{'Yes' if evaluation.above_length_baseline else 'No'}.")
    return findings([tested, _versus_length_sentence(d, evaluation.test_pairs)])


def _pairs(n: int) -> str:
    return f"{n:,} pair" + ("" if n == 1 else "s")


def _versus_length_sentence(d: dict, n: int) -> str:
    """The paired difference with the length baseline, and what it does and does not show."""
    span = f"{100 * d['difference']:+.1f} points (paired 95% bootstrap interval " \
           f"{100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})"
    if d["ci_low"] > 0:
        return f"The lead over the length baseline is {span}: more than noise on these {_pairs(n)}."
    if d["ci_high"] < 0:
        return f"The reward model trails the length baseline by {span}: length alone ranks these pairs better."
    sentence = (f"The difference from the length baseline is {span}. The interval includes zero, so on these "
                f"{_pairs(n)} the two are not distinguishable from noise")
    if d["difference"] > 0:
        return sentence + (": the check compares point estimates only, and passing it does not show that the model "
                           "has learned more than length.")
    return sentence + "."


def reward_errors(evaluation) -> Markdown:
    """The most confidently wrong test pairs (no crisis statements), each with the statement and both responses."""
    wrong = int((evaluation.margins <= 0).sum())
    if wrong == 0:
        return findings(f"The reward model ranks all {evaluation.test_pairs:,} test pairs correctly.")
    hidden = wrong - len(evaluation.errors) if len(evaluation.errors) < min(wrong, 2) else 0
    parts = [f"{wrong:,} of {evaluation.test_pairs:,} test pairs are ranked wrongly"
             + (f"; pairs with crisis language are not shown ({hidden:,} left out)." if hidden else ".")]
    for _, row in evaluation.errors.iterrows():
        parts.append(f"**Pair {row['ID']}**: reward margin {row['margin']:.2f}, the judge's score gap "
                     f"{row['gap']:.2f} points.")
        parts.append(example(row["question"], "Client statement", limit=400).data)
        for side in ("chosen", "rejected"):
            label = f"{side.capitalize()} response ({row[f'{side}_model']}, {len(row[side]):,} characters)"
            parts.append(example(row[side], label, limit=400).data)
    return Markdown("\n\n".join(parts))


def reward_artifacts(stage, profile: str) -> Markdown:
    """The files the stage wrote, relative to the run folder; the model's files as one entry."""
    model_files = [p for p in stage.artifacts if p.startswith("reward_model/model/")]
    others = [p for p in stage.artifacts if p not in model_files]
    points = [f"`reward_model/model/`: the model and its tokenizer ({len(model_files):,} files)"] if model_files else []
    points += [f"`{p}`" for p in others]
    return findings(points, heading=f"Written under runs/{profile}/")


def reward_beside_the_paper(stage, profile: str) -> object:
    """This run's headline numbers beside the paper's 3B reward model (``psyco_utils.paper``)."""
    from .. import paper

    ours, theirs = stage.evaluation.ours, paper.reward_row("PsyCo-Llama3-3B-Reward")
    mine = {"test pairs": integer(stage.evaluation.test_pairs),
            "accuracy": f"{percent(ours['accuracy'])} [{percent(ours['accuracy low'])}, "
                        f"{percent(ours['accuracy high'])}]",
            "AUC": f"{ours['AUC']:.3f}", "ECE": f"{ours['ECE']:.3f}", "Brier": f"{ours['Brier']:.3f}",
            "longer-wins baseline accuracy": percent(stage.evaluation.length_baseline["accuracy"]),
            "train pairs dropped for length": integer(stage.training.dropped_by_trl)}
    reported = {"test pairs": integer(paper.DATASET["test pairs"]), "accuracy": f"{theirs['accuracy (%)']:.1f}%",
                "AUC": f"{theirs['AUC']:.3f}", "ECE": f"{theirs['ECE']:.3f}", "Brier": f"{theirs['Brier']:.3f}",
                "train pairs dropped for length":
                    f"about {paper.DATASET['train rows over 2,048 tokens']} rows over 2,048 tokens"}
    return beside_the_paper(mine, reported, profile, paper_label=f"paper (PsyCo-Llama3-3B-Reward, {paper.CITATION})")


def reward_findings(stage, profile: str) -> Markdown:
    """What chapter 03 found, computed from the stage's result and the paper's numbers."""
    from .. import paper

    ev = stage.evaluation
    ours, paper_acc = ev.ours, paper.reward_row("PsyCo-Llama3-3B-Reward")["accuracy (%)"] / 100
    within = ours["accuracy low"] <= paper_acc <= ours["accuracy high"]
    differs = len(ev.by_theme) > 1 and ev.by_theme["accuracy"].nunique() > 1
    theme = ev.by_theme.sort_values(["accuracy", "pairs"]).iloc[0] if differs else None
    points = [
        f"On the {_pairs(ev.test_pairs)} of the test split the reward model ranks {percent(ours['accuracy'])} "
        f"correctly (95% interval {percent(ours['accuracy low'])} to {percent(ours['accuracy high'])}); the paper's 3B model "
        f"reached {percent(paper_acc)} on {paper.DATASET['test pairs']:,} pairs. "
        + ("That figure lies inside this run's interval." if within else
           "That figure lies outside this run's interval: this run does not reproduce the paper's accuracy."),
        _versus_length_sentence(ev.versus_length, ev.test_pairs),
        f"Calibration: ECE {ours['ECE']:.3f} and Brier score {ours['Brier']:.3f} (paper: "
        f"{paper.reward_row()['ECE']:.3f} and {paper.reward_row()['Brier']:.3f}; a constant 50% scores 0.25).",
    ]
    if len(ev.by_gap) > 1:
        small, large = ev.by_gap.iloc[0], ev.by_gap.iloc[-1]
        points.append(f"By the judge's score gap (points of the 1-5 scale): {percent(small['accuracy'])} of the "
                      f"{int(small['pairs']):,} pairs in the smallest-gap group (gap {small.name}) are ranked "
                      f"correctly, {percent(large['accuracy'])} of the {int(large['pairs']):,} in the largest "
                      f"(gap {large.name}).")
    if theme is not None:
        points.append(f"The weakest theme is {theme.name} ({percent(theme['accuracy'])} of "
                      f"{_pairs(int(theme['pairs']))}); groups this small have wide intervals.")
    if profile == "tiny":
        points.append("The tiny profile's judge is the offline rubric scorer and its backbone a tiny model trained "
                      "here, so these numbers test the code, not the paper's claim about GPT-4o's labels.")
    return findings(points)


def reward_general_models(cfg) -> Markdown:
    """Which general reward models and which LLM ranker the profile scores, and what the tiny profile leaves to
    the paper profile."""
    from ..reward.scoring import shown_model_name

    named = [f"`{shown_model_name(m)}`" for m in cfg.reward.off_the_shelf]
    ranker = cfg.reward.ranker
    points = [("General reward models scored here: " + ", ".join(named) + ".") if named else
              (f"The {cfg.name} profile names no general reward model (`reward.off_the_shelf`). The paper profile "
               "scores the paper's two Skywork models this way; Nemotron's reader is in place and its entry waits "
               "in the paper preset. The paper's rows for all of them are in the table below.")]
    if ranker is None:
        points.append(f"No LLM ranker (`reward.ranker`) is set in the {cfg.name} profile.")
    elif ranker.backend == "rubric":
        points.append("The ranker here is the offline rubric judge, which also labelled these pairs: it can only "
                      "agree with itself, so its row checks the code path, not a ranker. The paper profile points "
                      "`reward.ranker` at Llama-3.1-70B-Instruct behind an OpenAI-compatible endpoint.")
    else:
        points.append(f"The ranker is `{ranker.model}` through the judge's compare operation"
                      + (f" at `{ranker.base_url}`." if ranker.base_url else " at the judge's endpoint."))
    return findings(points)


def reward_ablations(ablations, profile: str) -> object:
    """What each ablation model trained on (asked, available and used pairs per source), or where they run."""
    if not ablations.records:
        return findings(f"The {profile} profile trains no ablation model (`reward.ablations`): HelpSteer2 is a hub "
                        "data set this profile does not read. The paper profile trains the paper's five (HelpSteer2 "
                        "alone, HelpSteer2 plus PsyCoPref, and a 10k-pair budget split three ways) with the settings "
                        "above, and the stand-in run trains them on a HelpSteer2 file in its published format.")
    order = [f"{s} {k}" for s in ("psycopref", "helpsteer2") for k in ("asked", "available", "used")]
    frame = ablations.table()
    frame = frame.reindex(columns=[c for c in order if c in frame.columns]
                          + [c for c in frame.columns if c not in order])
    counts = [c for c in frame.columns if c in order or c == "train pairs"]
    frame[counts] = frame[counts].map(lambda v: v if isinstance(v, str) else "-" if pd.isna(v) else integer(v))
    return table(frame, caption="Pairs per ablation model (asked for, available, used); a budget larger than a "
                                "source takes all of it, and the table shows the shortfall")


def reward_ablation_with_paper(table_frame: pd.DataFrame, profile: str) -> object:
    """``reward.ablation_with_paper``: this run's ablation models beside the paper's rows of the same name."""
    if table_frame.empty:
        return findings(f"No ablation model ran in the {profile} profile, so there is nothing to set beside the "
                        "paper's ablation.")
    return table(table_frame, percent_columns=list(table_frame.columns),
                 caption=f"Test accuracy and RewardBench (mean of the categories): this run ({profile} profile) "
                         "and the paper (3B backbone for the HelpSteer2 rows; the budget rows' backbone is not stated)")


def reward_ranker(ranker, profile: str) -> object:
    """The LLM ranker's preference accuracy on the test pairs (ties half), its interval, ties and failures."""
    if ranker is None:
        return findings(f"No LLM ranker in the {profile} profile (`reward.ranker`).")
    a = ranker.agreement
    frame = pd.Series({"ranker": f"{ranker.name} ({ranker.model})", "pairs judged in both orders": integer(a["judged"]),
                       "failed": integer(a["failed"]),
                       "accuracy (ties count half)": f"{percent(a['agreement'])} ({percent(a['ci_low'])} to "
                                                     f"{percent(a['ci_high'])})",
                       "chosen named in both orders": percent(a["strict_agreement"]),
                       "ties (orders disagree or a tie)": integer(a["ties"])}, name="LLM as a ranker")
    return table(frame.to_frame())


def rewardbench(bench: pd.DataFrame | None, profile: str) -> object:
    """RewardBench accuracy per category for every reward model scored, or where it is computed."""
    if bench is None:
        return findings(f"RewardBench is not scored in the {profile} profile (`reward.rewardbench`): it is a hub "
                        "data set. The paper profile scores `allenai/reward-bench` (split `filtered`) with every "
                        "reward model of this chapter; the loader and the scorer are tested on a small local file in "
                        "its schema, and the stand-in run scores one.")
    shares = [c for c in bench.columns if c != "rows"]
    return table(bench, percent_columns=shares, integer_columns=["rows"],
                 caption="RewardBench accuracy per category (rows pooled within a category) and the plain mean of "
                         "the categories; RewardBench's leaderboard weights its subsets differently")
