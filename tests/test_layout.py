"""The run layout: every artifact under the run root, none sharing a path, the paths the rest of the package uses,
and loads that give back what the saves wrote (or say which file and column is wrong)."""

import json

import numpy as np
import pandas as pd
import pytest

from psyco_utils import inputs, reuse
from psyco_utils.layout import ANSWER_COLUMNS, VERDICT_COLUMNS, LayoutError, RunLayout


def test_every_artifact_lies_under_the_run_root_and_no_two_share_a_path(tmp_path):
    layout = RunLayout(tmp_path / "runs" / "tiny")
    artifacts = layout.artifacts()
    assert len(artifacts) > 30
    for name, path in artifacts.items():
        assert path.is_relative_to(layout.root), name
        assert path != layout.root, name
    paths = list(artifacts.values())
    assert len(set(paths)) == len(paths), [p for p in paths if paths.count(p) > 1]


def test_the_layout_agrees_with_the_paths_the_chapters_check_and_the_reuse_record(tmp_path):
    layout = RunLayout(tmp_path)
    assert tmp_path / inputs.STATEMENTS.path == layout.statements
    assert tmp_path / inputs.POOL.path == layout.pool
    assert tmp_path / inputs.PAIRS.path == layout.preference_data_marker
    assert tmp_path / inputs.REWARD_MODEL.path == layout.reward_model.model / "config.json"
    assert tmp_path / inputs.DPO_POLICY.path == layout.dpo.model / "config.json"
    assert layout.dpo.training_record.name == reuse.RECORD_FILE


def test_rounds_are_found_in_numeric_order_and_only_with_a_saved_model(tmp_path):
    layout = RunLayout(tmp_path)
    for k in (2, 10, 1):
        layout.dpo_iter_round(k).model.mkdir(parents=True)
        (layout.dpo_iter_round(k).model / "config.json").write_text("{}")
    layout.dpo_iter_round(11).model.mkdir(parents=True)  # a round that stopped before saving its model
    (layout.dpo_iter_dir / "round_notes").mkdir()
    assert [r.root.name for r in layout.dpo_iter_rounds()] == ["round_1", "round_2", "round_10"]
    with pytest.raises(ValueError, match="count from 1"):
        layout.dpo_iter_round(0)


def test_an_adapter_counts_as_a_saved_model(tmp_path):
    layout = RunLayout(tmp_path)
    assert not layout.dpo.has_model()
    layout.dpo.model.mkdir(parents=True)
    (layout.dpo.model / "adapter_config.json").write_text("{}")
    assert layout.dpo.has_model()


def _verdicts():
    return pd.DataFrame({"setting": ["no constraint"] * 2, "policy": ["DPO"] * 2, "item": [0, 1],
                         "aspect": ["overall", "clarity"], "verdict_policy_first": ["A", None],
                         "verdict_policy_second": ["B", None], "outcome": ["win", None], "policy_words": [40, 12],
                         "reference_words": [20, 12]})


def test_verdicts_and_answers_round_trip(tmp_path):
    layout = RunLayout(tmp_path)
    layout.save_verdicts(_verdicts())
    pd.testing.assert_frame_equal(layout.load_verdicts(), _verdicts()[list(VERDICT_COLUMNS)])
    answers = pd.DataFrame({"setting": ["no constraint"], "responder": ["reference"], "item": [0],
                            "statement_id": ["bundled:3"], "response": ["How does that feel?"]})
    layout.save_eval_answers(answers)
    pd.testing.assert_frame_equal(layout.load_eval_answers(), answers[list(ANSWER_COLUMNS)])


def test_a_frame_without_a_column_is_refused_naming_the_file_and_the_column(tmp_path):
    layout = RunLayout(tmp_path)
    with pytest.raises(LayoutError, match=r"verdicts.parquet: missing column\(s\) \['outcome'\]"):
        layout.save_verdicts(_verdicts().drop(columns="outcome"))
    layout.eval_dir.mkdir()
    _verdicts().drop(columns="policy").to_parquet(layout.verdicts)
    with pytest.raises(LayoutError, match=r"verdicts.parquet: missing column\(s\) \['policy'\]"):
        layout.load_verdicts()
    with pytest.raises(FileNotFoundError, match="answers.parquet"):
        layout.load_eval_answers()


