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
# {term}`profile` and seed, the package versions, the git commit, and each stage's status, wall time and headline metrics.
# It then puts this run's estimated cost of paid calls beside what was actually spent, estimates what the colab
# and paper profiles would cost, from token counts, and ends with the paper's numbers, one row each: where the book
# computes it at paper scale, or why it cannot.

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
from psyco_utils import fidelity, reproducibility, runtime, show

chapter = runtime.start_chapter(profile, overrides, stage="07_reproducibility")
report = reproducibility.reproducibility_report(chapter)
show.run_table(report)

# %% [markdown]
# The commit names the code that ran; a `-dirty` suffix means the working tree had uncommitted changes. The
# versions below are those the manifest recorded when the last chapter finished: re-running with the same versions,
# profile and seed gives the same tiny run.

# %%
show.packages_table(report)

# %% [markdown]
# ## Stages: status, wall time and headline metrics
#
# A stage is `ok` when it ran to its end with every quality check passing, `checks failed` when it ran to its end
# under `checks: report` with failed checks (named here, and shown in a warning box on the chapter's page), and
# `failed` when it stopped (the cell and the error are recorded). A stage still marked `running` was stopped without
# a word (the machine went down, or the process was killed). Wall time is measured inside each chapter, from its first
# cell to its `finish` call; a stage that reused a trained model (found by its {term}`fingerprint`) is fast because
# it did not train again.

# %%
show.stages_table(report)

# %% [markdown]
# Each chapter records a few headline numbers when it finishes; they are the same numbers its page shows, so a
# re-run can be compared with this one at a glance.

# %%
show.headline_metrics_table(report)

# %% [markdown]
# ## This run's paid calls: estimate and actual
#
# `psyco-book run` prints this estimate before a run whose judge is paid, and records it in the manifest; the actual
# cost is what the run folder's judge cache (`judgments.sqlite`) recorded for every request it sent, retries
# included (a re-run that finds its judgments cached pays nothing again). With the offline rubric judge both are
# zero.

# %%
show.paid_calls_table(report)

# %%
show.spent_table(report)

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
# tokens. With the {term}`Batch API` (the paper profile) scores and compares are priced at half; online judge calls
# assume the provider caches the fixed rubric prefix. Statement counts: colab's `data.max_statements` (for labelling
# too, so at least that many), and the paper's 26,483.

# %%
show.larger_profiles_table(report)

# %% [markdown]
# ## Paper fidelity: every number in the paper, and where the book computes it
#
# Whichever profile this page was executed with, the tables below describe the **paper** profile, read from its preset
# and from the paper's numbers in `psyco_utils.paper`. Each number the paper reports is either a *result*, which a
# chapter cell computes when the chapters run with `profile = "paper"` (the call is quoted as the chapter spells it),
# or a *setting* the paper chose, shown beside the paper profile's own value so that a divergence cannot hide, or it
# has no code path here, with the reason. A test fails when a number is added to `psyco_utils.paper` without a row,
# when a quoted call is no longer in its chapter, or when a named setting does not exist.

# %%
paper_fidelity = fidelity.fidelity_table()
show.fidelity_findings(paper_fidelity)

# %%
show.fidelity_results(paper_fidelity)

# %% [markdown]
# A result computed at paper scale is the paper's number only if the run used the paper's data and models; the last
# column says where the paper profile's run cannot match it (a source that is not public, a second model size that is
# a `--set` away).

# %%
show.fidelity_settings(paper_fidelity)

# %% [markdown]
# Where a row says "no", the paper profile deliberately does something else, and the last column says why.

# %%
show.fidelity_gaps(paper_fidelity)

# %% [markdown]
# The paper leaves several settings open; the paper profile had to choose them, and these choices are the book's,
# not the paper's:

# %%
show.book_choices(fidelity.book_choices_table())

# %% [markdown]
# ## What we found
#
# Wall time on a GPU cannot be measured here; the benchmarks (`benchmarks/RESULTS.md`) record the tiny profile's
# times on two CPU cores, and a GPU section when a GPU machine was available. In short, computed from the tables
# above:

# %%
show.reproducibility_findings(report)

# %%
_ = chapter.finish(report.headline())
