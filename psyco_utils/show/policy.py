"""Figures, tables, examples and findings of chapters 04 ("Offline DPO") and 05 ("DPO-Iter").

They take the stage results of :mod:`psyco_utils.policy` (``TrainingRun``, ``HeldOutComparison``, ``DPOResult``,
``DPOIterResult``) and draw or write them for the page: figures at the content column's width with their legends
above the axes, tables styled by :func:`psyco_utils.show.base.table`, findings as Markdown computed from the numbers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from .. import paper
from .base import (FIGURE_WIDTH_IN, beside_the_paper, by_hand_check, escape_markdown, example, findings, integer,
                   table)

__all__ = ["dpo_settings", "training_summary", "dpo_training_curves", "held_out_table", "held_out_figure",
           "policy_examples", "change_points", "dpo_beside_the_paper", "dpo_findings", "dpo_iter_settings",
           "dpo_iter_rounds_table", "dpo_iter_rounds", "round_pair", "dpo_iter_beside_the_paper", "dpo_iter_findings",
           "policy_styles", "style_points", "degenerate_ranking", "degenerate_findings", "dpo_loss_check",
           "paper_gains"]

_CURVES = [("loss", "DPO loss\n(nats per pair)"), ("rewards/margins", "implicit reward\nmargin"),
           ("rewards/accuracies", "preference\naccuracy")]


def _title_and_legend(fig, title: str, axes_with_lines, top: float) -> None:
    """The title, then one legend for the whole figure under it and above the top panel, so it covers no data;
    the panels fill the figure below ``top`` (a fraction of its height)."""
    fig.suptitle(title)
    handles, labels = axes_with_lines.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, top + 0.04),
                   frameon=False)
    fig.tight_layout(rect=(0, 0, 1, top))


def dpo_settings(args, training: dict):
    """TRL's ``DPOConfig`` as this run uses it: the fields the profile sets, those the book adds, the global batch."""
    from ..policy import config_table

    return table(config_table(args, training), hide_index=True,
                 caption="DPOConfig: fields set by the profile, by the book, and the pairs per optimizer step")


def training_summary(training) -> Markdown:
    """One sentence on a DPO training: steps, pairs and time, or that an earlier run's model was reused."""
    done = (f"{integer(training.steps)} DPO steps on {integer(training.pairs)} pairs in {training.seconds:.0f} s "
            f"({training.steps_per_second:.2f} steps per second)")
    if training.reused:
        return Markdown(f"Reused the model an earlier run trained on exactly these pairs, settings, seed and starting "
                        f"policy ({done}); the curves below are that training's. Set `reuse_trained_models=false` "
                        "to train again.")
    return Markdown(f"Trained {done}.")


def dpo_training_curves(training, title: str = "DPO training: train and dev"):
    """Loss, implicit reward margin and preference accuracy against the epoch, stacked, train and dev."""
    train, dev = training.train_log, training.eval_log
    fig, axes = plt.subplots(len(_CURVES), 1, figsize=(FIGURE_WIDTH_IN, 6.4), sharex=True)
    for ax, (key, label) in zip(axes, _CURVES):
        if key in train:
            ax.plot(train["epoch"], train[key], marker=".", label="train (logging window)")
        if f"eval_{key}" in dev:
            ax.plot(dev["epoch"], dev[f"eval_{key}"], marker="o", lw=2, label="dev (after each epoch)")
        ax.set_ylabel(label)
    axes[0].axhline(np.log(2), color="grey", ls=":", lw=1, label="start (log 2)")
    axes[-1].set_ylim(0, 1.05)
    axes[-1].set_xlabel("epoch")
    _title_and_legend(fig, title, axes[0], top=0.92)
    return fig


def _comparison_frame(comparison) -> pd.DataFrame:
    t = comparison.table.astype(float)
    from ..policy import DISTINCT_WORDS

    return pd.DataFrame({"mean reward": t["mean reward"],
                         "95% interval": [f"{lo:+.2f} to {hi:+.2f}" for lo, hi in zip(t["ci_low"], t["ci_high"])],
                         "mean length (tokens)": t["mean length (tokens)"],
                         DISTINCT_WORDS: t[DISTINCT_WORDS]}, index=t.index)


