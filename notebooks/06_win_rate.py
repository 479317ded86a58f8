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
# **What this chapter does.** Each policy (the base model, offline DPO, DPO-Iter) answers the same held-out client
# statements, and the judge compares each answer with a reference answer on the seven principles and overall.
# It does so twice: without a constraint, and with a length constraint.
# It adds a length-controlled win rate and a crisis probe, neither of which is in the paper.
#
# **Why it matters.** A pairwise judge can be won over by length: a longer answer looks more thorough. The paper's
# second row exists to show how much of the gain survives when answers must be short.
#
# **The paper** {cite:p}`zhang2025psycopref` compared each policy with GPT-4o, judged by GPT-4o:
#
# | Setting | Llama3-3B | +DPO | +DPO-Iter | Llama3-8B | +DPO | +DPO-Iter |
# |---|---|---|---|---|---|---|
# | No constraint | 28.5 | 58.5 | 69.4 | 29.3 | 72.9 | 87.0 |
# | Length constraint | 15.0 | 37.0 | 46.4 | 18.5 | 49.3 | 77.0 |
#
# How the constraint was imposed, the judge prompt, the handling of position bias and the size of the evaluation set
# are not stated; the choices below are this book's and are stated where they are made.
#
# **Audience and objectives.** After this chapter you can compute a pairwise win rate that is robust to position
# bias, put an interval on it, separate a length effect from a quality effect, and check crisis handling.

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
from IPython.display import display

from psyco_utils import data, evaluate, metrics, runtime
from psyco_utils.judge import make_chat_client, make_judge
from psyco_utils.pairs import load_preference_data
from psyco_utils.principles import PRINCIPLE_KEYS

chapter = runtime.start_chapter(profile, overrides, stage="06_win_rate")
cfg, run = chapter.cfg, chapter.run
dataset = load_preference_data(cfg, run)
items = evaluate.eval_statements(dataset["test"].to_pandas(), cfg.eval.n_statements, cfg.seed)
policies = evaluate.policy_paths(cfg, run)
judge = make_judge(cfg.judge, cache_path=run / "judgments.sqlite")
chat = make_chat_client(cfg.judge, cache_path=run / "judgments.sqlite") if cfg.eval.reference == "openai" else None
print(f"{len(items)} held-out test statements; policies: {', '.join(policies)}; "
      f"reference: {cfg.eval.reference_model if cfg.eval.reference == 'openai' else 'the base policy'}")

# %% [markdown]
# ## The setup
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
#   the cap is what binds.
# * **Position bias.** Every comparison is judged in both orders; two verdicts that disagree count as a tie.
#   Win rate = (wins + 0.5 ties) / n, with a 95% bootstrap interval over statements.

# %%
questions = items["question"].tolist()
responses = {}
for setting, constrained in (("no constraint", False), ("length constraint", True)):
    responses[setting] = {"reference": evaluate.reference_responses(cfg, run, questions, constrained, chat)}
    for name, path in policies.items():
        responses[setting][name] = evaluate.generate_for_eval(path, cfg, questions, constrained, seed=cfg.seed)
pd.concat({s: evaluate.length_table(r) for s, r in responses.items()}, names=["setting", "responses"])

# %% [markdown]
# ## Judging in both orders

# %%
verdicts = []
for setting, by_policy in responses.items():
    for name in policies:
        frame = evaluate.judge_against_reference(judge, questions, by_policy[name], by_policy["reference"])
        verdicts.append(frame.assign(setting=setting, policy=name,
                                     policy_words=frame["item"].map(lambda i: evaluate.word_count(by_policy[name][i])),
                                     reference_words=frame["item"].map(
                                         lambda i: evaluate.word_count(by_policy["reference"][i]))))
verdicts = pd.concat(verdicts, ignore_index=True)
overall = verdicts[verdicts["aspect"] == "overall"]
consistency = overall.assign(consistent=overall["verdict_policy_first"].map({"A": "B", "B": "A", "tie": "tie"})
                             == overall["verdict_policy_second"])
print(f"{len(overall)} overall comparisons, each judged in both orders; "
      f"position-consistent: {consistency['consistent'].mean():.1%}")

# %%
table = metrics.win_rate_table(verdicts, ["setting", "policy", "aspect"], "outcome",
                               n_boot=cfg.eval.bootstrap_samples, seed=cfg.seed)
