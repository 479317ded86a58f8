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
# # 3. The reward model
#
# **What this chapter does.** It trains a Bradley-Terry reward model on the PsyCoPref pairs: a language model with a
# single scalar output $r(x, y)$ for a client statement $x$ and a response $y$, trained so that the response the
# judge preferred gets the higher score. It then measures how well the scores order the test pairs and how well
# calibrated they are, beside two baselines and, in the paper profile, general-purpose reward models.
#
# **Why it matters.** Chapter 5 uses this model as its only judge of quality while the policy samples and learns, so
# its errors become the policy's errors. A reward model that secretly prefers longer answers teaches length, not
# counselling; that is why "the longer response wins" is one of the baselines.
#
# **The paper** {cite:p}`zhang2025psycopref` trained reward models from Llama-3.2-3B-Instruct and
# Llama-3.1-8B-Instruct (2 epochs, batch 128, learning rate 9e-6, max length 2,048 tokens) with the loss
# $L = -\log \sigma\big(r(x, y_c) - r(x, y_r)\big)$ {cite:p}`bradley1952rank`, and reached 98.1% (3B) and 97.8% (8B)
# accuracy on the test pairs, far above general-purpose reward models (57.9% to 87.3%).
#
# **Audience and objectives.** After this chapter you can train a reward model with TRL's `RewardTrainer`, explain
# what it does to your data (chat template, length filter, checkpoint selection), evaluate it with accuracy, AUC,
# ECE and Brier score with intervals, read a reliability diagram, and check it against a length baseline.

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
from pathlib import Path

import pandas as pd

from psyco_utils import checks, data, inputs, metrics, models, reward, runtime, show
from psyco_utils.pairs import load_preference_data

chapter = runtime.start_chapter(profile, overrides, stage="03_reward_model")
cfg, run = chapter.cfg, chapter.run
inputs.require_inputs(chapter)
prefs = load_preference_data(cfg, run)
test = prefs["test"].to_pandas()
print(f"profile {cfg.name}: reward backbone from the {models.model_origin(cfg.models.reward_backbone)}"
      + (f" with LoRA (r={cfg.models.lora.r})" if cfg.models.lora else ""))
pd.DataFrame({"pairs": {s: len(d) for s, d in prefs.items()},
              "statements": {s: len(set(d["ID"])) for s, d in prefs.items()}})

# %% [markdown]
# ## What the reward model reads
#
# Each pair goes to TRL in its *conversational* preference format: `prompt` holds the client statement as the user
# turn, `chosen` and `rejected` each hold one assistant turn. TRL joins prompt and completion and applies the
# backbone's own chat template **once**; this chapter never renders the template itself for training, and the scorer
# below renders it the same way TRL does. The reward is read at the last token of the chat.

# %%
example = prefs["train"].to_pandas().iloc[0]
record = reward.to_conversational(prefs["train"].select([0]))[0]
tokenizer = reward.load_backbone_tokenizer(cfg, run)
rendered = tokenizer.apply_chat_template(reward.conversation(example["question"], example["chosen"]), tokenize=False)
print("TRL record:", {k: [{**m, "content": data.preview(m["content"], 60)} for m in v] for k, v in record.items()})
print(f"\nthe chosen chat as the model sees it ({len(rendered):,} characters, first 600):\n{rendered[:600]}")

# %% [markdown]
# ### Pairs TRL would drop for length
#
# `RewardTrainer` removes every pair whose chosen *or* rejected chat is longer than `max_length` tokens, and says
# nothing. The paper notes about 77 such rows in the released train split at 2,048 tokens. So we count them first,
# with the same tokenizer and chat template, on every split:

# %%
max_length = cfg.reward.training.get("max_length", 1024)
length_table = reward.length_drop_table({s: prefs[s] for s in prefs}, tokenizer, max_length)
length_table

# %% [markdown]
# ## Training
#
# The training pairs are the PsyCoPref train split; with `reward.helpsteer2_mix` set (the paper's ablation, an option
# of the paper profile), HelpSteer2 pairs {cite:p}`wang2024helpsteer2` are added: every two responses to the same
# prompt whose helpfulness differs by at least 1 point. That conversion is this book's; the paper does not state
# its own.

# %%
train_pairs = reward.training_pairs(cfg, prefs)
train_pairs["source"].value_counts().rename("training pairs").to_frame()

# %% [markdown]
# The hyper-parameters are TRL's own `RewardConfig` fields, from the profile (`reward.training`), plus what the
# chapter derives: the seed, an evaluation on the dev split after every epoch, and loading the checkpoint with the
# lowest dev loss at the end (checkpoint selection, as the paper's held-out dev set is for).
# In the colab profile LoRA adapters are trained (with the new `score` head trained in full) and merged before saving.
# A re-run whose pairs, settings, seed, backbone and library versions are all unchanged loads the model saved last
# time instead of training it again (`reuse_trained_models` in the profile), and says so.