def held_out_table(comparison):
    """The policies on the held-out statements: mean reward with its bootstrap interval, length, repetition."""
    from ..policy import DISTINCT_WORDS

    caption = (f"{len(comparison.statements)} held-out statements, {comparison.samples_per_statement} samples each, "
               "scored by the chapter-3 reward model (reward units); 95% bootstrap interval over statements; "
               "distinct words measured on the first sample")
    styled = table(_comparison_frame(comparison), decimals=2, percent_columns=[DISTINCT_WORDS], caption=caption)
    return styled.format(precision=1, subset=["mean length (tokens)"])


def held_out_figure(comparison, title: str = "Policies on held-out statements"):
    """Three stacked panels, one bar per policy: mean reward (95% interval), mean length, distinct words."""
    from ..policy import DISTINCT_WORDS

    t = comparison.table.astype(float)
    names, y = list(t.index), np.arange(len(t))
    fig, axes = plt.subplots(3, 1, figsize=(FIGURE_WIDTH_IN, 3 * (0.38 * len(t) + 0.8) + 0.4))
    err = np.vstack([t["mean reward"] - t["ci_low"], t["ci_high"] - t["mean reward"]])
    axes[0].barh(y, t["mean reward"], xerr=err, capsize=4, color="#4C72B0")
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].set_xlabel("mean reward, 95% bootstrap interval (reward units)")
    axes[1].barh(y, t["mean length (tokens)"], color="#C44E52")
    axes[1].set_xlabel("mean length of the samples (tokens)")
    axes[2].barh(y, 100 * t[DISTINCT_WORDS], color="#8172B2")
    axes[2].set_xlim(0, 100)
    axes[2].set_xlabel("distinct words in the first 30 of the first sample (%)")
    for ax in axes:
        ax.set_yticks(y, names)
        ax.invert_yaxis()
    axes[0].set_title(f"{title} ({len(comparison.statements)} statements)")
    fig.tight_layout()
    return fig


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def policy_examples(comparison, new: str, old: str, k: int = 2, limit: int = 400) -> Markdown:
    """The ``k`` held-out statements where ``new`` gained most reward over ``old`` (no crisis statements), each with
    both policies' first samples and their mean rewards."""
    from ..data import preview

    blocks = []
    for number, i in enumerate(comparison.biggest_gains(new, old, k), start=1):
        blocks.append(example(preview(comparison.statements[i], limit), f"Statement {number}").data)
        for name in (old, new):
            reward = comparison.policies[name].mean_reward[i]
            blocks.append(example(preview(comparison.policies[name].first_response[i], limit),
                                  f"{name} (mean reward {_signed(reward)})").data)
    return Markdown("\n\n".join(blocks))


def change_points(change) -> list[str]:
    """What distinguishes ``change.new`` from ``change.old``: reward, length, repetition, the word that grew most."""
    points = [f"Mean reward {_signed(change.reward_old)} ({change.old}) to {_signed(change.reward_new)} "
              f"({change.new}), a change of {_signed(change.reward_gain)}."]
    direction = ("about as long as" if abs(change.length_ratio - 1) < 0.05 else
                 "longer than" if change.length_ratio > 1 else "shorter than")
    points.append(f"{change.new}'s answers are {direction} {change.old}'s: {change.length_new:.0f} tokens on "
                  f"average against {change.length_old:.0f} ({change.length_ratio:.2f} times).")
    points.append(f"Distinct words in the first 30: {100 * change.distinct_old:.0f}% ({change.old}) to "
                  f"{100 * change.distinct_new:.0f}% ({change.new}).")
    if change.repeated:
        words = ", ".join(f"\"{escape_markdown(word)}\" ({before:.1f} to {after:.1f})"
                          for word, after, before in change.repeated)
        points.append(f"The words whose use grew most, in uses per answer from {change.old} to {change.new}: "
                      f"{words}.")
    return points


