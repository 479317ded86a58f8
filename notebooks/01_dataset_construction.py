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
import pandas as pd
from IPython.display import Markdown, display

from psyco_utils import checks, crisis, data, models, pool, runtime, tiny

chapter = runtime.start_chapter(profile, overrides, stage="01_dataset_construction")
cfg, run = chapter.cfg, chapter.run
print(f"artifacts: runs/{cfg.name}/ (or $PSYCO_RUNS_DIR/{cfg.name}/ when that is set)")

# %% [markdown]
# ## Sources
#
# A source is the bundled corpus, a local file (CSV, JSON, JSON Lines or parquet) or a hub dataset, with a mapping
# from its own column names to ours. Every row keeps its source and its original id, so any statement in the final
# dataset can be traced back.

# %%
pd.DataFrame([s.model_dump(exclude_none=True) for s in cfg.data.sources])

# %% [markdown]
# The **bundled corpus** was written for this book: client statements over eight themes, each statement the filters
# keep with five responses of deliberately varied quality (empathic, generic, directive, dismissive, rambling; the
# statements written for the filters to drop, too short, too long or duplicated, have none). It also contains, on purpose, the cases the filters exist for: statements that are
# too short or too long, exact and near duplicates, statements with (fictional) personal data, and statements with
# crisis language. The paper's list of 8 topics and 42 sub-topics is not available, so the themes below are
# this book's own taxonomy.

# %%
corpus_statements, corpus_responses = data.load_bundled_corpus()
taxonomy = (corpus_statements.groupby("theme")["subtheme"].agg(lambda s: ", ".join(sorted(set(s.dropna()))))
            .rename("subthemes in the corpus").to_frame())
taxonomy.insert(0, "definition", pd.Series(data.THEME_DESCRIPTIONS))
taxonomy.insert(1, "statements", corpus_statements.groupby("theme").size())
taxonomy

# %%
print(f"{len(corpus_statements)} statements, {len(corpus_responses)} responses "
      f"({corpus_responses['style'].value_counts().to_dict()})")
corpus_statements["edge_case"].fillna("ordinary").value_counts().rename("statements").to_frame()

# %% [markdown]
# ## Cleaning
#
# The pipeline, in order:
#
# 1. **Load** every source; a cell that is not text is dropped and counted with its row number.
# 2. **Normalise**: Unicode NFKC, straight quotes and dashes, no control or zero-width characters, one space between
#    words, paragraph breaks kept.
# 3. **Length filter** (the paper's): keep 100 to 1,000 characters.
# 4. **Exact de-duplication**: two statements are the same if they match ignoring case and whitespace; the first is kept.
# 5. **Near de-duplication**: MinHash locality-sensitive hashing over character 5-grams proposes candidate pairs,
#    and a pair is a near duplicate when the exact Jaccard similarity of their 5-gram sets is at least the
#    profile's threshold {cite:p}`broder1997resemblance`. MinHash keeps this linear in the number of statements,
#    which matters at the paper's scale; the exact check keeps it precise.
# 6. **Personal data** is replaced by typed placeholders (`[EMAIL]`, `[PHONE]`, `[URL]`, `[HANDLE]`, `[ADDRESS]`,
#    `[POSTCODE]`, `[ID_NUMBER]`, `[IP_ADDRESS]`, `[NAME]`) before any statement leaves this machine.
# 7. **Crisis language** is flagged (kept, not dropped): chapter 6 checks how each model answers these statements.
# 8. **Themes**: a keyword labeller in the tiny profile; an LLM labeller through the judge client in colab and paper.

# %%
llm_labeller = None
if cfg.data.theme_labeller == "llm":
    from psyco_utils.judge import make_judge

    theme_judge = make_judge(cfg.judge, cache_path=run / "judgments.sqlite")
    instructions = "Label the client statement with the single best-fitting theme: " + "; ".join(
        f"{k}: {v}" for k, v in data.THEME_DESCRIPTIONS.items())
    llm_labeller = lambda texts: theme_judge.classify_many(texts, list(data.THEMES), instructions)  # noqa: E731

statements, report = data.prepare_statements(cfg.data, llm_labeller=llm_labeller)
counts = report.counts_table()
counts

# %%
from psyco_utils import show

fig = show.filter_funnel(counts, title=f"Statements left after each cleaning step ({cfg.name} profile)")

# %% [markdown]
# What each step removed, with a few examples (shown scrubbed and shortened, like everything this book publishes):

# %%
summary = report.dropped.groupby(["step", "reason"]).size().rename("statements").reset_index()
summary["reason"] = summary["reason"].str.replace(r" of \S+:\S+( \(Jaccard [\d.]+\))?", " of an earlier statement",
                                                  regex=True)
summary.groupby(["step", "reason"])["statements"].sum().to_frame()

