"""Tables, figures and findings of chapter 06, "Win rate against a reference".

Each function takes the chapter's results (:class:`psyco_utils.evaluate.EvaluationResult`,
:class:`psyco_utils.evaluate.CrisisProbe`) and returns a styled table, a figure drawn at the content column's width
with its legend above the data, or Markdown.
"""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from ..paper import CITATION, HEADLINE_WIN_RATE, HEADLINE_WIN_RATE_KEY, WIN_RATE_VS_GPT4O, WIN_RATES_BY_SIZE, win_rate
from ..principles import PRINCIPLE_KEYS
from .base import FIGURE_WIDTH_IN, beside_the_paper, by_hand_check, escape_markdown, example, findings, percent, table

__all__ = [
    "paper_win_rates", "evaluation_setup", "answer_lengths", "judging_summary", "win_rates_beside_the_paper", "win_rates_by_principle",
    "principle_table", "length_controlled_table", "answer_length_histogram", "evaluation_examples",
    "crisis_probe_table", "crisis_example", "win_rate_findings", "length_instructions_contrast",
    "human_reference_note", "human_reference_table", "human_reference_findings", "lc_estimators_note",
    "win_rate_check", "lc_check",
]

_SETTINGS = ("no constraint", "length constraint")


def paper_win_rates():
    """The paper's table: win rate (%) against GPT-4o, judged by GPT-4o, per setting (rows) and model (columns)."""
    frame = WIN_RATE_VS_GPT4O.unstack(["size", "policy"]).reindex(list(_SETTINGS))
    frame.columns = [f"Llama3-{size}" if policy == "base" else f"{size} +{policy}" for size, policy in frame.columns]
    return table(frame.rename_axis(None), decimals=1,
                 caption=f"The paper's win rates (%) against GPT-4o, judged by GPT-4o ({CITATION})")


def evaluation_setup(setup) -> Markdown:
    """One sentence: how many held-out statements, which policies, against which reference."""
    return Markdown(f"{len(setup.items)} held-out test statements; policies: {', '.join(setup.policies)}; "
                    f"reference: {escape_markdown(setup.reference_name)}.")


def answer_lengths(result):
    """Mean, median and 90th percentile of the answers' length in words, per setting and responder."""
    return table(result.lengths, decimals=1,
                 caption="Answer length in words, per setting and responder (this run's held-out statements)")


def judging_summary(result) -> Markdown:
    """How many comparisons, how often the two orders agreed, and how often the outcome was a tie."""
    c = result.consistency
    ties = percent(c["ties"]) + (" (the base policy against itself, all ties, left out)" if c["ties_exclude_base"]
                                 else "")
    margin = (f" The rubric judge calls a tie when the two responses' mean scores differ by at most "
              f"{result.tie_margin:g} points." if result.tie_margin is not None else "")
    failed = f" {c['failed']:,} failed and are left out of every rate." if c["failed"] else ""
    return Markdown(f"{c['comparisons']:,} overall comparisons, each judged in both orders; the two orders agree in "
                    f"{percent(c['position_consistent'])} of them; ties: {ties}.{margin}{failed}")


def _run_column(rates: dict, label_of) -> dict:
    return {label_of(key): value for key, value in rates.items()}


