"""The colab and paper sources in their published shapes, read through the presets' own source entries.

Each fixture under standin/fixtures/ is written in the shape its hub source is published in (one row per answer
for counsel-chat and Amod).  A test takes the preset's own source entry and changes only ``kind`` and ``path``.
"""

import csv
import importlib.util
import io
import os
from pathlib import Path

import pandas as pd
import pytest

from psyco_utils import data, pool
from psyco_utils.config import load_profile

FIXTURES = Path(__file__).parent.parent / "standin" / "fixtures"
LOCAL_FILES = {  # source name in the presets -> (kind, file in its published format)
    "counsel-chat": ("csv", "counsel-chat.csv"),
    "mental-health-counseling": ("jsonl", "mental_health_counseling_conversations.jsonl"),
    "mentalchat16k": ("csv", "mentalchat16k.csv"),
    "psych8k": ("json", "psych8k.json"),
    "therapytalk": ("jsonl", "therapytalk.jsonl"),
}
HUB_SOURCES = [("colab", "counsel-chat")] + [("paper", name) for name in LOCAL_FILES]


def _builder():
    spec = importlib.util.spec_from_file_location("build_fixtures", FIXTURES / "build_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURE_TEXT = _builder()


def preset_source(profile: str, name: str, path: Path | None = None):
    """The preset's own entry for ``name``, with only ``kind`` and ``path`` changed to the local fixture."""
    (entry,) = [s for s in load_profile(profile).data.sources if s.name == name]
    kind, file_name = LOCAL_FILES[name]
    return entry.model_copy(update={"kind": kind, "path": str(path or FIXTURES / file_name)})


def keyword_labeller(texts):
    return [data.keyword_theme(t)[0] for t in texts]


def prepare(profile: str, sources):
    """The preset's own data settings (lengths, dedup threshold, LLM theme labels) with the given sources."""
    cfg = load_profile(profile).data.model_copy(update={"sources": sources})
    return data.prepare_statements(cfg, llm_labeller=keyword_labeller)


def test_fixtures_are_what_the_builder_writes(tmp_path):
    for path in FIXTURE_TEXT.write_fixtures(tmp_path):
        assert path.read_bytes() == (FIXTURES / path.name).read_bytes(), f"rerun standin/fixtures/build_fixtures.py"


def test_every_hub_source_of_the_presets_has_a_fixture():
    hub = {(p, s.name) for p in ("colab", "paper") for s in load_profile(p).data.sources if s.kind == "hub"}
    assert hub == set(HUB_SOURCES)


@pytest.mark.parametrize("profile, name", HUB_SOURCES)
def test_fixture_loads_through_the_presets_own_entry(profile, name):
    statements, report = prepare(profile, [preset_source(profile, name)])
    counts = dict(report.counts)
    assert counts["rows loaded"] > counts["rows with text"] > counts["one per statement (rows grouped)"]
    assert counts["one per statement (rows grouped)"] > len(statements) > 0
    assert statements["statement_id"].is_unique and statements["source"].eq(name).all()
    load_drops = (report.dropped["step"] == "load").sum()
    assert load_drops == counts["rows loaded"] - counts["rows with text"]
    assert len(statements) + len(report.dropped) - load_drops == counts["one per statement (rows grouped)"]
    answers = report.answers
    assert len(answers) and set(answers["statement_id"]) <= set(statements["statement_id"])
    assert (answers.groupby("statement_id")["rank"].min() == 1).all()
    assert dict(report.answer_counts)["answer cells"] == counts["rows loaded"]
    assert report.per_source.loc[name].tolist() == [counts["rows loaded"], counts["one per statement (rows grouped)"],
                                                    len(statements), len(answers)]


def test_counsel_chat_gives_one_statement_per_question_with_its_answers():
    """Done when: counsel-chat in its published shape loads through the colab preset's own source entry."""
    statements, report = prepare("colab", [preset_source("colab", "counsel-chat")])
    questions = {qid: (title, text, answers) for qid, title, text, _, _, _, answers in FIXTURE_TEXT.COUNSEL_CHAT}
    loaded = {qid for qid, (_, text, _) in questions.items() if text}
    assert dict(report.counts)["one per statement (rows grouped)"] == len(loaded)
    by_id = statements.set_index("source_id")["text"]
    assert by_id["104"].startswith("Why do I feel nothing. For months")
    assert by_id["101"].startswith("How can I stop worrying that my partner will leave me? We have")
    assert by_id["112"].startswith("I compare myself to everyone on social media! Scrolling")
    assert by_id["113"].startswith('My boss called my work "sloppy". It was')
    assert by_id["105"].startswith("My mother criticises everything I do, from the way")  # the body repeats its title
    assert "[EMAIL]" in by_id["109"] and "[PHONE]" in by_id["109"]
    dropped = report.dropped.set_index("statement_id")
    assert dropped.loc["counsel-chat:110", "reason"].str.startswith("empty cell in column 'questionText'").all()
    assert dropped.at["counsel-chat:108", "reason"] == "exact duplicate of counsel-chat:103"

    answers = report.answers.set_index(["statement_id", "rank"])
    top = {qid: max(a, key=lambda x: x[1]) for qid, (_, _, a) in questions.items()}
    assert answers.at[("counsel-chat:117", 1), "upvotes"] == top[117][1] == 4
    assert answers.at[("counsel-chat:117", 1), "answer"] == top[117][0]
    assert answers.loc["counsel-chat:103"]["source_id"].tolist().count("108") == 1  # the duplicate's answer joins
    therapist_ad = report.answers[report.answers["statement_id"] == "counsel-chat:109"]["answer"].str.cat()
    assert "[URL]" in therapist_ad and "[PHONE]" in therapist_ad and "example-counselling" not in therapist_ad
    answer_counts = dict(report.answer_counts)
    assert answer_counts["answer cells"] - answer_counts["with text"] == 1  # one empty answerText cell


def test_amod_repeats_a_context_once_per_response():
    statements, report = prepare("paper", [preset_source("paper", "mental-health-counseling")])
    first = FIXTURE_TEXT.AMOD[0]
    (statement_id,) = statements.loc[statements["text"] == first[0], "statement_id"]
    assert statement_id == "mental-health-counseling:0"
    assert len(report.answers[report.answers["statement_id"] == statement_id]) == len(first[1])
    assert report.answers["upvotes"].isna().all()
    counts = dict(report.answer_counts)
    assert counts["of kept statements"] - counts["distinct per statement"] == 1  # one row repeated whole


def test_all_paper_sources_together_dedup_across_sources():
    sources = [preset_source("paper", name) for name in LOCAL_FILES]
    statements, report = prepare("paper", sources)
    assert statements["statement_id"].is_unique
    assert set(statements["source"]) == set(LOCAL_FILES)
    near = report.dropped[report.dropped["step"] == "near dedup"].set_index("statement_id")["reason"]
    assert near.str.contains("counsel-chat:111").any()  # Amod re-publishes a counsel-chat question without its title


def _counsel_chat_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO((FIXTURES / "counsel-chat.csv").read_text(encoding="utf-8"))))


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_one_id_with_two_texts_names_both_rows_and_the_fix(tmp_path):
    rows = _counsel_chat_rows()
    rows[1]["questionText"] = rows[1]["questionText"].replace("three years", "four years")
    src = preset_source("colab", "counsel-chat", _write_csv(tmp_path / "edited.csv", rows))
    with pytest.raises(data.SourceError) as err:
        data.load_source(src)
    message = str(err.value)
    assert "questionID '101' carries two different texts: row 0" in message and "and row 1" in message
    assert "remove id_column" in message and "each questionID has one text" in message