# %%
examples = (report.dropped.groupby("step", sort=False).head(2)
            .assign(text=lambda d: d["text"].map(lambda t: data.preview(t, 140)),
                    chars=lambda d: d["text"].str.len())[["step", "statement_id", "reason", "text"]])
with pd.option_context("display.max_colwidth", 160):
    display(examples.reset_index(drop=True))

# %% [markdown]
# Near duplicates found, side by side. The kept statement is the earlier one.

# %%
if len(report.near_duplicate_pairs):
    texts = dict(zip(report.dropped["statement_id"], report.dropped["text"]))
    kept_texts = dict(zip(statements["statement_id"], statements["text"]))
    near = report.near_duplicate_pairs.assign(
        dropped=lambda d: d["statement_id"].map(lambda s: data.preview(texts.get(s, ""), 110)),
        kept=lambda d: d["duplicate_of_id"].map(lambda s: data.preview(kept_texts.get(s, ""), 110)),
    )[["statement_id", "duplicate_of_id", "jaccard", "dropped", "kept"]]
    with pd.option_context("display.max_colwidth", 120):
        display(near.head(6))
else:
    print("no near duplicates at this threshold")

# %% [markdown]
# ### Do the filters catch what they are for?
#
# The bundled corpus marks the statements written as edge cases, so the filters can be checked against them.

# %%
if any(s.kind == "bundled" for s in cfg.data.sources):
    recall = data.edge_case_recall(statements, report, corpus_statements)
    display(recall)

# %% [markdown]
# ### Personal data and crisis language
#
# ```{admonition} Content note
# :class: warning
# The examples below include fictional statements about suicide and self-harm. If you are in crisis, contact your
# local emergency number now; in the US you can call or text 988, in the UK and Ireland you can call the Samaritans
# on 116 123.
# ```

# %%
pd.Series(report.scrub_counts, name="replacements").sort_values(ascending=False).to_frame()

# %%
with pd.option_context("display.max_colwidth", 220):
    display(statements.loc[statements["pii_replaced"] > 0, ["statement_id", "pii_replaced", "text"]]
            .head(3).assign(text=lambda d: d["text"].map(lambda t: data.preview(t, 220))))

# %% [markdown]
# Crisis language is flagged, not dropped: chapter 6 checks how each model answers these statements. The flag comes
# from a screen of patterns (`psyco_utils.crisis`). Each signal it finds has a kind (suicide, passive ideation,
# self-harm, harm to others) and a category that says whose risk it is and when: **self** (the writer, now),
# **other** (someone the writer describes), **past** (the writer's own history) or **negated** (denied, as in "I'm
# not suicidal"). A statement is flagged when it has a self, other or past signal. A denial alone does not flag it,
# and figures of speech ("killing it at work", "dying to see her") match no pattern.

# %%
flagged = statements[statements["crisis"]]
denied_only = statements[~statements["crisis"] & statements["crisis_signals"].map(bool)]
print(f"{len(flagged)} of {len(statements)} statements flagged for crisis language; "
      f"{len(denied_only)} more mention it only to deny it and are not flagged")
crisis.signal_table(statements["text"])

# %%
with pd.option_context("display.max_colwidth", 200):
    display(flagged[["statement_id", "crisis_signals", "text"]].head(4)
            .assign(crisis_signals=lambda d: d["crisis_signals"].map(", ".join),
                    text=lambda d: d["text"].map(lambda t: data.preview(t, 200))))

# %% [markdown]
# In the colab and paper profiles the setting `data.crisis_second_opinion: true` also asks the judge's LLM about
# each statement (after personal data is scrubbed; every answer is cached like any judgment). Its label can add a
# flag but never remove one, because a missed crisis costs more than a false flag.

# %%
crisis_judge = None
if cfg.data.crisis_second_opinion:
    from psyco_utils.judge import make_judge

    crisis_judge = make_judge(cfg.judge, cache_path=run / "judgments.sqlite")
    statements = crisis.add_second_opinion(statements, crisis_judge)
    added = int((statements["crisis"] & ~statements["crisis_patterns"]).sum())
    failed = int(statements["crisis_llm"].isna().sum())
    print(f"the LLM's second opinion flags {added} statements the patterns did not; {failed} of its "
          f"{len(statements)} judgments failed (those keep the patterns' flag; reasons in the judge's cache)")
    display(pd.crosstab(statements["crisis_patterns"].map({True: "flagged", False: "not flagged"}).rename("patterns"),
                        statements["crisis_llm"].fillna("failed").rename("LLM label")))
else:
    print(f"no LLM second opinion in the {cfg.name} profile (data.crisis_second_opinion is off)")