def _verdict(change, how: str, styles=None) -> str:
    if change.reward_gain <= 0:
        return f"{change.new} did not raise the held-out reward over {change.old}."
    rise = styles.empathic_rise(change.new) if styles is not None and change.new in styles.changes.index else None
    if change.reward_hacking and not change.more_repetitive and rise is not None and rise["ci_low"] > 0:
        return (f"{change.new}'s answers are longer, but not more repetitive, and it writes the empathic style more "
                f"often ({100 * rise['difference']:+.0f} points, interval above 0), the style the judge prefers and "
                "the longest by design: the length comes with the change of style rather than with padding.")
    if change.reward_hacking:
        signs = " and ".join(s for s, on in (("longer", change.longer), ("more repetitive", change.more_repetitive))
                             if on)
        return (f"**Reward hacking, not preference learning.** {change.new} gained reward with {signs} answers: "
                f"{how} A higher reward therefore does not show better counselling here.")
    from ..policy import DISTINCT_DROP, LENGTH_GROWTH

    return (f"{change.new} gained reward without markedly longer or more repetitive answers (length under "
            f"{LENGTH_GROWTH:.1f} times, distinct words down by less than {100 * DISTINCT_DROP:.0f} points), so "
            "length and repetition do not explain the gain.")


def dpo_beside_the_paper(result, args, profile: str):
    """Offline DPO's settings and outcome beside the paper's (its numbers from :mod:`psyco_utils.paper`)."""
    rewards = result.held_out.metrics()["held_out_mean_reward"]
    ours = {"beta": args.beta, "supervised stage before DPO": "no", "training pairs": integer(result.training.pairs),
            "reward-model score, base to DPO": f"{_signed(rewards['base'])} to {_signed(rewards['DPO'])}",
            "win rate against GPT-4o, base to DPO (3B)": "measured in chapter 6"}
    theirs = {"beta": paper.DPO["beta"], "supervised stage before DPO": "yes" if paper.DPO["sft stage"] else "no",
              "training pairs": integer(paper.DATASET["train pairs"]),
              "win rate against GPT-4o, base to DPO (3B)":
                  f"{paper.win_rate('no constraint', 'base'):.1f}% to {paper.win_rate('no constraint', 'DPO'):.1f}%"}
    return beside_the_paper(ours, theirs, profile)


def dpo_findings(result, styles=None) -> Markdown:
    """Chapter 04's findings: the DPO policy against the base policy on held-out statements, and what it means
    (with ``styles``, a :class:`psyco_utils.style.StyleComparison`, a longer answer that comes with a rise of the
    empathic style is not called reward hacking)."""
    change = result.change
    how = ("offline DPO had no reward model in its loop, but the policy learned from the pairs which words the chosen "
           "answers carry and overdoes them, and the reward model learned the same cues from the same pairs, so it "
           "scores the overdone text highly.")
    base, dpo = (result.held_out.table.loc[name] for name in ("base", "DPO"))
    overlap = "overlap" if dpo["ci_low"] <= base["ci_high"] and base["ci_low"] <= dpo["ci_high"] else "do not overlap"
    n = len(result.held_out.statements)
    return findings([f"On {n} held-out statement{'s' if n != 1 else ''} the 95% intervals of the two mean "
                     f"rewards {overlap}.", *change_points(change), _verdict(change, how, styles),
                     f"The paper measured DPO by the win rate against GPT-4o: {paper.win_rate('no constraint', 'base')}"
                     f"% to {paper.win_rate('no constraint', 'DPO')}% for the 3B model. Chapter 6 asks this book's "
                     "judge the same question."], heading="What the numbers show")


def dpo_iter_settings(dpo_iter):
    """The profile's DPO-Iter settings (its ``training`` section is shown as a ``DPOConfig``)."""
    settings = {k: str(v) for k, v in dpo_iter.model_dump().items() if k != "training"}
    frame = pd.DataFrame({"dpo_iter setting": list(settings), "value": list(settings.values())})
    return table(frame, hide_index=True, caption="DPO-Iter settings from the profile")


_ROUND_COLUMNS = {"round": "round", "pairs": "pairs", "degenerate_statements": "no pair",
                  "empty_samples": "empty answers",
                  "mean_reward": "mean reward", "best_reward": "best", "worst_reward": "worst",
                  "mean_length_tokens": "length (tokens)"}