headline = table.xs("overall", level="aspect")
headline

# %% [markdown]
# ## Beside the paper

# %%
paper_rows = {("no constraint", "base"): 28.5, ("no constraint", "DPO"): 58.5, ("no constraint", "DPO-Iter"): 69.4,
              ("length constraint", "base"): 15.0, ("length constraint", "DPO"): 37.0,
              ("length constraint", "DPO-Iter"): 46.4}
shape = pd.DataFrame({
    f"this run ({cfg.name}), %": (100 * headline["win_rate"]).round(1),
    "95% interval": [f"{100 * lo:.1f} to {100 * hi:.1f}" for lo, hi in zip(headline["ci_low"], headline["ci_high"])],
    "paper, Llama3-3B, %": [paper_rows.get(k, np.nan) for k in headline.index],
})
shape

# %%
per_principle = table.reset_index()
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, setting in zip(axes, responses):
    sub = per_principle[per_principle["setting"] == setting]
    aspects = [*PRINCIPLE_KEYS, "overall"]
    width = 0.8 / len(policies)
    for k, name in enumerate(policies):
        rows = sub[sub["policy"] == name].set_index("aspect").reindex(aspects)
        x = np.arange(len(aspects)) + k * width
        ax.bar(x, 100 * rows["win_rate"], width, label=name,
               yerr=[100 * (rows["win_rate"] - rows["ci_low"]), 100 * (rows["ci_high"] - rows["win_rate"])],
               capsize=2)
    ax.axhline(50, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(aspects)) + 0.4 - width / 2, aspects, rotation=40, ha="right")
    ax.set_title(setting)
    ax.set_ylim(0, 100)
axes[0].set_ylabel("win rate against the reference (%)")
axes[1].legend(fontsize=8)
fig.suptitle("Win rate per principle, with 95% bootstrap intervals")
fig.tight_layout()

# %% [markdown]
# ## A length-controlled view
#
# Beyond the paper: in the manner of AlpacaEval 2 {cite:p}`dubois2024lengthcontrolled`, a logistic model of the
# judge's preference with a length-difference term, read off at zero length difference. If a policy wins only
# because it writes more, its length-controlled win rate falls back towards 50%.

# %%
lc_rows = {}
for (setting, name), group in overall.groupby(["setting", "policy"], sort=False):
    lc_rows[(setting, name)] = metrics.length_controlled_win_rate(
        group["outcome"].tolist(), group["policy_words"].to_numpy(), group["reference_words"].to_numpy(), seed=cfg.seed)
lc = pd.DataFrame(lc_rows).T
lc

# %% tags=["hide-input"]
fig, ax = plt.subplots()
for name in policies:
    sub = overall[(overall["policy"] == name) & (overall["setting"] == "no constraint")]
    ax.hist(sub["policy_words"], bins=20, alpha=0.5, label=name)
ax.hist(overall.loc[overall["setting"] == "no constraint", "reference_words"].drop_duplicates(), bins=20,
        histtype="step", color="k", label="reference")
ax.set_xlabel("response length (words)")
ax.set_ylabel("responses (count)")
ax.set_title("Response length per policy (no constraint)")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Where the policies differ most
#
# The statement on which the last policy's answer and the base answer differ most in judged outcome:

# %%
last = list(policies)[-1]
free = responses["no constraint"]
gain = overall[(overall["setting"] == "no constraint") & (overall["policy"] == last)].set_index("item")["outcome"]
base_out = overall[(overall["setting"] == "no constraint") & (overall["policy"] == "base")].set_index("item")["outcome"]
score = {"win": 1, "tie": 0.5, "loss": 0}
diff = (gain.map(score) - base_out.map(score)).sort_values(ascending=False)
for i in diff.index[:2]:
    print(f"STATEMENT: {data.preview(questions[i], 400)}")
    for name in policies:
        print(f"  {name:9s} [{overall[(overall['setting'] == 'no constraint') & (overall['policy'] == name) & (overall['item'] == i)]['outcome'].iloc[0]}]: "
              f"{data.preview(free[name][i], 300)}")
    print()

# %% [markdown]
# ## Crisis probe
#
# Beyond the paper: how each policy answers statements with crisis language (flagged in chapter 1, plus the
# profile's `eval.crisis_file` if given). A lexicon checks whether each answer acknowledges the risk, points to
# immediate help (an emergency number or a crisis line), or says something harmful (minimising, blaming).
# It is a screen, not a clinical assessment, so examples follow.

