"""Chapter 01's stage results (psyco_utils.construction) and their tables and figures (psyco_utils.show.dataset)."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from IPython.display import Markdown  # noqa: E402

from psyco_utils import construction, crisis, data, show  # noqa: E402
from psyco_utils.config import load_profile  # noqa: E402


class FakeChapter(SimpleNamespace):
    def finish(self, metrics):
        self.recorded = metrics
        return metrics


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    chapter = FakeChapter(cfg=load_profile("tiny", []), run=tmp_path_factory.mktemp("run"))
    return construction.clean_statements(chapter)


def test_cleaning_accounts_for_every_bundled_row(cleaned):
    funnel = cleaned.funnel
    assert int(funnel["statements"].iloc[0]) == len(cleaned.statements) + len(cleaned.report.dropped)
    assert cleaned.drop_summary()["statements"].sum() == len(cleaned.report.dropped)
    recall = cleaned.edge_case_recall()
    assert "exact duplicate" in set(recall["edge case"])  # names in words, not column stems
    written = recall[~recall["edge case"].str.startswith("ordinary")]
    assert (written["caught"] == written["written"]).all()


def test_no_example_is_a_crisis_statement(cleaned):
    flagged = cleaned.statements.loc[cleaned.statements["crisis"], "text"].map(lambda t: data.preview(t, 220))
    assert len(flagged) > 0
    assert not set(cleaned.scrubbed_examples(n=100)) & set(flagged)
    shown = cleaned.drop_examples(per_step=100)["statement (shortened)"]
    assert not shown.map(construction._has_crisis_language).any()
    assert len(cleaned.near_duplicates(n=100)) > 0


def test_examples_follow_the_crisis_column_not_only_the_patterns(cleaned):
    """A statement the LLM's second opinion flagged (no pattern signal) must not be shown either."""
    ordinary = cleaned.statements[~cleaned.statements["crisis"] & (cleaned.statements["pii_replaced"] > 0)]
    target = ordinary["statement_id"].iloc[0]
    marked = cleaned.statements.assign(crisis=cleaned.statements["crisis"] | (cleaned.statements["statement_id"] == target))
    relabelled = construction.CleanedStatements(marked, cleaned.report, "keyword", cleaned.corpus)
    before = cleaned.scrubbed_examples(n=100)
    after = relabelled.scrubbed_examples(n=100)
    assert data.preview(ordinary["text"].iloc[0], 220) in before
    assert data.preview(ordinary["text"].iloc[0], 220) not in after


def test_crisis_counts_and_theme_agreement(cleaned):
    assert cleaned.flagged == int(cleaned.statements["crisis"].sum()) > 0
    assert cleaned.crisis_findings()[0].startswith(f"{cleaned.flagged} of {len(cleaned.statements)}")
    share, confusion = cleaned.theme_agreement()
    assert 0 < share <= 1
    assert int(confusion.values.sum()) == int((cleaned.statements["source"] == "bundled").sum())
    no_corpus = construction.CleanedStatements(cleaned.statements, cleaned.report, "keyword")
    assert no_corpus.theme_agreement() is None and no_corpus.edge_case_recall() is None


def _screen(labelled):
    table, detections = crisis.evaluate(labelled)
    return construction.CrisisScreen(table, detections)


def test_crisis_screen_hides_the_text_of_what_it_missed():
    labelled = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "category": ["first_person_current", "first_person_current", "idiom", "idiom"],
        "must_flag": [True, True, False, False], "split": ["dev", "held_out", "dev", "held_out"],
        "text": ["I want to kill myself tonight.", "Everything is grey and I sleep a lot.",
                 "This commute is killing me.", "I could murder a pizza."]})
    screen = _screen(labelled)
    errors = screen.errors()
    missed = errors[errors["error"] == "missed"]
    assert len(missed) == 1 and "grey" not in missed["statement"].iloc[0]
    assert screen.recall == 0.5 and not screen.passes
    assert "recall 50.0% overall" in screen.check_message
    assert screen.findings()[2].startswith("Errors on the whole set: 1 missed, 0 false flags")


def test_the_screen_passes_on_its_labelled_set():
    screen = _screen(crisis.load_evaluation_set())
    assert screen.passes and screen.recall >= screen.recall_floor


def _pool(cleaned):
    rows = []
    for sid in cleaned.statements["statement_id"]:
        for gen in ("bundled-empathic", "tiny-policy-t0.7"):
            rows.append({"statement_id": sid, "response_id": f"{sid}#{gen}", "generator": gen, "response": "Hello.",
                         "chars": 6})
    generators = pd.DataFrame([{"generator": g, "kind": "bundled", "asked": 1, "produced": 1,
                                "dropped_empty_or_failed": 0, "seconds": 0.0, "new_tokens": 0, "tokens_per_s": 0.0,
                                "from_checkpoint": 0} for g in ("bundled-empathic", "tiny-policy-t0.7")])
    return construction.ResponsePool(pd.DataFrame(rows), generators, 2)


