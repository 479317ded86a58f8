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
# # 1. Dataset construction
#
# **What this chapter does.** It gathers client statements, the kind of first message a person writes to a
# therapist on a Q&A site, cleans them the way the paper did, and collects a pool of candidate responses to each.
# Chapter 2 then judges those responses on the seven principles and turns them into preference pairs.
#
# **Why it matters.** A preference dataset is only as good as its prompts: duplicates leak between train and test,
# very short statements give a responder nothing to work with, very long ones dominate the token budget, and personal
# data must never reach a third-party judge or a published page.
#
# **The paper** {cite:p}`zhang2025psycopref` drew statements from counsel-chat, MentalAgora, TherapistQA, Psych8k and
# other public mental-health Q&A sets, kept those of 100 to 1,000 characters, de-duplicated them (the method is not
# stated) and ended with 26,483 statements over 8 topics and 42 sub-topics.
# Each statement got 4 responses from 4 models drawn at random from a pool of 20 LLMs.
#
# **Audience and objectives.** After this chapter you can load statements from any mix of sources, explain each
# filter and what it removes, and build a response pool from local models, bundled responses or an API.
#
# ```{tip}
# On Colab, the first cell installs this book's package; elsewhere it does nothing.
# Change `profile` in the parameters cell to `colab` or `paper` to run on real data (see the README).
# ```

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
from psyco_utils import checks, construction, data, runtime, show

chapter = runtime.start_chapter(profile, overrides, stage="01_dataset_construction")
cfg = chapter.cfg

# %% [markdown]
# The first line above says which {term}`profile` ran and with which models and judge.
# Everything this chapter writes goes under `runs/<profile>/` (or `$PSYCO_RUNS_DIR/<profile>/` when that is set),
# where chapter 2 reads it; the model runs of one profile (3B and 8B in the paper profile, each in a sub-folder named
# after its policy) share it.
#
# ## Sources
#
# A source is the bundled corpus, a local file (CSV, JSON, JSON Lines or parquet) or a hub dataset, with a mapping
# from its own column names to ours. Every row keeps its source and its original id, so any statement in the final
# dataset can be traced back. This profile reads:

# %%
show.sources(cfg.data.sources)

# %% [markdown]
# The **bundled corpus** was written for this book: client statements over eight themes, each statement the filters
# keep with five responses of deliberately varied quality (empathic, generic, directive, dismissive, rambling; the
# statements written for the filters to drop have none).
# The paper's list of 8 topics and 42 sub-topics is not available, so the themes below are this book's own taxonomy.

# %%
corpus_statements, corpus_responses = data.load_bundled_corpus()
show.theme_taxonomy(corpus_statements)

# %% [markdown]
# The corpus also contains, on purpose, the cases the filters exist for: statements that are too short or too long,
# exact and near duplicates, statements with (fictional) personal data, and statements with crisis language.
# Most statements are ordinary; the table counts each kind.

# %%
show.corpus_edge_cases(corpus_statements, corpus_responses)

# %% [markdown]
# ## Cleaning
#
# The pipeline, in order:
#
# 1. **Load** every source; a cell that is not text is dropped and counted with its row number.
# 2. **Normalise**: Unicode {term}`NFKC`, straight quotes and dashes, no control or zero-width characters, one space
#    between words, paragraph breaks kept.
# 3. **Length filter** (the paper's): keep 100 to 1,000 characters.
# 4. **Exact de-duplication**: two statements are the same if they match ignoring case and whitespace; the first is kept.
# 5. **Near de-duplication**: {term}`MinHash` locality-sensitive hashing over character 5-grams proposes candidate pairs,
#    and a pair is a near duplicate when the exact {term}`Jaccard similarity` of their 5-gram sets is at least the
#    profile's threshold {cite:p}`broder1997resemblance`. MinHash keeps this linear in the number of statements,
#    which matters at the paper's scale; the exact check keeps it precise.
# 6. **Personal data** is replaced by typed placeholders (`[EMAIL]`, `[PHONE]`, `[URL]`, `[HANDLE]`, `[ADDRESS]`,
#    `[POSTCODE]`, `[ID_NUMBER]`, `[IP_ADDRESS]`, `[NAME]`) before any statement leaves this machine.
# 7. **Crisis language** is flagged (kept, not dropped): chapter 6 checks how each model answers these statements.
#    In the colab and paper profiles an LLM gives a second opinion, which can add a flag but never remove one.
# 8. **Themes**: a keyword labeller in the tiny profile; an LLM labeller through the judge client in colab and paper,
#    with the instruction `data.theme_instructions()` (the themes and their definitions above).
#
# One call runs them all (`data.prepare_statements` underneath) and returns what was kept and what each step dropped:

