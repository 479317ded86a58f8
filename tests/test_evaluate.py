"""Chapter 06's evaluation: judging in both orders, the result object, the checks, the artifacts, freeing each
generator, and the figures, tables and findings the page shows."""

from pathlib import Path

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
    assert [(name, holds, model_quality) for name, holds, _, model_quality in evaluate.quality_checks(result)] == [
        ("base policy against itself is 50%", True, False), ("DPO-Iter beats the base policy", True, True)]
    for setting in answers:  # a swapped chosen/rejected upstream: the final policy writes less than the reference
        answers[setting]["DPO-Iter"] = ["Ok."] * len(QUESTIONS)
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    assert dict((n, h) for n, h, _, _ in evaluate.quality_checks(result))["DPO-Iter beats the base policy"] is False
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
    assert "100.0% (100.0% to 100.0%)" in beside and "paper 3B" in beside and "paper 8B" in beside  # tiny: no size
    assert "58.5%" in beside and "72.9%" in beside
    assert "psyco-table" in beside
    principles = show.principle_table(result).to_html()
    assert "0.0%" in principles and "clarity" in principles
    lc = show.length_controlled_table(result).to_html()
    assert "extra words" in lc and ">no<" in lc and "LC, AlpacaEval 2" in lc and "the book&#x27;s estimator" in lc


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


# ------------------------------------------------------------------------------------- length instructions, sizes


class Lengthwise(LongerWins):
    """Longer wins overall unless the judge is told not to reward length (``length_instructions``), then ties."""

    def __init__(self, length_instructions: bool):
        super().__init__()
        self.length_instructions = length_instructions

    def _verdict(self, a, b, aspect):
        return "tie" if self.length_instructions else super()._verdict(a, b, aspect)


def test_the_length_instruction_contrast_judges_the_same_answers_with_the_setting_flipped(tmp_path, monkeypatch):
    import psyco_utils.judge as judge_module

    made = []

    class FakeJudge(Lengthwise):
        def close(self):
            made.append(self)

    monkeypatch.setattr(judge_module, "make_judge",
                        lambda config, cache_path: FakeJudge(config.length_instructions))
    setup = _setup(tmp_path, judge=Lengthwise(True))  # the tiny profile's judge is told
    answers = _answers()
    verdicts = evaluate.judge_answers(setup, answers)
    flipped = evaluate.judge_with_length_instructions_flipped(setup, answers)
    assert len(made) == 1 and made[0].length_instructions is False  # the other setting, closed after use
    table = evaluate.length_instructions_table(verdicts, flipped, told=True)
    assert table.loc["DPO", ("told", "no constraint")] == 0.5 and table.loc["DPO", ("not told", "no constraint")] == 1.0
    assert table.loc["DPO", ("not told", "constraint effect")] == 0.0
    result = evaluate.summarise(setup, answers, verdicts, flipped=flipped)
    page = show.length_instructions_contrast(result).to_html()
    assert "told: no constraint" in page and "not told: constraint effect" in page
    assert page.index("told: no constraint") < page.index("not told: no constraint")  # the judge as set first
    found = show.win_rate_findings(result).data
    assert "Telling the judge not to reward length moves DPO" in found
    assert "length penalty starts beyond 200 words; the longest answer here has 16, so the instruction cannot" in found
    off = _setup(tmp_path, judge=Lengthwise(True))
    off.cfg = load_profile("tiny", ["eval.length_instructions_contrast=false"])
    assert evaluate.judge_with_length_instructions_flipped(off, answers) is None
    assert "Not run" in show.length_instructions_contrast(evaluate.summarise(off, answers, verdicts)).data


@pytest.mark.parametrize("model, size", [("meta-llama/Llama-3.1-8B-Instruct", "8B"), ("tiny", None),
                                         ("/standins/meta-llama--Llama-3.2-3B-Instruct", "3B"),
                                         ("Qwen/Qwen2.5-0.5B-Instruct", None), ("org/model-13B", None)])
def test_the_policy_size_is_the_papers_column(model, size):
    assert evaluate.policy_size(model) == size


