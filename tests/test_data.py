"""Every data function of chapter 01: sources, normalisation, filters, both de-duplications, scrubbing, themes
(the crisis screen is tested in tests/test_crisis.py)."""

import json

import pandas as pd
import pytest

from psyco_utils import data
from psyco_utils.config import DataConfig, SourceConfig


# ---------------------------------------------------------------- normalisation and length


def test_normalize_text_unicode_quotes_whitespace():
    raw = "I\u2019m  so \u201ctired\u201d\u200b.\n\n\n  It\u2026 never\tends \u2014 ever. \x07"
    assert data.normalize_text(raw) == "I'm so \"tired\".\n\nIt... never ends - ever."


def test_normalize_text_nfkc_and_empty():
    assert data.normalize_text("\uff21\uff22 \ufb01ne") == "AB fine"
    assert data.normalize_text(" \n\t ") == ""


def test_length_filter_bounds_inclusive():
    texts = pd.Series(["a" * 99, "a" * 100, "a" * 1000, "a" * 1001])
    reasons = data.length_filter(texts, 100, 1000)
    assert reasons.isna().tolist() == [False, True, True, False]
    assert reasons[0].startswith("too short") and reasons[3].startswith("too long")


# ---------------------------------------------------------------- de-duplication

BASE = ("My sister and I have not spoken in two years since our father's funeral, and every holiday I "
        "wonder whether I should reach out first or wait for her to apologise for what she said that day.")


def test_exact_duplicates_ignore_case_and_whitespace():
    texts = pd.Series([BASE, BASE.upper().replace(" ", "  "), "Something else entirely, about work stress."])
    dup = data.exact_duplicates(texts)
    assert dup.tolist() == [None, 0, None]


def test_near_duplicates_finds_light_rewording_not_unrelated():
    reworded = BASE.replace("two years", "three years").replace("holiday", "Christmas").replace("wonder", "ask myself")
    unrelated = ("Lately I cannot focus at work because my manager keeps changing deadlines and I lie awake going "
                 "over emails in my head until three in the morning, then feel useless all day.")
    texts = pd.Series([BASE, unrelated, reworded], index=[10, 11, 12])
    pairs = data.near_duplicates(texts, threshold=0.6)
    assert pairs[["index", "duplicate_of"]].values.tolist() == [[12, 10]]
    assert 0.6 <= pairs["jaccard"].iloc[0] < 1.0


def test_near_duplicates_threshold_matters():
    reworded = BASE.replace("two years", "three years").replace("holiday", "Christmas").replace("wonder", "ask myself")
    sim = data.jaccard(data.shingles(BASE, 5), data.shingles(reworded, 5))
    texts = pd.Series([BASE, reworded])
    assert len(data.near_duplicates(texts, threshold=min(1.0, sim + 0.05))) == 0
    assert len(data.near_duplicates(texts, threshold=sim - 0.05)) == 1


def test_minhash_estimates_jaccard():
    a, b = data.shingles(BASE, 5), data.shingles(BASE[:120], 5)
    sig = data.minhash_signatures([a, b], num_perm=256, seed=1)
    estimate = (sig[0] == sig[1]).mean()
    assert abs(estimate - data.jaccard(a, b)) < 0.12


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize("text, kind", [
    ("write to me at jane.doe+help@example.com please", "EMAIL"),
    ("see https://example.org/my-story?id=3 for more", "URL"),
    ("my blog www.example.net/posts is private", "URL"),
    ("call me on (555) 013-4477 tonight", "PHONE"),
    ("my UK number is +44 20 7946 0958", "PHONE"),
    ("text 555-013-9988 if you can", "PHONE"),
    ("follow me @sad_panda_22 on there", "HANDLE"),
    ("I live at 42 Maple Grove Street with him", "ADDRESS"),
    ("my SSN 123-45-6789 was stolen", "ID_NUMBER"),
    ("my postcode is SW1A 1AA", "POSTCODE"),
    ("the router at 192.168.0.12 logs everything", "IP_ADDRESS"),
    ("my husband Michael Thompson drinks", "NAME"),
    ("Hi, my name is Priya and I", "NAME"),
])
def test_scrub_positive(text, kind):
    clean, counts = data.scrub_personal_data(text)
    assert f"[{kind}]" in clean, clean
    assert counts.get(kind, 0) >= 1


