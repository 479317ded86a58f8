"""The seven principles as data: complete, in the released order, and rendered into a fixed rubric."""

import dataclasses

import pytest

from psyco_utils.principles import (BY_KEY, GROUPS, PRINCIPLE_KEYS, PRINCIPLES, PROMPT_VERSION, Principle,
                                    overall_score, rubric_text)


def test_keys_are_the_released_column_names_in_order():
    assert PRINCIPLE_KEYS == ("empathy", "relevance", "clarity", "safety", "exploration", "autonomy", "staging")
    assert tuple(p.key for p in PRINCIPLES) == PRINCIPLE_KEYS
    assert list(BY_KEY) == list(PRINCIPLE_KEYS) and all(BY_KEY[p.key] is p for p in PRINCIPLES)


def test_groups_names_definitions_and_anchors_are_complete():
    assert [p.group for p in PRINCIPLES] == ["basic"] * 4 + ["client-centred"] * 3
    assert GROUPS == ("basic", "client-centred")
    assert len({p.name for p in PRINCIPLES}) == 7
    for p in PRINCIPLES:
        assert p.name and len(p.definition) > 40 and p.look_for
        assert list(p.anchors) == [1, 3, 5]
        assert all(len(text) > 20 for text in p.anchors.values())
        assert len(set(p.anchors.values())) == 3


def test_principles_are_frozen_and_validated():
    p = PRINCIPLES[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.key = "other"
    with pytest.raises(ValueError, match="anchors"):
        Principle("x", "X", "basic", "a definition", {1: "low", 5: "high"})
    with pytest.raises(ValueError, match="group"):
        Principle("x", "X", "advanced", "a definition", {1: "low", 3: "mid", 5: "high"})


def test_rubric_text_lists_every_principle_and_anchor_and_is_fixed():
    text = rubric_text()
    assert text == rubric_text()  # byte-identical on every call: provider prompt caching depends on it
    for i, p in enumerate(PRINCIPLES, 1):
        assert f"{i}. {p.name} [{p.key}]" in text and p.definition in text
        assert all(f"Score {s}: {p.anchors[s]}" in text for s in (1, 3, 5))
    assert text.index("[empathy]") < text.index("[relevance]") < text.index("[staging]")
    assert "length" in text  # the judge is told not to reward length for its own sake


def test_rubric_is_long_enough_for_provider_prompt_caching():
    # OpenAI caches prompt prefixes from 1,024 tokens; English runs at about 4 characters per token
    assert len(rubric_text()) / 4 > 1100


def test_prompt_version_and_overall_score():
    assert isinstance(PROMPT_VERSION, str) and PROMPT_VERSION
    ratings = dict(zip(PRINCIPLE_KEYS, (5, 4, 3, 2, 1, 5, 1)))
    assert overall_score(ratings) == pytest.approx(3.0)
    with pytest.raises(KeyError, match="staging"):
        overall_score({k: 3 for k in PRINCIPLE_KEYS[:-1]})
