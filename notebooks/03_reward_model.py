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
# **What this chapter does.** It trains a {term}`Bradley-Terry model` of reward on the PsyCoPref pairs: a language model with a
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
# what it does to your data ({term}`chat template`, length filter, checkpoint selection), evaluate it with accuracy,
# {term}`AUC`, {term}`ECE` and {term}`Brier score` with {term}`bootstrap intervals <bootstrap interval>`, read a
# reliability diagram, and check it against a length baseline.

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
from trl import RewardTrainer

from psyco_utils import checks, inputs, reward, runtime, show, style
from psyco_utils.by_hand import ByHandCheck
from psyco_utils.pairs import load_preference_data
from psyco_utils.training import without_log_printing

chapter = runtime.start_chapter(profile, overrides, stage="03_reward_model")
cfg, run = chapter.cfg, chapter.run
inputs.require_inputs(chapter)
prefs = load_preference_data(cfg, run)
show.reward_splits(prefs)

# %% [markdown]
# The preference data of chapter 2, by split: the reward model trains on `train`, chapter 2's `dev` split picks the
# checkpoint, and `test` is scored once at the end. A statement's pairs all stay in one split.
#
# ## What the reward model reads
#
# Each pair goes to TRL in its *conversational* preference format: `prompt` holds the client statement as the user
# turn, `chosen` and `rejected` each hold one assistant turn. TRL joins prompt and completion and applies the
# backbone's own chat template **once**; this chapter never renders the template itself for training, and the scorer
# below renders it the same way TRL does. The reward is read at the last token of the chat. Here is the first
# training pair in that format:

# %%
pair = reward.example_pair(prefs["train"])
tokenizer = reward.load_backbone_tokenizer(cfg, run)
show.reward_trl_record(pair)

# %% [markdown]
# and the chosen chat as the model sees it, with the template's role markers:

# %%
chat = reward.conversation(pair["question"], pair["chosen"])
show.reward_chat(tokenizer.apply_chat_template(chat, tokenize=False),
                 "The chosen chat, rendered with the chat template")

# %% [markdown]
# ### Pairs TRL would drop for length
#
# `RewardTrainer` removes every pair whose chosen *or* rejected chat is longer than `max_length` tokens, and says
# nothing. The paper notes about 77 such rows in the released train split at 2,048 tokens. So we count them first,
# with the same tokenizer and chat template, on every split (`max_length` comes from the profile, else TRL's default):

# %%
max_length = reward.max_length(cfg)
length_drops = reward.length_drop_table(prefs, tokenizer, max_length)
show.reward_length_drops(length_drops)

# %% [markdown]
# ## From preferences to a loss: the Bradley-Terry model
#
# The judge gives pairs, not scores: for a statement $x$, response $y_w$ was preferred to $y_l$. The Bradley-Terry
# model {cite:p}`bradley1952rank` explains such choices with one hidden number per response, its reward $r(x, y)$:
# the preferred response wins with probability
#
# $$P(y_w \succ y_l \mid x) = \frac{e^{r(x, y_w)}}{e^{r(x, y_w)} + e^{r(x, y_l)}}
# = \sigma\big(r(x, y_w) - r(x, y_l)\big), \qquad \sigma(z) = \frac{1}{1 + e^{-z}}.$$
#
# Only the difference of two rewards enters, so adding the same constant to every response of a statement changes
# nothing: a reward is comparable between answers to the same statement, and its absolute level means nothing. The
# reward model $r_\phi$ is the backbone with a one-output `score` head, read at the chat's last token. Fitting it by
# maximum likelihood on the judged pairs $\mathcal{D}$ means minimising the negative log-likelihood of the judge's
# choices,
#
# $$\mathcal{L}(\phi) = -\,\mathbb{E}_{(x, y_w, y_l) \sim \mathcal{D}}
# \Big[\log \sigma\big(r_\phi(x, y_w) - r_\phi(x, y_l)\big)\Big],$$
#
# the loss `RewardTrainer` minimises. Call $m = r_\phi(x, y_w) - r_\phi(x, y_l)$ the pair's margin: the loss of one
# pair, $\log(1 + e^{-m})$, is $\log 2 \approx 0.693$ when the model cannot tell the two answers apart ($m = 0$),
# falls towards 0 as $m$ grows, and grows linearly in $-m$ for a pair ranked the wrong way. TRL also logs the share of
# pairs with $m > 0$ (`accuracy`) and the mean margin (`margin`). After training, a cell below computes all three by
# hand on one batch and checks them against TRL's.