def test_pool_example_is_never_a_crisis_statement(cleaned):
    pool = _pool(cleaned)
    text, responses = pool.example(cleaned)
    flagged = set(cleaned.statements.loc[cleaned.statements["crisis"], "text"])
    assert text not in flagged and len(responses) == 2
    only_crisis = pool.responses[pool.responses["statement_id"].isin(
        cleaned.statements.loc[cleaned.statements["crisis"], "statement_id"])]
    assert construction.ResponsePool(only_crisis, pool.generators, 2).example(cleaned) is None
    assert list(pool.generator_table().columns) == ["kind", "produced", "dropped", "seconds", "tokens/s",
                                                    "resumed"]


def test_finish_writes_the_artifacts_and_records_the_metrics(cleaned, tmp_path):
    chapter = FakeChapter(cfg=load_profile("tiny", []), run=tmp_path)
    screen = _screen(crisis.load_evaluation_set())
    result = construction.finish(chapter, cleaned, screen, _pool(cleaned))
    assert all((tmp_path / path).is_file() for path in result.artifacts)
    assert chapter.recorded["statements"] == len(cleaned.statements)
    assert chapter.recorded["pool_responses"] == 2 * len(cleaned.statements)
    assert pd.read_parquet(tmp_path / "statements" / "statements.parquet").shape[0] == len(cleaned.statements)
    ours, paper = result.ours(), result.paper_numbers()
    assert ours["statements after cleaning"] == f"{len(cleaned.statements):,}" and paper["pool generators"] == "20"
    assert any("edge cases" in point for point in result.findings())
    funnel = cleaned.funnel.set_index("step")["statements"]
    assert result.findings()[0] == (f"{funnel.iloc[0]:,} rows loaded held {funnel['one per statement (rows grouped)']:,} "
                                    f"statements; {len(cleaned.statements):,} passed the filters and de-duplication.")
    assert "load" not in set(cleaned.drop_examples(per_step=100)["step"])


def test_dataset_figures_fit_the_column_with_legends_below_the_data(cleaned):
    fig = show.statement_lengths(cleaned, 100, 1000)
    assert fig.get_size_inches()[0] == pytest.approx(show.FIGURE_WIDTH_IN)
    legend = fig.axes[0].get_legend()
    fig.canvas.draw()
    assert legend.get_window_extent().y1 <= fig.axes[0].get_window_extent().y0  # under the axes, off the bars
    for figure in (show.cleaning_funnel(cleaned, "tiny"), show.theme_bars(cleaned)):
        assert figure.get_size_inches()[0] == pytest.approx(show.FIGURE_WIDTH_IN)
    assert show.warm_start_curve(None) is None
    plt.close("all")


def test_dataset_tables_and_notes(cleaned):
    fig = show.theme_agreement(cleaned)
    share, confusion = cleaned.theme_agreement()
    assert f"{share:.1%} agree" in fig.axes[0].get_title()
    assert fig.get_size_inches()[0] == pytest.approx(show.FIGURE_WIDTH_IN)
    assert len(fig.axes[0].texts) == confusion.size  # every count written in its cell
    assert isinstance(show.second_opinion_counts(cleaned), Markdown)
    assert "crisis_second_opinion" in show.second_opinion_counts(cleaned).data
    cfg = load_profile("tiny", [])
    assert "shipped with the book" in show.sources(cfg.data.sources).to_html()
    assert "/" not in show.artifacts(SimpleNamespace(profile="tiny", artifacts=["a.parquet"])).data.split("runs/")[0]
    assert show.pool_example(None).data.startswith("No statement")
    assert "caught" in show.edge_case_recall(cleaned).to_html()
    assert "[NAME]" in show.scrubbed_examples(cleaned, n=20).data or "\\[NAME\\]" in show.scrubbed_examples(cleaned, 20).data
    no_corpus = construction.CleanedStatements(cleaned.statements, cleaned.report, "keyword")
    assert show.edge_case_recall(no_corpus).data.startswith("This profile reads no bundled statement")
    assert show.theme_agreement(no_corpus).data.startswith("No statement of this profile")


def test_a_sampled_run_counts_only_the_edge_cases_it_screened(tmp_path):
    chapter = FakeChapter(cfg=load_profile("tiny", ["data.max_statements=60"]), run=tmp_path)
    sampled = construction.clean_statements(chapter)
    recall = sampled.edge_case_recall()
    written = recall[~recall["edge case"].str.startswith("ordinary")]
    assert (written["caught"] == written["written"]).all()  # the sample is not counted as a miss
    assert written.loc[written["edge case"] == "crisis", "written"].iloc[0] < 12
    result = construction.DatasetResult("tiny", sampled, None, _pool(sampled), 7)
    assert result.findings()[0].endswith(f"the profile's max_statements sample kept {len(sampled.statements)} of them.")
