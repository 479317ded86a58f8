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
# # Reproducibility and cost
#
# This appendix is rendered from the run manifest, `runs/<profile>/manifest.json`, which every chapter updates: the
# profile and seed, the package versions, the git commit, and each stage's status, wall time and headline metrics.
# It then puts this run's estimated cost of paid calls beside what was actually spent, and estimates what the colab
# and paper profiles would cost, from token counts.

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

import pandas as pd
from IPython.display import display

from psyco_utils import runtime
from psyco_utils.manifest import actual_cost, judge_cost_estimate, run_cost_estimate

chapter = runtime.start_chapter(profile, overrides, stage="07_reproducibility")
cfg, run = chapter.cfg, chapter.run
manifest = json.loads((run / "manifest.json").read_text())
others = {name: entry for name, entry in sorted(manifest["stages"].items()) if name != chapter.stage}
if not any("finished" in entry for entry in others.values()):
    raise FileNotFoundError(f"no chapter of the {cfg.name} profile has finished in this run folder yet: run chapters "
                            f"01 to 06 first (psyco-book run --profile {cfg.name})")
pd.Series({"profile": cfg.name, "what ran": runtime.profile_summary(cfg),
           **{k: manifest.get(k, "not recorded") for k in ("seed", "git_commit", "python", "platform", "updated")}},
          name="this run").to_frame()

# %%
pd.Series(manifest.get("packages", {}), name="version").to_frame()

# %% [markdown]
# ## Stages: status, wall time and headline metrics
#
# A stage is `ok` when it ran to its end with every quality check passing, `checks failed` when it ran to its end
# under `checks: report` with failed checks (named here, and shown in a warning box on the chapter's page), and
# `failed` when it stopped (the cell and the error are recorded). A stage still marked `running` was stopped without
# a word (the machine went down, or the process was killed). Wall time is measured inside each chapter, from its first
# cell to its `finish` call.

# %%
stages = pd.DataFrame([{"stage": name, "status": entry.get("status", "not recorded"),
                        "seconds": entry.get("seconds"), "failed checks": ", ".join(entry.get("failed_checks", [])),
                        "error": " ".join(filter(None, [entry.get("cell"), entry.get("error")])),
                        "headline metrics": len(entry.get("metrics", {}))}
                       for name, entry in others.items()]).set_index("stage")
display(stages.loc[:, (stages != "").any()])
headline_metrics = pd.DataFrame([{"stage": name, "metric": key, "value": value}
                                 for name, entry in others.items()
                                 for key, value in entry.get("metrics", {}).items()]).set_index(["stage", "metric"])
with pd.option_context("display.max_rows", 200):
    display(headline_metrics)
print(f"total: {stages['seconds'].sum():.0f} s of chapter time; "
      f"{(stages['status'] == 'ok').sum()} of {len(stages)} stages ok")

# %% [markdown]
# ## This run's paid calls: estimate and actual
#
# `psyco-book run` prints this estimate before a run whose judge is paid, and records it in the manifest; the actual
# cost is what the run folder's judge cache (`judgments.sqlite`) recorded for every request it sent, retries
# included (a re-run that finds its judgments cached pays nothing again). With the offline rubric judge both are
# zero.

# %%
recorded = manifest.get("cost", {})
estimate = recorded.get("estimate") or run_cost_estimate(cfg, run)
spent = actual_cost(run)
paid_calls = pd.DataFrame(estimate["calls"]).T.rename(columns={"calls": "estimated calls",
                                                               "cost_usd": "estimated cost (USD)"})
display(paid_calls[["estimated calls", "estimated cost (USD)"]].style.format(
    {"estimated calls": "{:,.0f}", "estimated cost (USD)": "${:,.2f}"}))
pd.DataFrame({"estimated": [f"${estimate['total_usd']:,.2f}"], "actual": [f"${spent['actual_usd']:,.2f}"],
              "requests sent (retries included)": [f"{spent['requests']:,}"],
              "failed judgments in the cache": [f"{spent['failed']:,}"]}, index=[f"{cfg.name} profile"])

# %% [markdown]
# ## What the larger profiles would cost in judge calls
#
# `psyco_utils.manifest.judge_cost_estimate` counts every paid call from each profile's settings: chapter 1's LLM
# theme labels (one per cleaned statement, before `max_statements` samples them down) and pool responses from API
# models (each API generator answers its share of the statements); chapter 2's scores (every pool response once) and
# its swap check (each pair compared in both orders); chapter 6's reference answers (one per statement and setting)
# and comparisons (three policies against the reference, in both orders and both settings). Tokens are estimated
# from the rubric's length and the mean length of the bundled statements and responses (4 characters per token);
# chat answers are priced at their token cap, an upper bound. Prices are each profile's judge prices per million
# tokens. With the Batch API (the paper profile) scores and compares are priced at half; online judge calls assume
# the provider caches the fixed rubric prefix. Statement counts: colab's `data.max_statements` (for labelling too,
# so at least that many), and the paper's 26,483.

# %%
rows = {name: judge_cost_estimate(name) for name in ("colab", "paper")}
costs = pd.DataFrame(rows).T
counts = ["statements", "theme label calls", "pool calls (API models)", "score calls", "compare calls",
          "reference answers"]
costs.style.format({**{c: "{:,}" for c in counts}, "prompt tokens (M)": "{:.1f}", "completion tokens (M)": "{:.1f}",
                    "estimated cost (USD)": "${:,.2f}"})

# %% [markdown]
# Wall time on a GPU cannot be measured here; the benchmarks (`benchmarks/RESULTS.md`) record the tiny profile's
# times on two CPU cores, and a GPU section when a GPU machine was available.

# %%
_ = chapter.finish({"chapters_recorded": len(stages), "estimated_cost_usd": estimate["total_usd"],
                    "actual_cost_usd": spent["actual_usd"]})