# %%
cleaned = construction.clean_statements(chapter)
fig = show.cleaning_funnel(cleaned, cfg.name)

# %% [markdown]
# Each bar is the number of statements still in the data after that step; the number in brackets is what the step
# removed. What each step removed, and why:

# %%
show.table(cleaned.drop_summary(), integer_columns=["statements"], hide_index=True)

# %% [markdown]
# A few of the dropped statements (scrubbed and shortened, like everything this book publishes; statements with
# crisis language are never shown as examples):

# %%
show.table(cleaned.drop_examples(), hide_index=True)

# %% [markdown]
# Near duplicates found, side by side: the kept statement is the earlier one, and the Jaccard similarity of their
# 5-gram sets is at least the threshold. They differ in a few words, which exact matching would miss.

# %%
show.table(cleaned.near_duplicates(), decimals=2, hide_index=True)

# %% [markdown]
# ### Do the filters catch what they are for?
#
# The bundled corpus marks the statements written as edge cases, so the filters can be checked against them: each
# row counts the statements written as that case and how many the step meant for it caught. The last two rows are
# the ordinary statements: none should be dropped, and a few crisis flags among them are the price of a screen that
# flags generously.

# %%
show.edge_case_recall(cleaned)

# %% [markdown]
# ### Personal data and crisis language
#
# ```{admonition} Content note
# :class: warning
# This section measures how crisis language (suicide, self-harm, harm to others) is found. If you are in crisis,
# contact your local emergency number now; in the US you can call or text 988, in the UK and Ireland you can call
# the Samaritans on 116 123.
# ```
#
# Personal data replaced, by kind of placeholder:

# %%
show.table(cleaned.personal_data(), integer_columns=["replacements"])

# %% [markdown]
# Two kept statements after scrubbing, as the judge and the page see them:

# %%
show.scrubbed_examples(cleaned)

# %% [markdown]
# The crisis flag comes from a screen of patterns (`psyco_utils.crisis`). Each signal it finds has a kind (suicide,
# passive ideation, self-harm, harm to others) and a category that says whose risk it is and when: **self** (the
# writer, now), **other** (someone the writer describes), **past** (the writer's own history) or **negated** (denied,
# as in "I'm not suicidal"). A statement is flagged when it has a self, other or past signal. A denial alone does not
# flag it, and figures of speech ("killing it at work", "dying to see her") match no pattern. The kept statements,
# counted by kind and category of signal:

# %%
show.table(cleaned.signal_table())

# %%
show.findings(cleaned.crisis_findings())

# %% [markdown]
# In the colab and paper profiles the setting `data.crisis_second_opinion: true` also asks the judge's LLM about
# each statement (after personal data is scrubbed; every answer is cached like any judgment). The table counts the
# statements by the patterns' flag and the LLM's label:

# %%
show.second_opinion_counts(cleaned)

# %% [markdown]
# ### How well does the crisis screen work?
#
# The screen is measured on a labelled set of fictional statements written for this book before the patterns were
# (`psyco_utils/evalsets/crisis_statements.jsonl`), in eight categories: first-person current risk, first-person
# past risk, third person, passive ideation ("I don't care if I live or die"), urges, harm to others, negations and
# idioms. Each category mixes statements that must be flagged with look-alikes that must not ("I cut myself while
# cooking", "the urge to text my ex"), and the negation and idiom categories include statements where the risk sits
# beside the denial or the figure of speech. So in each category **{term}`recall`** (the share of must-flag statements that
# are caught) and **{term}`precision`** (the share of flags that are right: caught over caught plus false flags) both mean
# something. **Tagged right** is the share whose signals carry the category they should: other for third person,
# past for past, negated for denials.

# %%
screen = construction.evaluate_crisis_screen(chapter)
show.crisis_screen(screen)

# %%
show.findings(screen.findings())

# %% [markdown]
# Every error of the screen on the labelled set. A missed statement's text is not shown, since it is a crisis
# statement; its category and the signals the screen did find say what kind of wording slipped through.

# %%
show.table(screen.errors(), hide_index=True)

# %%
_ = checks.require(chapter, "crisis screen recall", screen.passes, screen.check_message)

# %% [markdown]
# These numbers flatter the screen. The same authors wrote the statements and the patterns, and the patterns were
# developed while looking at the misses on two thirds of the set; the remaining third was held out, and was scored
# once before a miss in it revealed a typo in a pattern, which was then fixed. What a pattern screen misses is risk
# put in words it has no pattern for (a threat of violence without a violent verb, a goodbye in unusual words), and
# real client text has many more phrasings than this set. That is why the screen flags generously, why the colab and
# paper profiles add an LLM's second opinion, and why none of this replaces a clinician's risk assessment.
# With the second opinion on, the labelled set is screened by the patterns, the LLM, and either of the two:

