# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Win rate against a reference
#
# **What this chapter does.** Each policy (the base model, offline {term}`DPO`, DPO-Iter) answers the same held-out client
# statements, and the judge compares each answer with a reference answer on the seven principles and overall.
# It does so twice: without a constraint, and with a length constraint.
# It adds a {term}`length-controlled win rate`, a comparison with human therapists' answers and a crisis probe, none
# of which is in the paper.
#
# **Why it matters.** A pairwise judge can be won over by length: a longer answer looks more thorough. The paper's
# second row exists to show how much of the gain survives when answers must be short.
#
# **The paper** {cite:p}`zhang2025psycopref` compared each policy with GPT-4o, judged by GPT-4o; its table is the
# first output below, read from `psyco_utils.paper` like every number of the paper the book shows.
# How the constraint was imposed, the judge prompt, the handling of position bias and the size of the evaluation set
# are not stated; the choices below are this book's and are stated where they are made.
#
# **Audience and objectives.** After this chapter you can compute a pairwise {term}`win rate` that is robust to
# position bias, put a {term}`bootstrap interval` on it, separate a length effect from a quality effect, and check
# crisis handling.

# %% tags=["remove-cell"]
# Colab only: install the book's helper package (a no-op anywhere else).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "psyco-utils @ git+https://github.com/psycopref/psycopref-book"], check=True)

# %% tags=["parameters"]
profile = "tiny"
overrides = []

# %%
import numpy as np

from psyco_utils import checks, evaluate, human_reference, inputs, metrics, runtime, show, style
from psyco_utils.by_hand import ByHandCheck

show.paper_win_rates()

# %% [markdown]
# The paper's two rows agree in shape: each step of preference learning raises the win rate, and a length constraint
# lowers every policy's, the base models' most in proportion. The two sizes differ in reach: the 8B DPO-Iter policy's
# win rate without a constraint is the paper's headline result.
#
# ## The setup
#
# One call reads what this chapter needs: the held-out test statements (`eval.n_statements` of chapter 2's test
# split, drawn with the profile's seed), the policies whose chapters have run, and the judge with the run's cache.
#
# * **Reference.** GPT-4o in the paper profile (any OpenAI-compatible model in colab). In the tiny profile there is
#   no strong model to compare with, so the reference is the base tiny policy itself: the base row then measures the
#   judge against a copy of the same answers, which must come out at exactly 50%, and the other rows show how far
#   preference learning moved the policy from where it started.
# * **Decoding.** The profile's `eval.temperature`, one answer per statement: greedy (0) for colab and paper; 0.7 in
#   the tiny profile, where greedy decoding makes the tiny models repeat one word until the token cap. Every policy
#   and the reference use the same seed.
# * **Length constraint.** A system prompt "Reply to the client in at most N words" with N = `eval.word_limit`, plus a
#   token cap `eval.constrained_max_new_tokens`. The tiny models never saw a system prompt in training, so for them
#   the cap is what binds, and the word limit is not kept. The reference is generated under the same constraint,
#   so the two settings compare each policy with a differently generated reference.

# %%
chapter = runtime.start_chapter(profile, overrides, stage="06_win_rate")
inputs.require_inputs(chapter)
setup = evaluate.prepare(chapter)
show.evaluation_setup(setup)

# %% [markdown]
# ## The answers
#
# Each policy is loaded once, answers every statement in both settings, and is freed before the next one is loaded
# (on a GPU a vLLM engine is shut down). The reference answers are generated once and cached: in the judge's cache
# for an API model, under `eval/` for the base policy. How long the answers are matters for what follows; their
# lengths are compared in the length-controlled section.

# %%
answers = evaluate.generate_answers(setup)

# %% [markdown]
# The styles of the answers judged here (one per statement): the share nearest each bundled style, distinct-n, the
# repeated-4-gram rate, and the empathic share's change from the base policy (a paired 95% interval over statements).

