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
import numpy as np
from trl import DPOTrainer

from psyco_utils import checks, inputs, models, pair_schema, policy, runtime, style
from psyco_utils import show
from psyco_utils.pairs import load_preference_data
from psyco_utils.reward import load_trained_reward_model
from psyco_utils.training import without_log_printing

chapter = runtime.start_chapter(profile, overrides, stage="04_dpo")
cfg, run, layout = chapter.cfg, chapter.run, chapter.layout
inputs.require_inputs(chapter)
pairs = load_preference_data(cfg, run)
base_path = models.resolve_model_path(cfg.models.policy, cfg)

# %% [markdown]
# ## From the RLHF objective to the DPO loss
#
# Reinforcement learning from human feedback asks for a policy $\pi_\theta$ that earns a high reward $r(x, y)$ for
# its answers $y$ to prompts $x$ without drifting far from a reference policy $\pi_{\text{ref}}$, here the starting
# policy:
#
# $$\max_{\pi_\theta}\; \mathbb{E}_{x,\; y \sim \pi_\theta(\cdot \mid x)}\big[r(x, y)\big] \;-\; \beta\,
# \mathrm{KL}\big(\pi_\theta(\cdot \mid x)\,\big\|\,\pi_{\text{ref}}(\cdot \mid x)\big).$$
#
# $\beta$ prices the drift: a small $\beta$ lets the policy chase the reward, a large one keeps it close to the
# reference (whose fluency it then keeps). This objective has a closed-form optimum,
# $\pi^*(y \mid x) = \pi_{\text{ref}}(y \mid x)\, e^{r(x, y)/\beta} / Z(x)$, with $Z(x)$ the normaliser over all
# answers. Solved for the reward, every policy defines an **implicit reward**,
#
# $$r_\theta(x, y) = \beta \log \frac{\pi_\theta(y \mid x)}{\pi_{\text{ref}}(y \mid x)} + \beta \log Z(x),$$
#
# how much more likely the policy makes an answer than the reference does. Put into the Bradley-Terry model of a
# preference, $P(y_w \succ y_l \mid x) = \sigma\big(r(x, y_w) - r(x, y_l)\big)$, the intractable $\beta \log Z(x)$
# cancels, and maximising the likelihood of the chosen answers $y_w$ over the rejected $y_l$ is the DPO loss
# {cite:p}`rafailov2023dpo`:
#
# $$\mathcal{L}_{\text{DPO}} = -\,\mathbb{E}_{(x, y_w, y_l)}\Big[\log \sigma\Big(\beta \log
# \frac{\pi_\theta(y_w \mid x)}{\pi_{\text{ref}}(y_w \mid x)} - \beta \log
# \frac{\pi_\theta(y_l \mid x)}{\pi_{\text{ref}}(y_l \mid x)}\Big)\Big].$$
#
# No reward model and no sampling: two forward passes per answer, one through the policy and one through the frozen
# reference. TRL logs the two terms inside the brackets averaged over a batch as `rewards/chosen` and
# `rewards/rejected`, their difference as `rewards/margins`, and the share of pairs with a positive margin as
# `rewards/accuracies`. At the start the policy is the reference, every implicit reward is 0 and the loss is
# $\log 2 \approx 0.693$. After training, a cell below computes the loss and the rewards by hand and checks them
# against TRL's.

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
# A {term}`fingerprint` of the inputs (settings, seed, starting policy, pairs) is stored beside the trained model:
# run again on the same inputs, `policy.previous_run` finds that model and nothing is trained. Otherwise the cell
# builds the trainer and calls `trainer.train()`. With progress bars off, transformers would print every log line
# onto the page, so `without_log_printing` takes that printer out; the log itself stays in the trainer's state, for
# the curves below. `policy.save_trained` then writes the kept model and its tokenizer to `dpo/model/`, with the
# fingerprint and TRL's log.

# %%
dpo_inputs = policy.training_inputs(cfg.dpo.training, base_path,
                                    pairs["train"], pairs["dev"], layout.dpo.root,
                                    seed=cfg.seed, lora=cfg.models.lora)
training = policy.previous_run(dpo_inputs, reuse=cfg.reuse_trained_models)
if training is None:
    trainer = DPOTrainer(model=base_path, ref_model=None, args=args,
                         train_dataset=pair_schema.to_trl(pairs["train"]),
                         eval_dataset=pair_schema.to_trl(pairs["dev"]),
                         processing_class=models.load_tokenizer(base_path),
                         peft_config=policy.lora_config(cfg.models.lora))
    without_log_printing(trainer).train()
    training = policy.save_trained(trainer, dpo_inputs)