# %%
show.second_opinion(cleaned, screen)

# %% [markdown]
# ### Themes and lengths
#
# The kept statements per theme, as the profile's labeller assigned them. The bundled corpus was written with about
# the same number of statements per theme (the taxonomy table above), so an uneven spread here comes from the
# labeller, which the next table checks.

# %%
fig = show.theme_bars(cleaned)

# %% [markdown]
# On the bundled corpus the labels can be checked against the theme each statement was written for. The heat map
# counts the bundled statements by the theme they were written for (rows) and the theme the labeller chose
# (columns); the diagonal is agreement, and its share is in the title.

# %%
fig = show.theme_agreement(cleaned)

# %% [markdown]
# The paper's length window, 100 to 1,000 characters, is shaded; the statements outside it are those the length
# filter dropped.

# %%
fig = show.statement_lengths(cleaned, cfg.data.min_chars, cfg.data.max_chars)

# %% [markdown]
# ## The tiny world
#
# The tiny profile cannot download models, so it builds its own from the corpus: a {term}`byte-level BPE` tokenizer with a
# {term}`chat template`, and a tiny Llama-architecture policy warm-started by a short supervised pass over all five
# response styles (every kept statement's responses, including statements that chapter 2 will later put in the test
# split: the warm start sees no preferences, only text). The base policy is therefore a blend of good and bad
# counselling, as a general instruct model is a blend of many styles; preference learning has room to move it. The
# build is reused when its {term}`fingerprint` (the corpus, the sizes and the seed) is unchanged. The colab and
# paper profiles load instruct models from the hub through the same loading code and skip this step.
#
# A model this small cannot learn English from a few hundred answers: trained to write them word piece by word piece,
# it wrote word salad, and the later chapters then taught a reader how preference learning games a judge rather than
# how it changes a policy. So in the tiny world **every sentence of the bundled answers is one token** of the
# tokenizer, while the client's statement stays BPE-tokenised so the policy still reads it. An answer is a handful of
# tokens, each a whole sentence: every sample reads as sentences by construction, a recombination of the corpus's
# five styles, and what DPO changes is visible as a change in the mix of styles (chapters 4 and 5 measure it).
# Short answers also make sampling and DPO several times cheaper. The input and output embeddings are kept apart:
# with one tied matrix the tiny model tended to predict the sentence it had just read, saying it twice.

# %%
world = construction.build_tiny_world(chapter)
show.models_used(cfg, world)

# %%
fig = show.warm_start_curve(world)

# %% [markdown]
# ## The response pool
#
# Each statement gets the profile's `responses_per_statement` responses (4, as in the paper): that many distinct pool
# generators are drawn at random per statement. In the tiny profile the pool is the five bundled styles plus the
# tiny policy sampled at two temperatures; in colab and paper it is a set of instruct models of several sizes and
# OpenAI-compatible models. Per generator: its kind, the responses produced, those dropped as empty or failed
# (together, the responses asked for), the generation time in seconds and tokens per second (zero for the bundled styles, which are read, not
# generated), and how many were resumed from a checkpoint of an earlier, interrupted run.

# %%
responses = construction.build_response_pool(chapter, cleaned)
show.table(responses.generator_table(), decimals=1)

# %% [markdown]
# The bundled styles were written at different lengths (rambling is long by design); the tiny policy's length is
# set by its token cap.

# %%
fig = show.grouped_boxplot(responses.responses, value="chars", group="generator",
                           title="Response length per pool generator", ylabel="length (characters)")

# %% [markdown]
# One statement (without a crisis flag) and its pool, to see the spread of quality the judge will score in
# chapter 2:

# %%
show.pool_example(responses.example(cleaned))

# %% [markdown]
# ## Artifacts
#
# The chapter writes the statements, what was dropped, the answers of sources that have them, the filter counts and
# the pool; chapter 2 reads them.

# %%
result = construction.finish(chapter, cleaned, screen, responses)
show.artifacts(result)

# %% [markdown]
# ## What we found
#
# The table puts this run beside the paper. The tiny profile works on a small bundled corpus, so its counts are
# small by design; what it checks is that every filter does its job, which the edge-case table above shows.

# %%
show.beside_the_paper(result.ours(), result.paper_numbers(), cfg.name)

# %%
show.findings(result.findings())