# %%
out_dir = run / reward.STAGE_DIR
args = reward.reward_config(cfg, out_dir, has_dev=len(prefs["dev"]) > 0, progress=cfg.name != "tiny")
pd.Series({k: getattr(args, k) for k in reward.SHOWN_CONFIG}, name="RewardConfig").astype(str).to_frame()

# %%
result = reward.train_reward_model(cfg, train_pairs, prefs["dev"], out_dir, run_root=run, args=args)
if result.reused:
    print("reused the reward model an earlier run trained on exactly these pairs, settings and backbone "
          "(set reuse_trained_models=false to train again); what follows describes that training")
print(f"trained on {result.train_pairs:,} pairs x {result.epochs:g} epochs in {result.seconds:.1f} s "
      f"({result.pairs_per_second:.1f} pairs/s); peak memory of this process {result.peak_memory_mb:,.0f} MiB")
print(f"RewardTrainer dropped {result.dropped_by_trl} train pairs for length; "
      f"our count above said {int(length_table.loc['train', 'dropped'])}")
kept = str(result.best_checkpoint).rstrip("/").rsplit("/", 1)[-1] if result.best_checkpoint else "final weights"
print(f"kept: {result.selected_by} -> {kept}; saved to runs/{cfg.name}/{Path(result.model_dir).relative_to(run)}")

# %% tags=["hide-input"]
fig = show.reward_training_curve(
    result.steps(), result.epochs_table(),
    title=f"Reward-model training ({cfg.name} profile, backbone: {cfg.models.reward_backbone})")
result.epochs_table()

# %% [markdown]
# ## Scoring the test pairs
#
# Later chapters score responses through one interface, `reward.load_trained_reward_model(cfg, run)`, which loads
# the saved model; so does this chapter. `RewardScorer.score(statements, responses, batch_size)` renders each chat
# with the template, sorts by length, right-pads each batch and runs the model without gradients.

# %%
scorer = reward.load_trained_reward_model(cfg, run)
predictions = reward.test_predictions(scorer, test, batch_size=32)
print(f"scored {scorer.stats.sequences:,} chats ({scorer.stats.tokens:,} tokens) in {scorer.stats.seconds:.2f} s: "
      f"{scorer.stats.sequences_per_second:,.0f} chats/s; {scorer.stats.truncated} cut to {scorer.max_length} tokens")
predictions.head()

# %% [markdown]
# ## Evaluation, beside baselines and the paper
#
# For each test pair, $p = \sigma(r_{\text{first}} - r_{\text{second}})$ is the model's probability that the first
# response is the preferred one. The test pairs always list the chosen response first, so each pair's order is drawn
# at random (with the profile's seed): then both outcomes occur, AUC is defined, and calibration is checked on both
# sides. Accuracy, the share of pairs with $r_c > r_r$, does not depend on the order.
#
# * **AUC**: the probability that a randomly drawn pair whose first response is preferred gets a higher margin than
#   one whose second response is preferred.
# * **ECE** (expected calibration error) {cite:p}`guo2017calibration`: the pairs are put in equal-width bins of $p$
#   (the profile's `reward.ece_bins`); ECE is the pair-weighted mean gap between mean $p$ and the observed frequency.
# * **Brier score**: the mean squared difference between $p$ and the outcome (0 or 1); 0.25 is a constant 50%.
#
# Intervals are 95% percentile bootstrap intervals over test pairs (the four metrics from the same resamples).
# The baselines are scored on the same pairs with the same orientation: **random** (independent standard normal
# rewards) and **the longer response wins** (reward = length in characters, so $p$ is almost always 0 or 1).
# In the paper profile (or any profile that names them) the off-the-shelf reward models in `reward.off_the_shelf`
# are scored the same way, as the paper compared general reward models.

# %%
rewards = {"PsyCoPref reward model (this run)": (predictions["reward_chosen"].to_numpy(),
                                                  predictions["reward_rejected"].to_numpy()),
           **reward.baseline_rewards(test, seed=cfg.seed)}
if cfg.reward.off_the_shelf:
    rewards.update(reward.score_off_the_shelf(cfg, test))
else:
    print("no off-the-shelf reward models in this profile (reward.off_the_shelf is empty): skipped")
