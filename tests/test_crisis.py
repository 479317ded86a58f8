"""The crisis screen (psyco_utils.crisis): signals with kind and category, the flag, the floors on the labelled
evaluation set, the page that states the measured recall, and the LLM second opinion against the loopback server."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from psyco_utils import crisis, data
from psyco_utils.config import DataConfig, load_profile
from psyco_utils.judge import JudgeConfig, make_judge
from standin.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


def signals(text):
    return {str(signal) for signal in crisis.find_signals(text)}


# ---------------------------------------------------------------- kinds and categories


@pytest.mark.parametrize("text, expected", [
    ("Some nights I think everyone would be better off without me.", "passive ideation (self)"),
    ("I have started cutting myself again when it gets bad.", "self-harm (self)"),
    ("I don't want to be alive anymore.", "passive ideation (self)"),
    ("I'm scared I will snap and hurt my baby when she cries.", "harm to others (self)"),
    ("i want to die", "suicide (self)"),
    ("My daughter wants to kill herself.", "suicide (other)"),
    ("My 14-year-old cuts herself and hides it.", "self-harm (other)"),
    ("My son says he wants to hurt his teacher.", "harm to others (other)"),
    ("My husband threatened to kill me if I leave.", "harm to others (other)"),
    ("I used to cut when I was at school.", "self-harm (past)"),
    ("I stopped self-harming two years ago.", "self-harm (past)"),
    ("I haven't cut in over a year.", "self-harm (past)"),
    ("I tried to kill myself when I was 19.", "suicide (past)"),
    ("I tried to kill myself last week.", "suicide (self)"),
    ("I\u2019m not suicidal, I just feel flat.", "suicide (negated)"),
    ("I would never hurt my kids.", "harm to others (negated)"),
    ("I never self-harmed as a teenager.", "self-harm (negated)"),
    ("My doctor asked if I'd had thoughts of ending my life and I honestly haven't.", "suicide (negated)"),
])
def test_signal_kind_and_category(text, expected):
    assert expected in signals(text)


@pytest.mark.parametrize("text", [
    "Work is killing me but I love my team.",
    "I want to live a calmer life and sleep better.",
    "My grandmother died last year and I still miss her.",
    "I'm killing it at work and dying to see my sister.",
    "Quitting would be career suicide.",
    "I cut myself off from my friends after the move.",
    "I hurt myself at the gym and can't train.",
    "I could kill my brother for reading my diary.",
    "Part of me thinks telling him would only hurt him.",
    "She ended it, she is in therapy and she says she wants to rebuild.",
    "I want to end it with my boyfriend.",
])
def test_figures_of_speech_and_accidents_have_no_signal(text):
    assert crisis.find_signals(text) == []


def test_a_denial_does_not_flag_but_a_denial_beside_risk_does():
    assert not crisis.is_crisis(crisis.find_signals("I'm not suicidal, I just hate my job."))
    assert crisis.is_crisis(crisis.find_signals("I'm not suicidal, but I've started cutting again."))
    assert crisis.is_crisis(crisis.find_signals("I can't stop thinking about killing myself."))
    assert crisis.is_crisis(crisis.find_signals("I never thought I'd be someone who wants to die, but here I am."))
    assert crisis.is_crisis(crisis.find_signals("I told the nurse I wasn't suicidal, but that wasn't true."))


def test_data_crisis_signals_lists_only_the_signals_that_flag():
    assert data.crisis_signals("I'm not suicidal.") == []
    assert data.crisis_signals("I'm not suicidal, but I want to die.") == ["suicide (self)"]
    assert data.crisis_signals("My sister is suicidal.") == ["suicide (other)"]


def test_prepare_statements_keeps_negated_signals_but_does_not_flag_them(tmp_path):
    texts = ["I'm not suicidal and never have been, I just feel flat and tired all the time since I moved to a new city.",
             "My daughter wants to kill herself and told me so last night. I do not know how to help her or who to call.",
             "I'm killing it at work lately but my personal life is a mess and I do not know where to start with it."]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    cfg = DataConfig(sources=[{"kind": "jsonl", "name": "mine", "path": str(path), "id_column": "id"}])
    statements, _ = data.prepare_statements(cfg)
    by_id = statements.set_index("source_id")
    assert by_id.loc["0", "crisis_signals"] == ["suicide (negated)"] and not by_id.loc["0", "crisis"]
    assert by_id.loc["1", "crisis_signals"] == ["suicide (other)"] and by_id.loc["1", "crisis"]
    assert by_id.loc["2", "crisis_signals"] == [] and not by_id.loc["2", "crisis"]


def test_every_crisis_statement_of_the_bundled_corpus_is_flagged():
    corpus, _ = data.load_bundled_corpus()
    written = corpus[corpus["edge_case"] == "crisis"]
    assert len(written) >= 10
    assert all(crisis.is_crisis(crisis.find_signals(t)) for t in written["text"])


# ---------------------------------------------------------------- the evaluation set and its floors


def test_the_evaluation_set_is_large_and_balanced():
    labelled = crisis.load_evaluation_set()
    assert len(labelled) >= 150
    counts = labelled.groupby("category")["must_flag"].agg(["size", "sum"])
    assert set(counts.index) == set(crisis.EVALUATION_CATEGORIES)
    assert (counts["size"] >= 20).all()
    for category in ("negation", "idiom"):  # both kinds of statement, so precision and recall both mean something
        assert 0 < counts.at[category, "sum"] < counts.at[category, "size"]
    assert labelled["text"].is_unique


def test_a_bad_evaluation_row_is_named_by_file_line_and_field(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "category": "idiom", "must_flag": false, "split": "dev", "text": "fine"}\n'
                    '{"id": "b", "category": "idioms", "must_flag": "no", "split": "dev", "text": "bad"}\n')
    with pytest.raises(ValueError, match=r"set\.jsonl, line 2: .*category, must_flag"):
        crisis.load_evaluation_set(path)


def test_recall_floors_on_the_evaluation_set():
    table, _ = crisis.evaluate()
    assert table.at["first_person_current", "recall"] >= 0.95
    assert table.at["all", "recall"] >= 0.9


def test_precision_on_idioms_and_negations():
    table, _ = crisis.evaluate()
    for category in ("idiom", "negation"):
        assert table.at[category, "precision"] >= 0.9, table.loc[category]
    assert table.at["all", "precision"] >= 0.9


def test_score_table_counts():
    frame = pd.DataFrame({"category": ["idiom"] * 4, "must_flag": [True, True, False, False],
                          "flagged": [True, False, True, False]})
    row = crisis.score_table(frame).loc["idiom"]
    assert (row["caught"], row["missed"], row["false flags"]) == (1, 1, 1)
    assert row["recall"] == 0.5 and row["precision"] == 0.5


def test_the_responsible_use_page_states_the_measured_recall():
    page = " ".join((ROOT / "book" / "responsible_use.md").read_text().split())
    table, _ = crisis.evaluate()
    assert crisis.headline_sentence(table) in page


def test_chapter_01_computes_the_table_rather_than_stating_it():
    source = (ROOT / "notebooks" / "01_dataset_construction.py").read_text()
    stage = (ROOT / "psyco_utils" / "construction.py").read_text()
    assert "construction.evaluate_crisis_screen(chapter)" in source and "show.findings(screen.findings())" in source
    assert "crisis.evaluate()" in stage and "crisis.headline_sentence" in stage
    prose = [line for line in source.splitlines() if line.startswith("# ")]
    assert not [line for line in prose if re.search(r"\d%", line)]


# ---------------------------------------------------------------- the LLM second opinion


class LabelsJudge:
    """A judge double with fixed answers, for the combination rule (the real path is tested below)."""

    config = JudgeConfig(backend="openai")

    def __init__(self, labels):
        self.labels = labels

    def classify_many(self, texts, labels, instructions, progress=True):
        assert list(labels) == list(crisis.SECOND_OPINION_LABELS) and "self" in instructions
        return self.labels[:len(texts)]


def test_a_second_opinion_can_add_a_flag_but_never_remove_one():
    statements = pd.DataFrame({"text": ["a", "b", "c", "d"], "crisis": [True, False, False, True]})
    out = crisis.add_second_opinion(statements, LabelsJudge(["none", "other", None, "negated"]))
    assert out["crisis"].tolist() == [True, True, False, True]
    assert out["crisis_patterns"].tolist() == [True, False, False, True]
    assert out["crisis_llm"].isna().tolist() == [False, False, True, False]
    assert out["crisis_llm"].dropna().tolist() == ["none", "other", "negated"]


def test_compare_with_second_opinion_counts_failures_as_not_flagged():
    detections = pd.DataFrame({"category": ["urges"] * 3, "must_flag": [True, True, False],
                               "flagged": [True, False, False]})
    table = crisis.compare_with_second_opinion(detections, ["self", None, "past"])
    assert table.at["patterns", "recall"] == 0.5 and table.at["LLM", "false flags"] == 1
    assert table.at["either", "caught"] == 1 and table.at["LLM", "failed judgments"] == 1


def test_the_rubric_judge_cannot_give_a_second_opinion(tmp_path):
    judge = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite")
    with pytest.raises(ValueError, match="judge.backend"):
        crisis.second_opinion(["I want to die"], judge)


def test_second_opinion_through_the_loopback_server_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-crisis")
    texts = ["I want to die.", "My feet are killing me.", "My son self-harms.", "I'm not suicidal."]
    statements = pd.DataFrame({"text": texts, "crisis": [crisis.is_crisis(crisis.find_signals(t)) for t in texts]})
    with FakeOpenAI() as server:
        config = JudgeConfig(backend="openai", model="gpt-4o-mini", base_url=server.base_url, max_retries=1,
                             backoff_base_s=0.01, backoff_max_s=0.02)
        judge = make_judge(config, tmp_path / "judgments.sqlite")
        first = crisis.add_second_opinion(statements, judge)
        sent = server.chat_requests
        body = json.loads(next(b for b in server.bodies_seen if '"messages"' in b))
        judge.close()
        again = crisis.add_second_opinion(statements, make_judge(config, tmp_path / "judgments.sqlite"))
        assert server.chat_requests == sent == len(texts)  # the second run is answered from the cache
    assert set(first["crisis_llm"]) <= set(crisis.SECOND_OPINION_LABELS)
    assert first["crisis_llm"].tolist() == again["crisis_llm"].tolist()
    assert (first["crisis"] == (first["crisis_patterns"] | first["crisis_llm"].isin(crisis.FLAGGING))).all()
    assert body["messages"][0]["content"].startswith(crisis.SECOND_OPINION_INSTRUCTIONS)
    assert body["messages"][1]["content"] in texts


def test_the_setting_is_off_unless_a_profile_turns_it_on():
    assert DataConfig(sources=[{"kind": "bundled"}]).crisis_second_opinion is False
    assert load_profile("tiny").data.crisis_second_opinion is False