def win_rates_beside_the_paper(result):
    """This run's overall win rate with its 95% interval beside the paper's column of the run's policy size (both
    columns, 3B and 8B, when the policy has neither size), and another run's rates beside the paper's other column
    when a run of the other size exists (:func:`psyco_utils.evaluate.runs_of_other_sizes`)."""
    rows = [f"{setting}, {policy}" for setting, policy in result.headline.index]
    own = "this run" + (f" ({result.policy_size})" if result.policy_size else f" ({result.profile} profile)")
    columns = {own: [f"{percent(r['win_rate'])} ({percent(r['ci_low'])} to {percent(r['ci_high'])})"
                     for _, r in result.headline.iterrows()]}
    sizes = [result.policy_size] if result.policy_size else list(WIN_RATES_BY_SIZE.columns)
    for size in sizes:
        columns[f"paper {size}"] = [_paper_cell(key, size) for key in result.headline.index]
    for size, other in result.other_sizes.items():
        saved = {tuple(k.split("|")): v for k, v in other["win_rates"].items()}
        columns[f"run {other['run']} ({size})"] = [percent(saved[key]["win_rate"]) if key in saved else "not run"
                                                   for key in result.headline.index]
        columns[f"paper {size}"] = [_paper_cell(key, size) for key in result.headline.index]
    frame = pd.DataFrame(columns, index=rows)
    which = (f"the paper's {result.policy_size} column, the size of this run's policy" if result.policy_size else
             "both of the paper's columns, since this run's policy has neither of the paper's sizes")
    return table(frame, caption=f"Win rate (95% bootstrap interval) against {result.reference_name}, judged by the "
                                f"{result.judge_name}, beside {which}; the paper's policies against GPT-4o, judged by "
                                f"GPT-4o ({CITATION})")


def _paper_cell(key: tuple, size: str) -> str:
    value = win_rate(key[0], key[1], size)
    return "not reported" if np.isnan(value) else percent(value / 100)


def principle_table(result, setting: str = "no constraint"):
    """Win rate per principle (rows) and policy (columns) in one setting."""
    rates = result.win_rates.xs(setting, level="setting")["win_rate"].unstack("policy")
    rates = rates.reindex([*PRINCIPLE_KEYS, "overall"])[result.policies]
    return table(rates, percent_columns=result.policies,
                 caption=f"Win rate per principle against {result.reference_name} ({setting})")


def _legend_above(fig, axes, title: str, ncol: int):
    """The title and one legend for all panels above the panels, off the data; the figure is closed so that the page
    shows it once, as the cell's result."""
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(title, y=0.995)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=ncol, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    plt.close(fig)
    return fig


def win_rates_by_principle(result):
    """Grouped bars: win rate per principle and overall, one bar per policy, with 95% intervals; one panel per
    setting, the legend above the panels."""
    aspects = [*PRINCIPLE_KEYS, "overall"]
    fig, axes = plt.subplots(2, 1, figsize=(FIGURE_WIDTH_IN, 6.4), sharex=True, sharey=True)
    width = 0.8 / len(result.policies)
    x = np.arange(len(aspects))
    for ax, setting in zip(axes, _SETTINGS):
        rows = result.win_rates.xs(setting, level="setting")
        for k, name in enumerate(result.policies):
            r = rows.xs(name, level="policy").reindex(aspects)
            err = [100 * (r["win_rate"] - r["ci_low"]), 100 * (r["ci_high"] - r["win_rate"])]
            ax.bar(x + (k - (len(result.policies) - 1) / 2) * width, 100 * r["win_rate"], width, yerr=err,
                   capsize=2, label=name)
        ax.axhline(50, color="black", lw=0.8, ls="--", label="even with the reference (50%)")
        ax.set_ylim(0, 100)
        ax.set_ylabel("win rate (%)")
        ax.set_title(setting, fontsize=10)
    axes[-1].set_xticks(x, aspects, rotation=30, ha="right")
    axes[-1].set_xlabel("principle")
    return _legend_above(fig, axes, f"Win rate against {result.reference_name} per principle, 95% bootstrap intervals",
                         ncol=len(result.policies) + 1)


_LC_NAMES = {"minimal_unpenalised": "the book's estimator", "alpaca_eval_2": "AlpacaEval 2's estimator"}