@pytest.mark.parametrize("text", [
    "I am 34 years old and have been married for 12 years.",
    "It happened at 3:30 pm on 12/05/2019, around 10 minutes after we left.",
    "I take 20 mg of sertraline and sleep 5-6 hours.",
    "We moved to New York last June and I miss London.",
    "I'm Catholic and my family is very traditional.",
    "I feel like I'm at the end of my rope @ work lately.",
    "My score went from 1,200 to 1,450 after a year.",
])
def test_scrub_negative(text):
    clean, counts = data.scrub_personal_data(text)
    assert clean == text and counts == {}


def test_a_scrubbed_url_leaves_the_sentence_punctuation():
    clean, counts = data.scrub_personal_data("I read https://example.org/help. Then I cried, www.site.com/a?b=1, twice.")
    assert clean == "I read [URL]. Then I cried, [URL], twice." and counts == {"URL": 2}


# ---------------------------------------------------------------- themes (crisis flags: tests/test_crisis.py)


def test_keyword_theme():
    assert data.keyword_theme("My boyfriend cheated on me and now I cannot trust anyone.")[0] == "relationships"
    assert data.keyword_theme("I drink a bottle of wine every night to calm down.")[0] == "substance_use"
    assert data.keyword_theme("Blue sky, nice weather.")[0] == "other"


# ---------------------------------------------------------------- sources

LONG = "I keep replaying an argument with my brother and cannot sleep, and I wonder whether I overreacted or he did. "


def _write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_each_source_kind(tmp_path):
    frame = pd.DataFrame({"qid": ["a1", "a2"], "body": [LONG + "one", LONG + "two"], "title": ["T1", None]})
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet", index=False)
    _write(tmp_path, "s.jsonl", "\n".join(json.dumps(r) for r in frame.to_dict("records")))
    _write(tmp_path, "s.json", json.dumps(frame.to_dict("records")))
    for kind in ("csv", "jsonl", "json", "parquet"):
        src = SourceConfig(kind=kind, name=kind, path=str(tmp_path / f"s.{kind}"), text_column="body", id_column="qid")
        kept, dropped, _, rows = data.load_source(src)
        assert kept["source_id"].tolist() == ["a1", "a2"] and rows == 2, kind
        assert kept["source"].eq(kind).all() and dropped.empty


def test_hub_source_reads_local_dataset_directory(tmp_path):
    """The colab/paper path (datasets.load_dataset) on a local folder in the hub's parquet layout."""
    folder = tmp_path / "fake_counsel_chat" / "data"
    folder.mkdir(parents=True)
    pd.DataFrame({"questionID": [1, 2], "questionTitle": ["Can't sleep", "Lonely"],
                  "questionText": [LONG, LONG + "again"]}).to_parquet(folder / "train-00000-of-00001.parquet")
    src = SourceConfig(kind="hub", name="counsel-chat", hub_id=str(tmp_path / "fake_counsel_chat"),
                       text_column="questionText", id_column="questionID", title_column="questionTitle")
    kept = data.load_source(src).statements
    assert kept["source_id"].tolist() == ["1", "2"]
    assert kept["text"].iloc[0].startswith("Can't sleep. I keep")


def test_missing_column_names_source_and_columns(tmp_path):
    pd.DataFrame({"txt": [LONG]}).to_csv(tmp_path / "a.csv", index=False)
    src = SourceConfig(kind="csv", name="forum", path=str(tmp_path / "a.csv"), text_column="text")
    with pytest.raises(data.SourceError, match=r"source forum: text_column 'text' not found; .*'txt'"):
        data.load_source(src)


def test_empty_file_and_missing_file(tmp_path):
    _write(tmp_path, "empty.csv", "")
    with pytest.raises(data.SourceError, match="empty"):
        data.load_source(SourceConfig(kind="csv", path=str(tmp_path / "empty.csv")))
    with pytest.raises(data.SourceError, match="does not exist"):
        data.load_source(SourceConfig(kind="csv", path=str(tmp_path / "nope.csv")))


def test_invalid_utf8_names_line_and_column(tmp_path):
    _write(tmp_path, "bad.csv", b"text\nfine line\nbad \xff\xfe byte\n", mode="wb")
    with pytest.raises(data.SourceError, match=r"bad.csv: invalid UTF-8 at line 3, byte column 5"):
        data.load_source(SourceConfig(kind="csv", path=str(tmp_path / "bad.csv")))


