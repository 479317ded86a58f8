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
# # 2. Judging and the PsyCoPref pairs
#
# **What this chapter does.** It scores every response in the pool on the seven principles, averages the seven
# scores into an overall score, and turns the scores into preference pairs in the schema of the released
# PsychoCounsel-Preference dataset.
#
# **Why it matters.** The pairs are the only supervision the reward model (chapter 3) and DPO (chapters 4 and 5)
# ever see. If the judge is inconsistent, or if ties and failures are handled carelessly, everything downstream
# learns the noise.
#
# **The paper** {cite:p}`zhang2025psycopref` had GPT-4o rate each response 1 to 5 on each principle, took the
# equal-weight mean as the overall score, built train pairs from every pair of a statement's four responses whose
# overall scores differ by at least 1, test pairs from the best and worst response of each statement, and held out
# 10% of the training statements as a dev set: 34,329 train and 2,324 test pairs. Two therapists agreed with the
# labels on 88.5% of 200 pairs.
#
# **Audience and objectives.** After this chapter you can explain the seven principles, run either judge backend,
# read its cost and failure report, and rebuild the paper's pairs and splits from scores.

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
from psyco_utils import checks, inputs, judging, runtime, show
from psyco_utils.judge import make_judge

chapter = runtime.start_chapter(profile, overrides, stage="02_judging")
cfg = chapter.cfg
inputs.require_inputs(chapter)
plan = judging.plan(chapter)
show.findings(plan.summary())

# %% [markdown]
# The plan above reads what chapter 1 wrote: the cleaned statements and their response pool.
#
# ## The seven principles
#
# The paper's rubric text and score anchors are in its appendix, which is not available here; the definitions and
# anchors below were written for this book from the principles' names and the counselling literature they point to.

# %%
show.principles_table()

# %% [markdown]
# ## The judge
#
# One interface, two operations: `score` rates one response on each principle (1 to 5, with a short rationale),
# `compare` says which of two responses is better on each principle and overall. Two backends sit behind it:
#
# * **openai**: any OpenAI-compatible chat endpoint (GPT-4o, gpt-4o-mini, vLLM, Ollama), with structured outputs,
#   bounded concurrency, retries, and token and cost accounting; a {term}`Batch API` mode for paper-scale runs.
# * **rubric**: an offline, deterministic scorer of surface cues. It stands in for GPT-4o in the tiny profile so
#   that the book runs anywhere without a key. It is **not** a model of a therapist's judgement: it rewards
#   the visible signs of good practice (reflections of feeling, open questions, the client's own words,
#   autonomy-supporting wording) and penalises their opposites (orders, dismissive or harmful phrases, padding and
#   length). It does not read for sense: a string of feeling words and open questions with no grammar can score
#   well on empathy, and chapters 4 to 6 show the tiny policies learning exactly that.
#
# Both write every judgment to one SQLite cache before it is used, keyed by backend, model, prompt version and
# messages: a re-run sends only the judgments that are missing or failed, and a run that is stopped resumes where it
# stopped. A failure is kept with its reason, and stays in the cache's history after a later success. When the
# endpoint stops answering (`judge.stop_after_consecutive_errors` connection errors, timeouts or server errors in a
# row), the run stops with an error that names the endpoint and says how many judgments are already safe.

# %%
judge = make_judge(cfg.judge, cache_path=chapter.layout.judgments)

# %% [markdown]
# What moves the rubric judge, on two bundled responses to one statement (a statement without a crisis flag):
# the empathic response reflects feelings, uses the client's words and asks an open question; the directive one
# gives orders.

# %%
demo = judging.rubric_demo(judge, plan)
show.rubric_demo(demo)

# %% [markdown]
# The surface features the rubric reads from each response, and from which its ratings follow:

# %%
show.rubric_features(demo)

# %% [markdown]
# ## Scoring the pool
#
# The {term}`position swap` check further down compares two responses to a statement in both orders. Its sample was
# drawn with the plan, before scoring (two responses to each of the first test statements, picked with the profile's
# seed), so that the scores and both orders of the check are sent together: with the Batch API they are three
# batches that are awaited once, not one after another. Splits are drawn by statement, so they are known before any
# score. This is the call that judges everything:

# %%
judged = judge.judge_together(plan.tasks())
result = judging.collect(chapter, plan, judged, judge)

# %% [markdown]
# What the judge did. The counts cover every call of this judge in this chapter, the demonstration above included;
# judgments answered from the cache were made by an earlier run or an earlier cell, and cost nothing now.

# %%
show.table(result.usage_table())

# %% [markdown]
# A failed judgment is not an answer: its response is left out of the pairs, and the failure is kept in the cache
# with its reason. A re-run of this chapter sends the failed judgments again and takes the answered ones from the
# cache. When more than `judge.max_failed_share` of what the chapter asked for has no judgment, the data set is
# short, and the checks below say so (and stop the run, unless the profile only reports checks).

# %%
_ = checks.require(chapter, "pool responses judged", result.score_report["complete"], result.score_report["message"])
_ = checks.require(chapter, "position-swap comparisons judged", result.swap_report["complete"],
                   result.swap_report["message"])
show.judged_sets(result)