# %% [markdown]
# ### How well does the crisis screen work?
#
# The screen is measured on a labelled set of fictional statements written for this book before the patterns were
# (`psyco_utils/evalsets/crisis_statements.jsonl`), in eight categories: first-person current risk, first-person
# past risk, third person, passive ideation ("I don't care if I live or die"), urges, harm to others, negations and
# idioms. Each category mixes statements that must be flagged with look-alikes that must not ("I cut myself while
# cooking", "the urge to text my ex"), and the negation and idiom categories include statements where the risk sits
# beside the denial or the figure of speech ("I'm not suicidal, but I've started cutting again"). So in each category
# **recall** (the share of must-flag statements that are flagged) and **precision** (the share of flags that are
# right) both mean something. **Tagged as expected** is the share whose signals carry the category they should:
# other for third person, past for past, negated for denials.

# %%
crisis_table, crisis_detections = crisis.evaluate()
crisis.readable(crisis_table)

# %%
held_out = crisis.score_table(crisis_detections[crisis_detections["split"] == "held_out"]).loc["all"]
sentence = crisis.headline_sentence(crisis_table)
print(sentence[0].upper() + sentence[1:] + ".")
print(f"On the held-out third of the set ({int(held_out['statements'])} statements): recall {held_out['recall']:.1%}, "
      f"precision {held_out['precision']:.1%}.")
missed = crisis_detections[crisis_detections["must_flag"] & ~crisis_detections["flagged"]]
false_flags = crisis_detections[~crisis_detections["must_flag"] & crisis_detections["flagged"]]
print(f"{len(missed)} missed and {len(false_flags)} false flags:")
with pd.option_context("display.max_colwidth", 200):
    display(pd.concat([missed.assign(error="missed"), false_flags.assign(error="false flag")])
            .assign(category=lambda d: d["category"].str.replace("_", " "),
                    signals=lambda d: d["signals"].map(lambda found: ", ".join(found) or "none"))
            [["error", "category", "signals", "text"]].reset_index(drop=True))
_ = checks.require(chapter, "crisis screen recall",
                   crisis_table.at["all", "recall"] >= 0.9 and crisis_table.at["first_person_current", "recall"] >= 0.95,
                   f"recall {crisis_table.at['all', 'recall']:.1%} overall (floor 90%) and "
                   f"{crisis_table.at['first_person_current', 'recall']:.1%} on first-person current risk (floor 95%)")

# %% [markdown]
# These numbers flatter the screen. The same authors wrote the statements and the patterns, and the patterns were
# developed while looking at the misses on two thirds of the set; the remaining third was held out, and was scored
# once before a miss in it revealed a typo in a pattern, which was then fixed. What a pattern screen misses is risk
# put in words it has no pattern for (a threat of violence without a violent verb, a goodbye in unusual words), and
# real client text has many more phrasings than this set. That is why the screen flags generously, why the colab and
# paper profiles can add an LLM's second opinion, and why none of this replaces a clinician's risk assessment.

# %%
if crisis_judge is not None:
    llm_labels = crisis.second_opinion(crisis_detections["text"], crisis_judge)
    display(crisis.readable(crisis.compare_with_second_opinion(crisis_detections, llm_labels)))

# %% [markdown]
# ### Themes and lengths

# %% tags=["hide-input"]
fig = show.category_bars(statements["theme"].value_counts(), title=f"Statements per theme ({cfg.data.theme_labeller} labeller)",
                          xlabel="statements (count)", ylabel="theme")

# %%
if any(s.kind == "bundled" for s in cfg.data.sources):
    truth = corpus_statements.set_index("bundled:" + corpus_statements["id"])["theme"]
    labelled = statements[statements["source"] == "bundled"].set_index("statement_id")["theme"]
    agreement = (labelled == truth.reindex(labelled.index)).mean()
    print(f"{cfg.data.theme_labeller} labeller agrees with the corpus's own theme on {agreement:.1%} "
          f"of {len(labelled)} bundled statements")
    display(pd.crosstab(truth.reindex(labelled.index).rename("corpus theme"), labelled.rename("labelled as")))

# %%
all_lengths = report.dropped.loc[report.dropped["step"] == "length filter", "text"].str.len()
fig = show.length_histogram(
    {"kept": statements["chars"], "dropped by the length filter": all_lengths},
    window=(cfg.data.min_chars, cfg.data.max_chars), title="Length of client statements", ylabel="statements (count)")

# %% [markdown]
# ## The tiny world
#
# The tiny profile cannot download models, so it builds its own from the corpus: a byte-level BPE tokenizer with a
# chat template, and a tiny Llama-architecture policy warm-started by a short supervised pass over all five response
# styles (every kept statement's responses, including statements that chapter 2 will later put in the test split: the
# warm start sees no preferences, only text). The base policy is therefore a blend of good and bad counselling, as a
# general instruct model is a blend of many styles; preference learning has room to move it. The colab and paper
# profiles load instruct models from the hub through the same loading code and skip this step.