show.training_summary(training)

# %% [markdown]
# ### Training on several GPUs
#
# The same training runs as an entry point under `accelerate launch` or `torchrun`, one process per GPU, with the
# global batch kept and only the main process writing the model; this chapter, run afterwards with the same profile
# and overrides, then finds the saved model by its fingerprint and reuses it. The command for this profile:

# %%
show.launch_command("dpo", profile, overrides)

# %% [markdown]
# The curves come from TRL's log. The loss starts at $\log 2$, where the policy and the reference agree. The implicit
# reward margin is $\beta$ times how much more the policy than the reference favours the chosen response over the
# rejected one; preference accuracy is the share of pairs where that margin is positive. Training rows average over
# a logging window; dev rows are measured after each epoch, and a dev curve that turns up while the training curve
# keeps falling is the model memorising its pairs.

# %%
fig = show.dpo_training_curves(training)

# %% [markdown]
# ### The loss by hand, checked against TRL
#
# The equation above, computed on one batch of eight training pairs. TRL evaluates the trained policy against the
# reference (the starting policy) on the batch and logs its loss and rewards; the cell then scores the same tokens
# by hand, with the two models TRL evaluated: $\log \pi(y \mid x)$ is the sum of the log-probabilities of the
# answer's tokens, each given everything before it, from the policy and from the reference, and the formula does the
# rest. The two must agree within `LOSS_CHECK_TOLERANCE`, as float32 sums over the same tokens do. The check runs in
# float32 whatever precision the profile trains in: under bf16 or fp16 autocast TRL's own sums move by more than the
# tolerance, and the check would test the precision instead of the formula.

# %%
batch = pairs["train"].select(range(8))
with policy.trl_evaluation_on_batch(training.model_dir, base_path, batch, cfg.dpo.training,
                                    seed=cfg.seed) as trl_run:
    policy_chosen, policy_rejected = policy.completion_logps(trl_run.policy_model, trl_run.tokens)
    reference_chosen, reference_rejected = policy.completion_logps(trl_run.reference_model, trl_run.tokens)

reward_chosen = args.beta * (policy_chosen - reference_chosen)
reward_rejected = args.beta * (policy_rejected - reference_rejected)
margin = reward_chosen - reward_rejected
by_hand = {"loss": np.mean(np.logaddexp(0, -margin)),  # -log sigmoid(margin)
           "rewards/chosen": reward_chosen.mean(),
           "rewards/margins": margin.mean()}

loss_check = policy.LossCheck(by_hand, trl_run.logged, beta=args.beta, items=len(batch))
show.dpo_loss_check(loss_check)

# %%
_ = checks.require(chapter, "the DPO loss by hand equals TRL's", loss_check.agrees,
                   loss_check.line())

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
# ## What DPO changed in the answers
#
# A reward can be gamed; what a policy writes can be read. A small classifier trained on the bundled corpus's
# answers (`psyco_utils.style`: TF-IDF and logistic regression) names the nearest of the five styles for every
# sample, empathic, generic, directive, dismissive or rambling, or calls it unclassifiable when no style reaches 50%.
# Beside the style shares: distinct-1 and distinct-2 (distinct words and word pairs over all words and pairs of a
# policy's samples) and the repeated-4-gram rate (the share of a sample's four-word sequences that it already used),
# which rises when a policy loops. The last column is the change of the empathic share from the base policy, with a
# 95% interval from a paired bootstrap over statements.

# %%
styles = style.compare_styles(comparison.answers, baseline="base", seed=cfg.seed)
show.policy_styles(styles)

# %% [markdown]
# In the tiny profile the policy's answers are made of the corpus's sentences, so the styles are its own, and the
# chapter requires what preference learning should do to them: no policy loops (at most 5% repeated 4-grams), the
# base policy writes recognisable styles (at least 80% of its samples classifiable), and DPO raises the empathic share
# with a paired interval above 0. A real model writes its own words, so with other profiles the table is shown and
# the style targets are not checked.

# %%
_ = style.require_style_targets(chapter, styles, trained=["DPO"])
show.findings(show.style_points(styles, "DPO"), heading="What DPO changed in the answers")

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
                        dpo.change.reward_gain > 0, dpo.change.reward_line(), model_quality=True)
_ = chapter.finish(dpo.headline())
show.dpo_findings(dpo, styles)