def length_controlled_table(result):
    """Raw and length-controlled win rates by both estimators (the reported one named in the caption), with the
    length term the book's logistic model fitted."""
    lc = result.length_controlled
    frame = pd.DataFrame({"win rate": lc["win_rate"], "LC, book": lc["lc_minimal"],
                          "LC, AlpacaEval 2": lc["lc_alpaca_eval_2"],
                          "extra words": lc["mean_length_difference"], "length coefficient": lc["length_coefficient"],
                          "model fitted": lc["fitted"].map({True: "yes", False: "no"})})
    counts = sorted({int(n) for n in lc["n"]})
    over = (f"{counts[0]:,} statements per row" if len(counts) == 1
            else f"{', '.join(f'{n:,}' for n in counts)} statements per row")
    return table(frame, decimals=2, percent_columns=["win rate", "LC, book", "LC, AlpacaEval 2"],
                 caption=f"Raw and length-controlled (LC) win rates over {over}; the chapter reports "
                         f"{_LC_NAMES[result.lc_estimator]} (eval.lc_estimator); extra words: the policy's mean words "
                         "more than the reference's; length coefficient: the book's model")


def lc_estimators_note(result) -> Markdown:
    """Which length-controlled estimator the chapter reports, and how far the other one reads from it here."""
    lc = result.length_controlled
    fitted = lc[lc["fitted"].astype(bool)]
    gap = (fitted["lc_alpaca_eval_2"] - fitted["lc_minimal"]) * 100
    spread = (f"On this run's rows the two differ by {gap.min():+.1f} to {gap.max():+.1f} points (AlpacaEval 2's "
              "minus the book's)." if len(gap) else "No row had a model to fit here, so both equal the raw rate.")
    reported = _LC_NAMES[result.lc_estimator]
    other = _LC_NAMES["alpaca_eval_2" if result.lc_estimator == "minimal_unpenalised" else "minimal_unpenalised"]
    return Markdown(f"This chapter reports {reported}; {other} is the other column, and `eval.lc_estimator` swaps "
                    f"them. {spread}")


def answer_length_histogram(result):
    """Histogram of answer length in words per responder, one panel per setting, the legend above the panels."""
    counts = result.word_counts
    fig, axes = plt.subplots(2, 1, figsize=(FIGURE_WIDTH_IN, 5.6), sharex=True)
    edges = np.linspace(0, max(1, counts["words"].max()), 21)
    for ax, setting in zip(axes, _SETTINGS):
        sub = counts[counts["setting"] == setting]
        for name in result.policies:
            ax.hist(sub.loc[sub["responder"] == name, "words"], bins=edges, alpha=0.5, label=name)
        ax.hist(sub.loc[sub["responder"] == "reference", "words"], bins=edges, histtype="step", color="black", lw=1.5,
                label="reference")
        ax.set_ylabel("answers (count)")
        ax.set_title(setting, fontsize=10)
    axes[-1].set_xlabel("answer length (words)")
    return _legend_above(fig, axes, "Answer length per responder", ncol=len(result.policies) + 1)


def evaluation_examples(result, limit: int = 300) -> Markdown:
    """Each example statement, then every policy's answer with its outcome against the reference."""
    parts = []
    for k, item in enumerate(result.examples, 1):
        parts.append(example(item["statement"], f"Statement {k} (theme: {escape_markdown(item['theme'])})",
                             limit).data)
        for name, text in item["answers"].items():
            outcome = item["outcomes"].get(name) or "not judged"
            parts.append(example(text, f"{name}, {outcome} against the reference", limit).data)
    return Markdown("\n\n".join(parts) if parts else "No statement without crisis language to show.")


def crisis_probe_table(probe):
    """Per policy, the share of crisis statements whose answer acknowledges the risk, points to help, is harmful."""
    shares = ["acknowledges risk", "points to immediate help", "harmful"]
    return table(probe.table, integer_columns=["statements"], percent_columns=shares,
                 caption="Crisis probe: share of answers to statements with crisis language (lexicon screen)")


def crisis_example(probe, index: int = 0) -> Markdown:
    """Every policy's answer to one crisis statement, labelled with the lexicon's reading; the statement itself is
    not shown."""
    if probe.n == 0:
        return Markdown("No statement with crisis language in this run.")
    parts = []
    for name, (text, signals) in probe.example(index).items():
        read = "; ".join(f"{signal}: {'yes' if present else 'no'}" for signal, present in signals.items())
        parts.append(example(text, f"{name} ({read})", 300).data)
    return Markdown("\n\n".join(parts))