# %%
styles = style.compare_styles({name: [[a] for a in texts] for name, texts in answers["no constraint"].items()
                               if name != evaluate.REFERENCE}, baseline="base", seed=setup.cfg.seed)
show.policy_styles(styles)

# %% [markdown]
# ## Judging in both orders
#
# The judge compares each policy's answer with the reference's twice, with the policy's answer first and then second:
# a {term}`position swap`. Two verdicts that disagree count as a tie, so a judge that prefers whatever comes first
# cannot hand either side a win. Each comparison is made for the seven principles and overall. A tie also comes from
# the judge itself: an LLM judge may answer "tie", and the rubric judge does when the two responses' scores are
# within `judge.tie_margin`.
#
# The same cell makes two further sets of judgments, both discussed below: the same answers judged again with the
# judge's length instruction flipped (`judge.length_instructions`), and each policy against a human therapist's
# answer.

# %%
verdicts = evaluate.judge_answers(setup, answers)
flipped = evaluate.judge_with_length_instructions_flipped(setup, answers)
against_human = human_reference.evaluate_against_human(setup, answers)
result = evaluate.summarise(setup, answers, verdicts, flipped=flipped, human=against_human)
show.judging_summary(result)

# %% [markdown]
# ## The win rate, ties and the position swap
#
# For statement $i$, let $v_i^{\rightarrow}$ be the judge's verdict with the policy's answer shown first and
# $v_i^{\leftarrow}$ the verdict with it shown second. The statement's outcome for the policy is
#
# $$s_i = \begin{cases} 1 & \text{both verdicts prefer the policy's answer (a win)},\\
# 0 & \text{both prefer the reference's (a loss)},\\
# \tfrac12 & \text{otherwise: the verdicts disagree, or either is a tie,}\end{cases}$$
#
# and the win rate over the $n$ statements judged in both orders is
#
# $$\mathrm{WR} = \frac{1}{n}\sum_{i=1}^{n} s_i = \frac{W + T/2}{n},$$
#
# with $W$ wins and $T$ ties. A tie counts half, so a policy the judge cannot tell from the reference sits at 50%,
# and a judge that always prefers the first position turns every statement into a tie instead of a win. A failed
# judgment in either order leaves the statement out of $n$ and is counted (`excluded`). The interval is a 95%
# percentile bootstrap: draw $n$ statements with replacement, recompute WR, and take the 2.5th and 97.5th percentiles
# over the draws.
#
# The cell computes the last policy's unconstrained win rate by hand from the raw verdicts (the letters "A" and "B"
# name the first and the second answer shown) and checks it against the evaluation code's. The two count the same
# verdicts, so they must agree exactly, up to float rounding.

# %%
name, setting = result.last_policy, "no constraint"
rows = verdicts[(verdicts["setting"] == setting) & (verdicts["policy"] == name)
                & (verdicts["aspect"] == "overall")].sort_values("item")
rows = rows[rows["verdict_policy_first"].notna() & rows["verdict_policy_second"].notna()]
policy_first = rows["verdict_policy_first"].str.upper()    # the policy's answer was shown as A
policy_second = rows["verdict_policy_second"].str.upper()  # the policy's answer was shown as B
outcome = np.where((policy_first == "A") & (policy_second == "B"), 1.0,
                   np.where((policy_first == "B") & (policy_second == "A"), 0.0, 0.5))
computed = result.win_rates.loc[(setting, name, "overall")]
win_rate_check = ByHandCheck({"win rate": outcome.mean(), "wins": (outcome == 1).sum(),
                              "ties": (outcome == 0.5).sum()},
                             {"win rate": computed["win_rate"], "wins": computed["wins"],
                              "ties": computed["ties"]},
                             items=len(rows), tolerance=1e-12, source="evaluation code",
                             item_name="statements")
show.win_rate_check(win_rate_check, name, setting)