def test_same_text_with_different_case_and_spacing_is_one_question(tmp_path):
    rows = _counsel_chat_rows()
    rows[1]["questionText"] = "  " + rows[1]["questionText"].replace(" ", "  ")
    loaded = data.load_source(preset_source("colab", "counsel-chat", _write_csv(tmp_path / "spaced.csv", rows)))
    assert loaded.statements["source_id"].is_unique and loaded.rows == len(rows)


def test_upvotes_that_are_not_numbers_name_row_and_column(tmp_path):
    rows = _counsel_chat_rows()
    rows[4]["upvotes"] = "lots"
    src = preset_source("colab", "counsel-chat", _write_csv(tmp_path / "votes.csv", rows))
    with pytest.raises(data.SourceError, match=r"row 4, column 'upvotes': 'lots' is not a number"):
        data.load_source(src)


@pytest.mark.parametrize("title, body, expected", [
    ("Why do I feel nothing", "For months.", "Why do I feel nothing. For months."),
    ("Am I depressed?", "I sleep all day.", "Am I depressed? I sleep all day."),
    ("Help!", "I sleep all day.", "Help! I sleep all day."),
    ("It never ends...", "Again.", "It never ends... Again."),
    ('He called me "lazy"', "Again.", 'He called me "lazy". Again.'),
    ('Is it "normal?"', "Again.", 'Is it "normal?" Again.'),
    ("I feel stuck", "I feel stuck in my job.", "I feel stuck in my job."),
    (None, "Only a body.", "Only a body."),
    ("  ", "Only a body.", "Only a body."),
])
def test_join_title_keeps_a_sentence_boundary(title, body, expected):
    assert data.join_title(title, body) == expected