def _statements(n: int) -> str:
    return f"{n:,} statement" + ("" if n == 1 else "s")


def _difference_sentence(d: pd.Series, result) -> str:
    better, worse = d["policy"], d["against"]
    verdict = ("ahead of" if d["difference"] > 0 else "behind") if d["distinguishable"] else "not distinguishable from"
    return (f"{better} is {verdict} {worse}: win rate {percent(result.rate('no constraint', better))} against "
            f"{percent(result.rate('no constraint', worse))}, paired difference {100 * d['difference']:+.1f} points "
            f"(95% interval {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f}, {_statements(d['n'])}); the paper "
            f"has {better} ahead.")


def _constraint_sentence(d: pd.Series) -> str:
    moved = ("lowers" if d["difference"] < 0 else "raises") if d["distinguishable"] else "does not measurably change"
    return (f"The length constraint {moved} {d['policy']}'s win rate ({100 * d['difference']:+.1f} points, 95% "
            f"interval {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f}); in the paper it lowers every policy's.")


def _over_optimisation_sentence(result) -> str | None:
    held = result.reward_ranking.get("held_out_mean_reward", {})
    distinct = result.reward_ranking.get("distinct_words_first_30_pct", {})
    rows = result.differences[(result.differences["policy"] == "DPO-Iter") & (result.differences["against"] == "DPO")]
    if rows.empty or not {"DPO", "DPO-Iter"} <= set(held) or held["DPO-Iter"] <= held["DPO"]:
        return None
    d = rows.iloc[0]
    if d["difference"] > 0:
        return None
    strength = ("the judge prefers DPO" if d["distinguishable"]
                else "the judge does not rank it higher (the difference above is within noise)")
    repeats = distinct.get("DPO-Iter", np.nan) < distinct.get("DPO", np.nan) - 5
    return (f"The reward model ranks DPO-Iter above DPO on held-out statements ({held['DPO-Iter']:+.2f} against "
            f"{held['DPO']:+.2f}, chapter 5), but {strength}: consistent with the online rounds optimising the reward "
            "model rather than what the judge values (reward over-optimisation"
            + ("; chapter 5 found DPO-Iter repeating itself more than DPO" if repeats else "") + ").")


def _principle_sentence(result) -> str | None:
    """The principle on which the last policy fares worst, and why the rubric judge marks it down."""
    last = result.last_policy
    if last == "base" and result.against_itself:
        return None
    rows = result.win_rates.xs(("no constraint", last), level=("setting", "policy")).reindex(list(PRINCIPLE_KEYS))
    worst = rows["win_rate"].idxmin()
    r = rows.loc[worst]
    below = "below" if r["ci_high"] < 0.5 else "not distinguishable from" if r["ci_low"] <= 0.5 else "above"
    sentence = (f"Per principle, {last} fares worst on {worst}: {percent(r['win_rate'])} (95% interval "
                f"{percent(r['ci_low'])} to {percent(r['ci_high'])}), {below} an even 50%, while its overall rate is "
                f"{percent(result.rate('no constraint', last))}.")
    longer = result.lengths.loc[("no constraint", last), "mean words"] > result.lengths.loc[
        ("no constraint", "reference"), "mean words"]
    if result.tie_margin is not None and worst == "clarity" and longer:
        sentence += (" The rubric judge lowers clarity for excess length and repetition (chapter 2), and this policy's "
                     "answers are longer than the reference's: it gains on the cues other principles count and pays "
                     "for the length here.")
    return sentence


def _checks_sentence(result) -> str | None:
    from ..evaluate import quality_checks

    found = quality_checks(result)
    if not found:
        return None
    held = [f"{name} ({measured})" for name, holds, measured, _ in found if holds]
    failed = [f"{name} ({measured})" for name, holds, measured, _ in found if not holds]
    return ("Checks: " + ("; ".join(held) + " hold" if held else "")
            + ("; " if held and failed else "") + ("; ".join(failed) + " FAILED" if failed else "") + ".")


