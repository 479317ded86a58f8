"""Chapter 06's evaluation: judging in both orders, the result object, the checks, the artifacts, freeing each
generator, and the figures, tables and findings the page shows."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from psyco_utils import evaluate, show  # noqa: E402
from psyco_utils.config import load_profile  # noqa: E402
from psyco_utils.judge.schemas import CompareResult  # noqa: E402
from psyco_utils.layout import RunLayout  # noqa: E402
from psyco_utils.principles import PRINCIPLE_KEYS  # noqa: E402


class LongerWins:
    """A judge that prefers the longer response on every principle but clarity, where the shorter wins; equal lengths
    tie.  ``first_wins`` instead always prefers whatever is shown first (pure position bias)."""

    def __init__(self, first_wins: bool = False):
        self.first_wins = first_wins

    def _verdict(self, a: str, b: str, aspect: str) -> str:
        if self.first_wins:
            return "A"
        if len(a.split()) == len(b.split()):
            return "tie"
        longer = "A" if len(a.split()) > len(b.split()) else "B"
        return ({"A": "B", "B": "A"}[longer]) if aspect == "clarity" else longer

    def compare_many(self, items, progress=False):
        return [CompareResult(per_principle={k: self._verdict(i.response_a, i.response_b, k) for k in PRINCIPLE_KEYS},
                              overall=self._verdict(i.response_a, i.response_b, "overall"), rationale="", status="ok")
                for i in items]


QUESTIONS = ["I keep arguing with my sister about our parents.", "Work has been overwhelming since my promotion.",
             "I feel lonely after moving to a new city.", "My partner and I disagree about money.",
             "I cannot sleep before exams.", "My friend stopped answering my messages."]


def _setup(tmp_path, judge=None, reference="base_policy", policies=("base", "DPO", "DPO-Iter")):
    cfg = load_profile("tiny", [f"eval.reference={reference}", "eval.bootstrap_samples=200"])
    items = pd.DataFrame({"ID": [f"s{i}" for i in range(len(QUESTIONS))], "question": QUESTIONS,
                          "theme": ["family", "work", "loneliness", "relationships", "stress", "friendship"]})
    return evaluate.EvaluationSetup(cfg=cfg, layout=RunLayout(tmp_path), items=items,
                                    policies={p: f"models/{p}" for p in policies}, judge=judge or LongerWins())


def _answers(n=len(QUESTIONS)):
    short, longer, longest = "How are you?", "That sounds hard. How are you feeling?", \
        "That sounds really hard and tiring. How are you feeling about it today, and what helps?"
    by_setting = {}
    for setting in evaluate.SETTINGS:
        by_setting[setting] = {"reference": [short] * n, "base": [short] * n, "DPO": [longest] * n,
                               "DPO-Iter": [longer] * (n - 1) + [short]}
    return by_setting


def test_both_orders_are_judged_and_a_position_biased_judge_gives_only_ties(tmp_path):
    fair = evaluate.judge_answers(_setup(tmp_path), _answers())
    assert len(fair) == 2 * 3 * len(QUESTIONS) * 8
    overall = fair[fair["aspect"] == "overall"]
    assert (overall.loc[overall["policy"] == "DPO", "outcome"] == "win").all()
    assert (overall.loc[overall["policy"] == "base", "outcome"] == "tie").all()
    biased = evaluate.judge_answers(_setup(tmp_path, LongerWins(first_wins=True)), _answers())
    assert (biased["outcome"] == "tie").all()  # "A" in both orders: the two verdicts disagree


def test_the_result_holds_rates_differences_lengths_and_examples(tmp_path):
    setup = _setup(tmp_path)
    answers = _answers()
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert result.rate("no constraint", "base") == 0.5
    assert result.rate("no constraint", "DPO") == 1.0 and result.rate("no constraint", "DPO", "clarity") == 0.0
    assert result.rate("no constraint", "DPO-Iter") == pytest.approx((5 + 0.5) / 6)
    assert list(result.headline.index.get_level_values("policy").unique()) == ["base", "DPO", "DPO-Iter"]
    dpo_vs_base = result.differences.query("policy == 'DPO' and against == 'base'").iloc[0]
    assert dpo_vs_base["difference"] == pytest.approx(0.5) and dpo_vs_base["distinguishable"]
    assert set(result.differences.query("comparison == 'length constraint'")["policy"]) == {"DPO", "DPO-Iter"}
    assert result.consistency["position_consistent"] == 1.0 and result.consistency["ties_exclude_base"]
    assert result.lengths.loc[("no constraint", "DPO"), "mean words"] == 16
    assert len(result.word_counts) == 2 * 4 * len(QUESTIONS)
    assert len(result.examples) == 2 and set(result.examples[0]["answers"]) == {"base", "DPO", "DPO-Iter"}
    assert result.examples[0]["outcomes"]["DPO-Iter"] == "win"


def test_examples_leave_out_statements_flagged_for_crisis_language(tmp_path):
    setup = _setup(tmp_path)
    setup.layout.statements_dir.mkdir()
    pd.DataFrame({"statement_id": [f"s{i}" for i in range(6)], "text": QUESTIONS,
                  "crisis": [True, True, False, False, False, True]}).to_parquet(setup.layout.statements)
    answers = _answers()
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert [e["statement"] for e in result.examples] == QUESTIONS[2:4]


def test_checks_hold_for_a_sound_run_and_fail_when_the_policy_loses(tmp_path):
    setup = _setup(tmp_path)
    answers = _answers()
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert [(name, holds) for name, holds, _ in evaluate.quality_checks(result)] == [
        ("base policy against itself is 50%", True), ("DPO-Iter beats the base policy", True)]
    for setting in answers:  # a swapped chosen/rejected upstream: the final policy writes less than the reference
        answers[setting]["DPO-Iter"] = ["Ok."] * len(QUESTIONS)
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert dict((n, h) for n, h, _ in evaluate.quality_checks(result))["DPO-Iter beats the base policy"] is False
    api = _setup(tmp_path, reference="openai")
    assert evaluate.quality_checks(evaluate.summarise(api, answers, evaluate.judge_answers(api, answers))) == []


def test_the_artifacts_are_saved_under_eval_and_read_back(tmp_path):
    setup = _setup(tmp_path)
    answers = _answers()
    verdicts = evaluate.judge_answers(setup, answers)
    result = evaluate.summarise(setup, answers, verdicts)
    probe = evaluate.CrisisProbe(statements=pd.DataFrame({"statement": ["x"]}), answers={"base": ["Call 988 now."]},
                                 table=evaluate.crisis_probe({"base": ["Call 988 now."]}))
    paths = evaluate.save_evaluation(setup, answers, verdicts, result, probe)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "eval/answers.parquet", "eval/verdicts.parquet", "eval/win_rates.json"]
    saved = setup.layout.load_win_rates()
    assert saved["win_rates"]["no constraint|DPO"]["win_rate"] == 1.0
    assert saved["length_controlled"]["no constraint|base"]["fitted"] is False
    assert saved["crisis_probe"][0]["points to immediate help"] == 1.0
    assert len(setup.layout.load_verdicts()) == len(verdicts)
    assert len(setup.layout.load_eval_answers()) == 2 * 4 * len(QUESTIONS)
    assert evaluate.headline_metrics(result)["win_rate no constraint DPO"] == 1.0


def test_each_policy_is_loaded_once_for_both_settings_and_always_freed(tmp_path, monkeypatch):
    setup = _setup(tmp_path)
    loaded, released = [], []
    monkeypatch.setattr(evaluate, "reference_responses", lambda cfg, run, questions, constrained, chat: ["r"] * 6)
    monkeypatch.setattr(evaluate, "_load", lambda path, cfg: loaded.append(path) or path)
    monkeypatch.setattr("psyco_utils.pool.release_generator", released.append)

    def generate(model, cfg, questions, constrained, seed):
        if model == "models/DPO-Iter":
            raise RuntimeError("out of memory")
        return [f"{model} {'short' if constrained else 'long'}"] * len(questions)

    monkeypatch.setattr(evaluate, "_generate_with", generate)
    with pytest.raises(RuntimeError, match="out of memory"):
        evaluate.generate_answers(setup)
    assert loaded == released == ["models/base", "models/DPO", "models/DPO-Iter"]
    setup.policies.pop("DPO-Iter")
    answers = evaluate.generate_answers(setup)
    assert answers["length constraint"]["DPO"] == ["models/DPO short"] * 6 and answers["no constraint"]["reference"]


def test_the_crisis_probe_reads_every_policy_answer(tmp_path, monkeypatch):
    setup = _setup(tmp_path)
    setup.layout.statements_dir.mkdir()
    pd.DataFrame({"statement_id": ["a", "b", "c"], "text": ["one", "two", "three"],
                  "crisis": [True, False, True]}).to_parquet(setup.layout.statements)
    replies = {"models/base": "Please call 988 right now; are you safe?", "models/DPO": "Just get over it.",
               "models/DPO-Iter": "Tell me more."}
    monkeypatch.setattr(evaluate, "generate_for_eval", lambda path, cfg, texts, constrained, seed:
                        [replies[path]] * len(texts))
    probe = evaluate.probe_crisis(setup)
    assert probe.n == 2 and probe.table.loc["base", "acknowledges risk"] == 1.0
    assert probe.table.loc["DPO", "harmful"] == 1.0 and probe.table.loc["DPO-Iter"].drop("statements").sum() == 0
    assert probe.example()["DPO"] == ("Just get over it.", {"acknowledges risk": False,
                                                           "points to immediate help": False, "harmful": True})
    page = show.crisis_example(probe).data
    assert "Just get over it." in page and "one" not in page.split() and "three" not in page


def test_policy_paths_take_the_last_round_with_a_saved_model(tmp_path):
    cfg = load_profile("tiny", ["models.policy=some/base-model"])
    layout = RunLayout(tmp_path)
    assert evaluate.policy_paths(cfg, tmp_path) == {"base": "some/base-model"}
    for folder in (layout.dpo, layout.dpo_iter_round(2), layout.dpo_iter_round(10)):
        folder.model.mkdir(parents=True)
        (folder.model / "config.json").write_text("{}")
    layout.dpo_iter_round(11).model.mkdir(parents=True)
    assert evaluate.policy_paths(cfg, tmp_path) == {"base": "some/base-model", "DPO": str(layout.dpo.model),
                                                   "DPO-Iter": str(layout.dpo_iter_round(10).model)}


# ------------------------------------------------------------------------------------------------------ the page


@pytest.fixture
def result(tmp_path):
    setup = _setup(tmp_path)
    answers = _answers()
    return evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))


def _legend_above_every_axes(fig) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # a closed figure keeps no drawing canvas of its own
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    return all(legend.y0 >= ax.get_window_extent(renderer).y1 for ax in fig.axes)


@pytest.mark.parametrize("draw", [show.win_rates_by_principle, show.answer_length_histogram])
def test_figures_fit_the_column_with_the_legend_off_the_data(result, draw):
    import matplotlib.pyplot as plt

    fig = draw(result)
    assert fig.number not in plt.get_fignums()  # closed: the page shows it once, as the cell's result
    assert fig.get_figwidth() == pytest.approx(show.FIGURE_WIDTH_IN)
    assert _legend_above_every_axes(fig)
    assert not any(ax.get_legend() for ax in fig.axes)


def test_the_papers_table_is_read_from_the_paper_module():
    frame = show.paper_win_rates().data
    assert list(frame.index) == ["no constraint", "length constraint"]
    assert frame.loc["length constraint", "8B +DPO-Iter"] == 77.0 and frame.loc["no constraint", "Llama3-3B"] == 28.5
    assert frame.shape == (2, 6)


def test_tables_are_styled_and_formatted(result):
    beside = show.win_rates_beside_the_paper(result).to_html()
    assert "100.0% (100.0% to 100.0%)" in beside and "58.5% (3B), 72.9% (8B)" in beside
    assert "psyco-table" in beside
    principles = show.principle_table(result).to_html()
    assert "0.0%" in principles and "clarity" in principles
    lc = show.length_controlled_table(result).to_html()
    assert "extra words" in lc and ">no<" in lc


def test_findings_say_what_the_numbers_show(result):
    text = show.win_rate_findings(result).data
    assert "- DPO is ahead of base: win rate 100.0% against 50.0%" in text
    assert "DPO-Iter is behind DPO" in text or "DPO-Iter is not distinguishable from DPO" in text
    assert "DPO fares worst on clarity: 0.0%" in text or "DPO-Iter fares worst on clarity" in text
    assert "rubric judge lowers clarity" in text
    assert "The length constraint does not measurably change DPO's win rate" in text
    assert "print(" not in text and "\n- " in text
    assert text.startswith("- Checks: base policy against itself is 50% (base against itself: 0.500); DPO-Iter beats")


def test_findings_name_a_failed_check(tmp_path):
    setup = _setup(tmp_path)
    answers = _answers()
    for setting in answers:
        answers[setting]["DPO-Iter"] = ["Ok."] * len(QUESTIONS)
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert "DPO-Iter beats the base policy (DPO-Iter against base: 0.0%) FAILED" in show.win_rate_findings(result).data


def test_examples_are_markdown_blocks_with_outcomes(result):
    page = show.evaluation_examples(result).data
    assert page.count("> ") >= 8 and "DPO-Iter, win against the reference" in page
    assert "Statement 1 (theme: " in page