# %%
_ = checks.require(chapter, "the win rate by hand equals the evaluation code's", win_rate_check.agrees,
                   win_rate_check.line())

# %% [markdown]
# The rubric judge of the tiny profile scores each response on its own and then compares the scores, so it cannot
# prefer a position and its two orders always agree; with an LLM judge this share is the measure of its position
# bias, and the swap is what keeps that bias out of the win rate.
#
# ## Beside the paper
#
# Win rate = (wins + 0.5 ties) / n over the statements, with a 95% bootstrap interval over statements. In the tiny
# profile the reference is the base policy, so the numbers answer "how far did preference learning move the policy,
# in the judge's eyes", not "how does it compare with GPT-4o"; only the ordering of the rows can be set beside the
# paper's. The findings at the end say whether each step of that ordering holds here.
#
# The paper reports one column per model size (Llama-3.2-3B and Llama-3.1-8B). A run is set beside the column of its
# policy's size; a policy of neither size (the tiny models, the colab profile's Qwen) is set beside both. When a run
# of the other size sits beside this one in the runs folder and its chapter 6 has run, its rates join the table
# next to the paper's column for that size.

# %%
show.win_rates_beside_the_paper(result)

# %% [markdown]
# ## Per principle
#
# The overall verdict hides where a policy gains and where it loses. The figure breaks each win rate down by the
# seven principles, in both settings; the dashed line is an even match with the reference. A trained policy can
# gain on most principles and lose on one: in the tiny profile that one is usually clarity, which the rubric judge
# marks down for padding and repetition, the very habits the trained policies picked up (chapters 4 and 5). The
# table gives the unconstrained rates the findings below quote.

# %%
show.win_rates_by_principle(result)

# %%
show.principle_table(result)

# %% [markdown]
# ## A length-controlled view
#
# Beyond the paper: in the manner of AlpacaEval 2 {cite:p}`dubois2024lengthcontrolled`, a logistic model of the
# judge's preference with a length-difference term, read off at zero length difference. For statement $i$ let
# $\Delta_i$ be the policy's answer's length minus the reference's, in words, and $x_i = \tanh(\Delta_i / s)$ with
# $s$ the standard deviation of the $\Delta_i$ (bounded, so that a few very long answers cannot dominate). The model
# is
#
# $$P(\text{the judge prefers the policy} \mid x_i) = \sigma(\theta_0 + \theta_1 x_i),$$
#
# fitted by maximum likelihood, with a win as label 1, a loss as label 0, and a tie as half of each: the
# log-likelihood is $\sum_i s_i \log p_i + (1 - s_i) \log(1 - p_i)$ with $p_i = \sigma(\theta_0 + \theta_1 x_i)$.
# The length-controlled win rate is the model's prediction at zero length difference,
# $\mathrm{LC} = \sigma(\theta_0)$. If a policy wins only
# because it writes more, its length-controlled win rate falls back towards 50%; if length counts against it, the
# controlled rate rises above the raw one. The model is fitted separately in each setting. Under the length
# constraint every answer is cut by the same token cap, yet the trained policies still write more than the reference,
# so the length term still has differences to work with; a rate that stays close to the raw one in both settings
# means the judge's preference does not come from length. The base policy against itself is all ties, so no model is
# fitted there ("model fitted: no") and its rate stays at 50%.
#
# First the lengths themselves. In the tiny profile the reference rows repeat the base rows exactly, since the
# reference is the base policy with the same seed; the trained policies write far more, and the length constraint
# shortens every answer through its token cap.

# %%
show.answer_lengths(result)

# %%
show.length_controlled_table(result)

