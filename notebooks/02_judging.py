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
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from psyco_utils import checks, data, inputs, pairs, runtime
from psyco_utils.judge import CompareItem, ScoreItem, judged_set_report, make_judge
from psyco_utils.principles import PRINCIPLE_KEYS, PRINCIPLES

chapter = runtime.start_chapter(profile, overrides, stage="02_judging")
cfg, run = chapter.cfg, chapter.run
inputs.require_inputs(chapter)
statements = pd.read_parquet(run / "statements" / "statements.parquet")
pool = pd.read_parquet(run / "pool" / "pool.parquet")
print(f"profile {cfg.name}: {len(pool):,} pool responses to {pool['statement_id'].nunique():,} statements")

# %% [markdown]
# ## The seven principles
#
# The paper's rubric text and score anchors are in its appendix, which is not available here; the definitions and
# anchors below were written for this book from the principles' names and the counselling literature they point to.

# %%
with pd.option_context("display.max_colwidth", 200):
    display(pd.DataFrame([{"principle": p.name, "column": p.key, "group": p.group, "definition": p.definition,
                           "1": p.anchors[1], "5": p.anchors[5]} for p in PRINCIPLES]).set_index("principle"))

# %% [markdown]
# ## The judge
#
# One interface, two operations: `score` rates one response on each principle (1 to 5, with a short rationale),
# `compare` says which of two responses is better on each principle and overall. Two backends sit behind it:
#
# * **openai**: any OpenAI-compatible chat endpoint (GPT-4o, gpt-4o-mini, vLLM, Ollama), with structured outputs,
#   bounded concurrency, retries, and token and cost accounting; a Batch API mode for paper-scale runs.
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
judge = make_judge(cfg.judge, cache_path=run / "judgments.sqlite")
print(f"judge backend: {cfg.judge.backend}, model: {cfg.judge.model}")

# %% [markdown]
# What moves the rubric judge, on two responses to one statement from the bundled corpus:

# %%
if cfg.judge.backend == "rubric":
    from psyco_utils.judge.rubric import rubric_features

    corpus_statements, corpus_responses = data.load_bundled_corpus()
    sid = corpus_statements.loc[corpus_statements["edge_case"].isna(), "id"].iloc[0]
    statement_text = corpus_statements.set_index("id").at[sid, "text"]
    styles = corpus_responses[corpus_responses["statement_id"] == sid].set_index("style")["text"]
    print(data.preview(statement_text, 600))
    demo = judge.score_many([ScoreItem(statement_text, styles[s]) for s in ("empathic", "directive")], progress=False)
    for style, result in zip(("empathic", "directive"), demo):
        print(f"\n--- {style} response: {data.preview(styles[style], 300)}")
        print("ratings:", result.ratings)
        print("rationale:", result.rationale)
    display(pd.DataFrame({s: rubric_features(statement_text, styles[s]) for s in ("empathic", "directive")}))

# %% [markdown]
# ## Scoring the pool
#
# The position-swap check further down compares two responses to a statement in both orders. Its sample is drawn
# here, before scoring (two responses to each of the first test statements, picked with the profile's seed), so that
# the scores and both orders of the check are sent together: with the Batch API they are three batches that are
# awaited once, not one after another. Splits are drawn by statement, so they are known before any score.

# %%
split_of = pairs.assign_splits(list(statements["statement_id"]), cfg.splits.dev_fraction, cfg.splits.test_fraction,
                               cfg.seed)
test_pool = pool[pool["statement_id"].map(split_of) == "test"]
swap_ids = sorted(sid for sid, n in test_pool["statement_id"].value_counts().items() if n >= 2)
swap_ids = swap_ids[:cfg.judging.swap_check_pairs]
swap_sample = (test_pool[test_pool["statement_id"].isin(swap_ids)].groupby("statement_id")
               .sample(2, random_state=cfg.seed).sort_values("statement_id", kind="stable"))
