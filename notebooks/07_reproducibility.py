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
# This appendix is rendered from the run manifest, `runs/<profile>/manifest.json`, which every chapter updates when
# it finishes: the profile and seed, the package versions, the git commit, and each stage's wall time and headline
# metrics. It then estimates what the colab and paper profiles would cost in judge calls, from token counts.

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

from psyco_utils import data, runtime
from psyco_utils.config import load_profile
from psyco_utils.judge import estimate_judge_cost

chapter = runtime.start_chapter(profile, overrides, stage="07_reproducibility")
cfg, run = chapter.cfg, chapter.run
manifest = json.loads((run / "manifest.json").read_text())
pd.Series({k: manifest[k] for k in ("profile", "description", "seed", "git_commit", "python", "platform", "updated")},
          name="this run").to_frame()

# %%
pd.Series(manifest["packages"], name="version").to_frame()

# %% [markdown]
# ## Stages: wall time and headline metrics
#
# Wall time is measured inside each chapter, from its first cell to its `finish` call.

# %%
stages = pd.DataFrame([{"stage": name, "seconds": entry["seconds"], "finished": entry["finished"],
                        "headline metrics": ", ".join(f"{k}={v}" for k, v in entry["metrics"].items())}
                       for name, entry in sorted(manifest["stages"].items())]).set_index("stage")
with pd.option_context("display.max_colwidth", 200):
    display(stages)
print(f"total: {stages['seconds'].sum():.0f} s of chapter time")

# %% [markdown]
# ## What the larger profiles would cost in judge calls
#
# Counts follow each profile's settings: every pool response is scored once (statements x responses per statement);
# chapter 2's swap check compares its pairs twice; chapter 6 compares three policies against the reference, in both
# orders and both settings. Tokens are estimated from the rubric's length and the mean length of the bundled
# statements and responses (4 characters per token); prices are each profile's judge prices per million tokens.
# The paper profile's scoring goes through the Batch API, at the batch price; online calls assume the provider
# caches the fixed rubric prefix. Statement counts: colab's
# `data.max_statements`, and the paper's 26,483.

# %%
statements, responses = data.load_bundled_corpus()
avg_statement = int(statements["text"].str.len().mean())
avg_response = int(responses["text"].str.len().mean())
rows = {}
for name, n_statements in (("colab", None), ("paper", 26_483)):
    other = load_profile(name)
    n = other.data.max_statements or n_statements
    n_score = n * other.pool.responses_per_statement
    n_compare = 2 * other.judging.swap_check_pairs + other.eval.n_statements * 3 * 2 * 2
    score = estimate_judge_cost(other.judge, n_score=n_score, avg_statement_chars=avg_statement,
                                avg_response_chars=avg_response)
    compare = estimate_judge_cost(other.judge, n_compare=n_compare, avg_statement_chars=avg_statement,
                                  avg_response_chars=avg_response)
    rows[name] = {"judge": other.judge.model, "statements": n, "score calls": n_score, "compare calls": n_compare,
                  "prompt tokens (M)": (score["prompt_tokens"] + compare["prompt_tokens"]) / 1e6,
                  "completion tokens (M)": (score["completion_tokens"] + compare["completion_tokens"]) / 1e6,
                  "estimated cost (USD)": (score["cost_usd_batch"] if other.judge.use_batch_api else score["cost_usd"])
                  + compare["cost_usd"]}
pd.DataFrame(rows).T.round(2)

# %% [markdown]
# Wall time on a GPU cannot be measured here; the benchmarks (`benchmarks/RESULTS.md`) record the tiny profile's
# times on two CPU cores, and a GPU section when a GPU machine was available.

# %%
_ = chapter.finish({"chapters_recorded": len(stages)})