n_bins, n_boot = cfg.reward.ece_bins, cfg.reward.bootstrap_samples
comparison = reward.comparison_table(rewards, seed=cfg.seed, n_bins=n_bins, n_boot=n_boot)
print(f"{len(test):,} test pairs; ECE with {n_bins} equal-width bins; {n_boot:,} bootstrap resamples")
comparison.style.format(precision=3).format("{:.1f}", subset=["accuracy (%)"])

# %% [markdown]
# The same numbers beside the paper's table (the paper's rows are copied from {cite:p}`zhang2025psycopref`; they were
# measured on the released test split with GPT-4o labels, ours on this profile's test split and judge):

# %%
reward.with_paper(comparison, cfg.name).style.format(precision=3, na_rep="-").format(
    "{:.1f}", subset=["accuracy (%)"])

# %% [markdown]
# ### The check
#
# The reward model must beat chance and the length baseline on the test pairs: its accuracy interval must lie above
# 50%, and its accuracy must exceed that of "the longer response wins". In the tiny profile the judge is the
# consistent rubric scorer, so a failure here means something upstream is broken (for instance chosen and rejected
# swapped); the chapter stops, and so does CI.

# %%
ours = comparison.loc["PsyCoPref reward model (this run)"]
length_acc = comparison.loc["longer response wins", "accuracy (%)"]
ours_low = float(ours["accuracy 95% CI"].strip("[]").split(",")[0])
beats_chance_and_length = checks.require(
    chapter, "reward model beats chance and the length baseline", ours_low > 50 and ours["accuracy (%)"] > length_acc,
    f"accuracy {ours['accuracy (%)']:.1f}% {ours['accuracy 95% CI']}, length baseline {length_acc:.1f}%")
if beats_chance_and_length.passed:
    print(f"check passed: accuracy {ours['accuracy (%)']:.1f}% {ours['accuracy 95% CI']} is above chance, and its "
          f"point estimate is above the length baseline's ({length_acc:.1f}%); whether that lead is more than noise "
          "is tested with a paired interval at the end of the chapter")

# %% [markdown]
# ## Calibration and margins
#
# A reliability diagram plots, per bin of predicted probability, the observed frequency that the first response was
# the preferred one: a calibrated model sits on the diagonal. The margin histogram shows how far apart the model puts
# chosen and rejected responses; pairs left of zero are ranked wrongly.

# %%
rc, rr = rewards["PsyCoPref reward model (this run)"]
tables = {name: reward.calibration(c, r, seed=cfg.seed, n_bins=n_bins) for name, (c, r) in rewards.items()
          if name != "random"}
fig = show.reliability_diagram(tables, title="Reliability of p = sigmoid(r_first - r_second) on the test pairs")
tables["PsyCoPref reward model (this run)"].round(3)

# %% tags=["hide-input"]
fig = show.margin_histogram({"PsyCoPref reward model (this run)": rc - rr},
                             title=f"Reward margin on the {len(test):,} test pairs ({cfg.name} profile)")

# %% [markdown]
# ## Where the model errs
#
# Accuracy by theme and by the judge's score gap (overall score of the chosen minus that of the rejected response,
# from the rating columns, in points of the 1-5 scale): a good reward model should be most reliable where the judge
# saw a large difference. Small groups have wide intervals.

# %%
by_theme = reward.accuracy_by(test["theme"], rc, rr, seed=cfg.seed, n_boot=n_boot)
fig = show.accuracy_by_group(by_theme, title="Test accuracy by theme", ylabel="theme")
by_theme.round(3)

# %%
gaps = reward.rating_gap(test)
by_gap = reward.accuracy_by(reward.gap_bins(gaps), rc, rr, seed=cfg.seed, n_boot=n_boot)
fig = show.accuracy_by_group(by_gap, title="Test accuracy by the judge's score gap",
                              ylabel="score gap (points, 1-5 scale)")
by_gap.round(3)

# %% [markdown]
# The test pairs the model ranks most confidently wrong (if any), with the judge's overall gap (statements with
# crisis language are left out of the examples):

# %%
errors = test.assign(margin=rc - rr, gap=gaps)
errors = errors[(errors["margin"] <= 0) & ~errors["question"].map(lambda q: bool(data.crisis_signals(q)))]
errors = errors.sort_values("margin")
if len(errors):
    for _, row in errors.head(2).iterrows():
        print(f"[{row['ID']}, margin {row['margin']:.2f}, judge gap {row['gap']:.2f}] "
              f"{data.preview(row['question'], 250)}")
        for side in ("chosen", "rejected"):
            print(f"  {side.upper()} ({row[f'{side}_model']}, {len(row[side])} chars): {data.preview(row[side], 250)}")
        print()
else:
    print("the reward model ranks every test pair correctly")