# %% [markdown]
# ### Score distributions
#
# How often each score was given on each principle, and the overall score (the mean of the seven) of each response.
# A principle on which almost every response gets the same score cannot separate a pair.

# %%
fig = show.score_histograms(result.scored, result.judge_label)

# %%
show.findings(result.score_findings())

# %% [markdown]
# The principles are meant to measure different things. If two of them always move together, the judge is rating
# one impression twice; the rank ({term}`Spearman correlation`) over the judged responses shows how far apart they are.

# %%
fig = show.principle_correlation(result.scored)

# %%
show.findings(result.correlation_findings())

# %% [markdown]
# Mean scores per pool generator, best overall on top: in the tiny profile the bundled styles were written to differ,
# so this is also a check that the judge ranks them the way they were meant (empathic first, dismissive last).

# %%
fig = show.generator_scores(result.by_generator())

# %%
show.findings(result.generator_findings())

# %% [markdown]
# ## Pairs and splits
#
# Exactly as the paper: splits are drawn by statement (test first, then 10% of the rest as dev), so no statement
# appears in two splits; train and dev pairs are every pair with an overall gap of at least `splits.min_score_gap`
# (1 point, as the paper); test pairs are best against worst. A statement whose responses all score within the
# minimum gap of each other gives no pair, so later chapters see only statements with a pair.

# %%
show.table(result.split_sizes(), integer_columns=["statements", "statements with a pair", "pairs"])

# %% [markdown]
# What did not become a pair, and why:

# %%
show.table(result.drops, integer_columns=["count"])

# %% [markdown]
# The gap of the pairs: train and dev pairs start at the minimum gap (the dashed line); test pairs, best against
# worst, can have any gap above zero.

# %%
fig = show.score_gap_histogram(result.frames, result.min_gap)

# %% [markdown]
# Pairs per theme and split. Chapter 3 reports the reward model's accuracy per theme on the test split, so a theme
# without test pairs is missing there.

# %%
show.table(result.per_theme())

# %%
show.findings(result.theme_findings())

# %% [markdown]
# Two pairs from the training split (the widest gap, and one from the middle), with their ratings:

# %%
show.pair_examples(result.pair_examples())

# %% [markdown]
# ## How far can the judge be trusted?
#
# **Position swap.** A pairwise judge should not care which response it reads first. On two responses to each of
# a sample of test statements, `compare` ran in both orders; a consistent judge names the same response both times.
# Each pair is oriented by the scores, the higher-scored response as "chosen"; pairs whose scores tie, or that lack
# a score, are left out and counted. The rubric judge scores each response on its own and compares the scores, so
# it is symmetric by construction: with it, this checks the code path and does not measure a bias. With an LLM judge
# it does. The last row is stricter: the share of pairs where `compare` named the higher-scored response in both
# orders, so its pairwise verdict agrees with the label the scores give the pair.

# %%
show.table(result.swap_table())

# %% [markdown]
# **Human labels.** The paper reports that two therapists agreed with the dataset's labels on 88.5% of 200 pairs
# and that experts agreed with GPT-4o's pairwise verdicts 82.5% of the time; reviewers asked for {term}`Cohen's kappa` as
# well. A labels file (`judging.human_labels_path`) is a CSV with one row per labelled pair: the pair's `ID` and
# `prefID` in the preference data, which response the labeller saw first, and which one they preferred. Recording
# the order shown makes kappa meaningful: in the A/B space the dataset's label is A exactly when the chosen response
# was shown first, so both labels occur. A profile without a labels file whose pool has the bundled responses (the
# tiny profile) gets one written from the corpus authors' intent instead: the empathic responses were written to be
# the best and the dismissive ones the worst, before any judge ran, so a pair of two bundled responses that includes
# one of them has a label given by people. It is the authors' design, not a therapist's reading.

# %%
labels = judging.human_labels(chapter, result)
show.human_labels_format(labels)

# %%
show.human_agreement(result.agreement)

# %% [markdown]
# **Therapists' upvotes.** Some statement sources publish several licensed therapists' answers to one question with
# the readers' upvotes (counsel-chat does). Two answers to one question whose upvotes differ (by at least
# `judging.upvote_min_gap`) make a pair with a public, human label; the judge compares each pair in both orders, with
# chapter 6's tie protocol (orders that disagree count as a tie, one half), every verdict cached first. This is
# not in the paper; it sits beside the paper's 82.5% expert agreement as a signal anyone can recompute. Upvotes are
# a weak proxy for expert judgement, and the page says how weak.

# %%
upvotes = judging.upvote_check(chapter, judge, result)
show.upvote_agreement(upvotes, cfg.name)

# %% [markdown]
# ## Artifacts
#
# `psycopref/` is a {term}`DatasetDict` in the released schema plus a `theme` column, with a dataset card;
# `judgments.sqlite` holds every judgment with its usage and cost. A split without pairs cannot be trained on,
# so that is checked before anything is written.

# %%
_ = checks.require(chapter, "every split has pairs", result.empty_splits_problem() is None, result.splits_message())
result = judging.save(chapter, result)
show.artifacts(result)

# %% [markdown]
# ## What we found

# %%
show.beside_the_paper(result.ours(), result.paper_numbers(), cfg.name)

# %%
show.findings(result.findings())