def test_invalid_jsonl_names_line(tmp_path):
    _write(tmp_path, "bad.jsonl", '{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(data.SourceError, match="line 2: invalid JSON"):
        data.load_source(SourceConfig(kind="jsonl", path=str(tmp_path / "bad.jsonl")))


def test_non_text_cells_are_counted_drops(tmp_path):
    _write(tmp_path, "mixed.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": "x", "text": LONG}, {"id": "y", "text": 42}, {"id": "z", "text": None}, {"id": "w"}]))
    kept, dropped, _, _ = data.load_source(SourceConfig(kind="jsonl", name="mixed", path=str(tmp_path / "mixed.jsonl"),
                                                  id_column="id"))
    assert kept["source_id"].tolist() == ["x"]
    assert dropped["source_id"].tolist() == ["y", "z", "w"]
    assert "non-text cell (int)" in dropped["reason"].iloc[0] and dropped["reason"].iloc[1] == "missing text"
    assert dropped["row"].tolist() == [1, 2, 3]


def test_pipeline_accounts_for_every_row(tmp_path):
    huge = "x" * 100_000
    rows = [LONG + "a", LONG + "a", "too short", huge, LONG.replace("brother", "sister") + "a", 5,
            "Email me at someone@example.com, I have felt on edge at work for months and my chest gets tight "
            "every time my manager sends a message after hours."]
    _write(tmp_path, "all.jsonl", "\n".join(json.dumps({"text": r}) for r in rows))
    cfg = DataConfig(sources=[SourceConfig(kind="jsonl", name="t", path=str(tmp_path / "all.jsonl"))])
    statements, report = data.prepare_statements(cfg)
    assert len(statements) + len(report.dropped) == len(rows)
    steps = report.dropped.set_index("statement_id")["step"].to_dict()
    assert steps == {"t:1": "exact dedup", "t:2": "length filter", "t:3": "oversized input", "t:4": "near dedup",
                     "t:5": "load"}
    assert "[EMAIL]" in statements.set_index("statement_id").at["t:6", "text"]
    table = report.counts_table()
    assert table["statements"].iloc[-1] == len(statements)


def test_bundled_corpus_shape_and_edge_cases():
    statements, responses = data.load_bundled_corpus()
    assert len(statements) >= 150
    assert set(statements["theme"]) == set(data.THEMES)
    assert statements["id"].is_unique
    for case in ("too_short", "too_long", "exact_duplicate", "near_duplicate", "personal_data", "crisis"):
        assert (statements["edge_case"] == case).any(), case
    usable = statements[statements["edge_case"].isna() | statements["edge_case"].isin(["personal_data", "crisis"])]
    per_statement = responses.groupby("statement_id")["style"].nunique()
    assert (per_statement.reindex(usable["id"]).fillna(0) >= 4).all()
    assert set(responses["style"]) == set(data.RESPONSE_STYLES)


def test_bundled_corpus_filters_catch_every_edge_case():
    cfg = DataConfig(sources=[SourceConfig(kind="bundled", name="bundled")])
    statements, report = data.prepare_statements(cfg)
    corpus, _ = data.load_bundled_corpus()
    recall = data.edge_case_recall(statements, report, corpus).set_index("edge case")
    for case in ("too_short", "too_long", "exact_duplicate", "near_duplicate", "personal_data", "crisis"):
        assert recall.at[case, "caught"] == recall.at[case, "written"], case
    assert recall.at["ordinary (dropped by mistake)", "caught"] == 0


def test_theme_instructions_name_every_theme_with_its_definition():
    text = data.theme_instructions()
    for theme, definition in data.THEME_DESCRIPTIONS.items():
        assert f"{theme}: {definition}" in text
    assert data.llm_theme_labeller(None) is None

    class Judge:
        def classify_many(self, texts, labels, instructions, progress=True):
            assert instructions == text and list(labels) == list(data.THEMES) and progress is False
            return ["grief"] * len(texts)

    assert data.llm_theme_labeller(Judge())(["a", "b"]) == ["grief", "grief"]


def test_preview_cuts_at_a_word_boundary_and_scrubs():
    text = "Call me on 555-123-4567 please, I keep worrying about everything"
    shown = data.preview(text, 40)
    assert shown.endswith("…") and len(shown) <= 40 and "555" not in shown
    assert shown[:-1] == shown[:-1].rstrip() and not shown[:-1].endswith(("wor", "worr"))
    assert data.preview("short", 40) == "short"