# %%
crisis = evaluate.crisis_statements(run, cfg.eval.crisis_file)
crisis_answers = {name: evaluate.generate_for_eval(path, cfg, crisis["statement"].tolist(), False, seed=cfg.seed)
                  for name, path in policies.items()}
probe = evaluate.crisis_probe(crisis_answers)
print(f"{len(crisis)} crisis statements")
(probe.drop(columns="statements") * 100).round(1).rename(columns=lambda c: f"{c} (%)")

# %%
if len(crisis):
    print(f"STATEMENT: {data.preview(crisis['statement'].iloc[0], 300)}")
    for name, answers in crisis_answers.items():
        print(f"  {name}: {evaluate.crisis_response_signals(answers[0])}\n    {data.preview(answers[0], 300)}")

# %% [markdown]
# ## Artifacts and checks

# %%
(run / "eval").mkdir(exist_ok=True)
verdicts.to_parquet(run / "eval" / "verdicts.parquet", index=False)
win_rates = {
    "reference": cfg.eval.reference_model if cfg.eval.reference == "openai" else "base policy",
    "n_statements": len(items),
    "win_rates": {f"{s}|{p}": {k: float(v) for k, v in row.items()} for (s, p), row in headline.iterrows()},
    "length_controlled": {f"{s}|{p}": {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
                          for (s, p), row in lc.iterrows()},
    "crisis_probe": probe.reset_index().to_dict("records"),
}
(run / "eval" / "win_rates.json").write_text(json.dumps(win_rates, indent=2))
_ = chapter.finish({f"win_rate {s} {p}": round(float(r["win_rate"]), 3) for (s, p), r in headline.iterrows()})

# %% [markdown]
# Two checks that must hold on every profile: the base policy judged against itself is exactly 50% when the
# reference is the base policy, and in the tiny profile, where the judge is the consistent rubric, the final policy
# beats the base policy more than half the time. A swapped chosen/rejected anywhere upstream shows up here as a
# win rate under 50%.

# %%
if cfg.eval.reference == "base_policy":
    base_rate = headline.loc[("no constraint", "base"), "win_rate"]
    assert abs(base_rate - 0.5) < 1e-9, f"base against itself should be 50%, got {base_rate:.3f}"
    if last != "base":
        final_rate = headline.loc[("no constraint", last), "win_rate"]
        assert final_rate > 0.5, f"{last} should beat the base policy, got {final_rate:.1%}"
        print(f"checks passed: base vs itself {base_rate:.0%}; {last} vs base {final_rate:.1%}")

# %% [markdown]
# ## What we found
#
# The table above puts this run's win rates beside the paper's. In the tiny profile the reference is the base policy,
# so the numbers answer "how much did preference learning move the policy, in the judge's eyes", not "how does it
# compare with GPT-4o". The paper's shape is DPO above base, DPO-Iter above DPO, and the length constraint lowering
# everything. Where this run departs from it, the cell below says so and why it matters: DPO-Iter optimises the
# reward model, not the judge, and a small reward model can be satisfied by answers the judge does not prefer
# (reward over-optimisation).

# %%
free_rates = headline.xs("no constraint", level="setting")["win_rate"]
held = json.loads((run / "dpo_iter" / "metrics.json").read_text())["held_out_mean_reward"] if (
    run / "dpo_iter" / "metrics.json").exists() else {}
if "DPO-Iter" in free_rates and "DPO" in free_rates:
    if free_rates["DPO-Iter"] >= free_rates["DPO"]:
        print(f"As in the paper, DPO-Iter ({free_rates['DPO-Iter']:.1%}) wins at least as often as DPO "
              f"({free_rates['DPO']:.1%}) against the reference.")
    else:
        print(f"Unlike the paper, DPO-Iter ({free_rates['DPO-Iter']:.1%}) wins less often than DPO "
              f"({free_rates['DPO']:.1%}) in the judge's eyes, although the reward model ranks it higher "
              f"(held-out reward {held.get('DPO-Iter', float('nan')):+.2f} against {held.get('DPO', float('nan')):+.2f}, "
              "chapter 5): the online rounds optimised the reward model's surface cues beyond what the judge rewards.")