first, second = swap_sample.iloc[0::2].reset_index(drop=True), swap_sample.iloc[1::2].reset_index(drop=True)
statement_text = statements.set_index("statement_id")["text"]
swap_questions = first["statement_id"].map(statement_text)
judged = judge.judge_together({
    "scoring pool responses": [ScoreItem(s, r) for s, r in zip(pool["statement_id"].map(statement_text),
                                                               pool["response"])],
    "swap check, first order": [CompareItem(q, a, b) for q, a, b in
                                zip(swap_questions, first["response"], second["response"])],
    "swap check, swapped order": [CompareItem(q, b, a) for q, a, b in
                                  zip(swap_questions, first["response"], second["response"])],
})
scored = pairs.scores_frame(pool, judged["scoring pool responses"])
usage = judge.usage()
print("judge usage counts every call of this judge in this chapter so far, the demonstration above included; "
      "cache hits are judgments already in the cache, from an earlier run or an earlier cell")
pd.Series({k: v for k, v in usage.items() if not isinstance(v, dict)}, name="judge usage").to_frame()

# %% [markdown]
# A failed judgment is not an answer: its response is left out of the pairs, and the failure is kept in the cache
# with its reason. A re-run of this chapter sends the failed judgments again and takes the answered ones from the
# cache. When more than `judge.max_failed_share` of what the chapter asked for has no judgment, the data set is
# short, and the check below says so (and stops the run, unless the profile only reports checks).

# %%
rerun = f"run `psyco-book run --profile {cfg.name} --only 02`"
score_report = judged_set_report(judged["scoring pool responses"], "pool responses", cfg.judge, rerun)
swap_report = judged_set_report(judged["swap check, first order"] + judged["swap check, swapped order"],
                                "position-swap comparisons", cfg.judge, rerun)
for report in (score_report, swap_report):
    print(report["message"])
checks.require(chapter, "pool responses judged", score_report["complete"], score_report["message"])
checks.require(chapter, "position-swap comparisons judged", swap_report["complete"], swap_report["message"])
failures = scored.loc[scored["judge_status"] != "ok", "judge_error"].str.split(":").str[0].value_counts()
failures.rename_axis("reason").rename("failed judgments").to_frame() if len(failures) else None

# %% [markdown]
# ### Score distributions

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 7, figsize=(12, 2.8), sharey=True)
for ax, p in zip(axes, PRINCIPLES):
    counts = scored[p.key].value_counts().reindex(range(1, 6), fill_value=0)
    ax.bar(counts.index, counts.values, color="#4C72B0")
    ax.set_title(p.key, fontsize=9)
    ax.set_xticks(range(1, 6))
    ax.set_xlabel("score (1-5)")
axes[0].set_ylabel("responses (count)")
fig.suptitle(f"Scores per principle ({cfg.judge.backend} judge, {len(scored):,} responses)")
fig.tight_layout()

# %%
corr = scored[list(PRINCIPLE_KEYS)].corr(method="spearman")
fig, ax = plt.subplots(figsize=(5.2, 4.4))
im = ax.imshow(corr.values, vmin=-1, vmax=1, cmap="RdBu_r")
ax.set_xticks(range(7), PRINCIPLE_KEYS, rotation=45, ha="right")
ax.set_yticks(range(7), PRINCIPLE_KEYS)
for i in range(7):
    for j in range(7):
        ax.text(j, i, f"{corr.values[i, j]:.2f}", ha="center", va="center", fontsize=7)
fig.colorbar(im, ax=ax, label="Spearman correlation")
ax.set_title("Correlation between principles")
fig.tight_layout()

# %% [markdown]
# Mean scores per pool generator: in the tiny profile the bundled styles were written to differ, so this table is
# also a check that the judge ranks them the way they were meant (empathic first, dismissive last).

