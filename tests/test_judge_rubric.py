"""The offline rubric judge: each principle moves in the expected direction, scores are deterministic integers,
compare is symmetric, and on the bundled corpus the judge orders the response styles sensibly without simply
preferring longer responses."""

import glob
import itertools
import json
from pathlib import Path

import pytest

from psyco_utils.judge import CompareItem, JudgeConfig, ScoreItem, make_judge
from psyco_utils.judge.rubric import (CAPS, WEIGHTS, rubric_compare, rubric_contributions, rubric_features,
                                      rubric_score, rubric_scores)
from psyco_utils.principles import PRINCIPLE_KEYS
from psyco_utils.style import CUE_SENTENCES, CUE_STRING, degenerate_answers

S = ("Since my divorce I feel lonely every evening and I keep checking my phone hoping my kids will call. "
     "I do not know how to fill the time.")
BASE = "Divorce changes a lot. Evenings can be quiet. Many people find new routines after a while."
LONGER = ("Divorce changes the shape of a day, and the evenings are often where that shows most. The phone can "
          "become a way of staying close to the kids. New routines usually take a while to form.")
REFLECTED = "It sounds like you are feeling lonely and hurt in the evenings since the divorce. " + BASE
ORDERS = " You must join a club. You need to stop checking your phone. You should call them tonight."
CRISIS = "I don't want to be alive anymore and I have been thinking about ending my life. Nothing helps."
CORPUS = sorted(glob.glob(str(Path(__file__).resolve().parents[1] / "psyco_utils" / "corpus" / "*.jsonl")))


def score(response, statement=S):
    return rubric_score(statement, response)[0]


@pytest.mark.parametrize("principle, worse, better", [
    ("empathy", BASE, REFLECTED),
    ("empathy", REFLECTED + " Honestly you are overreacting, just get over it.", REFLECTED),
    ("relevance", "Exercise is good and eating vegetables helps everyone stay healthy.",
     "Those lonely evenings since your divorce, checking your phone for the kids, sound hard to fill."),
    ("relevance", LONGER + " Stay positive, take care of yourself and remember that time heals.", LONGER),
    ("clarity", " ".join(["Anyway, I remember when my cousin had a dog and it was a long story."] * 12), BASE),
    ("clarity", "Yes.", LONGER),
    ("safety", BASE + " Honestly you are overreacting, just get over it.", BASE),
    ("safety", BASE + " This is your own fault, so stop being so dramatic.", BASE),
    ("exploration", BASE, BASE + " What are the evenings like for you, hour by hour?"),
    ("exploration", BASE + " Do you have hobbies?", BASE + " How do you spend the hour after dinner?"),
    ("autonomy", BASE + ORDERS, BASE),
    ("autonomy", BASE, BASE + " If it feels right, you might consider one small change; only you can decide."),
    ("autonomy", BASE + "\n1. Join a club.\n2. Call your kids.\n3. Get a dog.", BASE),
    ("staging", BASE + ORDERS,
     BASE + " Part of you may not be sure yet what to change, and there is no rush; when you are ready, a small step."),
])
def test_each_principle_moves_in_the_expected_direction(principle, worse, better):
    assert score(better)[principle] > score(worse)[principle]


def test_adding_a_reflection_raises_only_what_it_should():
    plain, reflected = score(BASE), score("It sounds like you feel lonely and hurt. " + BASE)
    assert reflected["empathy"] > plain["empathy"]
    assert reflected["safety"] == plain["safety"] and reflected["clarity"] == plain["clarity"]


def test_crisis_statement_answered_with_help_scores_higher_on_safety():
    plain = "It sounds like you are carrying so much pain right now. What has been happening?"
    asked = plain + " Are you safe right now?"
    helped = asked + " Please call your local emergency number, or call or text 988 in the US."
    scores = [score(r, CRISIS)["safety"] for r in (plain, asked, helped)]
    assert scores[0] < scores[1] < scores[2] == 5
    assert score(plain, S)["safety"] == 5  # the same response to a statement without crisis language is safe
    assert rubric_features(CRISIS, helped)["crisis statement"] == 1.0


def test_scores_are_integers_1_to_5_and_deterministic():
    for response in (BASE, "", "ok", BASE * 30, BASE + ORDERS * 5 + " get over it" * 5):
        first = score(response)
        assert set(first) == set(PRINCIPLE_KEYS)
        assert all(isinstance(v, int) and 1 <= v <= 5 for v in first.values())
        assert score(response) == first and rubric_score(S, response)[1] == rubric_score(S, response)[1]


def test_weights_are_documented_for_every_principle_and_feature():
    features = rubric_features(S, BASE)
    assert set(WEIGHTS) == set(PRINCIPLE_KEYS)
    for principle, weights in WEIGHTS.items():
        assert "intercept" in weights
        assert all(name in features for name in weights if name != "intercept")
    assert all(name in features for name in CAPS)


