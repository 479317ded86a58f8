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

from psyco_utils import checks, data, evaluate, inputs, metrics, runtime
from psyco_utils.judge import make_chat_client, make_judge
from psyco_utils.pairs import load_preference_data
from psyco_utils.principles import PRINCIPLE_KEYS

chapter = runtime.start_chapter(profile, overrides, stage="06_win_rate")
cfg, run = chapter.cfg, chapter.run
inputs.require_inputs(chapter)
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
#   the cap is what binds, and the word limit is not kept. The reference is generated under the same constraint,
#   so the two rows compare each policy with a differently generated reference.
# * **Position bias.** Every comparison is judged in both orders; two verdicts that disagree count as a tie.
#   Win rate = (wins + 0.5 ties) / n, with a 95% bootstrap interval over statements.
# * **Ties.** A tie also comes from the judge itself: an LLM judge may answer "tie", and the rubric judge does when
#   the two responses' scores differ by no more than `judge.tie_margin` (printed below).

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
against_itself = (overall["policy"] == "base") & (cfg.eval.reference == "base_policy")
print(f"{len(overall)} overall comparisons, each judged in both orders; "
      f"position-consistent: {consistency['consistent'].mean():.1%}; ties: "
      f"{(overall.loc[~against_itself, 'outcome'] == 'tie').mean():.1%}"
      + (" (not counting the base policy against itself, all ties)" if against_itself.any() else "")
      + (f"; the rubric judge calls a tie within {cfg.judge.tie_margin:g} points" if cfg.judge.backend == "rubric"
         else ""))

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
reference_name = cfg.eval.reference_model if cfg.eval.reference == "openai" else "the base policy"
shape = pd.DataFrame({
    f"this run ({cfg.name} profile), vs {reference_name}, %": (100 * headline["win_rate"]).round(1),
    "95% interval": [f"{100 * lo:.1f} to {100 * hi:.1f}" for lo, hi in zip(headline["ci_low"], headline["ci_high"])],
    "paper, Llama3-3B, vs GPT-4o, %": [paper_rows.get(k, np.nan) for k in headline.index],
})
print(f"This run: win rate against {reference_name}, judged by the {cfg.judge.backend} judge ({cfg.judge.model}). "
      "Paper: win rate against GPT-4o, judged by GPT-4o (Zhang et al. 2025)."
      + (" Here the base row is 50% by construction (the base policy is the reference); the paper's base row is the "
         "base model against GPT-4o." if cfg.eval.reference == "base_policy" else ""))
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
    ax.set_xlabel("principle")
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
# the fit's own parameters (intercept, coefficient, scale, note) go to eval/win_rates.json; the page shows the result
lc[["n", "win_rate", "lc_win_rate", "mean_length_difference", "fitted"]].rename(columns={
    "win_rate": "win rate", "lc_win_rate": "length-controlled win rate",
    "mean_length_difference": "mean words more than the reference", "fitted": "length model fitted"}).infer_objects().round(3)

# %% tags=["hide-input"]
fig, ax = plt.subplots()
for name in policies:
    sub = overall[(overall["policy"] == name) & (overall["setting"] == "no constraint")]
    ax.hist(sub["policy_words"], bins=20, alpha=0.5, label=name)
ax.hist(overall[overall["setting"] == "no constraint"].drop_duplicates("item")["reference_words"], bins=20,
        histtype="step", color="k", label="reference")
ax.set_xlabel("response length (words)")
ax.set_ylabel("responses (count)")
ax.set_title("Response length per policy (no constraint)")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Where the policies differ most
#
# The two statements on which the last policy's answer and the base answer differ most in judged outcome (statements
# with crisis language are left for the crisis probe below). With the tiny profile's rubric judge, read the "wins"
# with chapter 2's caveat in mind: the judge counts surface cues, and a string of feeling words and questions can win
# without making sense.

# %%
last = list(policies)[-1]
free = responses["no constraint"]
gain = overall[(overall["setting"] == "no constraint") & (overall["policy"] == last)].set_index("item")["outcome"]
base_out = overall[(overall["setting"] == "no constraint") & (overall["policy"] == "base")].set_index("item")["outcome"]
score = {"win": 1, "tie": 0.5, "loss": 0}
diff = (gain.map(score) - base_out.map(score)).sort_values(ascending=False)
for i in [i for i in diff.index if not data.crisis_signals(questions[i])][:2]:
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
#
# ```{admonition} Content note
# :class: warning
# The examples below include fictional statements about suicide and self-harm. If you are in crisis, contact your
# local emergency number now; in the US you can call or text 988, in the UK and Ireland you can call the Samaritans
# on 116 123.
# ```

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

# %% [markdown]
# Two checks that must hold whenever the reference is the base policy (the tiny profile): the base policy judged
# against itself is exactly 50%, and the final policy beats the base policy more than half the time. A swapped chosen/rejected anywhere upstream shows up here as a
# win rate under 50%.

# %%
if cfg.eval.reference == "base_policy":
    base_rate = headline.loc[("no constraint", "base"), "win_rate"]
    checks.require(chapter, "base policy against itself is 50%", abs(base_rate - 0.5) < 1e-9,
                   f"base against itself: {base_rate:.3f}")
    if last != "base":
        final_rate = headline.loc[("no constraint", last), "win_rate"]
        beats_base = checks.require(chapter, f"{last} beats the base policy", final_rate > 0.5,
                                    f"{last} against base: {final_rate:.1%}")
        if beats_base.passed and abs(base_rate - 0.5) < 1e-9:
            print(f"checks passed: base vs itself {base_rate:.0%}; {last} vs base {final_rate:.1%}")