# %% [markdown]
# ## Artifacts
#
# Under `runs/<profile>/reward_model/`: the model and its tokenizer (`model/`, which chapters 4 to 6 load through
# `reward.load_trained_reward_model`), `metrics.json`, and `test_predictions.parquet` with one row per test pair
# (`ID`, `prefID`, `reward_chosen`, `reward_rejected`), as the artifact layout in the README lists.

# %%
metrics_record = {
    "test_pairs": len(test), "ece_bins": n_bins, "bootstrap_samples": n_boot, "orientation_seed": cfg.seed,
    "models": comparison.reset_index().to_dict(orient="records"),
    "by_theme": by_theme.reset_index(names="theme").to_dict(orient="records"),
    "by_score_gap": by_gap.reset_index(names="score_gap").to_dict(orient="records"),
    "training": {"train_pairs": result.train_pairs, "dropped_for_length": result.dropped_by_trl,
                 "epochs": result.epochs, "seconds": round(result.seconds, 2),
                 "pairs_per_second": round(result.pairs_per_second, 2), "selected_by": result.selected_by,
                 "best_dev_metric": result.best_metric, "peak_memory_mb": round(result.peak_memory_mb, 1),
                 "config": result.config},
    "scoring": {"chats": scorer.stats.sequences, "seconds": round(scorer.stats.seconds, 3),
                "chats_per_second": round(scorer.stats.sequences_per_second, 1)},
    "length_drops": length_table.reset_index().to_dict(orient="records"),
}
paths = reward.write_artifacts(out_dir, predictions, metrics_record)
headline = {"test_accuracy": round(float(ours["accuracy (%)"]) / 100, 4), "test_auc": round(float(ours["AUC"]), 4),
            "test_ece": round(float(ours["ECE"]), 4), "test_brier": round(float(ours["Brier"]), 4),
            "length_baseline_accuracy": round(float(length_acc) / 100, 4),
            "train_seconds": round(result.seconds, 1), "train_pairs": result.train_pairs}
manifest = chapter.finish(headline)
sorted(p.relative_to(run).as_posix() for p in out_dir.rglob("*") if p.is_file())

# %% [markdown]
# ## What we found
#
# The table puts this run's headline numbers beside the paper's 3B reward model. In the tiny profile the test split
# is small (see the number of pairs), so the intervals are wide; the comparison that carries meaning there is with
# the two baselines computed on the same pairs. The paper's result, that a reward model trained on counselling
# preferences beats general reward models by a wide margin, is a statement about GPT-4o's labels on real data; the
# tiny run checks that the training and evaluation code recover a consistent judge's preferences, and whether they
# do better than rewarding length: the cell below bootstraps the paired difference in accuracy on the same pairs.

# %%
paper_3b = reward.PAPER_TABLE.loc["PsyCo-Llama3-3B-Reward"]
pd.DataFrame({
    f"this run ({cfg.name})": {"test pairs": f"{len(test):,}",
                               "accuracy (%)": f"{ours['accuracy (%)']:.1f} {ours['accuracy 95% CI']}",
                               "AUC": f"{ours['AUC']:.3f}", "ECE": f"{ours['ECE']:.3f}",
                               "Brier": f"{ours['Brier']:.3f}",
                               "longer-wins baseline accuracy (%)": f"{length_acc:.1f}",
                               "train pairs dropped for length": f"{result.dropped_by_trl}"},
    "paper (PsyCo-Llama3-3B-Reward)": {"test pairs": "2,324", "accuracy (%)": f"{paper_3b['accuracy (%)']:.1f}",
                                       "AUC": f"{paper_3b['AUC']:.3f}", "ECE": f"{paper_3b['ECE']:.3f}",
                                       "Brier": f"{paper_3b['Brier']:.3f}",
                                       "longer-wins baseline accuracy (%)": "not reported",
                                       "train pairs dropped for length": "about 77 rows over 2,048 tokens"},
})

# %%
rm_correct = metrics.pair_correct(*rewards["PsyCoPref reward model (this run)"])
length_correct = metrics.pair_correct(*rewards["longer response wins"])
gain, gain_low, gain_high = metrics.bootstrap_ci([rm_correct, length_correct], lambda a, b: a.mean() - b.mean(),
                                                 n_boot, cfg.seed)
verdict = ("beats" if gain_low > 0 else "trails") if (gain_low > 0 or gain_high < 0) else "is not distinguishable from"
print(f"On these {len(test):,} test pairs the reward model {verdict} the longer-wins baseline: accuracy difference "
      f"{100 * gain:+.1f} points (paired 95% interval {100 * gain_low:+.1f} to {100 * gain_high:+.1f}).")
print(f"chapter 03 finished in {chapter.seconds:.1f} s")
