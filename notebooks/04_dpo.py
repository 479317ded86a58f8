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
# # 4. Offline DPO
#
# **What this chapter does.** It trains the policy directly on the PsyCoPref pairs with direct preference
# optimisation (DPO) {cite:p}`rafailov2023dpo`: no reward model in the loop, just a loss that raises the probability
# of the chosen response relative to the rejected one, measured against a frozen reference copy of the starting policy.
#
# **Why it matters.** DPO is the simplest way to turn preference pairs into a better policy, and the paper's first
# result: it more than doubles the win rate of both Llama models against GPT-4o.
#
# **The paper** {cite:p}`zhang2025psycopref` ran offline DPO with $\beta = 0.1$ on the training pairs, starting
# directly from the Instruct models (no SFT stage). Win rates against GPT-4o went from 28.5% to 58.5% (3B) and from
# 29.3% to 72.9% (8B).
#
# **Audience and objectives.** After this chapter you can run TRL's `DPOTrainer` on conversational pairs, read its
# training curves (loss, reward margins, preference accuracy), and compare policies with a reward model.

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
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from psyco_utils import checks, data, inputs, models, policy, runtime
from psyco_utils.models import resolve_model_path
from psyco_utils.pairs import load_preference_data
from psyco_utils.reward import load_trained_reward_model

chapter = runtime.start_chapter(profile, overrides, stage="04_dpo")
cfg, run = chapter.cfg, chapter.run
inputs.require_inputs(chapter)
dataset = load_preference_data(cfg, run)
base_path = resolve_model_path(cfg.models.policy, cfg)
print(f"policy from the {models.model_origin(cfg.models.policy)}; "
      f"train pairs {len(dataset['train']):,}, dev pairs {len(dataset['dev']):,}")

# %% [markdown]
# ## Training
#
# The pairs go to TRL in conversational form with an explicit prompt (the client statement as the user turn). The
# reference model is the starting policy, loaded by TRL from the same saved directory. The dev split picks the
# checkpoint with the lowest dev loss. Hyper-parameters are TRL's own `DPOConfig` fields from the profile.

# %%
pd.Series(cfg.dpo.training, name="DPOConfig (from the profile)").to_frame()

# %%
out_dir = run / "dpo"
out_dir.mkdir(exist_ok=True)
training = policy.train_dpo(cfg.dpo.training, base_path, dataset["train"], out_dir, seed=cfg.seed,
                            eval_dataset=dataset["dev"], lora=cfg.models.lora, reuse=cfg.reuse_trained_models)
if training["reused"]:
    print("reused the DPO policy an earlier run trained on exactly these pairs, settings and starting policy "
          "(set reuse_trained_models=false to train again); what follows describes that training")
print(f"{training['steps']} DPO steps on {training['pairs']:,} pairs in {training['seconds']:.1f} s "
      f"({training['steps_per_second']:.2f} steps/s)")

# %%
train_log, eval_log = policy.log_frame(training["log_history"])
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (key, label) in zip(axes, [("loss", "DPO loss (nats per pair)"),
                                   ("rewards/margins", "implicit reward margin (beta x log-ratio)"),
                                   ("rewards/accuracies", "preference accuracy (fraction)")]):
    if key in train_log:
        ax.plot(train_log["epoch"], train_log[key], marker=".", label="train")
    if f"eval_{key}" in eval_log:
        ax.plot(eval_log["epoch"], eval_log[f"eval_{key}"], marker="o", label="dev")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
for ax, title in zip(axes, ("Loss", "Reward margin", "Preference accuracy")):
    ax.set_title(title)
fig.suptitle("DPO training curves (train and dev)")
fig.tight_layout()

# %% [markdown]
# ## Did the policy get better?
#
# The chapter-3 reward model scores samples of each policy on the held-out test statements (statements no training
# pair contains). Each policy answers every statement `dpo.eval_samples_per_statement` times (4 in every preset); the
# mean reward per statement is compared, with a
# 95% bootstrap interval over statements. The scored samples are kept in `held_out_samples/` under a fingerprint of
# the policy, the reward model, the statements and the seed, so chapter 5 reads them back instead of sampling again.