def dpo_iter_rounds_table(result):
    """One row per round: the pairs made, the statements that gave none, the empty answers (a column only when a round
    had any), and the samples' reward (mean, and best and worst of each statement's samples, averaged) and length
    before the round's training."""
    columns = [c for c in _ROUND_COLUMNS if c != "empty_samples" or result.rounds[c].sum() > 0]
    frame = result.rounds[columns].rename(columns=_ROUND_COLUMNS)
    n, statements = (int(result.rounds[c].iloc[0]) for c in ("samples_per_statement", "statements"))
    caption = (f"Each round's {statements:,} statements x {n} samples before its DPO training: pairs made, "
               "statements that gave no pair (all samples tied, or fewer than two answered), "
               + ("empty answers (kept out of the pairs), " if "empty answers" in frame.columns else "")
               + "reward in reward units, mean length")
    counts = [c for c in ("round", "pairs", "no pair", "empty answers") if c in frame.columns]
    styled = table(frame, decimals=2, integer_columns=counts, caption=caption, hide_index=True)
    return styled.format(precision=1, subset=["length (tokens)"])


def dpo_iter_rounds(result, title: str = "The samples of each round, before its training"):
    """Two stacked panels against the round: the samples' reward (mean, best and worst of n) and their length."""
    rounds = result.rounds
    n = int(rounds["samples_per_statement"].iloc[0])
    fig, (reward_ax, length_ax) = plt.subplots(2, 1, figsize=(FIGURE_WIDTH_IN, 5.2), sharex=True)
    reward_ax.plot(rounds["round"], rounds["best_reward"], marker="^", label=f"best of {n}")
    reward_ax.plot(rounds["round"], rounds["mean_reward"], marker="o", label=f"mean of {n}")
    reward_ax.plot(rounds["round"], rounds["worst_reward"], marker="v", label=f"worst of {n}")
    reward_ax.set_ylabel("reward (reward units)")
    length_ax.plot(rounds["round"], rounds["mean_length_tokens"], marker="o", color="#C44E52")
    length_ax.set_ylabel("mean length (tokens)")
    length_ax.set_xlabel("round")
    length_ax.set_xticks(rounds["round"])
    _title_and_legend(fig, title, reward_ax, top=0.9)
    return fig


def round_pair(result, round_index: int | None = None, limit: int = 400) -> Markdown:
    """One pair of a round (the last by default): the statement, the best and the worst sample with their rewards."""
    from ..data import preview

    row = result.example_pair(round_index)
    return Markdown("\n\n".join([
        example(preview(row["question"], limit), f"Statement (round {int(row['round'])})").data,
        example(preview(row["chosen"], limit), f"Best sample, chosen (reward {_signed(row['reward_chosen'])})").data,
        example(preview(row["rejected"], limit),
                f"Worst sample, rejected (reward {_signed(row['reward_rejected'])})").data]))


def dpo_iter_beside_the_paper(result, args, profile: str):
    """DPO-Iter's settings beside the paper's (:data:`psyco_utils.paper.DPO_ITER`)."""
    rounds = result.rounds
    ours = {"rounds": integer(len(rounds)), "statements per round": integer(rounds["statements"].iloc[0]),
            "samples per statement": integer(rounds["samples_per_statement"].iloc[0]),
            "batch size": integer(args.per_device_train_batch_size * args.gradient_accumulation_steps
                                  * args.world_size),
            "learning rate": f"{args.learning_rate:.1e}", "total steps": integer(result.total_steps)}
    theirs = {key: (f"{value:.1e}" if isinstance(value, float) else integer(value))
              for key, value in paper.DPO_ITER.items()}
    return beside_the_paper(ours, theirs, profile)