# %% [markdown]
# ## Training
#
# The training pairs are the PsyCoPref train split; with `reward.helpsteer2_mix` set (the paper's ablation, an option
# of the paper profile), HelpSteer2 pairs {cite:p}`wang2024helpsteer2` are added: every two responses to the same
# prompt whose helpfulness differs by at least 1 point. That conversion is this book's; the paper does not state
# its own.
#
# With `reward.degenerate_negatives` set (0.25 in the tiny profile, 0 in the others), that share of the train pairs
# is added again with its chosen answer against a corrupted copy of it: one of its sentences said several
# times, or a run of its words looping (`style.corrupt`). The judge's pairs hold no such text, since every answer in
# the pool is made of fluent sentences; without these the reward model has no reason to rank repetition low, and a
# policy trained against it can gain reward by drifting into it. This is the book's choice, not the paper's, and a
# later section measures what it does.

# %%
train_pairs = reward.training_pairs(cfg, prefs)
show.reward_sources(train_pairs)

# %% [markdown]
# The hyper-parameters are TRL's own `RewardConfig` fields, from the profile (`reward.training`), plus what the
# chapter derives: the seed, an evaluation on the dev split after every epoch, and loading the checkpoint with the
# lowest dev loss at the end (checkpoint selection, as the paper's held-out dev set is for). The rows that shape the
# model are the epochs, the global batch (pairs per optimizer step: the profile states it, and the gradient
# accumulation is derived from it for the number of processes that train), the learning rate and `max_length`; the
# paper used 2 epochs, batch 128, learning rate 9e-6 and 2,048 tokens. `eval_strategy`, `metric_for_best_model` and
# `load_best_model_at_end` are the checkpoint selection.
# In the colab profile {term}`LoRA` adapters are trained (with the new `score` head trained in full) and merged
# before saving.

# %%
out_dir = reward.stage_dir(run)
args = reward.reward_config(cfg, out_dir, has_dev=prefs["dev"].num_rows > 0)
show.reward_config_table(args)

# %% [markdown]
# The plan validates the pairs against the pair schema and takes a {term}`fingerprint` of everything the model will
# depend on: pairs, settings, seed, backbone and library versions. If an earlier run trained on exactly these
# inputs (and `reuse_trained_models` is on), its saved model is loaded and nothing is trained. Otherwise the plan
# hands over the backbone with a freshly drawn `score` head, the pairs in TRL's format and any LoRA config, the cell
# builds `RewardTrainer` and calls `trainer.train()`, and `plan.save` writes the selected model with its tokenizer
# and the record that lets a later run reuse it. With progress bars off, transformers would print every log line
# onto the page; `without_log_printing` takes that printer out, and the log stays in the trainer's state for the
# curves below.

# %%
plan = reward.plan_training(cfg, train_pairs, prefs["dev"], out_dir,
                            run_root=run, args=args)
training = plan.earlier_result()
if training is None:
    model, tokenizer = plan.backbone()
    trainer = RewardTrainer(model=model, args=args,
                            train_dataset=plan.train_dataset(),
                            eval_dataset=plan.dev_dataset(),
                            processing_class=tokenizer,
                            peft_config=plan.peft_config())
    without_log_printing(trainer).train()
    training = plan.save(trainer)
show.reward_training_summary(training, length_drops)

# %% [markdown]
# ### Training on several GPUs
#
# The same training runs as an entry point under `accelerate launch` or `torchrun`, one process per GPU, with the
# global batch kept and only the main process writing the model; this chapter, run afterwards with the same profile
# and overrides, then finds the saved model by its fingerprint and reuses it. The command for this profile:

# %%
show.launch_command("reward", profile, overrides)

# %% [markdown]
# The loss starts near $\log 2$, the loss of a model that cannot tell the two responses apart, and falls as the
# model learns to score the chosen response higher. The dev loss after each epoch decides which checkpoint is kept:

# %% tags=["hide-input"]
fig = show.reward_training_curve(
    training.steps(), training.epochs_table(),
    title=f"Reward-model training ({cfg.name} profile)")
show.reward_epochs(training)

# %% [markdown]
# ## Scoring the test pairs
#
# Later chapters score responses through one interface, `reward.load_trained_reward_model(cfg, run)`, which loads
# the saved model; so does this chapter. `RewardScorer.score(statements, responses, batch_size)` renders each chat
# with the template, sorts by length, right-pads each batch and runs the model without gradients. The table says
# what scoring cost, and how many chats were longer than `max_length` and cut.

# %%
scorer = reward.load_trained_reward_model(cfg, run)
predictions = reward.test_predictions(scorer, prefs["test"], batch_size=32)
show.reward_scoring(scorer.stats, scorer.max_length)