# %%
by_generator = scored.groupby("generator")[list(PRINCIPLE_KEYS) + ["overall", "chars"]].mean().round(2)
by_generator.sort_values("overall", ascending=False)

# %% [markdown]
# ## Pairs and splits
#
# Exactly as the paper: splits are drawn by statement (test first, then 10% of the rest as dev), so no statement
# appears in two splits; train and dev pairs are every pair with an overall gap of at least `splits.min_score_gap`
# (1 point, as the paper); test pairs are best against worst.

# %%
frames, drops = pairs.build_pairs(scored, statements, split_of, min_gap=cfg.splits.min_score_gap)
sizes = pd.DataFrame({s: {"statements": sum(v == s for v in split_of.values()),
                          "statements with a pair": f["ID"].nunique(), "pairs": len(f)}
                      for s, f in frames.items()}).T
print("A statement whose responses all score within the minimum gap of each other gives no pair; later chapters "
      "see only statements with a pair.")
display(sizes)
drops

# %% tags=["hide-input"]
fig, ax = plt.subplots()
for split, frame in frames.items():
    ax.hist(frame["score_gap"], bins=np.arange(-1 / 14, 4.1, 1 / 7), alpha=0.6, label=f"{split} (n={len(frame):,})")
ax.axvline(cfg.splits.min_score_gap - 1 / 14, color="k", ls="--", lw=1,
           label=f"train and dev pairs: gap of {cfg.splits.min_score_gap:g} or more (right of the line)")
ax.set_xlabel("overall score gap, chosen - rejected (points on the 1-5 scale)")
ax.set_ylabel("pairs (count)")
ax.set_title("Score gap of the preference pairs")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
per_theme = pd.concat([f.assign(split=s) for s, f in frames.items()]).pivot_table(
    index="theme", columns="split", values="prefID", aggfunc="count", fill_value=0
).reindex(columns=list(pairs.SPLITS), fill_value=0)
per_theme.loc["total"] = per_theme.sum()
per_theme

# %% [markdown]
# Two example pairs from the training split, with their scores:

# %%
train = frames["train"].sort_values("score_gap", ascending=False)
if train.empty:
    print("no training pairs in this run: see the judged-set check above")