def test_a_run_of_the_other_size_is_found_and_shown_beside_the_papers_column(tmp_path):
    import json

    runs = tmp_path / "runs"
    for name, size, rate in (("paper-8b", "8B", 0.8), ("colab", None, 0.7), ("paper-3b-old", "3B", 0.1)):
        (runs / name / "eval").mkdir(parents=True)
        (runs / name / "eval" / "win_rates.json").write_text(json.dumps(
            {"policy_size": size, "win_rates": {"no constraint|DPO-Iter": {"win_rate": rate}}}))
    own = runs / "paper-3b"
    own.mkdir()
    found = evaluate.runs_of_other_sizes(own, "3B")
    assert list(found) == ["8B"] and found["8B"]["run"] == "paper-8b"
    setup = _setup(own)
    answers = _answers()
    result = evaluate.summarise(setup, answers, evaluate.judge_answers(setup, answers))
    result.policy_size, result.other_sizes = "3B", found
    page = show.win_rates_beside_the_paper(result).to_html()
    assert "this run (3B)" in page and "run paper-8b (8B)" in page and "80.0%" in page and "87.0%" in page
    assert "not run" in page  # the other run has no row for the base policy
    assert "the paper&#x27;s 3B column" in page
    assert "compared with that column; runs of the other size beside it: 8B (run paper-8b)" in \
        show.win_rate_findings(result).data


# ------------------------------------------------------------------------------------------------ human reference


def _human_setup(tmp_path, answers_file: bool):
    from psyco_utils import human_reference

    setup = _setup(tmp_path)
    setup.test_statements = pd.concat([setup.items, pd.DataFrame({"ID": ["s9"], "question": ["Extra statement."],
                                                                  "theme": ["work"]})], ignore_index=True)
    setup.layout.statements_dir.mkdir(parents=True, exist_ok=True)
    ids = [*setup.items["ID"], "s9"]
    pd.DataFrame({"statement_id": ids, "source": "counsel-chat", "source_id": ids, "text": [*QUESTIONS, "x"],
                  "crisis": False}).to_parquet(setup.layout.statements)
    if answers_file:  # s1 has two answers (the top-voted one is the reference), s2 only an unvoted one
        pd.DataFrame({"statement_id": ["s0", "s1", "s1", "s2", "s9"], "source": "counsel-chat",
                      "source_id": ["s0", "s1", "s1", "s2", "s9"], "row": range(5), "rank": [1, 2, 1, 1, 1],
                      "upvotes": [3.0, 1.0, 5.0, np.nan, 2.0],
                      "answer": ["Tell me more.", "Top answer? No, fewer votes.",
                                 "That sounds really hard and tiring. How are you feeling?", "Unvoted.", "Extra answer."],
                      "chars": 1, "pii_replaced": 0}).to_parquet(setup.layout.answers)
    return setup, human_reference


def test_the_human_reference_is_the_top_voted_answer_with_the_same_protocol(tmp_path, monkeypatch):
    setup, human_reference = _human_setup(tmp_path, answers_file=True)
    human = human_reference.prepare(setup)
    assert human.items["ID"].tolist() == ["s0", "s1", "s9"] and not human.stand_in  # s9: another test statement
    assert human.items.set_index("ID").loc["s1", "answer"].startswith("That sounds really hard")
    assert human.without_answer == 4 and human.source == "counsel-chat"
    generated = []
    monkeypatch.setattr(evaluate, "generate_for_eval",
                        lambda path, cfg, questions, constrained, seed: generated.append(questions) or ["Hm."] * len(
                            questions))
    answers = human_reference.policy_answers(setup, human, _answers())
    assert generated == [["Extra statement."]] * 3  # only the statement the chapter did not answer, once per policy
    assert answers["DPO"][:2] == _answers()["no constraint"]["DPO"][:2] and answers["DPO"][2] == "Hm."
    result = human_reference.judge_policies(setup, human, answers)
    # longer wins: DPO (16 words) beats the 3- and 9-word answers, and its generated "Hm." loses to "Extra answer.";
    # base ("How are you?") ties with "Tell me more." and loses twice
    assert result.rate("DPO") == pytest.approx(2 / 3) and result.rate("base") == pytest.approx(0.5 / 3)
    assert set(result.verdicts["policy"]) == {"base", "DPO", "DPO-Iter"}
    assert len(result.verdicts) == 3 * 3 * (len(PRINCIPLE_KEYS) + 1)
    assert "top-voted therapist answer from counsel-chat" in show.human_reference_note(result).data
    assert "No published result" in show.human_reference_note(result).data
    assert "DPO" in show.human_reference_table(result).to_html()


