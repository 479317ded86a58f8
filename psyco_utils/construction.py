"""Chapter 01's stage, "Dataset construction": clean the statements, measure the crisis screen, build the response
pool, and write ``statements/`` and ``pool/`` for chapter 02.

Each step returns a result object that holds its numbers and the tables the chapter shows:

    cleaned = construction.clean_statements(chapter)         # load, normalise, filter, de-duplicate, scrub, flag, label
    screen = construction.evaluate_crisis_screen(chapter)    # the crisis screen on its labelled set
    responses = construction.build_response_pool(chapter, cleaned)
    result = construction.finish(chapter, cleaned, screen, responses)   # artifacts, manifest, findings

Example texts are chosen with the statements' ``crisis`` column (the patterns, plus the LLM's second opinion where
the profile asks for one), so no example shown on a page is a crisis statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import crisis, data, paper, pool
from .layout import RunLayout
from .show.base import integer, percent

__all__ = [
    "CleanedStatements", "CrisisScreen", "ResponsePool", "DatasetResult", "labelling_judge", "clean_statements",
    "evaluate_crisis_screen", "build_tiny_world", "build_response_pool", "finish",
]


def _uses_bundled(cfg) -> bool:
    return any(s.kind == "bundled" for s in cfg.data.sources)


def _has_crisis_language(text: str) -> bool:
    """A dropped statement has no ``crisis`` column (it left before the flag): the pattern screen decides."""
    return crisis.is_crisis(crisis.find_signals(str(text)))


@dataclass
class CleanedStatements:
    """What :func:`clean_statements` kept and dropped, with the tables chapter 01 shows."""

    statements: pd.DataFrame
    report: data.StatementReport
    theme_labeller: str
    corpus: pd.DataFrame | None = None  # the bundled corpus's statements, with their edge-case marks and themes
    second_opinion: pd.DataFrame | None = None  # patterns' flag against the LLM's label, when the profile asks

    @property
    def funnel(self) -> pd.DataFrame:
        """Statements left after each step, and how many each step removed."""
        return self.report.counts_table()

    @property
    def not_crisis(self) -> pd.DataFrame:
        """The kept statements an example may be drawn from: those without a crisis flag."""
        return self.statements[~self.statements["crisis"].astype(bool)]

    def drop_summary(self) -> pd.DataFrame:
        """Statements dropped per step and reason (the id a duplicate repeats is left out of the reason)."""
        dropped = self.report.dropped
        reason = dropped["reason"].str.replace(r" of \S+:\S+( \(Jaccard [\d.]+\))?", " of an earlier statement",
                                               regex=True)
        return (dropped.assign(reason=reason).groupby(["step", "reason"], sort=False).size()
                .rename("statements").reset_index())

    def drop_examples(self, per_step: int = 2, chars: int = 140) -> pd.DataFrame:
        """A few dropped statements per step, scrubbed and shortened; none with crisis language."""
        dropped = self.report.dropped
        statements = dropped[dropped["step"] != "load"]  # a load drop is a cell that held no text, not a statement
        safe = statements[~statements["text"].map(_has_crisis_language)]
        shown = safe.groupby("step", sort=False).head(per_step)
        return pd.DataFrame({"step": shown["step"], "reason": shown["reason"],
                             "statement (shortened)": shown["text"].map(lambda t: data.preview(t, chars))}
                            ).reset_index(drop=True)

    def near_duplicates(self, n: int = 4, chars: int = 110) -> pd.DataFrame:
        """Near-duplicate pairs found: the dropped statement beside the earlier one that was kept."""
        pairs = self.report.near_duplicate_pairs
        if not len(pairs):
            return pd.DataFrame(columns=["Jaccard", "dropped", "kept"])
        dropped = dict(zip(self.report.dropped["statement_id"], self.report.dropped["text"]))
        kept = dict(zip(self.statements["statement_id"], self.statements["text"]))
        flagged = set(self.statements.loc[self.statements["crisis"].astype(bool), "statement_id"])
        rows = [{"Jaccard": j, "dropped": data.preview(dropped.get(d, ""), chars), "kept": data.preview(kept[k], chars)}
                for d, k, j in zip(pairs["statement_id"], pairs["duplicate_of_id"], pairs["jaccard"])
                if k in kept and k not in flagged and not _has_crisis_language(dropped.get(d, ""))]
        return pd.DataFrame(rows[:n], columns=["Jaccard", "dropped", "kept"])

    def edge_case_recall(self) -> pd.DataFrame | None:
        """Per edge case written into the bundled corpus, how many the filters caught; None without that corpus."""
        if self.corpus is None:
            return None
        recall = data.edge_case_recall(self.statements, self.report, self.corpus)
        return recall.assign(**{"edge case": recall["edge case"].str.replace("_", " ")})

    def personal_data(self) -> pd.DataFrame:
        """Replacements per kind of personal data."""
        counts = pd.Series(self.report.scrub_counts, name="replacements", dtype="int64")
        return counts.sort_values(ascending=False).rename_axis("placeholder").to_frame()

    def scrubbed_examples(self, n: int = 2, chars: int = 220) -> list[str]:
        """Kept statements whose personal data was replaced, without a crisis flag, shortened."""
        shown = self.not_crisis[self.not_crisis["pii_replaced"] > 0].head(n)
        return [data.preview(t, chars) for t in shown["text"]]

    @property
    def flagged(self) -> int:
        return int(self.statements["crisis"].astype(bool).sum())

    @property
    def denied_only(self) -> int:
        """Statements that mention crisis language only to deny it (not flagged)."""
        return int((~self.statements["crisis"].astype(bool) & self.statements["crisis_signals"].map(bool)).sum())

    def crisis_findings(self) -> list[str]:
        return [f"{integer(self.flagged)} of {integer(len(self.statements))} kept statements carry a crisis flag.",
                f"{integer(self.denied_only)} more mention crisis language only to deny it, and are not flagged."]

    def signal_table(self) -> pd.DataFrame:
        """Kept statements per kind and category of crisis signal."""
        return crisis.signal_table(self.statements["text"])

    def theme_counts(self) -> pd.Series:
        return self.statements["theme"].fillna("label failed").value_counts()

    def theme_agreement(self) -> tuple[float, pd.DataFrame] | None:
        """(share of bundled statements whose label matches the corpus's own theme, the confusion table), or None
        without the bundled corpus."""
        if self.corpus is None:
            return None
        truth = self.corpus.set_index("bundled:" + self.corpus["id"])["theme"]
        labelled = self.statements[self.statements["source"] == "bundled"].set_index("statement_id")["theme"]
        if labelled.empty:
            return None
        truth = truth.reindex(labelled.index)
        confusion = pd.crosstab(truth.rename("corpus theme"), labelled.fillna("label failed").rename("labelled as"))
        return float((labelled == truth).mean()), confusion


def labelling_judge(chapter):
    """The judge client that labels themes and gives the crisis second opinion, when the profile asks for either
    (colab and paper); None otherwise (the tiny profile's keyword labeller needs none)."""
    cfg = chapter.cfg
    if cfg.data.theme_labeller != "llm" and not cfg.data.crisis_second_opinion:
        return None
    from .judge import make_judge

    return make_judge(cfg.judge, cache_path=RunLayout(chapter.run).judgments)


def clean_statements(chapter, judge=None) -> CleanedStatements:
    """Run :func:`psyco_utils.data.prepare_statements` on the profile's sources, add the LLM's crisis second opinion
    where the profile asks for it (it can add a flag, never remove one), and return what was kept and dropped."""
    cfg = chapter.cfg
    judge = judge if judge is not None else labelling_judge(chapter)
    statements, report = data.prepare_statements(cfg.data, llm_labeller=data.llm_theme_labeller(judge))
    second = None
    if cfg.data.crisis_second_opinion:
        statements = crisis.add_second_opinion(statements, judge)
        second = pd.crosstab(statements["crisis_patterns"].map({True: "flagged", False: "not flagged"})
                             .rename("patterns"), statements["crisis_llm"].fillna("failed").rename("LLM label"))
    corpus = data.load_bundled_corpus()[0] if _uses_bundled(cfg) else None
    return CleanedStatements(statements, report, cfg.data.theme_labeller, corpus, second)


@dataclass
class CrisisScreen:
    """The pattern screen measured on its labelled set of fictional statements (``psyco_utils/evalsets``)."""

    table: pd.DataFrame
    detections: pd.DataFrame
    with_second_opinion: pd.DataFrame | None = None  # patterns, LLM and either, when the profile asks for the LLM

    recall_floor: float = 0.9
    first_person_floor: float = 0.95

    @property
    def recall(self) -> float:
        return float(self.table.at["all", "recall"])

    @property
    def first_person_recall(self) -> float:
        return float(self.table.at["first_person_current", "recall"])

    @property
    def passes(self) -> bool:
        return self.recall >= self.recall_floor and self.first_person_recall >= self.first_person_floor

    @property
    def check_message(self) -> str:
        return (f"recall {percent(self.recall)} overall (floor {percent(self.recall_floor, 0)}) and "
                f"{percent(self.first_person_recall)} on first-person current risk "
                f"(floor {percent(self.first_person_floor, 0)})")

    def held_out(self) -> pd.Series:
        """Statements, recall and precision on the third of the set held out while the patterns were written."""
        return crisis.score_table(self.detections[self.detections["split"] == "held_out"]).loc["all"]

    def errors(self) -> pd.DataFrame:
        """Every miss and false flag, by category and the signals found.  A false flag's text is shown (it is a
        look-alike, labelled not to be flagged); a miss's text is not, because it is a crisis statement."""
        d = self.detections
        missed, false = d[d["must_flag"] & ~d["flagged"]], d[~d["must_flag"] & d["flagged"]]
        rows = [{"error": "missed", "category": c, "signals found": ", ".join(s) or "none",
                 "statement": "(not shown: a crisis statement)"} for c, s in zip(missed["category"], missed["signals"])]
        rows += [{"error": "false flag", "category": c, "signals found": ", ".join(s) or "none",
                  "statement": data.preview(t, 200)} for c, s, t in zip(false["category"], false["signals"], false["text"])]
        frame = pd.DataFrame(rows, columns=["error", "category", "signals found", "statement"])
        frame["category"] = frame["category"].str.replace("_", " ")
        return frame

    def findings(self) -> list[str]:
        held = self.held_out()
        sentence = crisis.headline_sentence(self.table)
        return [sentence[0].upper() + sentence[1:] + ".",
                f"On the held-out third of the set ({integer(held['statements'])} statements): recall "
                f"{percent(held['recall'])}, precision {percent(held['precision'])}.",
                f"Errors on the whole set: {integer(int(self.table.at['all', 'missed']))} missed, "
                f"{integer(int(self.table.at['all', 'false flags']))} false flags (listed below)."]


def evaluate_crisis_screen(chapter, judge=None) -> CrisisScreen:
    """The screen's recall and precision per category of the labelled set; with the profile's crisis second opinion,
    also the LLM's and either's (a flag from either)."""
    table, detections = crisis.evaluate()
    compared = None
    if chapter.cfg.data.crisis_second_opinion:
        judge = judge if judge is not None else labelling_judge(chapter)
        labels = crisis.second_opinion(detections["text"], judge)
        compared = crisis.compare_with_second_opinion(detections, labels)
    return CrisisScreen(table, detections, compared)


def build_tiny_world(chapter):
    """The tiny world (tokenizer and warm-started policy) when a model of the profile is ``tiny``; None otherwise."""
    from .tiny import build_tiny_world as build

    cfg = chapter.cfg
    if "tiny" not in (cfg.models.policy, cfg.models.reward_backbone) and not any(
            g.model == "tiny" for g in cfg.pool.generators):
        return None
    return build(RunLayout(chapter.run).tiny_world, cfg.models.tiny, cfg.seed)


@dataclass
class ResponsePool:
    """The responses drawn for each kept statement, and what each generator produced."""

    responses: pd.DataFrame
    generators: pd.DataFrame
    responses_per_statement: int

    @property
    def statements(self) -> int:
        return int(self.responses["statement_id"].nunique()) if len(self.responses) else 0

    def generator_table(self) -> pd.DataFrame:
        """Per generator: responses produced and dropped (together, those asked for), generation time and speed, and
        how many came from a checkpoint of an earlier run."""
        names = {"dropped_empty_or_failed": "dropped", "tokens_per_s": "tokens/s", "from_checkpoint": "resumed"}
        shown = ["generator", "kind", "produced", "dropped_empty_or_failed", "seconds", "tokens_per_s",
                 "from_checkpoint"]
        return self.generators[shown].rename(columns=names).set_index("generator")

    def example(self, cleaned: CleanedStatements) -> tuple[str, pd.DataFrame] | None:
        """A statement without a crisis flag and its pool (the one with the most tiny-policy responses, to show
        their spread against the bundled styles); None when no such statement has responses."""
        eligible = self.responses[self.responses["statement_id"].isin(set(cleaned.not_crisis["statement_id"]))]
        if eligible.empty:
            return None
        tiny_share = eligible.groupby("statement_id")["generator"].apply(lambda g: g.str.startswith("tiny").sum())
        chosen = tiny_share.sort_values(kind="stable").index[-1]
        text = cleaned.statements.set_index("statement_id").at[chosen, "text"]
        return text, eligible.loc[eligible["statement_id"] == chosen, ["generator", "chars", "response"]]


def build_response_pool(chapter, cleaned: CleanedStatements, progress: bool = False) -> ResponsePool:
    """Draw ``pool.responses_per_statement`` generators per statement and collect their responses
    (:func:`psyco_utils.pool.build_pool`); API generators go through the cached chat client."""
    cfg = chapter.cfg
    chat_client = None
    if any(g.kind == "openai" for g in cfg.pool.generators):
        from .judge import make_chat_client

        chat_client = make_chat_client(cfg.judge, cache_path=RunLayout(chapter.run).judgments)
    responses, generators = pool.build_pool(cleaned.statements, cfg, chapter.run, chat_client=chat_client,
                                            progress=progress)
    return ResponsePool(responses, generators, cfg.pool.responses_per_statement)


@dataclass
class DatasetResult:
    """Chapter 01's result: the three steps above, the artifacts written, and the headline numbers."""

    profile: str
    cleaned: CleanedStatements
    screen: CrisisScreen
    pool: ResponsePool
    pool_generators: int
    artifacts: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        """The headline numbers recorded in the run manifest."""
        return {"statements": len(self.cleaned.statements), "dropped": len(self.cleaned.report.dropped),
                "crisis_flagged": self.cleaned.flagged, "crisis_screen_recall": round(self.screen.recall, 4),
                "pii_replacements": int(sum(self.cleaned.report.scrub_counts.values())),
                "pool_responses": len(self.pool.responses)}

    def ours(self) -> dict[str, str]:
        """This run's numbers, keyed as :meth:`paper_numbers` is where the paper reports one."""
        statements = self.cleaned.statements
        return {"statements after cleaning": integer(len(statements)),
                "broad themes": integer(statements["theme"].nunique()),
                "responses per statement": integer(self.pool.responses_per_statement),
                "pool generators": integer(self.pool_generators),
                "crisis-flagged statements": integer(self.cleaned.flagged),
                "crisis screen recall (labelled set)": percent(self.screen.recall)}

    @staticmethod
    def paper_numbers() -> dict[str, str]:
        d = paper.DATASET
        return {"statements after cleaning": integer(d["statements after cleaning"]),
                "broad themes": f"{d['broad themes']} ({d['sub-topics']} sub-topics)",
                "responses per statement": integer(d["responses per statement"]),
                "pool generators": integer(d["pool generators"])}

    def findings(self) -> list[str]:
        c, funnel = self.cleaned, self.cleaned.funnel.set_index("step")["statements"]
        rows, grouped = int(funnel.iloc[0]), int(funnel.get("one per statement (rows grouped)", funnel.iloc[0]))
        cleaned = int(funnel["near dedup"])  # the last cleaning step; a max_statements sample may follow
        left_out = (f"; the profile's max_statements sample kept {integer(len(c.statements))} of them"
                    if len(c.statements) < cleaned else "")
        points = [f"{integer(rows)} rows loaded held {integer(grouped)} statements; {integer(cleaned)} passed the "
                  f"filters and de-duplication{left_out}.",
                  f"{integer(sum(c.report.scrub_counts.values()))} pieces of personal data were replaced by "
                  f"placeholders; {integer(c.flagged)} statements carry a crisis flag, kept for chapter 6's probe.",
                  f"The pool holds {integer(len(self.pool.responses))} responses to {integer(self.pool.statements)} "
                  f"statements from {integer(self.pool_generators)} generators."]
        recall = c.edge_case_recall()
        if recall is not None:
            written = recall[~recall["edge case"].str.startswith("ordinary")]
            points.append(f"Of the {integer(written['written'].sum())} edge cases written into the bundled corpus, "
                          f"the filters caught {integer(written['caught'].sum())}.")
        return points


def finish(chapter, cleaned: CleanedStatements, screen: CrisisScreen, responses: ResponsePool) -> DatasetResult:
    """Write ``statements/`` and ``pool/`` under the run folder, record the stage in the run manifest, and return
    the chapter's result with the artifacts (paths relative to the run folder)."""
    layout = RunLayout(chapter.run)
    layout.statements_dir.mkdir(parents=True, exist_ok=True)
    layout.pool_dir.mkdir(parents=True, exist_ok=True)
    cleaned.statements.to_parquet(layout.statements, index=False)
    cleaned.report.dropped.to_parquet(layout.dropped_statements, index=False)
    data.save_answers(cleaned.report.answers, layout.statements_dir)
    cleaned.funnel.to_csv(layout.filter_counts, index=False)
    responses.responses.to_parquet(layout.pool, index=False)
    responses.generators.to_csv(layout.pool_generators, index=False)
    written = [layout.relative(p) for p in (layout.statements, layout.dropped_statements, layout.answers,
                                            layout.filter_counts, layout.pool, layout.pool_generators)]
    result = DatasetResult(chapter.cfg.name, cleaned, screen, responses, len(chapter.cfg.pool.generators), written)
    chapter.finish(result.metrics())
    return result