# %% [markdown]
# ## What we found
#
# The table above puts this run's win rates beside the paper's. In the tiny profile the reference is the base policy,
# so the numbers answer "how much did preference learning move the policy, in the judge's eyes", not "how does it
# compare with GPT-4o". The paper's shape is DPO above base, DPO-Iter above DPO, and the length constraint lowering
# every policy's win rate. The cell below checks each of these on this run, with paired bootstrap intervals over the
# same statements (a difference whose interval contains zero is not distinguishable from noise at this size), and
# summarises the length-controlled view and the crisis probe.

# %%
def outcomes_of(setting: str, name: str) -> list:
    rows = overall[(overall["setting"] == setting) & (overall["policy"] == name)].sort_values("item")
    return rows["outcome"].tolist()


free_rates = headline.xs("no constraint", level="setting")["win_rate"]
iter_metrics = json.loads((run / "dpo_iter" / "metrics.json").read_text()) if (
    run / "dpo_iter" / "metrics.json").exists() else {}
held = iter_metrics.get("held_out_mean_reward", {})
distinct = iter_metrics.get("held_out_distinct_words_first_30_pct", {})
findings = []
differences = {}
for better, worse in (("DPO", "base"), ("DPO-Iter", "DPO")):
    if better in policies and worse in policies:
        d = metrics.paired_win_rate_difference(outcomes_of("no constraint", better), outcomes_of("no constraint", worse),
                                               n_boot=cfg.eval.bootstrap_samples, seed=cfg.seed)
        differences[(better, worse)] = d
        verdict = ("ahead of" if d["difference"] > 0 else "behind") if d["distinguishable"] else "not distinguishable from"
        findings.append(f"{better} is {verdict} {worse}: win rate {free_rates[better]:.1%} against "
                        f"{free_rates[worse]:.1%}, paired difference {100 * d['difference']:+.1f} points "
                        f"(95% interval {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f}, {d['n']} statements); "
                        f"the paper has {better} ahead.")
iter_vs_dpo = differences.get(("DPO-Iter", "DPO"))
if iter_vs_dpo is not None and "DPO-Iter" in held and "DPO" in held and held["DPO-Iter"] > held["DPO"] \
        and iter_vs_dpo["difference"] <= 0:
    strength = ("the judge prefers DPO" if iter_vs_dpo["distinguishable"]
                else "the judge does not rank it higher (the difference above is within noise)")
    repeats = (distinct.get("DPO-Iter", np.nan) < distinct.get("DPO", np.nan) - 5)
    findings.append(f"The reward model ranks DPO-Iter above DPO on held-out statements ({held['DPO-Iter']:+.2f} against "
                    f"{held['DPO']:+.2f}, chapter 5), but {strength}: consistent with the online rounds optimising "
                    "the reward model rather than what the judge values (reward over-optimisation"
                    + ("; chapter 5 found DPO-Iter repeating itself more than DPO" if repeats else "") + ").")
for name in policies:
    if name == "base" and cfg.eval.reference == "base_policy":
        continue
    d = metrics.paired_win_rate_difference(outcomes_of("length constraint", name), outcomes_of("no constraint", name),
                                           n_boot=cfg.eval.bootstrap_samples, seed=cfg.seed)
    moved = ("lowers" if d["difference"] < 0 else "raises") if d["distinguishable"] else "does not measurably change"
    findings.append(f"The length constraint {moved} {name}'s win rate ({100 * d['difference']:+.1f} points, "
                    f"95% interval {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f}); in the paper it lowers "
                    "every policy's.")
for (setting, name), row in lc.iterrows():
    if setting == "no constraint" and bool(row["fitted"]):
        raw, controlled = float(row["win_rate"]), float(row["lc_win_rate"])
        longer = float(row["mean_length_difference"])
        effect = ("length makes no material difference (under a point)" if abs(raw - controlled) < 0.01 else
                  f"length accounts for {100 * (raw - controlled):.1f} points of its win rate" if raw > controlled
                  else f"length works against it: {100 * (controlled - raw):.1f} points more at equal length")
        findings.append(f"Length-controlled, {name} wins {controlled:.1%} against {raw:.1%} raw; its answers are "
                        f"{abs(longer):.0f} words {'longer' if longer >= 0 else 'shorter'} than the reference's on "
                        f"average, and {effect}.")
if len(crisis):
    probe_lines = ", ".join(f"{name} {100 * probe.loc[name, 'acknowledges risk']:.0f}% / "
                            f"{100 * probe.loc[name, 'points to immediate help']:.0f}%" for name in probe.index)
    findings.append(f"Crisis probe ({len(crisis)} statements; acknowledges risk / points to immediate help): "
                    f"{probe_lines}. A high win rate is not safe crisis handling: none of these policies should "
                    "answer a person at risk.")
for line in findings:
    print("- " + line)
_ = chapter.finish({f"win_rate {s} {p}": round(float(r["win_rate"]), 3) for (s, p), r in headline.iterrows()})
