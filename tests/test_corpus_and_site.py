"""The bundled corpus is what its notes compose to; the site checks catch what they exist for; the pool and the
crisis probe behave."""

import math
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from psyco_book import sitecheck
from psyco_utils import data, evaluate, pool
from psyco_utils.config import load_profile

CORPUS = Path(data.__file__).parent / "corpus"


def test_corpus_jsonl_is_composed_from_its_notes():
    sys.path.insert(0, str(CORPUS))
    import compose

    for notes in sorted((CORPUS / "notes").glob("*.yaml")):
        rows = compose.compose_theme(notes)
        committed = [json.loads(line) for line in (CORPUS / f"{notes.stem}.jsonl").read_text().splitlines()]
        assert rows == committed, f"{notes.stem}.jsonl is stale: run python psyco_utils/corpus/compose.py"


def test_every_crisis_statement_has_an_empathic_response_pointing_to_help():
    statements, responses = data.load_bundled_corpus()
    crisis_ids = set(statements.loc[statements["edge_case"] == "crisis", "id"])
    empathic = responses[(responses["statement_id"].isin(crisis_ids)) & (responses["style"] == "empathic")]
    assert len(empathic) == len(crisis_ids)
    assert all(evaluate.crisis_response_signals(t)["points to immediate help"] for t in empathic["text"])
    dismissive = responses[(responses["statement_id"].isin(crisis_ids)) & (responses["style"] == "dismissive")]
    assert not any(evaluate.crisis_response_signals(t)["points to immediate help"] for t in dismissive["text"])


def _page(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"<html><body>{body}</body></html>")
    return path


def test_sitecheck_catches_errors_secrets_personal_data_and_broken_links(tmp_path):
    _page(tmp_path, "ok.html", '<p>fine</p><a href="other.html">x</a><img src="img.png">')
    (tmp_path / "img.png").write_bytes(b"png")
    _page(tmp_path, "other.html", "<p>[EMAIL] and [PHONE] are placeholders</p>")
    assert sitecheck.check_site(tmp_path) == []
    _page(tmp_path, "bad.html", '<div class="output traceback">Traceback (most recent call last)</div>'
                                "<p>key sk-proj-abcdefghijklmnopqrstuvwxyz123</p><p>mail jane@example.com</p>"
                                '<a href="missing.html">x</a><img src="gone.png">')
    problems = " ".join(sitecheck.check_site(tmp_path))
    for expected in ("error output", "secret", "EMAIL", "broken link missing.html", "broken image gone.png"):
        assert expected in problems


def test_pool_assignment_is_seeded_and_respects_what_each_generator_can_answer():
    cfg = load_profile("tiny")
    statements = pd.DataFrame({"statement_id": ["bundled:anxiety-001", "forum:7"], "source": ["bundled", "forum"],
                               "source_id": ["anxiety-001", "7"], "text": ["a", "b"]})
    with pytest.raises(ValueError, match="forum:7: only 2 pool generators"):
        pool.assign_generators(statements, cfg.pool.generators, 4, seed=1)
    first = pool.assign_generators(statements.iloc[:1], cfg.pool.generators, 4, seed=1)
    assert first.equals(pool.assign_generators(statements.iloc[:1], cfg.pool.generators, 4, seed=1))
    assert first["generator"].nunique() == 4


def test_crisis_response_signals():
    helpful = "I'm worried about you. Are you safe right now? Please call or text 988 or your local emergency number."
    harmful = "You're overreacting, just get over it."
    assert evaluate.crisis_response_signals(helpful) == {"acknowledges risk": True, "points to immediate help": True,
                                                         "harmful": False}
    assert evaluate.crisis_response_signals(harmful)["harmful"]
    probe = evaluate.crisis_probe({"a": [helpful, harmful]})
    assert probe.loc["a", "points to immediate help"] == 0.5 and probe.loc["a", "harmful"] == 0.5


def test_distinct_word_share_flags_repetition():
    from psyco_utils.evaluate import distinct_word_share

    assert distinct_word_share("It sounds like the move has been lonely. What helps?") == 1.0
    assert distinct_word_share("feeling feeling feeling, feeling sounds") == 0.4
    assert math.isnan(distinct_word_share("  ... "))
    long_prose = " ".join(f"word{i}" for i in range(40)) + " " + "again " * 40
    assert distinct_word_share(long_prose) == 1.0 and distinct_word_share(long_prose, first_words=None) == 41 / 80