def test_without_human_answers_the_bundled_empathic_responses_stand_in(tmp_path):
    from psyco_utils.data import load_bundled_corpus

    setup, human_reference = _human_setup(tmp_path, answers_file=False)
    _, responses = load_bundled_corpus()
    empathic = responses[responses["style"] == "empathic"].iloc[0]
    pd.DataFrame({"statement_id": ["bundled:" + empathic["statement_id"]], "source": "bundled",
                  "source_id": [empathic["statement_id"]], "text": ["x"], "crisis": False}).to_parquet(
        setup.layout.statements)
    setup.items = pd.DataFrame({"ID": ["bundled:" + empathic["statement_id"]], "question": ["A question."],
                                "theme": ["work"]})
    human = human_reference.prepare(setup)
    assert human.stand_in and human.n == 1 and human.items["answer"].iloc[0][:20] == empathic["text"][:20]
    result = human_reference.judge_policies(setup, human, {p: ["Ok."] for p in setup.policies})
    assert "stand in" in show.human_reference_note(result).data
    setup.cfg = load_profile("tiny", ["eval.human_reference=false"])
    assert human_reference.evaluate_against_human(setup, {}) is None


def test_the_human_reference_is_saved_with_the_win_rates(tmp_path):
    setup, human_reference = _human_setup(tmp_path, answers_file=True)
    human = human_reference.prepare(setup)
    against = human_reference.judge_policies(setup, human, {p: ["A reply of five words."] * 3 for p in setup.policies})
    answers = _answers()
    verdicts = evaluate.judge_answers(setup, answers)
    result = evaluate.summarise(setup, answers, verdicts, human=against)
    probe = evaluate.CrisisProbe(statements=pd.DataFrame({"statement": []}), answers={}, table=pd.DataFrame())
    paths = evaluate.save_evaluation(setup, answers, verdicts, result, probe)
    assert paths[-1].name == human_reference.HUMAN_VERDICTS_FILE and len(pd.read_parquet(paths[-1])) == len(
        against.verdicts)
    saved = setup.layout.load_win_rates()["human_reference"]
    assert saved["n"] == 3 and saved["stand_in"] is False and "DPO" in saved["win_rates"]


def _chapter_cell(notebook: str, marker: str) -> str:
    """The source of the one code cell of ``notebooks/<notebook>.py`` (jupytext percent format) that holds
    ``marker``."""
    source = (Path(__file__).resolve().parent.parent / "notebooks" / f"{notebook}.py").read_text(encoding="utf-8")
    cells = [cell.split("\n", 1)[1] for cell in source.split("\n# %%")[1:] if not cell.startswith(" [markdown]")]
    found = [cell for cell in cells if marker in cell]
    assert len(found) == 1, f"{len(found)} cells of {notebook}.py hold {marker!r}"
    return found[0]


@pytest.mark.parametrize("verdicts", ["separable by length", "mixed"])
def test_chapter_06s_length_controlled_fit_by_hand_equals_the_evaluation_codes(verdicts):
    """The cell of chapter 06 that fits the length model by hand, run on verdicts the evaluation code fits: it must
    agree with scikit-learn's fit within the chapter's tolerance, also when every longer answer wins (the fit has no
    maximum without the penalty; unpenalised Newton steps ran off to a singular Hessian or a coefficient far from
    scikit-learn's, and the check stopped the colab stand-in run)."""
    from psyco_utils import metrics
    from psyco_utils.by_hand import ByHandCheck

    rng = np.random.default_rng(3)
    policy_words, reference_words = rng.integers(40, 160, 8), rng.integers(40, 160, 8)
    longer = policy_words > reference_words
    wins = longer if verdicts == "separable by length" else rng.random(8) < 0.6
    wins[0], wins[1] = True, False  # both labels present: the model is fitted
    overall = pd.DataFrame({"setting": "no constraint", "policy": "DPO", "item": range(8),
                            "outcome": np.where(wins, "win", "loss"), "policy_words": policy_words,
                            "reference_words": reference_words})
    result = type("Result", (), {"length_controlled": evaluate._length_controlled(overall, seed=0,
                                                                                  estimator="minimal",
                                                                                  against_itself=False)})
    namespace = {"np": np, "ByHandCheck": ByHandCheck, "show": show, "metrics": metrics, "result": result,
                 "rows": overall, "outcome": wins.astype(float), "setting": "no constraint", "name": "DPO"}
    exec(_chapter_cell("06_win_rate", "lc_by_hand = {"), namespace)
    check = namespace["lc_check"]
    assert result.length_controlled.loc[("no constraint", "DPO"), "fitted"]
    assert check.agrees, check.table
    assert set(check.by_hand) == {"intercept", "length coefficient", "LC win rate"}