# %% [markdown]
# The two LC columns are two estimators. The book's is alpaca-eval's `length_controlled_minimal` formula (a length
# term and an intercept) fitted without a penalty, read off as sigmoid(intercept); the repository's benchmark
# `benchmarks/lc_against_alpaca_eval.py` checks it against the alpaca-eval package itself. AlpacaEval 2 publishes a
# different one: an L1-penalised fit whose strength is chosen by 5-fold cross-validation, with an
# instruction-difficulty term (here each statement's difficulty is read from the other policies' verdicts on it),
# and the prediction at zero length difference averaged over the statements. Put the AlpacaEval 2 column, not the
# book's, beside published LC win rates.

# %%
show.lc_estimators_note(result)

# %% [markdown]
# The book's estimator by hand, for the same policy and setting as the win-rate check above: Newton's method on the
# log-likelihood with the evaluation code's very weak penalty on the length coefficient, $\theta_1^2 / (2C)$ with
# $C$ = `metrics.LC_PENALTY_C` ($10^4$). The gradient is $\sum_i (s_i - p_i)(1, x_i) - (0, \theta_1 / C)$ and the
# Hessian $-\sum_i p_i (1 - p_i)(1, x_i)^\top (1, x_i) - \mathrm{diag}(0, 1/C)$. Where the fit has a maximum the
# penalty changes almost nothing; where the verdicts are separable by length (every longer answer wins, say) the
# unpenalised likelihood has none and Newton's steps would run off, and the penalty is what keeps the coefficient
# finite. The evaluation code fits the same objective with scikit-learn's L-BFGS, so the two must agree within
# $10^{-3}$ on every quantity. When the model cannot be fitted (all wins, all losses, or no length variation), the
# evaluation code reports the raw rate and the check compares that instead.

# %%
delta = (rows["policy_words"] - rows["reference_words"]).to_numpy(dtype=float)
fitted = result.length_controlled.loc[(setting, name)]
if fitted["fitted"]:
    x = np.column_stack([np.ones(len(delta)), np.tanh(delta / delta.std())])
    penalty = np.diag([0.0, 1 / metrics.LC_PENALTY_C])  # on the length coefficient only
    theta = np.zeros(2)
    for _ in range(25):
        p = 1 / (1 + np.exp(-x @ theta))
        theta += np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x + penalty, x.T @ (outcome - p) - penalty @ theta)
    lc_by_hand = {"intercept": theta[0], "length coefficient": theta[1],
                  "LC win rate": 1 / (1 + np.exp(-theta[0]))}
else:
    lc_by_hand = {"LC win rate": outcome.mean()}
lc_check = ByHandCheck(lc_by_hand, {"intercept": fitted["intercept"],
                                    "length coefficient": fitted["length_coefficient"],
                                    "LC win rate": fitted["lc_minimal"]},
                       items=len(rows), tolerance=1e-3, source="evaluation code", item_name="statements")
show.lc_check(lc_check, name, setting)

# %%
_ = checks.require(chapter, "the length-controlled win rate by hand equals the evaluation code's",
                   lc_check.agrees, lc_check.line())

# %% [markdown]
# In the second table, the length coefficient is the slope of the judge's log-odds of preferring the policy in the
# (standardised, bounded) length difference: positive when longer answers win more often, negative when they win
# less, near zero when length does not sway the verdicts. For a policy that writes more than the reference, a
# positive coefficient puts the length-controlled rate below the raw one, and a coefficient near zero keeps the two
# together. The findings at the end read each row.
# The histogram shows the spread behind those means: the length differences the model works with.

# %%
show.answer_length_histogram(result)

# %% [markdown]
# ## Does telling the judge about length matter?
#
# Both the judge's rubric and its compare task can tell it not to reward length (`judge.length_instructions`): the
# LLM judge's prompt then says "do not prefer a response for being longer", and the rubric judge marks down the words
# of a very long answer beyond a fixed threshold. The paper's judge had no such instruction, and its finding is that
# the length constraint lowers win rates; a judge told to disregard length could hide part of that drop. So the same
# answers are judged both ways (`eval.length_instructions_contrast`), and the table sets the two side by side, with the
# constraint's effect under each. The rubric judge's penalty acts only on answers beyond its threshold, and the tiny
# policies are capped at `eval.max_new_tokens` tokens, so in the tiny profile the two columns can agree exactly (the
# findings say whether any answer here reaches the threshold); with an LLM judge the prompt itself differs.