def _length_controlled_sentences(result) -> list[str]:
    sentences = []
    for (setting, name), row in result.length_controlled.iterrows():
        if not bool(row["fitted"]) or (name == "base" and result.against_itself):
            continue
        raw, controlled, longer = float(row["win_rate"]), float(row["lc_win_rate"]), float(row["mean_length_difference"])
        effect = ("length makes no material difference (under a point)" if abs(raw - controlled) < 0.01 else
                  f"length accounts for {100 * (raw - controlled):.1f} points of its win rate" if raw > controlled
                  else f"length works against it: {100 * (controlled - raw):.1f} points more at equal length")
        sentences.append(f"{setting.capitalize()}, length-controlled, {name} wins {percent(controlled)} against "
                         f"{percent(raw)} raw; its answers are {abs(longer):.0f} words "
                         f"{'longer' if longer >= 0 else 'shorter'} than the reference's on average, and {effect}.")
    return sentences


def _crisis_sentence(probe) -> str | None:
    if probe is None or probe.n == 0:
        return None
    shares = ", ".join(f"{name} {percent(row['acknowledges risk'], 0)} / {percent(row['points to immediate help'], 0)}"
                       for name, row in probe.table.iterrows())
    return (f"Crisis probe ({_statements(probe.n)}; acknowledges risk / points to immediate help): {shares}. A high win "
            "rate is not safe crisis handling: none of these policies should answer a person at risk.")


def win_rate_findings(result, probe=None) -> Markdown:
    """What the chapter found, computed from its results: each paired comparison the paper makes, the length
    constraint's effect, the weakest principle, the length-controlled view and the crisis probe."""
    differences = result.differences
    points = [s for s in (_checks_sentence(result),) if s]
    points += [_difference_sentence(d, result) for _, d in differences[differences["comparison"] == "policy"].iterrows()]
    points += [s for s in (_over_optimisation_sentence(result), _principle_sentence(result)) if s]
    points += [_constraint_sentence(d) for _, d in differences[differences["comparison"] == "length constraint"].iterrows()]
    points += _length_controlled_sentences(result)
    points += _length_instruction_sentences(result)
    points += human_reference_findings(result.human)
    points += [_size_sentence(result)]
    points += [s for s in (_crisis_sentence(probe),) if s]
    return findings(points)


def length_instructions_contrast(result):
    """Overall win rates with the judge told not to reward length and not told, in both settings, and the length
    constraint's effect under each (points); a note when the contrast was not run."""
    contrast = result.length_instructions_contrast
    if contrast.empty:
        return Markdown("Not run in this profile (`eval.length_instructions_contrast` is off).")
    rows = {}
    for judge, setting in contrast.columns:
        values = contrast[(judge, setting)]
        effect = setting.endswith("constraint effect")
        rows[f"{judge}: {setting}"] = ((values * 100).map("{:+.1f} pts".format) if effect
                                      else values.map("{:.1%}".format))
    frame = pd.DataFrame(rows).T.rename_axis(None).rename_axis(None, axis=1)
    own = "told" if result.length_instructions else "not told"
    return table(frame,
                 caption=f"Overall win rate against {result.reference_name} with the judge told not to reward length "
                         f"and not told (this profile's judge: {own}); constraint effect: length constraint minus no "
                         "constraint, in points")


def _length_instruction_sentences(result) -> list[str]:
    contrast = result.length_instructions_contrast
    if contrast.empty:
        return []
    sentences = []
    if result.tie_margin is not None:  # the rubric judge: its penalty starts beyond a fixed length
        from ..judge.rubric import EXCESS_LENGTH_FROM_WORDS

        longest = int(result.word_counts["words"].max())
        sentences.append(f"The rubric judge's length penalty starts beyond {EXCESS_LENGTH_FROM_WORDS} words; the "
                         f"longest answer here has {longest}, so the instruction "
                         + ("cannot change a verdict in this run." if longest <= EXCESS_LENGTH_FROM_WORDS
                            else "applies to the answers above that length."))
    for policy, row in contrast.iterrows():
        if policy == "base" and result.against_itself:
            continue
        told, free = row[("told", "constraint effect")], row[("not told", "constraint effect")]
        same = np.isclose(told, free) and np.isclose(row[("told", "no constraint")], row[("not told", "no constraint")])
        sentences.append(
            f"Telling the judge not to reward length {'changes nothing for ' + policy if same else 'moves ' + policy}: "
            f"the length constraint changes its win rate by {100 * told:+.1f} points with the instruction and "
            f"{100 * free:+.1f} without it.")
    return sentences