# %% [markdown]
# ### The loss by hand, checked against TRL
#
# The Bradley-Terry loss above, on one batch of eight training pairs: TRL evaluates the trained reward model on the
# batch and logs its loss, accuracy and mean margin; the cell scores the same chats with the same model, through the
# scorer every later chapter uses, and applies the formula. The two must agree within `reward.LOSS_CHECK_TOLERANCE`:
# the same float32 model on the same tokens, batched differently. The check runs in float32 whatever precision the
# profile trains and scores in (`reward.in_float32` loads the model again when it is half precision): a bf16 reward
# keeps about three significant digits, and the check would test the rounding instead of the formula.

# %%
batch = prefs["train"].select(range(8))
with reward.in_float32(scorer) as check_scorer:
    logged = reward.trl_metrics_on_batch(cfg, check_scorer, batch)
    reward_chosen, reward_rejected = check_scorer.score_pairs(batch)
margin = reward_chosen - reward_rejected
by_hand = {"loss": np.mean(np.logaddexp(0, -margin)),  # -log sigmoid(margin)
           "accuracy": np.mean(margin > 0),
           "margin": margin.mean()}

loss_check = ByHandCheck(by_hand, logged, items=len(batch), tolerance=reward.LOSS_CHECK_TOLERANCE)
show.reward_loss_check(loss_check)

# %%
_ = checks.require(chapter, "the reward-model loss by hand equals TRL's", loss_check.agrees,
                   loss_check.line())

# %% [markdown]
# ### Does the reward model prefer degenerate text?
#
# A reward model learns what its judge rewarded, and a policy trained against it will find whatever it over-rates.
# Here it scores, for 30 bundled statements, the five hand-written answers and seven kinds of degenerate text a policy
# could drift into: cue words strung together, a phrase looping, one good sentence said again and again, word salad
# (`style.degenerate_answers`). "Below every style" is the share of statements on which the degenerate answer scores
# below every hand-written one; the rubric judge puts every kind below every style. The last column says whether the
# training pairs held corrupted answers of the same family (`reward.degenerate_negatives`). For those kinds the table
# checks that the lesson took, on answers much like the ones it was taught on; the kinds never trained on test
# whether it carries over.

# %%
degenerate_statements, styled_answers = style.bundled_styled_answers(30)
trained_on = list(style.TRAINING_CORRUPTIONS.values()) if cfg.reward.degenerate_negatives else []
ranking = style.rank_degenerate(scorer.score, degenerate_statements, styled_answers, trained_on)
show.degenerate_ranking(ranking, "reward model")

# %%
show.degenerate_findings(ranking, "reward model")

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
# Intervals are 95% percentile bootstrap intervals over test pairs (`reward.bootstrap_samples` resamples; the four
# metrics from the same resamples). The baselines are scored on the same pairs with the same orientation: **random**
# (independent standard normal rewards) and **the longer response wins** (reward = length in characters, so $p$ is
# almost always 0 or 1).
#
# ### General reward models, an LLM ranker and the data ablation
#
# The paper compared general reward models and an LLM used as a ranker, and trained reward models on other data.
# Each has a setting in the profile's `reward` section, and all are scored on these same test pairs:
#
# * `reward.off_the_shelf`: general reward models from the hub (or local folders). A sequence classifier with one
#   output (the two Skywork models) gives its logit as the reward. Llama-3.1-Nemotron-70B-Reward-HF is published as a
#   causal language model: its reward is the logit of token 0 at the position after the chat, and the scorer reads
#   exactly that number (one row of the output layer, at one position) instead of generating a token.
# * `reward.ablations`: further reward models trained like this one on other data: HelpSteer2
#   {cite:p}`wang2024helpsteer2` alone, HelpSteer2 plus PsyCoPref, and a fixed pair budget split between the two.
#   HelpSteer2's responses become pairs as described above (helpfulness differs by at least 1 point).
# * `reward.ranker`: an LLM that ranks each pair through the judge's compare operation, in both orders, with
#   chapter 6's tie protocol; any OpenAI-compatible endpoint serves it.

# %%
show.reward_general_models(cfg)

# %%
ablations = reward.train_ablations(cfg, prefs, run)
show.reward_ablations(ablations, cfg.name)

# %%
evaluation = reward.evaluate(cfg, prefs["test"], predictions, extra_rewards=ablations.rewards)
show.reward_comparison(evaluation.comparison)

# %% [markdown]
# The LLM ranker on the same pairs. A ranker gives a verdict, not a reward, so it has an accuracy (a tie counts one
# half) but no AUC, ECE or Brier score:

# %%
ranker = reward.rank_test_pairs(cfg, prefs["test"], chapter.layout.judgments)
show.reward_ranker(ranker, cfg.name)

# %% [markdown]
# The same numbers stacked on the paper's table. The paper's rows are copied from {cite:p}`zhang2025psycopref`; they
# were measured on the released test split with GPT-4o's labels, ours on this profile's test split and judge:

