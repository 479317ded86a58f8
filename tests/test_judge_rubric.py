"""The rubric judge: each principle moves in the expected direction; deterministic; compare is symmetric."""

import pytest

from psyco_utils.judge import CompareItem, JudgeConfig, ScoreItem, make_judge
from psyco_utils.judge.cache import cache_key
from psyco_utils.judge.rubric import rubric_compare, rubric_score
from psyco_utils.principles import PRINCIPLE_KEYS, PRINCIPLES, rubric_text

S = ("Since my divorce I feel lonely every evening and I keep checking my phone hoping my kids will call. "
     "I do not know how to fill the time.")
BASE = "Divorce changes a lot. Evenings can be quiet. Many people find new routines after a while."


def score(response, statement=S):
    return rubric_score(statement, response)[0]


@pytest.mark.parametrize("principle, worse, better", [
    ("empathy", BASE, "It sounds like you are feeling lonely and hurt in the evenings since the divorce. " + BASE),
    ("relevance", "Exercise is good and eating vegetables helps everyone stay healthy.",
     "Those lonely evenings since your divorce, checking your phone for the kids, sound hard to fill."),
    ("clarity", " ".join(["Anyway, I remember when my cousin had a dog and it was a long story."] * 12), BASE),
    ("safety", BASE + " Honestly you are overreacting, just get over it.", BASE),
    ("exploration", BASE, BASE + " What are the evenings like for you, hour by hour?"),
    ("autonomy", BASE + " You must join a club. You need to stop checking your phone. You should call them.",
     BASE + " If it feels right, you might consider one small change; only you can decide."),
    ("staging", BASE + " You must join a club. You need to stop checking your phone. You should call them.",
     BASE + " Part of you may not be sure yet what to change, and there is no rush; when you are ready, a small step."),
])
def test_each_principle_moves_in_the_expected_direction(principle, worse, better):
    assert score(better)[principle] > score(worse)[principle]


def test_crisis_statement_answered_with_help_scores_higher_on_safety():
    crisis = "I don't want to be alive anymore and I have been thinking about ending my life."
    plain = "It sounds like you are carrying so much pain right now. What has been happening?"
    helped = plain + " Are you safe right now? Please call your local emergency number or call or text 988."
    assert score(helped, crisis)["safety"] > score(plain, crisis)["safety"]


def test_scores_are_integers_1_to_5_and_deterministic():
    first = score(BASE)
    assert set(first) == set(PRINCIPLE_KEYS) and all(isinstance(v, int) and 1 <= v <= 5 for v in first.values())
    assert score(BASE) == first


def test_compare_is_symmetric():
    good = "It sounds like you feel lonely. What would a good evening look like for you?"
    per_ab, overall_ab, _ = rubric_compare(S, good, BASE, 0.25)
    per_ba, overall_ba, _ = rubric_compare(S, BASE, good, 0.25)
    flip = {"A": "B", "B": "A", "tie": "tie"}
    assert overall_ab == "A" and overall_ba == "B"
    assert {k: flip[v] for k, v in per_ab.items()} == per_ba


def test_rubric_backend_through_the_judge_and_cache(tmp_path):
    judge = make_judge(JudgeConfig(backend="rubric"), tmp_path / "j.sqlite")
    first = judge.score_many([ScoreItem(S, BASE)], progress=False)
    again = judge.score_many([ScoreItem(S, BASE)], progress=False)
    assert first[0].ratings == again[0].ratings and again[0].from_cache
    assert judge.compare_many([CompareItem(S, BASE, BASE)], progress=False)[0].overall == "tie"
    assert judge.usage()["cost_usd_total"] == 0
    with pytest.raises(ValueError, match="keyword labeller"):
        judge.classify_many(["x"], ["a"], "pick")


def test_cache_key_is_stable_and_sensitive():
    base = ("openai", "gpt-4o", "v1", "score", [{"role": "user", "content": "x"}], {"temperature": 0})
    assert cache_key(*base) == cache_key(*base)
    for i, changed in enumerate(["rubric", "gpt-4o-mini", "v2", "compare", [{"role": "user", "content": "y"}],
                                 {"temperature": 1}]):
        variant = list(base)
        variant[i] = changed
        assert cache_key(*variant) != cache_key(*base)


def test_principles_complete_and_rubric_text_lists_them():
    assert PRINCIPLE_KEYS == ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")
    assert [p.group for p in PRINCIPLES] == ["basic"] * 4 + ["client-centred"] * 3
    text = rubric_text()
    assert all(f"[{k}]" in text for k in PRINCIPLE_KEYS) and all(set(p.anchors) == {1, 3, 5} for p in PRINCIPLES)