def human_reference_note(human) -> Markdown:
    """What the human reference is in this run: the source of the answers (or the stand-in), how many statements."""
    if human is None:
        return Markdown("Not run in this profile (`eval.human_reference` is off).")
    ref = human.reference
    if ref.n == 0:
        return Markdown("No held-out statement has a human answer in this run's sources, so there is nothing to "
                        "compare with.")
    what = ("the bundled corpus's empathic responses, written for this book, which **stand in** for therapists' "
            "answers: the tiny profile has no source with human answers" if ref.stand_in else
            f"each statement's top-voted therapist answer from {escape_markdown(ref.source)}")
    left_out = (f" {ref.without_answer:,} of the chapter's own statements have no such answer; other test statements "
                "that have one take their place, up to the same number." if ref.without_answer else "")
    return Markdown(f"{ref.n:,} held-out statements; the reference is {what}.{left_out} "
                    "No published result reports a win rate against human therapists; the paper compares with "
                    "GPT-4o only.")


def human_reference_table(human):
    """Win rate per principle (rows) and policy (columns) against the human reference."""
    if human is None or human.reference.n == 0:
        return Markdown("No comparison with a human reference in this run.")
    rates = human.win_rates["win_rate"].unstack("policy").reindex([*PRINCIPLE_KEYS, "overall"])[human.policies]
    label = "stand-in human answers" if human.reference.stand_in else "the top-voted human answer"
    return table(rates, percent_columns=human.policies,
                 caption=f"Win rate per principle against {label} (no constraint, both orders, "
                         f"{human.reference.n:,} statements)")


def human_reference_findings(human) -> list[str]:
    """One sentence per policy: its overall win rate against the human reference, with its interval."""
    if human is None or human.reference.n == 0:
        return []
    label = "the stand-in human answers" if human.reference.stand_in else "the top-voted therapist answers"
    parts = []
    for policy in human.policies:
        r = human.win_rates.loc[(policy, "overall")]
        parts.append(f"{policy} {percent(r['win_rate'])} ({percent(r['ci_low'])} to {percent(r['ci_high'])})")
    return [f"Against {label}, overall: " + "; ".join(parts) + f" ({_statements(human.reference.n)}). "
            "No published result reports this comparison."]


def _size_sentence(result) -> str:
    setting, size, policy = HEADLINE_WIN_RATE_KEY
    if result.policy_size is None:
        return (f"This run's policy has neither of the paper's sizes, so it is set beside both columns; the paper's "
                f"headline, {policy} at {size} {setting}, is {HEADLINE_WIN_RATE:.1f}%.")
    others = ", ".join(f"{s} (run {o['run']})" for s, o in result.other_sizes.items())
    return (f"This run's policy is the paper's {result.policy_size} size and is compared with that column"
            + (f"; runs of the other size beside it: {others}" if others else "; no run of the other size was found")
            + f". The paper's headline is {policy} at {size}, {setting}: {HEADLINE_WIN_RATE:.1f}%.")


def win_rate_check(check, policy: str, setting: str):
    """The win rate, wins and ties counted by hand from the raw verdicts against the evaluation code's."""
    return by_hand_check(check, f"{policy} against the reference, {setting}, {check.items} statements judged in both "
                                f"orders", count_rows=["wins", "ties"])


def lc_check(check, policy: str, setting: str):
    """The length-controlled fit by hand (Newton's method) against the evaluation code's (scikit-learn)."""
    return by_hand_check(check, f"{policy} against the reference, {setting}, {check.items} statements")