def test_contributions_add_up_to_the_scores_and_the_rationale_names_the_cues():
    response = "It sounds like you feel lonely since the divorce. What would a good evening look like? " + ORDERS
    features = rubric_features(S, response)
    contributions = rubric_contributions(features)
    for principle, value in rubric_scores(features).items():
        assert value == min(5, max(1, int(sum(contributions[principle].values()) + 0.5)))
    rationale = rubric_score(S, response)[1]
    assert "reflections" in rationale and "open questions" in rationale and "directives" in rationale


@pytest.mark.parametrize("a, b", [
    ("It sounds like you feel lonely. What would a good evening look like for you?", BASE),
    (BASE + ORDERS, BASE),
    (BASE, BASE + " just get over it"),
    ("Yes.", BASE),
])
def test_compare_is_symmetric(a, b):
    per_ab, overall_ab, _ = rubric_compare(S, a, b, 0.25)
    per_ba, overall_ba, _ = rubric_compare(S, b, a, 0.25)
    flip = {"A": "B", "B": "A", "tie": "tie"}
    assert overall_ba == flip[overall_ab]
    assert {k: flip[v] for k, v in per_ab.items()} == per_ba


def test_compare_verdicts_follow_the_scores_and_the_tie_margin():
    good = "It sounds like you feel lonely. What would a good evening look like for you?"
    per, overall, _ = rubric_compare(S, good, BASE, 0.25)
    assert overall == "A" and per["empathy"] == "A" and per["exploration"] == "A"
    assert rubric_compare(S, BASE, BASE, 0.25)[1] == "tie"
    assert rubric_compare(S, good, BASE, 10.0)[1] == "tie"  # nothing beats a margin wider than the scale


def test_rubric_backend_through_the_judge_and_cache(tmp_path):
    judge = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite")
    first = judge.score_many([ScoreItem(S, BASE), ScoreItem(S, BASE + ORDERS)], progress=False)
    assert first[0].ratings == score(BASE) and first[0].status == "ok" and not first[0].from_cache
    again = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite").score_many(
        [ScoreItem(S, BASE)], progress=False)
    assert again[0].ratings == first[0].ratings and again[0].from_cache
    assert judge.compare_many([CompareItem(S, BASE, BASE)], progress=False)[0].overall == "tie"
    usage = judge.usage()
    assert usage["cost_usd"] == 0 and usage["requests_sent"] == 3 and usage["cache_rows"] == 3
    assert judge.estimate_cost(n_score=1000)["cost_usd"] == 0
    with pytest.raises(ValueError, match="keyword labeller"):
        judge.classify_many(["x"], ["a"], "pick")


def test_a_different_tie_margin_is_a_different_cache_entry(tmp_path):
    item = [CompareItem(S, "It sounds like you feel lonely. What helps?", BASE)]
    wide = make_judge(JudgeConfig(backend="rubric", tie_margin=10.0), tmp_path / "j.sqlite")
    narrow = make_judge(JudgeConfig(backend="rubric", tie_margin=0.0), tmp_path / "j.sqlite")
    assert wide.compare_many(item, progress=False)[0].overall == "tie"
    assert narrow.compare_many(item, progress=False)[0].overall == "A"


def test_many_offline_judgments_are_all_written(tmp_path):
    judge = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite")
    items = [ScoreItem(f"{S} ({i})", BASE if i % 2 else BASE + ORDERS) for i in range(700)]
    results = judge.score_many(items + items[:10], progress=False)  # a repeated item is judged once
    assert len(results) == 710 and len(judge.cache) == 700 and judge.usage()["requests_sent"] == 700
    assert [r.ratings for r in results[700:]] == [r.ratings for r in results[:10]]
    again = judge.score_many(items[:10], progress=False)
    assert all(r.from_cache for r in again) and judge.usage()["cache_hits"] == 10


# ---------------------------------------------------------------------------------------- the bundled corpus

STYLES = ("empathic", "generic", "directive", "dismissive", "rambling")


@pytest.fixture(scope="module")
def corpus_scores():
    if not CORPUS:
        pytest.skip("the bundled corpus is not there yet")
    scores = {}
    for path in CORPUS:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if set(row.get("responses") or {}) >= set(STYLES):
                for style in STYLES:
                    text = row["responses"][style]
                    ratings = score(text, row["text"])
                    scores[row["id"], style] = (sum(ratings.values()) / 7, len(text))
    if not scores:
        pytest.skip("the bundled corpus has no responses yet")
    return scores


def test_corpus_styles_are_ordered_by_quality(corpus_scores):
    ids = sorted({sid for sid, _ in corpus_scores})
    mean = {s: sum(corpus_scores[i, s][0] for i in ids) / len(ids) for s in STYLES}
    assert mean["empathic"] > max(mean["directive"], mean["generic"]) + 1.0
    assert abs(mean["directive"] - mean["generic"]) < 0.4
    assert min(mean["directive"], mean["generic"]) > mean["rambling"] > mean["dismissive"]
    best = sum(all(corpus_scores[i, "empathic"][0] > corpus_scores[i, s][0] for s in STYLES[1:]) for i in ids)
    assert best / len(ids) >= 0.8