def test_save_answers_writes_the_artifact(tmp_path):
    _, report = prepare("colab", [preset_source("colab", "counsel-chat")])
    path = data.save_answers(report.answers, tmp_path / "statements")
    assert path == tmp_path / "statements" / "answers.parquet"
    assert pd.read_parquet(path).equals(report.answers)


def test_two_sources_with_one_name_are_an_error():
    source = preset_source("paper", "psych8k")
    with pytest.raises(data.SourceError, match="two source entries share the name 'psych8k'"):
        prepare("paper", [source, source])


# ---------------------------------------------------------------- the tiny profile with an added source


def test_tiny_profile_with_an_added_source_names_the_fix():
    cfg = load_profile("tiny")
    statements, _ = data.prepare_statements(
        cfg.data.model_copy(update={"sources": [*cfg.data.sources, preset_source("colab", "counsel-chat")]}))
    with pytest.raises(ValueError) as err:
        pool.assign_generators(statements, cfg.pool.generators, cfg.pool.responses_per_statement, cfg.seed)
    message = str(err.value)
    assert "can be answered by: tiny-policy-t0.7, tiny-policy-t1.2" in message
    assert "add 2 more generator(s) of kind hf or openai to pool.generators" in message
    assert "{name: tiny-t1.0, kind: hf, model: tiny, temperature: 1.0, max_new_tokens: 40}" in message
    assert "or set pool.responses_per_statement: 2" in message


def test_tiny_profile_with_an_added_source_builds_its_pool_once_the_fix_is_applied(tiny_world, tmp_path):
    base = load_profile("tiny")
    added = [{"name": f"tiny-t{t}", "kind": "hf", "model": "tiny", "temperature": t, "max_new_tokens": 12}
             for t in (0.9, 1.0)]
    generators = [g.model_dump() for g in base.pool.generators] + added
    small_world = {"vocab_size": 600, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "sft_epochs": 1, "sft_max_length": 128, "sft_batch_size": 32}
    cfg = load_profile("tiny", {"pool.generators": generators, "models.tiny": small_world, "seed": 7})
    os.symlink(tiny_world.root, tmp_path / "tiny_world")  # the session's tiny world, reused by its fingerprint
    statements, _ = data.prepare_statements(
        cfg.data.model_copy(update={"sources": [*cfg.data.sources, preset_source("colab", "counsel-chat")]}))
    sample = pd.concat([statements[statements["source"] == "counsel-chat"].head(3),
                        statements[statements["source"] == "bundled"].head(2)])
    responses, stats = pool.build_pool(sample, cfg, tmp_path, progress=False)
    added_rows = responses[responses["statement_id"].str.startswith("counsel-chat:")]
    assert added_rows.groupby("statement_id")["generator"].nunique().eq(4).all()
    assert set(added_rows["generator"]) <= {"tiny-policy-t0.7", "tiny-policy-t1.2", "tiny-t0.9", "tiny-t1.0"}
    assert stats["asked"].sum() == 4 * len(sample)


def test_counsel_chat_in_the_hubs_parquet_layout_loads_through_datasets(tmp_path):
    """The real loading path (datasets.load_dataset) on a local folder laid out like the hub's, with int64 ids and
    upvotes as the hub publishes them; the colab entry keeps kind hub and changes only hub_id."""
    folder = tmp_path / "counsel-chat" / "data"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(_counsel_chat_rows()).astype({"questionID": "int64", "upvotes": "int64", "views": "int64"})
    frame.to_parquet(folder / "train-00000-of-00001.parquet", index=False)
    (entry,) = [s for s in load_profile("colab").data.sources if s.name == "counsel-chat"]
    from_hub = data.load_source(entry.model_copy(update={"hub_id": str(tmp_path / "counsel-chat")}))
    from_csv = data.load_source(preset_source("colab", "counsel-chat"))
    assert from_hub.statements.equals(from_csv.statements)
    assert from_hub.answers["upvotes"].astype(float).tolist() == from_csv.answers["upvotes"].tolist()


def test_a_row_without_an_id_is_a_counted_drop(tmp_path):
    rows = _counsel_chat_rows()
    rows[3]["questionID"] = ""
    loaded = data.load_source(preset_source("colab", "counsel-chat", _write_csv(tmp_path / "no_id.csv", rows)))
    assert loaded.dropped.set_index("row").at[3, "reason"] == "missing id in column 'questionID'"
    assert "" not in set(loaded.statements["source_id"])