# %%
show.reward_with_paper(reward.with_paper(evaluation.comparison, cfg.name, ranker))

# %% [markdown]
# ### RewardBench
#
# The paper also scored its reward models on RewardBench, a general benchmark of chosen and rejected responses in
# four categories (chat, hard chat, safety, reasoning), to see whether counselling preferences cost general
# judgement. `reward.rewardbench` names the benchmark's hub id or a local file in its schema (`prompt`, `chosen`,
# `rejected`, `subset`); every reward model of this chapter scores it.

# %%
bench = reward.rewardbench_table(cfg, scorer, ablations.scorers)
show.rewardbench(bench, cfg.name)

# %% [markdown]
# The ablation models beside the paper's rows of the same name:

# %%
show.reward_ablation_with_paper(reward.ablation_with_paper(evaluation.comparison, ablations, bench), cfg.name)

# %% [markdown]
# ### The check
#
# The reward model must beat chance and the length baseline on the test pairs: its accuracy interval must lie above
# 50%, and its accuracy must exceed that of "the longer response wins". In the tiny profile the judge is the
# consistent rubric scorer, so a failure here means something upstream is broken (for instance chosen and rejected
# swapped); the chapter stops, and so does CI. The check compares point estimates; the paired interval below says
# whether the lead over length is more than noise on this many pairs.

# %%
check = checks.require(
    chapter, "reward model beats chance and the length baseline",
    evaluation.beats_chance and evaluation.above_length_baseline,
    evaluation.check_message(), model_quality=True)
show.reward_check_findings(evaluation, check)

# %% [markdown]
# ## Calibration and margins
#
# A reliability diagram plots, per bin of predicted probability, the observed frequency that the first response was
# the preferred one: a calibrated model sits on the diagonal. The bars underneath count the pairs per bin; a bin with
# few pairs moves a lot by chance. The length baseline puts almost every pair in the two outer bins, because its
# margins are differences of hundreds of characters.

# %% tags=["hide-input"]
fig = show.reliability_diagram(
    evaluation.calibration,
    title=f"Reliability on the test pairs ({cfg.name} profile)")

# %% [markdown]
# The margin histogram shows how far apart the model puts chosen and rejected responses; pairs left of zero are
# ranked wrongly.

# %% tags=["hide-input"]
fig = show.margin_histogram(
    {reward.THIS_MODEL: evaluation.margins},
    title=f"Reward margin on the test pairs ({cfg.name} profile)")

# %% [markdown]
# ## Where the model errs
#
# Accuracy by theme and by the judge's score gap (overall score of the chosen minus that of the rejected response,
# from the rating columns, in points of the 1-5 scale): a good reward model should be most reliable where the judge
# saw a large difference. Small groups have wide intervals.

# %% tags=["hide-input"]
fig = show.accuracy_by_group(evaluation.by_theme,
                             title="Test accuracy by theme", ylabel="theme")

# %% tags=["hide-input"]
fig = show.accuracy_by_group(evaluation.by_gap,
                             title="Test accuracy by the judge's score gap",
                             ylabel="score gap (points, 1-5 scale)")

# %% [markdown]
# The test pairs the model ranks most confidently wrong, if any, with the judge's overall gap (statements with
# crisis language are never shown as examples):

# %%
show.reward_errors(evaluation)

# %% [markdown]
# ## Artifacts
#
# `reward.finish` writes `metrics.json` (every number above) and `test_predictions.parquet` with one row per test
# pair (`ID`, `prefID`, `reward_chosen`, `reward_rejected`) beside the model, which chapters 4 to 6 load through
# `reward.load_trained_reward_model`, and records the headline numbers in the run manifest. The training wrote
# `training_record.json` (the fingerprint and TRL's logs) that lets a later run reuse the model.

# %%
stage = reward.finish(chapter, training, scorer.stats, evaluation, predictions, length_drops,
                      extra={"ablations": ablations.table(), "rewardbench": bench,
                             "ranker": ranker.agreement if ranker else None})
show.reward_artifacts(stage, cfg.name)

# %% [markdown]
# The first rows of the predictions file:

# %%
show.reward_predictions(predictions)

# %% [markdown]
# ## What we found
#
# This run's headline numbers beside the paper's 3B reward model. The paper's result, that a reward model trained on
# counselling preferences beats general reward models by a wide margin, is a statement about GPT-4o's labels on real
# data; a small run checks that the training and evaluation code recover a consistent judge's preferences, and
# whether they do better than rewarding length.

# %%
show.reward_beside_the_paper(stage, cfg.name)

# %%
show.reward_findings(stage, cfg.name)