def test_win_rates_round_trip_with_numpy_values(tmp_path):
    layout = RunLayout(tmp_path)
    layout.save_win_rates({"n_statements": np.int64(31), "win_rates": {"no constraint|DPO": {"win_rate": np.float64(0.79)}},
                           "fitted": np.bool_(True)})
    assert layout.load_win_rates() == {"n_statements": 31, "win_rates": {"no constraint|DPO": {"win_rate": 0.79}},
                                       "fitted": True}


def test_reference_answers_are_reused_only_for_the_same_statements(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.load_reference_answers(False, ["a"]) is None
    layout.save_reference_answers(False, ["a", "b"], ["reply a", "reply b"])
    assert layout.load_reference_answers(False, ["a", "b"]) == ["reply a", "reply b"]
    assert layout.load_reference_answers(False, ["b", "a"]) is None
    assert layout.load_reference_answers(True, ["a", "b"]) is None
    with pytest.raises(LayoutError, match="2 questions but 1"):
        layout.save_reference_answers(True, ["a", "b"], ["reply a"])


def test_the_manifest_starts_empty_round_trips_and_names_a_broken_file(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.load_manifest() == {"stages": {}}
    layout.save_manifest({"stages": {"06_win_rate": {"status": "ok"}}, "seed": 1234})
    assert layout.load_manifest() == {"stages": {"06_win_rate": {"status": "ok"}}, "seed": 1234}
    assert not list(tmp_path.glob(".manifest.json.*"))  # the temporary file was moved into place
    with pytest.raises(LayoutError, match="stages"):
        layout.save_manifest({"seed": 1})
    layout.manifest.write_text("{not json")
    with pytest.raises(LayoutError, match="manifest.json: not valid JSON"):
        layout.load_manifest()
    layout.manifest.write_text(json.dumps([1, 2]))
    with pytest.raises(LayoutError, match="expected a JSON object"):
        layout.load_manifest()


def test_chapter_05_summary_and_chapter_01_counts_are_optional(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.load_dpo_iter_metrics() == {} and layout.load_filter_counts() is None
    layout.dpo_iter_dir.mkdir()
    layout.dpo_iter_metrics.write_text(json.dumps({"held_out_mean_reward": {"DPO": 1.0}}))
    assert layout.load_dpo_iter_metrics()["held_out_mean_reward"] == {"DPO": 1.0}
    layout.statements_dir.mkdir()
    layout.filter_counts.write_text("step,count\nloaded,3\n")
    with pytest.raises(LayoutError, match="filter_counts.csv: missing column"):
        layout.load_filter_counts()


def test_relative_paths_are_what_pages_show(tmp_path):
    layout = RunLayout(tmp_path / "runs" / "tiny")
    assert layout.relative(layout.scored_pool) == "pool/scored.parquet"
    assert layout.relative(layout.dpo_iter_round(3).pairs) == "dpo_iter/round_3/pairs.parquet"
    with pytest.raises(ValueError):
        layout.relative(tmp_path / "elsewhere.parquet")


# ------------------------------------------------------------------------------------------ run folders by model


@pytest.mark.parametrize("policy, tag", [
    ("tiny", None),
    ("meta-llama/Llama-3.2-3B-Instruct", "llama-3.2-3b-instruct"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5-0.5b-instruct"),
    ("/data/models/My Counsellor v2/", "my-counsellor-v2"),
    ("runs/standin/models/meta-llama/Llama-3.2-3B-Instruct", "llama-3.2-3b-instruct"),
    ("C:\\models\\Phi-3-mini", "phi-3-mini"),
])
def test_a_policy_keys_its_run_by_the_last_part_of_its_name(policy, tag):
    from psyco_utils.layout import model_tag

    assert model_tag(policy) == tag


def test_3b_and_8b_runs_of_one_profile_sit_side_by_side_and_the_tiny_run_stays_put(tmp_path, monkeypatch):
    from psyco_utils.config import load_profile, run_dir
    from psyco_utils.layout import run_subfolder, runs_by_model

    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    three = run_dir(load_profile("paper"))
    eight = run_dir(load_profile("paper", ["models.policy=meta-llama/Llama-3.1-8B-Instruct"]))
    tiny = run_dir(load_profile("tiny"))
    assert three == tmp_path / "paper" / "llama-3.2-3b-instruct" and three.is_dir()
    assert eight == tmp_path / "paper" / "llama-3.1-8b-instruct" and tiny == tmp_path / "tiny"
    assert run_subfolder("paper", "meta-llama/Llama-3.1-8B-Instruct") == "paper/llama-3.1-8b-instruct"
    assert run_dir(load_profile("paper"), tmp_path / "elsewhere") == tmp_path / "elsewhere/paper/llama-3.2-3b-instruct"

    assert runs_by_model("paper") == {}  # folders without a manifest are not runs yet
    for folder in (three, eight):
        RunLayout(folder).save_manifest({"stages": {}})
    (tmp_path / "paper" / "notes").mkdir()
    assert runs_by_model("paper") == {"llama-3.1-8b-instruct": eight, "llama-3.2-3b-instruct": three}
    RunLayout(tiny).save_manifest({"stages": {}})
    assert runs_by_model("tiny") == {"tiny": tiny} and runs_by_model("colab") == {}


def test_model_runs_of_one_profile_share_its_dataset_but_not_their_models(tmp_path, monkeypatch):
    from psyco_utils.config import load_profile, run_dir
    from psyco_utils.inputs import PAIRS, REWARD_MODEL, missing_inputs

    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    three_cfg, eight_cfg = load_profile("paper"), load_profile("paper", ["models.policy=meta-llama/Llama-3.1-8B-Instruct"])
    three, eight = RunLayout(run_dir(three_cfg)), RunLayout(run_dir(eight_cfg))
    for shared in ("statements", "pool", "judgments", "preference_data", "pool_partial"):
        assert getattr(three, shared) == getattr(eight, shared)
        assert getattr(three, shared).relative_to(tmp_path / "paper").parts[0] != "llama-3.2-3b-instruct"
    assert three.reward_model.root != eight.reward_model.root and three.manifest != eight.manifest
    assert three.relative(three.judgments) == "../judgments.sqlite"
    assert three.relative(three.reward_model.model) == "reward_model/model"

    three.preference_data_marker.parent.mkdir(parents=True)
    three.preference_data_marker.write_text("{}")  # the 3B run judged the pairs: the 8B run finds them
    assert missing_inputs("03_reward_model", eight_cfg, eight.root) == []
    assert missing_inputs("04_dpo", eight_cfg, eight.root) == [REWARD_MODEL]
    assert PAIRS.location(eight.root) == eight.preference_data_marker

    tiny = RunLayout(run_dir(load_profile("tiny")))
    assert tiny.dataset_root == tiny.root and tiny.judgments == tmp_path / "tiny" / "judgments.sqlite"


def test_the_manifest_records_the_model_its_run_is_keyed_by(tmp_path, monkeypatch):
    from psyco_utils.config import load_profile, run_dir
    from psyco_utils.layout import runs_by_model
    from psyco_utils.manifest import record_stage

    monkeypatch.setenv("PSYCO_RUNS_DIR", str(tmp_path))
    cfg = load_profile("paper", ["models.policy=meta-llama/Llama-3.1-8B-Instruct"])
    record_stage(cfg, run_dir(cfg), "03_reward_model", 1.0, {})
    manifest = RunLayout(run_dir(cfg)).load_manifest()
    assert manifest["model_tag"] == "llama-3.1-8b-instruct" and manifest["policy"] == "meta-llama/Llama-3.1-8B-Instruct"
    tiny = load_profile("tiny")
    record_stage(tiny, run_dir(tiny), "03_reward_model", 1.0, {})
    assert RunLayout(run_dir(tiny)).load_manifest()["model_tag"] is None
    assert list(runs_by_model("paper")) == ["llama-3.1-8b-instruct"]