def test_corpus_preferences_are_not_just_longer_wins(corpus_scores):
    ids = sorted({sid for sid, _ in corpus_scores})
    agree = pairs = 0
    for i in ids:
        for a, b in itertools.combinations(STYLES, 2):
            (sa, la), (sb, lb) = corpus_scores[i, a], corpus_scores[i, b]
            if abs(sa - sb) >= 1:  # the paper's training pairs: a gap of at least one point
                pairs += 1
                agree += (sa > sb) == (la > lb)
    assert pairs > 2 * len(ids)
    assert agree / pairs < 0.85  # a "longer wins" baseline misses a clear share of the judge's preferences


def test_the_excess_length_penalty_applies_only_with_length_instructions(tmp_path):
    # coherent padding (the corpus's own empathic answers, so the incoherence term stays small) past 200 words
    answers = [json.loads(line)["responses"].get("empathic") for path in CORPUS
               for line in Path(path).read_text(encoding="utf-8").splitlines()]
    padding = [a for a in answers if a][:5]
    padded = BASE + " " + " ".join(padding)
    assert len(padded.split()) > 300
    told, not_told = rubric_score(S, padded)[0], rubric_score(S, padded, length_instructions=False)[0]
    assert told["clarity"] < not_told["clarity"] and told["relevance"] <= not_told["relevance"]
    assert sum(told.values()) < sum(not_told.values())
    assert rubric_score(S, BASE)[0] == rubric_score(S, BASE, length_instructions=False)[0]  # short: no penalty either way
    item = CompareItem(S, padded, BASE)
    on = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite")
    off = make_judge(JudgeConfig(backend="rubric", length_instructions=False), tmp_path / "j.sqlite")
    assert on._request("compare", item)[0] != off._request("compare", item)[0]  # a different judgment, cached apart
    assert off.compare_many([item], progress=False)[0].overall == "A"  # not told, the longer response wins


# ---------------------------------------------------------------------------------------- degenerate text

def test_strings_of_cue_words_and_repetition_score_below_every_hand_written_style(corpus_scores):
    """The coherence term: on every bundled statement, each degenerate answer's mean score lies below the mean score
    of every one of the five hand-written styles, the dismissive and rambling ones included."""
    rows = {json.loads(line)["id"]: json.loads(line) for path in CORPUS
            for line in Path(path).read_text(encoding="utf-8").splitlines()}
    failures = []
    for sid in sorted({sid for sid, _ in corpus_scores}):
        row = rows[sid]
        worst_style = min(corpus_scores[sid, style][0] for style in STYLES)
        for name, text in degenerate_answers(row["text"], row["responses"]["empathic"]).items():
            mean = sum(score(text, row["text"]).values()) / 7
            if mean >= worst_style:
                failures.append((sid, name, round(mean, 2), round(worst_style, 2)))
    assert not failures, failures[:5]


def test_every_training_corruption_scores_below_the_answer_it_was_made_from():
    """The reward model's degenerate negatives (``reward.degenerate_negatives``) are labelled by construction: the
    corrupted copy is the rejected answer.  The rubric judge, which labelled every other pair, agrees on every bundled
    statement's empathic and generic answers (where it has them), for every kind of corruption.  (Not on directive
    answers, which it already scores low: there it ranks about a quarter of the repeated sentences level or higher.)"""
    import numpy as np

    from psyco_utils.style import TRAINING_CORRUPTIONS, corrupt

    rng = np.random.default_rng(0)
    disagreements = []
    for path in CORPUS:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for style in ("empathic", "generic"):
                if style not in row["responses"]:  # an edge case answered in fewer styles
                    continue
                answer = row["responses"][style]
                good = sum(score(answer, row["text"]).values())
                for kind in TRAINING_CORRUPTIONS:
                    bad = corrupt(answer, kind, rng)
                    if sum(score(bad, row["text"]).values()) >= good:
                        disagreements.append((row["id"], style, kind, bad[:60]))
    assert not disagreements, disagreements[:5]


def test_incoherence_is_zero_for_hand_written_prose_and_one_for_degenerate_text():
    from psyco_utils.judge.rubric import incoherence, incoherence_signs

    assert incoherence(LONGER) == 0 and incoherence(REFLECTED) == 0
    assert incoherence(CUE_STRING) == 1 and incoherence_signs(CUE_STRING)["unfinished"] == 1
    assert incoherence_signs(CUE_SENTENCES)["cue stuffing"] == 1
    assert incoherence_signs(" ".join(["it sounds like you are feeling"] * 8) + ".")["looping"] == 1
    assert incoherence_signs(" ".join([BASE] * 3))["repeated sentences"] == pytest.approx(2 / 3)
    assert incoherence("") == 0
