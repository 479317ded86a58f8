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
# optimisation ({term}`DPO`) {cite:p}`rafailov2023dpo`: no reward model in the loop, just a loss that raises the
# probability of the chosen response relative to the rejected one, measured against a frozen reference copy of the
# starting policy.
#
# **Why it matters.** DPO is the simplest way to turn preference pairs into a better policy, and the paper's first
# result: it more than doubles the win rate of both Llama models against GPT-4o.
#
# **The paper** {cite:p}`zhang2025psycopref` ran offline DPO with $\beta = 0.1$ on the training pairs, starting
# directly from the Instruct models (no supervised stage). Win rates against GPT-4o went from 28.5% to 58.5% (3B) and
# from 29.3% to 72.9% (8B).
#
# **Audience and objectives.** After this chapter you can run TRL's `DPOTrainer` on conversational pairs, read its
# training curves (loss, reward margins, preference accuracy), and compare policies with a reward model without
# mistaking a gamed reward for a better policy.

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
from trl import DPOTrainer

from psyco_utils import checks, inputs, models, pair_schema, policy, runtime
from psyco_utils import show
from psyco_utils.pairs import load_preference_data
from psyco_utils.reward import load_trained_reward_model

chapter = runtime.start_chapter(profile, overrides, stage="04_dpo")
cfg, run, layout = chapter.cfg, chapter.run, chapter.layout
inputs.require_inputs(chapter)
pairs = load_preference_data(cfg, run)
base_path = models.resolve_model_path(cfg.models.policy, cfg)

# %% [markdown]
# ## Configure
#
# The hyper-parameters are TRL's own `DPOConfig` fields, taken from the profile; the book adds the seed and the
# checkpoint selection: the dev loss is measured after each epoch and the checkpoint with the lowest one is kept.
# $\beta$ sets how far the policy may move from the reference: the loss compares the policy's log-probability ratio of
# chosen to rejected with the reference's, scaled by $\beta$. The last row is the global batch: pairs per device times
# gradient accumulation times devices.

# %%
args = policy.dpo_config(cfg.dpo.training, layout.dpo.root, seed=cfg.seed,
                         select_on_dev=True)
show.dpo_settings(args, cfg.dpo.training)

# %% [markdown]
# ## Train
#
# TRL reads the pairs in its conversational format: `prompt` is the client statement as the user turn, `chosen` and
# `rejected` are one assistant turn each (`pair_schema.to_trl`, which also checks that every text is there). The
# starting policy is passed as its saved folder with `ref_model=None`, so TRL loads the frozen reference from the
# same folder: the reference is the starting policy. With a {term}`LoRA` profile, `peft_config` trains adapters only, and the
# reference is the model with its adapters switched off.
#
# `policy.train_or_reuse` calls `trainer.train()` and saves the kept model to `dpo/model/`. A {term}`fingerprint` of
# the inputs (settings, seed, starting policy, pairs) is stored beside the model: run again on the same inputs, the
# chapter keeps the saved model instead of training it again.

# %%
dpo_inputs = policy.training_inputs(cfg.dpo.training, base_path,
                                    pairs["train"], pairs["dev"], layout.dpo.root,
                                    seed=cfg.seed, lora=cfg.models.lora)
trainer = DPOTrainer(model=base_path, ref_model=None, args=args,
                     train_dataset=pair_schema.to_trl(pairs["train"]),
                     eval_dataset=pair_schema.to_trl(pairs["dev"]),
                     processing_class=models.load_tokenizer(base_path),
                     peft_config=policy.lora_config(cfg.models.lora))
training = policy.train_or_reuse(trainer, dpo_inputs,
                                 reuse=cfg.reuse_trained_models)
show.training_summary(training)

# %% [markdown]
# The curves come from TRL's log. The loss starts at $\log 2$, where the policy and the reference agree. The implicit
# reward margin is $\beta$ times how much more the policy than the reference favours the chosen response over the
# rejected one; preference accuracy is the share of pairs where that margin is positive. Training rows average over
# a logging window; dev rows are measured after each epoch, and a dev curve that turns up while the training curve
# keeps falling is the model memorising its pairs.

# %%
fig = show.dpo_training_curves(training)

# %% [markdown]
# ## Did the policy get better?
#
# The chapter-3 reward model scores samples of each policy on held-out test statements, which no training pair
# contains. Each policy answers every statement `dpo.eval_samples_per_statement` times; the table compares the mean
# reward per statement with a 95% {term}`bootstrap interval` over statements. Two more columns guard against a reward
# gained the wrong way: the mean length, and the {term}`distinct words in the first 30` of the first sample, which
# falls when a policy repeats itself. The scored samples are kept in `held_out_samples/` under a fingerprint of the
# policy, the reward model, the statements and the seed, so chapter 5 reads them back instead of sampling again.

# %%
scorer = load_trained_reward_model(cfg, run)
policies = {"base": base_path, "DPO": training.model_dir}
comparison = policy.compare_on_held_out(policies, cfg, scorer, pairs["test"],
                                        saved_dir=layout.held_out_samples)
show.held_out_table(comparison)

# %% [markdown]
# The two held-out statements where DPO gained the most reward over the base policy, with each policy's first
# sample and, in brackets, its mean reward over all its samples for that statement. Statements with crisis language
# are left out here; chapter 6 probes them on their own. Read them for what the reward model rewards.

# %%
show.policy_examples(comparison, "DPO", "base", k=2)

# %% [markdown]
# ## Beside the paper
#
# The settings that matter, and the outcome each side measured. The paper judged its policies by their win rate
# against GPT-4o; this chapter's own measure is the reward model's score, and chapter 6 computes the win rate.

# %%
dpo = policy.finish_dpo(training, comparison, layout.dpo.root)
show.dpo_beside_the_paper(dpo, args, cfg.name)

# %% [markdown]
# ## What we found
#
# The check below requires the reward model to score the DPO policy above the base policy on held-out statements.
# Passing it is not enough: a policy can raise a reward by exploiting what the reward model over-values, such as
# length or a few favoured words, instead of answering better. That is {term}`reward hacking`, and the length and
# repetition columns above are there to catch it. The findings below are computed from this run's numbers.

# %%
raised = checks.require(chapter, "DPO raises the held-out reward",
                        dpo.change.reward_gain > 0, dpo.change.reward_line())
_ = chapter.finish(dpo.headline())
show.dpo_findings(dpo)