# %%
scorer = load_trained_reward_model(cfg, run)
questions = dataset["test"].to_pandas().drop_duplicates("ID")["question"].tolist()[: cfg.dpo.eval_statements]
base_rewards, base_answers, base_lengths = policy.held_out_rewards(base_path, cfg, scorer, questions, seed=cfg.seed,
                                                                   n=cfg.dpo.eval_samples_per_statement,
                                                                   saved_dir=run / "held_out_samples")
dpo_rewards, dpo_answers, dpo_lengths = policy.held_out_rewards(training["model_dir"], cfg, scorer, questions,
                                                                seed=cfg.seed, n=cfg.dpo.eval_samples_per_statement,
                                                                saved_dir=run / "held_out_samples")
comparison = policy.held_out_comparison({"base": (base_rewards, base_answers, base_lengths),
                                         "DPO": (dpo_rewards, dpo_answers, dpo_lengths)}, seed=cfg.seed)
print(f"{len(questions)} held-out statements, {cfg.dpo.eval_samples_per_statement} samples each; "
      "distinct words measured on the first sample")
comparison.round(2)

# %% [markdown]
# The two held-out statements where DPO gained the most reward over the base policy (statements with crisis language
# are left out of the examples; chapter 6 probes them on their own). In brackets: the mean reward of the policy's
# samples for that statement; then its first sample.

# %%
shown = [i for i in np.argsort(dpo_rewards - base_rewards)[::-1] if not data.crisis_signals(questions[i])][:2]
for i in shown:
    print(f"STATEMENT: {data.preview(questions[i], 300)}")
    print(f"  BASE [{base_rewards[i]:+.2f}]: {data.preview(base_answers[i], 300)}")
    print(f"  DPO  [{dpo_rewards[i]:+.2f}]: {data.preview(dpo_answers[i], 300)}\n")

# %% [markdown]
# ## Artifacts

# %%
metrics_out = {"steps": training["steps"], "seconds": training["seconds"], "steps_per_second": training["steps_per_second"],
               "train_pairs": training["pairs"], "reference": "the starting policy",
               "held_out_mean_reward": {"base": float(base_rewards.mean()), "DPO": float(dpo_rewards.mean())},
               "held_out_mean_length_tokens": {"base": float(base_lengths.mean()), "DPO": float(dpo_lengths.mean())},
               "held_out_statements": len(questions)}
(out_dir / "metrics.json").write_text(json.dumps(metrics_out, indent=2))

# %% [markdown]
# ## What we found
#
# The paper measured DPO's effect as a win rate against GPT-4o (chapter 6 does the same here, against the tiny
# reference). This chapter's own measure is the reward model's view: the mean reward of the DPO policy's answers to
# unseen statements beside the base policy's, in the table above. A DPO policy that gains reward only by writing more
# would show it in the length column, and one that gains it by repeating the words the reward model counts would
# show it as a falling share of distinct words (read the side-by-side answers above with that in mind); chapter 6
# looks at length more closely.

# %%
raised = checks.require(chapter, "DPO raises the held-out reward", dpo_rewards.mean() > base_rewards.mean(),
                        f"held-out reward {base_rewards.mean():+.3f} (base) -> {dpo_rewards.mean():+.3f} (DPO)")
distinct = comparison[policy.DISTINCT_WORDS]
print(f"Held-out reward {base_rewards.mean():+.2f} (base) to {dpo_rewards.mean():+.2f} (DPO); mean length "
      f"{base_lengths.mean():.0f} to {dpo_lengths.mean():.0f} tokens; distinct words in the first 30 "
      f"{distinct['base']:.0f}% to {distinct['DPO']:.0f}%.")
change = distinct["DPO"] - distinct["base"]
print(("The DPO policy repeats itself more than the base policy, alongside its higher reward; read the examples above "
       "for what it repeats." if change < -5 else "The DPO policy repeats itself less than the base policy."
       if change > 5 else "The DPO policy repeats itself about as much as the base policy.")
      + " Chapter 6 asks whether the judge prefers it.")
if raised.passed:
    print(f"check passed: held-out reward {base_rewards.mean():+.3f} (base) -> {dpo_rewards.mean():+.3f} (DPO)")
_ = chapter.finish({"held_out_reward_base": round(float(base_rewards.mean()), 3),
                    "held_out_reward_DPO": round(float(dpo_rewards.mean()), 3)})