for _, row in train.iloc[sorted({0, len(train) // 2})].iterrows() if len(train) else []:
    print(f"[{row['ID']}, gap {row['score_gap']:.2f}] {data.preview(row['question'], 300)}")
    print(f"  CHOSEN ({row['chosen_model']}): {data.preview(row['chosen'], 300)}")
    print(f"  REJECTED ({row['rejected_model']}): {data.preview(row['rejected'], 300)}")
    print("  scores chosen/rejected:", {k: f"{row[f'chosen_{k}_rating']}/{row[f'rejected_{k}_rating']}"
                                         for k in PRINCIPLE_KEYS}, "\n")

# %% [markdown]
# ## How far can the judge be trusted?
#
# **Position swap.** A pairwise judge should not care which response it reads first. On two responses to each of
# a sample of test statements (drawn before scoring, above), `compare` ran in both orders; a consistent judge names
# the same response both times. Each pair is oriented by the scores, the higher-scored response as "chosen"; pairs
# whose scores tie, or that lack a score, are left out and counted.

# %%
overall_of = scored.set_index("response_id")["overall"]
first_overall = first["response_id"].map(overall_of).to_numpy()
second_overall = second["response_id"].map(overall_of).to_numpy()
verdicts_first = [v.overall for v in judged["swap check, first order"]]
verdicts_swapped = [v.overall for v in judged["swap check, swapped order"]]
chosen_first_verdicts, chosen_second_verdicts, left_out = [], [], 0
for a_score, b_score, v_ab, v_ba in zip(first_overall, second_overall, verdicts_first, verdicts_swapped):
    if np.isnan(a_score) or np.isnan(b_score) or a_score == b_score:
        left_out += 1
    elif a_score > b_score:  # the first response is the higher-scored one: it was shown first in the first order
        chosen_first_verdicts.append(v_ab)
        chosen_second_verdicts.append(v_ba)
    else:
        chosen_first_verdicts.append(v_ba)
        chosen_second_verdicts.append(v_ab)
swap = pairs.swap_consistency(chosen_first_verdicts, chosen_second_verdicts)
swap_labels = {"pairs": "pairs compared in both orders", "failed": "pairs with a failed comparison",
               "consistent": "same response named in both orders", "consistency": "consistency",
               "prefers_dataset_chosen_both_orders": "higher-scored response named in both orders"}
if cfg.judge.backend == "rubric":
    print("The rubric judge scores each response on its own and compares the scores, so it is symmetric by "
          "construction: here this checks the code path, it does not measure a bias. With an LLM judge it does.")
pd.Series({**{swap_labels[k]: round(v, 3) if isinstance(v, float) else v for k, v in swap.items()},
           "pairs left out (scores tie or missing)": left_out}, name="position-swap check", dtype=object).to_frame()

# %% [markdown]
# **Human labels.** The paper reports that two therapists agreed with the dataset's labels on 88.5% of 200 pairs
# and that experts agreed with GPT-4o's pairwise verdicts 82.5% of the time; reviewers asked for Cohen's kappa as well.
# Given a file of human labels (`judging.human_labels_path`), this cell reports both.

# %%
if cfg.judging.human_labels_path:
    agreement = pairs.human_agreement(pd.concat(frames.values()), cfg.judging.human_labels_path)
    display(pd.Series(agreement, name="agreement with human labels").to_frame())
else:
    agreement = None
    print("no human labels given for this profile (judging.human_labels_path): agreement not computed")

# %% [markdown]
# ## Artifacts
#
# `psycopref/` is a `DatasetDict` in the released schema plus a `theme` column, with a dataset card;
# `judgments.sqlite` holds every judgment with its usage and cost.

# %%
_ = checks.require(chapter, "every split has pairs", pairs.empty_splits_problem(frames) is None,
                   pairs.empty_splits_problem(frames) or "train, dev and test each hold pairs")
dataset = pairs.to_dataset_dict(frames)
dataset.save_to_disk(str(run / "psycopref"))
judge_desc = f"{cfg.judge.backend} backend, model {cfg.judge.model}"
(run / "psycopref" / "README.md").write_text(pairs.dataset_card(frames, cfg.name, judge_desc, drops))
scored.drop(columns=["rationale"]).to_parquet(run / "pool" / "scored.parquet", index=False)
_ = chapter.finish({"train_pairs": len(frames["train"]), "dev_pairs": len(frames["dev"]), "test_pairs": len(frames["test"]),
                "failed_judgments": score_report["failed"],
                "failed_judgments_by_reason": score_report["by_reason"],
                "swap_consistency": round(swap["consistency"], 3) if swap["pairs"] else None,
                "judge_cost_usd": usage["cost_usd"]})
dataset

# %% [markdown]
# ## What we found

# %%
ours = {"train pairs": f"{len(frames['train']):,}", "test pairs": f"{len(frames['test']):,}",
        "dev pairs": f"{len(frames['dev']):,}",
        "judge": f"{cfg.judge.backend} ({cfg.judge.model})",
        "position-swap consistency": (f"{swap['consistency']:.1%}" if swap["pairs"]
                                      else "not measured (no usable pairs)"),
        "agreement with human labels": f"{agreement['accuracy']:.1%}" if agreement else "no labels given"}
paper = {"train pairs": "34,329", "test pairs": "2,324", "dev pairs": "10% of train statements",
         "judge": "GPT-4o", "position-swap consistency": "not reported",
         "agreement with human labels": "88.5% (2 therapists, 200 pairs)"}
pd.DataFrame({f"this run ({cfg.name})": ours, "paper": paper})
