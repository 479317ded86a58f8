"""The style measures of chapters 04 and 05: the classifier recognises the bundled styles and refuses blends and
non-answers, distinct-n and the repeated-4-gram rate count what they say, the empathic share's paired change sees a
real shift and no shift, and the tiny world's targets become the chapter's checks."""

import numpy as np
import pytest

from psyco_utils import style
from psyco_utils.data import load_bundled_corpus


@pytest.fixture(scope="module")
def corpus():
    _, responses = load_bundled_corpus()
    return responses


@pytest.fixture(scope="module")
def classifier(corpus):
    # trained on every other statement's answers, tested on the rest: no answer is classified by a model that saw it
    ids = sorted(corpus["statement_id"].unique())
    train = corpus[corpus["statement_id"].isin(ids[::2])]
    return style.fit_style_classifier(train["text"].tolist(), train["style"].tolist())


def test_held_out_bundled_answers_get_their_own_style(corpus, classifier):
    ids = sorted(corpus["statement_id"].unique())
    test = corpus[corpus["statement_id"].isin(ids[1::2])]
    labels = classifier.classify(test["text"].tolist())
    assert np.mean(np.array(labels) == test["style"].to_numpy()) >= 0.95


def test_blends_and_non_answers_are_unclassifiable(corpus, classifier):
    by_style = {s: corpus[corpus["style"] == s]["text"].iloc[0] for s in style.STYLES}
    blend = " ".join(by_style[s] for s in ("generic", "directive", "dismissive"))
    labels = classifier.classify(["", "zebra quantum lattice", blend])
    assert labels[0] == style.UNCLASSIFIABLE and labels[1] == style.UNCLASSIFIABLE
    assert classifier.classify([by_style["empathic"]]) == ["empathic"]
    with pytest.raises(ValueError, match="not among"):
        style.fit_style_classifier(["a b", "c d"], ["empathic", "kind"])


def test_distinct_n_and_repeated_4grams_count_what_they_say():
    assert style.distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert style.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert style.repeated_ngram_rate(["one two three four five"]) == 0
    # "a b c d" then "a b c d" again: 5 four-grams, of which the last is a repeat of the first
    assert style.repeated_ngram_rate(["a b c d a b c d"]) == pytest.approx(1 / 5)
    assert np.isnan(style.repeated_ngram_rate(["too short"]))


def test_a_shift_to_empathic_answers_has_a_paired_interval_above_zero(corpus, classifier):
    empathic = corpus[corpus["style"] == "empathic"]["text"].tolist()[:20]
    dismissive = corpus[corpus["style"] == "dismissive"]["text"].tolist()[:20]
    old = [[d, d, e, d] for d, e in zip(dismissive, empathic)]  # a quarter empathic
    new = [[e, e, e, d] for d, e in zip(dismissive, empathic)]  # three quarters empathic
    change = style.style_share_change(new, old, classifier=classifier, seed=1)
    assert change["difference"] == pytest.approx(0.5) and change["ci_low"] > 0
    same = style.style_share_change(old, old, classifier=classifier, seed=1)
    assert same["difference"] == 0 and same["ci_low"] <= 0 <= same["ci_high"]
    with pytest.raises(ValueError, match="pair the same statements"):
        style.style_share_change(new[:3], old, classifier=classifier)


class _Chapter:
    def __init__(self, policy):
        from types import SimpleNamespace

        self.cfg = SimpleNamespace(checks="report", models=SimpleNamespace(policy=policy))
        self.recorded = []

    def record_check(self, result):
        self.recorded.append(result)


def test_the_tiny_worlds_style_targets_are_checked_only_for_the_tiny_policy(corpus, classifier, monkeypatch):
    monkeypatch.setattr("psyco_utils.checks._show_failure", lambda result: None)
    empathic = corpus[corpus["style"] == "empathic"]["text"].tolist()[:12]
    generic = corpus[corpus["style"] == "generic"]["text"].tolist()[:12]
    answers = {"base": [[g, e] for g, e in zip(generic, empathic)], "DPO": [[e, e] for e in empathic],
               "looping DPO": [["I hear you. " * 30 + e, e] for e in empathic]}
    styles = style.compare_styles(answers, baseline="base", seed=0, classifier=classifier)
    assert styles.classifiable("base") == 1 and styles.table.loc["DPO", "empathic"] == 1
    assert styles.max_repeated()[0] == "looping DPO"
    tiny = _Chapter("tiny")
    results = style.require_style_targets(tiny, styles, trained=["DPO"])
    assert [r.passed for r in results] == [False, True, True]  # the looping policy fails the first check
    assert all(r.model_quality for r in results)  # what the policies write is what training achieved
    assert "looping DPO" in results[0].message
    assert style.require_style_targets(_Chapter("meta-llama/Llama-3.2-3B-Instruct"), styles, ["DPO"]) == []


def test_degenerate_text_is_ranked_by_the_scorer_given():
    statements = ["I feel anxious before every exam and cannot sleep."] * 3
    _, responses = load_bundled_corpus()
    styled = {s: responses[responses["style"] == s]["text"].tolist()[:3] for s in style.STYLES}
    by_length = style.rank_degenerate(lambda s, a: [len(x) for x in a], statements, styled)
    assert set(by_length.index) >= {*style.STYLES, "cue string", "word salad"}
    assert by_length.loc["word salad", "below every style"] == 1  # the shortest text
    assert np.isnan(by_length.loc["empathic", "below every style"])


def test_each_training_corruption_is_degenerate_reproducible_and_named_when_unknown():
    answer = ("It sounds like the evenings are the hardest part. You have been carrying this alone for a while. "
              "What would make tonight a little easier?")
    for kind in style.TRAINING_CORRUPTIONS:
        first = style.corrupt(answer, kind, np.random.default_rng(5))
        assert first == style.corrupt(answer, kind, np.random.default_rng(5)) != answer
    repeated = style.corrupt(answer, "a sentence repeated", np.random.default_rng(0))
    looping = style.corrupt(answer, "a phrase looping", np.random.default_rng(0))
    assert style.repeated_ngram_rate([repeated]) > 0.5 and style.repeated_ngram_rate([looping]) > 0.5
    assert len(looping.split()) == len(answer.split())  # as long as the answer: length tells the reward model nothing
    assert 0.7 < len(repeated.split()) / len(answer.split()) < 2.5
    with pytest.raises(ValueError, match="known: a sentence repeated, a phrase looping"):
        style.corrupt(answer, "reversed", np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty answer"):
        style.corrupt("  ", "a phrase looping", np.random.default_rng(0))


def test_the_ranking_says_which_degenerate_kinds_the_scorer_was_trained_on():
    statements = ["I feel anxious before every exam and cannot sleep."] * 3
    _, responses = load_bundled_corpus()
    styled = {s: responses[responses["style"] == s]["text"].tolist()[:3] for s in style.STYLES}
    ranking = style.rank_degenerate(lambda s, a: [len(x) for x in a], statements, styled,
                                    trained_on=list(style.TRAINING_CORRUPTIONS.values()))
    assert ranking.loc["a phrase looping", "family trained on"] == "yes"
    assert ranking.loc["word salad", "family trained on"] == "no"
    assert ranking.loc["cue string", "family trained on"] == "no"
    assert ranking.loc["empathic", "family trained on"] is None
    from psyco_utils import show

    text = show.degenerate_findings(ranking).data
    assert "2 kinds of a family it was trained on" in text and "5 kinds it never saw in training" in text
    untrained = style.rank_degenerate(lambda s, a: [len(x) for x in a], statements, styled)
    assert "saw no degenerate text in training" in show.degenerate_findings(untrained).data