# %%
show.length_instructions_contrast(result)

# %% [markdown]
# ## Against a human therapist
#
# Beyond the paper: the model reference says how a policy compares with another model, not with a person.
# counsel-chat publishes licensed therapists' answers with their upvotes, and chapter 1 keeps each statement's
# answers beside it. Here each policy's unconstrained answer is judged against the statement's top-voted human answer,
# with the same swap of positions and the same tie rule, per principle and overall. Upvotes choose which human answer
# serves as the reference; they are readers' votes, a weak proxy for expert judgement.

# %%
show.human_reference_note(result.human)

# %%
show.human_reference_table(result.human)

# %% [markdown]
# ## Where the policies differ most
#
# The two statements on which the last policy's outcome gains most on the base policy's, without a constraint
# (statements with crisis language are left out; the crisis probe below handles them without showing them). With the
# tiny profile's rubric judge, read the "wins" with chapter 2's caveat in mind: the judge counts surface cues, and a
# string of feeling words and questions can win without making sense.

# %%
show.evaluation_examples(result)

# %% [markdown]
# ## Crisis probe
#
# Beyond the paper: how each policy answers statements with crisis language (flagged in chapter 1, plus the
# profile's `eval.crisis_file` if given). A lexicon checks whether each answer acknowledges the risk, points to
# immediate help (an emergency number or a crisis line), or says something harmful (minimising, blaming).
# It is a screen, not a clinical assessment, so the answers to one of the statements follow the table, labelled with
# what the lexicon read in them. The statements themselves are not shown.
#
# ```{admonition} Content note
# :class: warning
# The answers below respond to fictional statements about suicide and self-harm. If you are in crisis, contact your
# local emergency number now; in the US you can call or text 988, in the UK and Ireland you can call the Samaritans
# on 116 123.
# ```

# %%
probe = evaluate.probe_crisis(setup)
show.crisis_probe_table(probe)

# %%
show.crisis_example(probe)

# %% [markdown]
# The lexicon reads phrases, so a match is not a referral: a tiny policy that picked up a crisis line's name or
# "right now" from the bundled responses matches "points to immediate help" in the middle of text that makes no
# sense, as the answers above show. The table is a screen for the larger profiles, whose policies write coherent
# text; for the tiny ones, read the answers. The findings below give each policy's shares.

# %% [markdown]
# ## Artifacts and checks
#
# The answers, every verdict and the win rates are saved under `eval/` in the run folder (`answers.parquet`,
# `verdicts.parquet`, `win_rates.json`), beside the cached reference answers. Two checks must hold whenever the
# reference is the base policy (the tiny profile): the base policy judged against itself is exactly 50%, and the
# final policy beats the base policy more than half the time. A swapped chosen/rejected anywhere upstream shows up
# here as a win rate under 50%. With an API reference neither has a fixed expected value, so none is made.

# %%
saved = evaluate.save_evaluation(setup, answers, verdicts, result, probe)
for name, holds, measured, model_quality in evaluate.quality_checks(result):
    checks.require(chapter, name, holds, measured, model_quality=model_quality)

# %% [markdown]
# ## What we found
#
# The paper's shape is DPO above base, DPO-Iter above DPO, and the length constraint lowering every policy's win rate.
# Each of these is tested below on this run, with paired bootstrap intervals over the same statements: a difference
# whose interval contains zero is not distinguishable from noise at this size. Then the weakest principle, the
# length-controlled view in both settings, and the crisis probe. Every number is computed from this run's verdicts.

# %%
show.win_rate_findings(result, probe)

# %%
_ = chapter.finish(evaluate.headline_metrics(result))
