"""Chapter 02's stage (psyco_utils.judging) with the rubric judge, and its figures (psyco_utils.show.judging)."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from IPython.display import Markdown  # noqa: E402

from conftest import write_chapter_01_outputs  # noqa: E402
from psyco_utils import judging, show  # noqa: E402
from psyco_utils.config import load_profile  # noqa: E402
from psyco_utils.judge import make_judge  # noqa: E402

STATEMENTS = 30


class FakeChapter(SimpleNamespace):
    def finish(self, metrics):
        self.recorded = metrics
        return metrics


def _chapter(run):
    write_chapter_01_outputs(run, STATEMENTS, crisis=lambda i: i % 5 == 0)
    return FakeChapter(cfg=load_profile("tiny", ["splits.test_fraction=0.3"]), run=run)


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory):
    chapter = _chapter(tmp_path_factory.mktemp("run"))
    plan = judging.plan(chapter)
    judge = make_judge(chapter.cfg.judge, cache_path=chapter.run / "judgments.sqlite")
    judged = judge.judge_together(plan.tasks(), progress=False)
    return chapter, plan, judge, judging.collect(chapter, plan, judged, judge)


def test_the_plan_draws_splits_by_statement_and_swap_pairs_from_test(judged_run):
    _, plan, _, _ = judged_run
    tasks = plan.tasks()
    assert len(tasks[judging.SCORE_TASK]) == len(plan.pool)
    assert len(tasks[judging.SWAP_FIRST]) == len(tasks[judging.SWAP_SECOND]) == len(plan.swap_first) > 0
    assert (plan.swap_first["statement_id"] == plan.swap_second["statement_id"]).all()
    assert {plan.split_of[s] for s in plan.swap_first["statement_id"]} == {"test"}
    first, swapped = tasks[judging.SWAP_FIRST][0], tasks[judging.SWAP_SECOND][0]
    assert (first.response_a, first.response_b) == (swapped.response_b, swapped.response_a)


def test_swap_verdicts_are_oriented_by_the_scores():
    shown_first, shown_second, left_out = judging.orient_swap_verdicts(
        np.array([3.0, 2.0, 2.0, np.nan]), np.array([2.0, 3.0, 2.0, 1.0]), ["A", "B", "A", "A"], ["B", "A", "B", "B"])
    assert shown_first == ["A", "A"] and shown_second == ["B", "B"] and left_out == 2


def test_collect_reports_pairs_swap_and_usage(judged_run):
    _, plan, _, result = judged_run
    assert result.score_report["complete"] and result.score_report["answered"] == len(plan.pool)
    sizes = result.split_sizes()
    assert int(sizes["pairs"].sum()) == sum(len(f) for f in result.frames.values())
    assert result.swap["pairs"] + result.swap_left_out == len(plan.swap_first)
    assert result.swap["consistency"] == 1.0  # the rubric judge is symmetric by construction
    assert result.usage_table().loc["judgments asked for"].iloc[0] >= len(plan.pool)
    assert result.failures().empty
    assert result.by_generator().index[0] == "bundled-empathic"
    assert result.generator_findings()[0].startswith("Ranked by mean overall score, bundled-empathic comes first")
    assert result.per_theme().loc["total"].sum() == sum(len(f) for f in result.frames.values())


def test_pair_examples_skip_crisis_statements(judged_run):
    _, plan, _, result = judged_run
    flagged = set(plan.statements.loc[plan.statements["crisis"], "statement_id"])
    assert flagged & set(result.frames["train"]["ID"])  # there was something to skip
    examples = result.pair_examples(n=2)
    assert len(examples) and not set(examples["ID"]) & flagged


def test_findings_are_computed_from_the_result(judged_run):
    _, _, _, result = judged_run
    text = " ".join(result.findings())
    assert f"{len(result.frames['train']):,} train" in text and "34,329" in text
    corr = result.correlation_findings()
    assert "move together most" in corr[0] and "least related" in corr[1]
    assert "separates responses least" in result.score_findings()[0]
    ours, paper = result.ours(), result.paper_numbers()
    assert ours["position-swap consistency"] == "100.0%" and paper["judge"] == "GPT-4o"
    assert result.splits_message() == "train, dev and test each hold pairs"


def test_save_writes_the_dataset_and_records_the_stage(judged_run):
    chapter, _, _, result = judged_run
    saved = judging.save(chapter, result)
    assert (chapter.run / "psycopref" / "README.md").is_file() and (chapter.run / "pool" / "scored.parquet").is_file()
    assert chapter.recorded["train_pairs"] == len(result.frames["train"])
    assert "psycopref/" in saved.artifacts


def test_rubric_demo_uses_a_statement_without_a_crisis_flag(judged_run):
    _, plan, judge, _ = judged_run
    demo = judging.rubric_demo(judge, plan)
    flagged = set(plan.statements.loc[plan.statements["crisis"], "text"])
    assert demo.statement not in flagged
    assert demo.results["empathic"].ratings["empathy"] > demo.results["directive"].ratings["empathy"]
    assert list(demo.features.columns) == ["empathic", "directive"]
    assert "Empathic response" in show.rubric_demo(demo).data
    assert show.rubric_demo(None).data.startswith("The rubric demonstration runs")


def test_judging_figures_fit_the_column(judged_run):
    _, _, _, result = judged_run
    for fig in (show.score_histograms(result.scored, result.judge_label), show.principle_correlation(result.scored),
                show.generator_scores(result.by_generator()),
                show.score_gap_histogram(result.frames, result.min_gap)):
        assert fig.get_size_inches()[0] == pytest.approx(show.FIGURE_WIDTH_IN)
    fig = show.score_gap_histogram(result.frames, result.min_gap)
    fig.canvas.draw()
    legend, axes = fig.axes[0].get_legend(), fig.axes[0]
    assert legend.get_window_extent().y1 <= axes.get_window_extent().y0  # the legend covers no bar


def test_judging_notes_and_tables(judged_run):
    _, _, _, result = judged_run
    note = show.judged_sets(result)
    assert isinstance(note, Markdown) and "pool responses judged" in note.data
    assert "human_labels_path" in show.human_agreement(None).data
    styled = show.human_agreement({"pairs": 200, "accuracy": 0.885, "cohen_kappa": 0.7}).to_html()
    assert "88.5%" in styled and "0.70" in styled
    assert "Empathy" in show.principles_table().to_html()
    assert "Chosen" in show.pair_examples(result.pair_examples()).data
    features = show.rubric_features(SimpleNamespace(features=pd.DataFrame({"a": [127.0, 0.008]}, index=["words", "rep"])))
    html = features.to_html()
    assert ">127<" in html and "0.01" in html and "127.00" not in html


# ------------------------------------------------------------------ human labels and therapists' upvotes (issue 17)


def test_human_labels_from_the_corpus_authors_intent(judged_run):
    from psyco_utils.pairs import INTENDED_BEST, INTENDED_WORST

    chapter, _, _, result = judged_run
    labels = judging.human_labels(chapter, result)
    assert labels is not None and labels.counts["labelled"] == result.agreement["pairs"] > 0
    assert list(labels.example.columns) == ["ID", "prefID", "shown_first", "human_choice"]
    assert "row 0, column 'human_choice': 'both'" in labels.bad_row_error
    assert "labels_with_a_bad_row.csv" in labels.bad_row_error and "/" not in labels.bad_row_error
    # independently: the intent prefers the empathic response and rejects the dismissive one
    every = pd.concat(result.frames.values())
    bundled = every[every["chosen_model"].str.startswith("bundled-") & every["rejected_model"].str.startswith("bundled-")]
    ordered = bundled[bundled[["chosen_model", "rejected_model"]].isin([INTENDED_BEST, INTENDED_WORST]).any(axis=1)]
    agrees = (ordered["chosen_model"] == INTENDED_BEST) | (ordered["rejected_model"] == INTENDED_WORST)
    assert result.agreement["pairs"] == len(ordered)
    assert result.agreement["accuracy"] == pytest.approx(agrees.mean())
    assert result.metrics()["human_label_agreement"] == pytest.approx(round(agrees.mean(), 4))


def _answers_with_votes(chapter, better_style: str, worse_style: str) -> pd.DataFrame:
    from psyco_utils.layout import RunLayout

    layout = RunLayout(chapter.run)
    pool = pd.read_parquet(layout.pool)
    statements = pd.read_parquet(layout.statements)
    calm = statements.loc[~statements["crisis"], "statement_id"].head(6)
    rows = []
    for sid in calm:
        for style, votes in ((better_style, 5), (worse_style, 1), ("bundled-generic", 5)):
            hit = pool[(pool["statement_id"] == sid) & (pool["generator"] == style)]
            if len(hit):
                rows.append({"statement_id": sid, "source": "bundled", "source_id": sid, "row": len(rows),
                             "rank": 1, "upvotes": votes, "answer": hit["response"].iloc[0], "chars": 1,
                             "pii_replaced": 0})
    answers = pd.DataFrame(rows)
    answers.to_parquet(layout.answers, index=False)
    return answers


@pytest.mark.parametrize("better, worse, agrees", [("bundled-empathic", "bundled-dismissive", True),
                                                   ("bundled-dismissive", "bundled-empathic", False)])
def test_upvote_check_measures_the_judge_against_the_better_voted_answer(tmp_path, better, worse, agrees):
    chapter = _chapter(tmp_path)
    plan = judging.plan(chapter)
    judge = make_judge(chapter.cfg.judge, cache_path=tmp_path / "judgments.sqlite")
    result = judging.collect(chapter, plan, judge.judge_together(plan.tasks(), progress=False), judge)
    _answers_with_votes(chapter, better, worse)
    upvotes = judging.upvote_check(chapter, judge, result)
    counts, r = upvotes["counts"], upvotes["result"]
    # equal votes (5 and 5) make a pair that is counted and left out
    assert counts["pairs whose upvotes differ by less than 1"] > 0
    assert r["judged"] == counts["pairs with an upvote gap"] == len(upvotes["pairs"])
    assert (upvotes["pairs"]["upvotes_better"] > upvotes["pairs"]["upvotes_worse"]).all()
    assert (r["agreement"] > 0.5) == agrees
    assert r["agree"] + r["ties"] + r["disagree"] == r["judged"]
    assert result.metrics()["upvote_agreement"] == pytest.approx(round(r["agreement"], 4))
    shown = show.upvote_agreement(upvotes, "tiny").data
    assert "weak proxy" in shown and "82.5%" in shown


def test_upvote_check_without_upvotes_says_where_it_runs(judged_run):
    chapter, _, judge, result = judged_run
    assert judging.upvote_check(chapter, judge, result) is None  # chapter 01 wrote no answers here
    assert "counsel-chat" in show.upvote_agreement(None, "tiny").data