# %%
if "tiny" in (cfg.models.policy, cfg.models.reward_backbone) or any(g.model == "tiny" for g in cfg.pool.generators):
    world = tiny.build_tiny_world(run / "tiny_world", cfg.models.tiny, cfg.seed)
    info = {k: v for k, v in world.info.items() if k != "sft_losses"}
    display(pd.Series(info, name="tiny world").to_frame())
    fig = show.loss_curve(world.info["sft_losses"], title="Supervised warm start of the tiny policy")
else:
    print(f"policy: {models.model_origin(cfg.models.policy)}; "
          f"reward backbone: {models.model_origin(cfg.models.reward_backbone)}")

# %% [markdown]
# ## The response pool
#
# Each statement gets the profile's `responses_per_statement` responses (4, as in the paper): that many distinct pool
# generators are drawn at random per statement. In the tiny profile the pool is the five bundled styles plus the
# tiny policy sampled at two temperatures; in colab and paper it is a set of instruct models of several sizes and
# OpenAI-compatible models.

# %%
chat_client = None
if any(g.kind == "openai" for g in cfg.pool.generators):
    from psyco_utils.judge import make_chat_client

    chat_client = make_chat_client(cfg.judge, cache_path=run / "judgments.sqlite")
response_pool, generator_stats = pool.build_pool(statements, cfg, run, chat_client=chat_client)
print(f"{len(response_pool)} responses to {response_pool['statement_id'].nunique()} statements")
generator_stats

# %% tags=["hide-input"]
fig = show.grouped_boxplot(response_pool, value="chars", group="generator",
                            title="Response length per pool generator", ylabel="length (characters)")

# %% [markdown]
# One statement and its pool, to see the spread of quality the judge will score in chapter 2:

# %%
not_crisis = set(statements.loc[~statements["crisis"], "statement_id"])
example_id = (response_pool[response_pool["statement_id"].isin(not_crisis)].groupby("statement_id")["generator"]
              .apply(lambda g: g.str.startswith("tiny").sum()).sort_values(kind="stable").index[-1])
print(data.preview(statements.set_index("statement_id").at[example_id, "text"], 1000))
with pd.option_context("display.max_colwidth", 400):
    display(response_pool[response_pool["statement_id"] == example_id][["generator", "chars", "response"]]
            .assign(response=lambda d: d["response"].map(lambda t: data.preview(t, 400))))

# %% [markdown]
# ## Artifacts
#
# The chapter writes `statements/` and `pool/` under `runs/<profile>/` (the artifact layout in the README); chapter 2
# reads them.

# %%
(run / "statements").mkdir(exist_ok=True)
(run / "pool").mkdir(exist_ok=True)
statements.to_parquet(run / "statements" / "statements.parquet", index=False)
report.dropped.to_parquet(run / "statements" / "dropped.parquet", index=False)
data.save_answers(report.answers, run / "statements")
counts.to_csv(run / "statements" / "filter_counts.csv", index=False)
response_pool.to_parquet(run / "pool" / "pool.parquet", index=False)
generator_stats.to_csv(run / "pool" / "generators.csv", index=False)
_ = chapter.finish({
    "statements": len(statements),
    "dropped": len(report.dropped),
    "crisis_flagged": int(statements["crisis"].sum()),
    "crisis_screen_recall": round(float(crisis_table.at["all", "recall"]), 4),
    "pii_replacements": int(sum(report.scrub_counts.values())),
    "pool_responses": len(response_pool),
})
sorted(p.relative_to(run).as_posix() for p in run.glob("*/*") if p.is_file() and "tiny_world" not in p.parts)

# %% [markdown]
# ## What we found
#
# The table puts this run beside the paper. The tiny profile works on a small bundled corpus, so its counts are
# small by design; what it checks is that every filter does its job, which the edge-case table above shows.

# %%
ours = {
    "statements after cleaning": len(statements),
    "themes": statements["theme"].nunique(),
    "responses per statement": cfg.pool.responses_per_statement,
    "pool generators": len(cfg.pool.generators),
    "crisis-flagged statements": int(statements["crisis"].sum()),
    "crisis screen recall (labelled set)": f"{crisis_table.at['all', 'recall']:.1%}",
}
paper = {"statements after cleaning": "26,483", "themes": "8 (42 sub-topics)", "responses per statement": "4",
         "pool generators": "20", "crisis-flagged statements": "not reported",
         "crisis screen recall (labelled set)": "not reported"}
pd.DataFrame({f"this run ({cfg.name})": pd.Series(ours).map(lambda v: f"{v:,}" if isinstance(v, int) else v),
              "paper": pd.Series(paper)})

# %%
print(f"chapter 01 finished in {chapter.seconds:.1f} s")
