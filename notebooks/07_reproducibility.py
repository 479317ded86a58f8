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

from psyco_utils import runtime
from psyco_utils.manifest import judge_cost_estimate

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
                        "headline metrics": len(entry["metrics"])}
                       for name, entry in sorted(manifest["stages"].items())]).set_index("stage")
display(stages)
headline_metrics = pd.DataFrame([{"stage": name, "metric": key, "value": value}
                                 for name, entry in sorted(manifest["stages"].items())
                                 for key, value in entry["metrics"].items()]).set_index(["stage", "metric"])
with pd.option_context("display.max_rows", 200):
    display(headline_metrics)
print(f"total: {stages['seconds'].sum():.0f} s of chapter time")

# %% [markdown]
# ## What the larger profiles would cost in judge calls
#
# `psyco_utils.manifest.judge_cost_estimate` counts the judge's own calls from each profile's settings: every pool
# response scored once (statements x responses per statement); chapter 2's swap check, each pair compared in both
# orders; chapter 6, three policies against the reference in both orders and both settings. Tokens are estimated
# from the rubric's length and the mean length of the bundled statements and responses (4 characters per token);
# prices are each profile's judge prices per million tokens. With the Batch API (the paper profile) both kinds of
# call are priced at half; online calls assume the provider caches the fixed rubric prefix. Statement counts:
# colab's `data.max_statements`, and the paper's 26,483. Not counted: the LLM theme labeller, pool responses from
# OpenAI-compatible models and chapter 6's reference answers (chat calls whose length depends on the answers).

# %%
rows = {name: judge_cost_estimate(name) for name in ("colab", "paper")}
costs = pd.DataFrame(rows).T
costs.style.format({"statements": "{:,}", "score calls": "{:,}", "compare calls": "{:,}", "prompt tokens (M)": "{:.1f}",
                    "completion tokens (M)": "{:.1f}", "estimated cost (USD)": "${:,.2f}"})

# %% [markdown]
# Wall time on a GPU cannot be measured here; the benchmarks (`benchmarks/RESULTS.md`) record the tiny profile's
# times on two CPU cores, and a GPU section when a GPU machine was available.

# %%
_ = chapter.finish({"chapters_recorded": len(stages)})