def dpo_iter_findings(result, styles=None) -> Markdown:
    """Chapter 05's findings: the rounds, the three policies on held-out statements, and what it means (``styles`` as
    in :func:`dpo_findings`)."""
    rounds, held = result.rounds, result.held_out
    first, last = rounds.iloc[0], rounds.iloc[-1]
    means = held.table["mean reward"].astype(float).sort_values(kind="stable")
    order = means.index[0] + "".join(f" {'<' if b > a else '='} {name}"
                                     for a, b, name in zip(means, means[1:], means.index[1:]))
    paper_order = ("the paper's order" if held.rises(["base", "DPO", "DPO-Iter"])
                   else "not the paper's order (base < DPO < DPO-Iter)")
    how = ("each round paired the samples the reward model scored highest against those it scored lowest, so the "
           "policy was trained towards whatever the reward model over-rewards, and a small reward model "
           "over-rewards length and its favourite words.")
    change = held.change("DPO-Iter", "base")
    return findings([
        f"{len(rounds)} rounds trained on {integer(rounds['pairs'].sum())} pairs in {integer(result.total_steps)} DPO "
        f"steps; {integer(result.degenerate_statements)} sampled statements gave no pair (all samples tied, or fewer "
        "than two answered).",
        f"Within the loop, the samples' mean reward went from {_signed(first['mean_reward'])} in round 1 to "
        f"{_signed(last['mean_reward'])} in round {int(last['round'])}, and their length from "
        f"{first['mean_length_tokens']:.0f} to {last['mean_length_tokens']:.0f} tokens.",
        f"On held-out statements the reward model orders the policies {order}: {paper_order}.",
        *change_points(change), _verdict(change, how, styles),
        f"The paper's DPO-Iter won {paper.win_rate('no constraint', 'DPO-Iter')}% of comparisons against GPT-4o "
        f"(3B; {paper.win_rate('no constraint', 'DPO-Iter', '8B')}% for 8B). Chapter 6 asks this book's judge."],
        heading="What the numbers show")


def policy_styles(styles):
    """Each policy's samples on the held-out statements (:class:`psyco_utils.style.StyleComparison`), one column per
    policy: the share nearest each style, distinct-1 and distinct-2, the repeated-4-gram rate, and the empathic
    share's change."""
    from ..style import STYLES, UNCLASSIFIABLE

    frame = styles.table.drop(columns=["samples"]).astype(float)
    change = styles.changes.reindex(frame.index)
    shares = [*STYLES, UNCLASSIFIABLE, "distinct-1", "distinct-2", "repeated 4-grams"]
    rows = {name: frame[name].map("{:.1%}".format) for name in shares}
    rows[f"empathic change vs {styles.baseline}"] = pd.Series([
        "-" if pd.isna(row["difference"]) else
        f"{100 * row['difference']:+.0f} pts ({100 * row['ci_low']:+.0f} to {100 * row['ci_high']:+.0f})"
        for _, row in change.iterrows()], index=frame.index)
    shown = pd.DataFrame(rows).T.rename_axis(None).rename_axis(None, axis=1)
    caption = (f"{int(styles.table['samples'].iloc[0])} samples per policy; style by a TF-IDF and logistic-regression "
               "classifier trained on the bundled answers (unclassifiable: no style reaches 50%); distinct-n over all "
               "samples; repeated 4-grams within a sample; change: paired 95% bootstrap interval over statements")
    return table(shown, caption=caption)


def style_points(styles, name: str) -> list[str]:
    """Findings about ``name``'s styles against the baseline's, computed."""
    from ..style import MAX_REPEATED_4GRAMS

    base, row = styles.table.loc[styles.baseline], styles.table.loc[name]
    c = styles.empathic_rise(name)
    moved = "rose" if c["ci_low"] > 0 else "fell" if c["ci_high"] < 0 else "did not move measurably"
    worst, rate = styles.max_repeated()
    return [f"The empathic share {moved}: {base['empathic']:.0%} of {styles.baseline}'s samples against "
            f"{row['empathic']:.0%} of {name}'s ({100 * c['difference']:+.0f} points, paired 95% interval "
            f"{100 * c['ci_low']:+.0f} to {100 * c['ci_high']:+.0f}).",
            f"Dismissive {base['dismissive']:.0%} to {row['dismissive']:.0%}, rambling {base['rambling']:.0%} to "
            f"{row['rambling']:.0%}, directive {base['directive']:.0%} to {row['directive']:.0%}, generic "
            f"{base['generic']:.0%} to {row['generic']:.0%}.",
            f"No policy loops: the highest repeated-4-gram rate is {rate:.1%} ({worst}), within the "
            f"{MAX_REPEATED_4GRAMS:.0%} the tiny world's target allows." if rate <= MAX_REPEATED_4GRAMS else
            f"{worst} repeats itself: {rate:.1%} of its 4-grams repeat within a sample."]


def degenerate_ranking(ranking, scorer_name: str = "reward model"):
    """How a scorer ranks degenerate text against the five hand-written styles
    (:func:`psyco_utils.style.rank_degenerate`)."""
    caption = (f"mean {scorer_name} score per kind of answer over {ranking.attrs.get('statements', 'the')} "
               "statements; below every style: the share of statements where the degenerate answer scores below "
               "all five hand-written answers")
    return table(ranking, caption=caption, percent_columns=["below every style"], decimals=2)


def degenerate_findings(ranking, scorer_name: str = "reward model") -> Markdown:
    """What :func:`degenerate_ranking`'s table says, computed from it: per group of degenerate kinds (of a family
    the scorer was trained on, or not), how many fall below every hand-written style on every statement, which
    styles every kind of the group scores below on average, and which kinds score above the weakest style."""
    styles = ranking[ranking["kind"] == "hand-written style"]["mean score"]
    weakest, weakest_score = styles.idxmin(), float(styles.min())
    degenerate = ranking[ranking["kind"] == "degenerate"]
    points = []
    for trained, words in (("yes", "of a family it was trained on"), ("no", "it never saw in training")):
        group = degenerate[degenerate["family trained on"] == trained]["mean score"]
        if not len(group):
            continue
        always_below = int((degenerate.loc[group.index, "below every style"] == 1.0).sum())
        beaten_by = [name for name, score in styles.items() if score > group.max()]
        above = [f"{escape_markdown(str(name))} ({score:.2f})" for name, score in group.items()
                 if score > weakest_score]
        point = (f"{len(group)} kind{'s' if len(group) != 1 else ''} {words}: {always_below} score below every "
                 "hand-written style on every statement. ")
        point += (f"On average every one scores below the {', '.join(beaten_by)} answers"
                  if beaten_by else "On average some score above even the best hand-written style")
        point += (f"; {', '.join(above)} score above the weakest style, {weakest} ({weakest_score:.2f})."
                  if above else f", and below the weakest style, {weakest} ({weakest_score:.2f}).")
        points.append(point)
    if not (degenerate["family trained on"] == "yes").any():
        points.append(f"The {scorer_name} saw no degenerate text in training, so nothing taught it to rank such text "
                      "low; a policy trained against it can gain reward by drifting into whichever kind it over-rates.")
    return findings(points, heading=f"How the {scorer_name} ranks degenerate text")


def dpo_loss_check(check, pairs: str = "training pairs, the trained policy against the reference"):
    """The DPO loss, chosen reward and margin computed by hand against TRL's logged values
    (:class:`psyco_utils.policy.LossCheck`); ``pairs`` says which pairs and which two models."""
    return by_hand_check(check, f"one batch of {check.items} {pairs}, beta {check.beta:g}")


def paper_gains(setting: str = "no constraint") -> Markdown:
    """What each stage added to the paper's win rate against GPT-4o, for both model sizes, computed from
    :mod:`psyco_utils.paper`: DPO over the base model, and DPO-Iter over DPO."""
    points = []
    for size in ("3B", "8B"):
        base, dpo, iterated = (paper.win_rate(setting, name, size) for name in ("base", "DPO", "DPO-Iter"))
        points.append(f"{size}: offline DPO took the win rate from {base:.1f}% to {dpo:.1f}% "
                      f"({dpo - base:+.1f} points); DPO-Iter took it on to {iterated:.1f}% ({iterated - dpo:+.1f} "
                      f"points over DPO).")
    larger = all(paper.win_rate(setting, "DPO", z) - paper.win_rate(setting, "base", z)
                 > paper.win_rate(setting, "DPO-Iter", z) - paper.win_rate(setting, "DPO", z) for z in ("3B", "8B"))
    points.append("The larger step was offline DPO's at both sizes; DPO-Iter added a smaller gain on top of it."
                  if larger else "DPO-Iter's step was not the smaller one at both sizes.")
    return findings(points, heading=f"What each stage added in the paper (win rate against GPT-4o, {setting})")
