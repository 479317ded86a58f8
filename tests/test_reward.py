"""Chapter 03: reward-model training with TRL, the length-drop counter, the scorer, HelpSteer2, input validation,
the evaluation and stage result objects, and the chapter's tables, figures and findings."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from psyco_utils import reward, show
from psyco_utils.config import load_profile
from psyco_utils.pair_schema import PairSchemaError, to_trl, validate
from psyco_utils.principles import PRINCIPLE_KEYS

from conftest import handmade_pairs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefs():
    from psyco_utils.pairs import to_dataset_dict

    frame = handmade_pairs()
    return to_dataset_dict({"train": frame.iloc[:24].reset_index(drop=True),
                            "dev": frame.iloc[24:32].reset_index(drop=True),
                            "test": frame.iloc[32:].reset_index(drop=True)})


@pytest.fixture(scope="module")
def cfg(tiny_world):
    return load_profile("tiny", [f"models.reward_backbone={tiny_world.policy_dir}",
                                 "reward.training.num_train_epochs=3",
                                 "reward.training.per_device_train_batch_size=8",
                                 "reward.training.learning_rate=0.003",
                                 "reward.training.logging_steps=1"])


@pytest.fixture(scope="module")
def tokenizer(cfg):
    return reward.load_backbone_tokenizer(cfg)


@pytest.fixture(scope="module")
def trained(cfg, prefs, tokenizer, tmp_path_factory):
    """One training run for the module; max_length set so that TRL drops some train pairs."""
    train = prefs["train"]
    chosen = [len(x) for x in reward.chat_token_ids(tokenizer, train["question"], train["chosen"])]
    rejected = [len(x) for x in reward.chat_token_ids(tokenizer, train["question"], train["rejected"])]
    # drop the three longest pairs (longest of their two chats)
    max_length = sorted(max(c, r) for c, r in zip(chosen, rejected))[-4]
    out = tmp_path_factory.mktemp("reward_run")
    result = reward.train_reward_model(cfg, prefs["train"], prefs["dev"], out, max_length=max_length)
    return result, out, max_length


def test_training_writes_model_and_artifacts(trained, prefs, cfg):
    result, out, _ = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (result.model_dir / name).exists(), name
    assert not (out / "checkpoints").exists()  # only the selected model is kept
    epochs = result.epochs_table()
    assert len(epochs) == 3 and (epochs["kept"] == "yes").sum() == 1  # dev evaluated each epoch, one kept
    assert result.selected_by == "dev loss" and result.best_metric == pytest.approx(epochs["dev loss"].min())
    assert len(result.steps()) > 0 and result.pairs_per_second > 0 and result.peak_memory_mb > 0

    scorer = reward.RewardScorer.load(result.model_dir)
    predictions = reward.test_predictions(scorer, prefs["test"])
    assert list(predictions.columns) == reward.PREDICTION_COLUMNS
    # the hand-made preference (empathic over dismissive/generic) is learnable by the tiny model
    assert (predictions["reward_chosen"] > predictions["reward_rejected"]).mean() >= 0.75
    paths = reward.write_artifacts(out, predictions, {"accuracy": np.float64(0.9), "n": np.int64(8)})
    saved = pd.read_parquet(paths[0])
    assert list(saved.columns) == ["ID", "prefID", "reward_chosen", "reward_rejected"]
    assert saved["prefID"].dtype == "int64" and len(saved) == len(prefs["test"])
    assert json.loads(paths[1].read_text()) == {"accuracy": 0.9, "n": 8}


def test_a_rerun_on_the_same_inputs_reuses_the_model_and_a_change_retrains(trained, prefs, cfg, tmp_path):
    result, out, max_length = trained
    copy = tmp_path / "reward_run"
    shutil.copytree(out, copy)
    weights = (copy / "model" / "model.safetensors").read_bytes()
    again = reward.train_reward_model(cfg, prefs["train"], prefs["dev"], copy, max_length=max_length)
    assert again.reused and not result.reused
    assert (again.seconds, again.train_pairs, again.best_metric) == (result.seconds, result.train_pairs,
                                                                     result.best_metric)
    assert again.epochs_table().equals(result.epochs_table())  # the chapter's curves come from the record
    assert (copy / "model" / "model.safetensors").read_bytes() == weights
    fewer = prefs["train"].select(range(len(prefs["train"]) - 1))
    retrained = reward.train_reward_model(cfg, fewer, prefs["dev"], copy, max_length=max_length)
    assert not retrained.reused and retrained.pairs_given == len(prefs["train"]) - 1  # one pair less: trains
    forced = load_profile("tiny", [f"models.reward_backbone={cfg.models.reward_backbone}", "reuse_trained_models=false",
                                   "reward.training.num_train_epochs=3", "reward.training.per_device_train_batch_size=8",
                                   "reward.training.learning_rate=0.003", "reward.training.logging_steps=1"])
    assert not reward.train_reward_model(forced, fewer, prefs["dev"], copy, max_length=max_length).reused


def test_length_drop_counter_matches_what_trl_drops(trained, prefs, tokenizer):
    result, _, max_length = trained
    counted = reward.count_length_drops(prefs["train"], tokenizer, max_length)
    assert counted["dropped"] > 0  # the fixture chose max_length so that some pairs go
    assert max(counted["chosen over"], counted["rejected over"]) <= counted["dropped"] <= 3
    assert result.dropped_by_trl == counted["dropped"]  # what RewardTrainer really filtered
    assert result.train_pairs == len(prefs["train"]) - counted["dropped"]
    none = reward.count_length_drops(prefs["train"], tokenizer, None)
    assert none["dropped"] == 0 and none["pairs"] == len(prefs["train"])
    table = reward.length_drop_table({"train": prefs["train"], "dev": prefs["dev"]}, tokenizer, max_length)
    assert list(table.index) == ["train", "dev"] and table.loc["train", "dropped"] == counted["dropped"]


def test_token_count_is_trls_own_tokenisation(prefs, tokenizer, cfg, tmp_path):
    from trl import RewardTrainer

    args = reward.reward_config(cfg, tmp_path, max_length=None)
    processed = RewardTrainer._prepare_dataset(None, to_trl(prefs["dev"]), tokenizer, args, "dev")
    ours = reward.chat_token_ids(tokenizer, prefs["dev"]["question"], prefs["dev"]["chosen"])
    assert [list(x) for x in processed["chosen_ids"]] == ours
    # the template is applied once: the user turn appears once, no doubled special tokens
    text = tokenizer.decode(ours[0])
    assert text.count("<|user|>") == 1 and text.count("<|assistant|>") == 1 and text.endswith("<|end|>")


def test_scorer_shape_determinism_and_batching(trained, cfg, tmp_path):
    result, _, _ = trained
    run_root = tmp_path / "run"
    shutil.copytree(result.model_dir, reward.reward_model_dir(run_root))
    scorer = reward.load_trained_reward_model(cfg, run_root)
    statements = ["I feel anxious before every exam.", "My sister stopped talking to me.", "I cannot sleep.",
                  "Work is too much lately and I snap at my kids.", "I miss my father."]
    responses = ["That sounds hard. What goes through your mind?", "Just get over it.", "Sleep more.",
                 "It sounds like you are stretched thin. What would help most right now?", "Time heals."]
    first = scorer.score(statements, responses, batch_size=2)
    assert first.shape == (5,) and first.dtype == np.float64 and np.isfinite(first).all()
    assert np.array_equal(first, scorer.score(statements, responses, batch_size=2))  # deterministic
    np.testing.assert_allclose(first, scorer.score(statements, responses, batch_size=1), atol=1e-5)  # padding-free
    np.testing.assert_allclose(first[::-1], scorer.score(statements[::-1], responses[::-1], batch_size=5), atol=1e-5)
    assert scorer.stats.sequences == 20 and scorer.stats.sequences_per_second > 0
    assert scorer.score([], []).shape == (0,)
    with pytest.raises(ValueError, match="2 statements but 1 responses"):
        scorer.score(statements[:2], responses[:1])
    # truncation to max_length is counted
    short = reward.RewardScorer(scorer.model, scorer.tokenizer, max_length=8)
    assert short.score(statements[:2], responses[:2]).shape == (2,) and short.stats.truncated == 2


def test_lora_trains_the_score_head_and_saves_a_merged_model(cfg, prefs, tmp_path):
    """The colab path: LoRA adapters plus a fully trained score head, merged into a plain classifier on save."""
    from safetensors.torch import load_file

    lora_cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"lora": load_profile(
        "tiny", ["models.lora={r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: all-linear}"]).models.lora})})
    peft_config = reward.lora_config(lora_cfg)
    assert peft_config.task_type == "SEQ_CLS" and "score" in peft_config.modules_to_save
    result = reward.train_reward_model(lora_cfg, prefs["train"], prefs["dev"], tmp_path, num_train_epochs=1)
    assert not (result.model_dir / "adapter_config.json").exists()  # merged, loadable as a plain classifier
    weights = load_file(result.model_dir / "model.safetensors")
    assert "score.weight" in weights and not any("lora" in k for k in weights)
    assert reward.RewardScorer.load(result.model_dir).score(["I feel low."], ["Tell me more."]).shape == (1,)


def test_load_trained_reward_model_names_the_missing_chapter(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="run chapter 03"):
        reward.load_trained_reward_model(cfg, tmp_path)


def _helpsteer2_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"prompt": "How do I calm down before a talk?", "response": "Breathe slowly and picture the room.",
         "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1},
        {"prompt": "How do I calm down before a talk?", "response": "Do not worry.",
         "helpfulness": 1, "correctness": 2, "coherence": 3, "complexity": 0, "verbosity": 0},
        {"prompt": "How do I calm down before a talk?", "response": "Practise twice, then rest.",
         "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1},
        {"prompt": "Name a fruit.", "response": "Apple.", "helpfulness": 3, "correctness": 4, "coherence": 4,
         "complexity": 0, "verbosity": 0},
        {"prompt": "Name a fruit.", "response": "Apples are red.", "helpfulness": 3, "correctness": 4,
         "coherence": 4, "complexity": 0, "verbosity": 1},
    ])


def test_helpsteer2_conversion_from_a_local_file(tmp_path, prefs):
    path = tmp_path / "helpsteer2.parquet"
    _helpsteer2_frame().to_parquet(path, index=False)
    frame = reward.load_helpsteer2(str(path))
    pairs = reward.helpsteer2_pairs(frame)
    # prompt 1: 4 vs 1 twice (the 4-4 tie is dropped); prompt 2: a 3-3 tie only
    assert len(pairs) == 2 and set(pairs["rejected"]) == {"Do not worry."}
    assert set(pairs["chosen"]) == {"Breathe slowly and picture the room.", "Practise twice, then rest."}
    assert (pairs["score_gap"] >= 1).all() and (pairs["source"] == "helpsteer2").all()
    validate(pairs, "helpsteer2 pairs")  # usable as training pairs

    jsonl = tmp_path / "helpsteer2.jsonl"
    _helpsteer2_frame().to_json(jsonl, orient="records", lines=True)
    assert len(reward.helpsteer2_pairs(reward.load_helpsteer2(str(jsonl)))) == 2

    mixed_cfg = load_profile("tiny", ["reward.helpsteer2_mix=true", f"reward.helpsteer2_path={path}",
                                      "reward.degenerate_negatives=0"])
    mixed = reward.training_pairs(mixed_cfg, prefs)
    assert mixed["source"].value_counts().to_dict() == {"psycopref": len(prefs["train"]), "helpsteer2": 2}
    plain = reward.training_pairs(load_profile("tiny", ["reward.degenerate_negatives=0"]), prefs)
    assert len(plain) == len(prefs["train"])

    bad = tmp_path / "bad.parquet"
    _helpsteer2_frame().drop(columns=["helpfulness"]).to_parquet(bad, index=False)
    with pytest.raises(reward.HelpSteer2Error, match="helpfulness"):
        reward.load_helpsteer2(str(bad))
    unscored = _helpsteer2_frame().astype({"helpfulness": object})
    unscored.loc[3, "helpfulness"] = "high"
    with pytest.raises(reward.HelpSteer2Error, match=r"hs2\.csv: row 3, column 'helpfulness': 'high'"):
        reward.helpsteer2_pairs(unscored, where="hs2.csv")
    empty = tmp_path / "empty_response.csv"
    _helpsteer2_frame().assign(response=["a", "", "b", "c", "d"]).to_csv(empty, index=False)
    with pytest.raises(reward.HelpSteer2Error, match=r"empty_response\.csv: row 1, column 'response'"):
        reward.load_helpsteer2(str(empty))


def test_missing_column_is_named_before_trl_sees_it(prefs, cfg, tmp_path):
    without = prefs["train"].remove_columns(["rejected"])
    with pytest.raises(PairSchemaError, match=r"missing column\(s\) \['rejected'\]"):
        validate(without, "psycopref [train]")
    with pytest.raises(PairSchemaError, match="train split.*'rejected'"):
        reward.train_reward_model(cfg, without, prefs["dev"], tmp_path)
    with pytest.raises(PairSchemaError, match="dev split.*'question'"):
        reward.train_reward_model(cfg, prefs["train"], prefs["dev"].remove_columns(["question"]), tmp_path)
    empty_text = prefs["train"].to_pandas()
    empty_text.loc[3, "chosen"] = "  "
    with pytest.raises(PairSchemaError, match="test split: row 3, column 'chosen'"):
        reward.test_predictions(None, empty_text)
    assert reward.PairSchemaError is PairSchemaError  # one error type for pairs, importable from reward too


def test_evaluation_tables_on_known_rewards(prefs):
    test = prefs["test"].to_pandas()
    n = len(test)
    perfect = (np.linspace(1, 2, n), np.zeros(n))
    table = reward.comparison_table({"perfect": perfect, **reward.baseline_rewards(test, seed=0)}, seed=0, n_boot=50)
    assert list(table.index) == ["perfect", "random", "longer response wins"]
    assert table.loc["perfect", "accuracy"] == 1 and table.loc["perfect", "AUC"] == 1
    assert table.loc["perfect", "accuracy low"] == 1 and table["pairs"].tolist() == [n] * 3
    # hand-made pairs: the empathic response is the longer one, so length wins every pair
    assert table.loc["longer response wins", "accuracy"] == 1
    stacked = reward.with_paper(table, "tiny")
    assert ("paper (Zhang et al. 2025)", "PsyCo-Llama3-3B-Reward") in stacked.index
    assert stacked.loc[("paper (Zhang et al. 2025)", "PsyCo-Llama3-3B-Reward"), "accuracy"] == pytest.approx(0.981)
    assert stacked.loc[("this run (tiny profile)", "perfect"), "accuracy"] == 1

    gaps = reward.rating_gap(test)
    assert np.allclose(gaps[0], 4) and np.allclose(gaps[1], 2)  # empathic 5 vs dismissive 1 / generic 3
    by_gap = reward.accuracy_by(reward.gap_bins(gaps), *perfect, seed=0, n_boot=20)
    assert list(by_gap.index) == ["2 to 3", "3 and over"] and by_gap["pairs"].sum() == n  # bin order kept
    calib = reward.calibration(*perfect, seed=0, n_bins=5)
    assert len(calib) == 5 and calib["count"].sum() == n
    with pytest.raises(ValueError, match="3 group labels for 8 pairs"):
        reward.accuracy_by(["a", "b", "c"], *perfect, seed=0)


def _evaluation(prefs, reward_chosen, reward_rejected, overrides=()):
    cfg = load_profile("tiny", ["reward.bootstrap_samples=200", *overrides])
    test = prefs["test"].to_pandas()
    predictions = pd.DataFrame({"ID": test["ID"], "prefID": test["prefID"], "reward_chosen": reward_chosen,
                                "reward_rejected": reward_rejected})
    return reward.evaluate(cfg, prefs["test"], predictions)


def test_evaluate_collects_every_number_the_chapter_shows(prefs):
    n = len(prefs["test"])
    rc, rr = np.linspace(1, 2, n), np.zeros(n)
    rr[0] = 5.0  # one pair ranked wrongly
    ev = _evaluation(prefs, rc, rr)
    assert isinstance(ev, reward.RewardEvaluation) and ev.test_pairs == n and ev.bootstrap_samples == 200
    assert list(ev.comparison.index) == [reward.THIS_MODEL, "random", "longer response wins"]
    assert ev.ours["accuracy"] == pytest.approx((n - 1) / n)
    assert set(ev.calibration) == {reward.THIS_MODEL, "longer response wins"}  # random has no reliability curve
    assert ev.by_theme["pairs"].sum() == n and ev.by_gap["pairs"].sum() == n
    # the hand-made pairs: length wins all of them, so the model's one error puts it behind length
    assert ev.length_baseline["accuracy"] == 1 and not ev.above_length_baseline
    assert ev.versus_length["difference"] == pytest.approx(-1 / n) and ev.versus_length["n"] == n
    assert len(ev.errors) == 1 and ev.errors.loc[0, "margin"] == pytest.approx(rc[0] - 5.0)
    assert np.allclose(ev.margins, rc - rr)
    assert "paired difference" in ev.check_message() and f"{(n - 1) / n:.1%}" in ev.check_message()
    headline = ev.headline()
    assert headline["test_accuracy"] == round((n - 1) / n, 4) and headline["length_baseline_accuracy"] == 1
    json.dumps(ev.as_record(), default=float)  # metrics.json can hold it


def test_evaluate_refuses_predictions_of_other_pairs(prefs):
    n = len(prefs["test"])
    test = prefs["test"].to_pandas()
    shuffled = pd.DataFrame({"ID": test["ID"], "prefID": test["prefID"][::-1].to_numpy(), "reward_chosen": np.ones(n),
                             "reward_rejected": np.zeros(n)})
    with pytest.raises(ValueError, match="do not follow the test split's pairs"):
        reward.evaluate(load_profile("tiny"), prefs["test"], shuffled)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['reward_rejected'\]"):
        reward.evaluate(load_profile("tiny"), prefs["test"], shuffled.drop(columns=["reward_rejected"]))


def test_confident_errors_leave_out_crisis_statements():
    frame = pd.DataFrame({"question": ["I want to end my life, I have a plan.", "My exams make me anxious."],
                          "chosen": ["a", "b"], "rejected": ["c", "d"]})
    errors = reward.confident_errors(frame, [0.0, 0.0], [3.0, 1.0], gaps=[1.0, 2.0])
    assert errors["question"].tolist() == ["My exams make me anxious."]
    assert reward.example_pair(frame)["question"] == "My exams make me anxious."
    with pytest.raises(ValueError, match="crisis language"):
        reward.example_pair(frame.iloc[:1])


class _FakeChapter:
    def __init__(self, run):
        self.run, self.finished = run, None

    def finish(self, metrics):
        self.finished = metrics
        return metrics


def test_finish_writes_the_artifacts_and_the_headline(prefs, tmp_path):
    n = len(prefs["test"])
    ev = _evaluation(prefs, np.linspace(1, 2, n), np.zeros(n))
    test = prefs["test"].to_pandas()
    predictions = pd.DataFrame({"ID": test["ID"], "prefID": test["prefID"], "reward_chosen": np.linspace(1, 2, n),
                                "reward_rejected": np.zeros(n)})
    training = reward.RewardTrainingResult(
        model_dir=tmp_path / "reward_model" / "model", model=None, tokenizer=None, log_history=[], pairs_given=10,
        train_pairs=9, epochs=2.0, seconds=3.0, selected_by="dev loss", best_checkpoint=None, best_metric=0.3,
        peak_memory_mb=100.0)
    (tmp_path / "reward_model" / "model").mkdir(parents=True)
    (tmp_path / "reward_model" / "model" / "config.json").write_text("{}")
    chapter = _FakeChapter(tmp_path)
    drops = pd.DataFrame({"dropped": [1]}, index=pd.Index(["train"], name="split"))
    stage = reward.finish(chapter, training, reward.ScoringStats(sequences=2 * n, seconds=1.0), ev, predictions, drops)
    assert stage.artifacts == ["reward_model/metrics.json", "reward_model/model/config.json",
                               "reward_model/test_predictions.parquet"]
    assert chapter.finished == stage.headline() and stage.headline()["train_pairs"] == 9
    saved = json.loads((tmp_path / "reward_model" / "metrics.json").read_text())
    assert saved["training"]["train_pairs"] == 9 and saved["scoring"]["chats"] == 2 * n
    assert saved["versus_length_baseline"]["n"] == n and len(saved["models"]) == 3


def _legend_clear_of_axes(fig) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    axes = [ax.get_window_extent(renderer) for ax in fig.axes]
    return all(not legend.get_window_extent(renderer).overlaps(box) for legend in legends for box in axes)


def test_figures_fit_the_column_and_keep_legends_off_the_data(prefs):
    rng = np.random.default_rng(0)
    rc, rr = rng.normal(1, 1, 40), rng.normal(0, 1, 40)
    fig = show.reliability_diagram({"model": reward.calibration(rc, rr, seed=0)}, title="Reliability")
    assert "10 equal-width bins" in fig.axes[0].get_title() and fig.axes[1].get_xlabel()
    figures = [fig, show.margin_histogram({"model": rc - rr})]
    assert figures[1].axes[0].get_xlabel() and figures[1].axes[0].get_ylabel() and figures[1].axes[0].get_title()
    table = reward.accuracy_by(["a"] * 20 + ["b"] * 20, rc, rr, seed=0, n_boot=20)
    figures.append(show.accuracy_by_group(table, title="By group"))
    assert figures[2].axes[0].get_xlabel() and figures[2].axes[0].get_title() == "By group"
    steps = pd.DataFrame({"step": [1, 2, 3], "loss": [0.7, 0.5, 0.4]})
    epochs = pd.DataFrame({"step": [3], "dev loss": [0.45], "kept": ["yes"]})
    figures.append(show.reward_training_curve(steps, epochs))
    for fig in figures:
        assert fig.get_figwidth() == pytest.approx(show.FIGURE_WIDTH_IN)
        assert _legend_clear_of_axes(fig)
    assert figures[0].legends and figures[3].legends  # the legends exist, below the axes


def test_comparison_table_keeps_numbers_apart(prefs):
    n = len(prefs["test"])
    ev = _evaluation(prefs, np.linspace(1, 2, n), np.zeros(n))
    html = show.reward_comparison(ev.comparison).to_html()
    assert "psyco-table" in html and '100.0%<br><small style="white-space: nowrap">[100.0, 100.0]</small>' in html
    assert '1.000<br><small style="white-space: nowrap">[1.00, 1.00]</small>' in html  # AUC over its interval
    stacked = show.reward_with_paper(reward.with_paper(ev.comparison, "tiny")).to_html()
    assert "98.1%" in stacked and "-" in stacked  # the ranker row has no AUC in the paper


def _check(passed):
    from psyco_utils.checks import CheckResult

    return CheckResult(name="x", passed=passed, message="", mode="enforce")


def test_check_findings_and_findings_say_what_the_interval_says(prefs):
    n = len(prefs["test"])
    ev = _evaluation(prefs, np.linspace(1, 2, n), np.zeros(n))
    ev.versus_length = {"difference": 0.05, "ci_low": -0.02, "ci_high": 0.12, "n": n, "distinguishable": False}
    text = show.reward_check_findings(ev, _check(True)).data
    assert "The check passed" in text and "not distinguishable from noise" in text and "+5.0 points" in text
    assert "lie above chance at 50%? Yes" in text
    ev.versus_length = {"difference": 0.08, "ci_low": 0.02, "ci_high": 0.12, "n": n, "distinguishable": True}
    assert "more than noise" in show.reward_check_findings(ev, _check(True)).data
    ev.versus_length = {"difference": -0.08, "ci_low": -0.12, "ci_high": -0.02, "n": n, "distinguishable": True}
    assert "trails the length baseline" in show.reward_check_findings(ev, _check(False)).data
    stage = reward.RewardStageResult(training=None, scoring=None, evaluation=ev, length_drops=None, artifacts=[])
    found = show.reward_findings(stage, "tiny").data
    # a perfect model's interval is [100%, 100%]: the paper's 98.1% lies outside it
    assert "does not reproduce the paper's accuracy" in found and "98.1%" in found and "trails" in found
    # the hand-made pairs have gaps of 2 and 4 points: the smallest group is "2 to 3", the largest "3 and over"
    assert f"100.0% of the {int(ev.by_gap.iloc[0]['pairs'])} pairs in the smallest-gap group (gap 2 to 3)" in found
    assert "in the largest (gap 3 and over)" in found
    assert "The weakest theme" not in found  # every theme at 100%: none is weaker
    ev.versus_length = {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 1, "distinguishable": False}
    failed = show.reward_check_findings(ev, _check(False)).data
    assert f"these {n} pairs the two are not distinguishable from noise." in failed and "passing it" not in failed
    ev.comparison.loc["random", "pairs"] = n - 1
    with pytest.raises(ValueError, match="different numbers of pairs"):
        show.reward_comparison(ev.comparison)


def test_errors_and_summaries_render_as_markdown(prefs, tmp_path):
    n = len(prefs["test"])
    rc, rr = np.linspace(1, 2, n), np.zeros(n)
    rr[2] = 9.0
    ev = _evaluation(prefs, rc, rr)
    errors = show.reward_errors(ev).data
    assert errors.startswith(f"1 of {n} test pairs are ranked wrongly.") and "**Client statement**" in errors
    assert "Chosen response (empathic" in errors and "Rejected response (" in errors
    assert "ranks all" in show.reward_errors(_evaluation(prefs, np.ones(n), np.zeros(n))).data
    training = reward.RewardTrainingResult(
        model_dir=tmp_path, model=None, tokenizer=None, log_history=[], pairs_given=10, train_pairs=9, epochs=2.0,
        seconds=3.0, selected_by="dev loss", best_checkpoint=str(tmp_path / "checkpoints" / "checkpoint-4"),
        best_metric=0.3, peak_memory_mb=100.0, reused=True)
    drops = pd.DataFrame({"dropped": [1]}, index=pd.Index(["train"], name="split"))
    summary = show.reward_training_summary(training, drops).data
    assert "reused the model" in summary and "dropped 1 train pairs for length, as counted above" in summary
    assert "Kept: checkpoint-4" in summary and str(tmp_path) not in summary  # no machine path on the page
    assert "Trained on 9 pairs for 2 epochs in 3.0 s" in summary
    stage = reward.RewardStageResult(training=training, scoring=None, evaluation=ev, length_drops=drops,
                                     artifacts=["reward_model/metrics.json", "reward_model/model/config.json"])
    listed = show.reward_artifacts(stage, "tiny").data
    assert "`reward_model/model/`: the model and its tokenizer (1 files)" in listed and "metrics.json" in listed
    beside = show.reward_beside_the_paper(stage, "tiny").to_html()
    assert "2,324" in beside and "not reported" in beside and "about 77 rows" in beside


TINY_RUN = Path(os.environ.get("PSYCO_RUNS_DIR", REPO / "runs")) / "tiny"  # where psyco-book run writes


@pytest.mark.skipif(not (TINY_RUN / "psycopref").exists(),
                    reason="no tiny run's psycopref/ (in $PSYCO_RUNS_DIR or runs/): run chapters 01-02 of the tiny "
                           "profile first (psyco-book run --profile tiny --only 01 02)")
def test_tiny_profile_reward_model_beats_chance_and_length(tmp_path):
    """Integration: the tiny profile's preset trains a reward model that passes chapter 03's check (its accuracy
    interval above chance, its accuracy above the length baseline's) on the tiny run's test pairs."""
    from psyco_utils.pairs import load_preference_data

    cfg = load_profile("tiny", ["reuse_trained_models=false"])
    prefs = load_preference_data(cfg, TINY_RUN)
    result = reward.train_reward_model(cfg, reward.training_pairs(cfg, prefs), prefs["dev"], tmp_path,
                                       run_root=TINY_RUN)
    assert not result.reused
    predictions = reward.test_predictions(reward.RewardScorer(result.model, result.tokenizer), prefs["test"])
    evaluation = reward.evaluate(cfg, prefs["test"], predictions)
    assert evaluation.beats_chance and evaluation.above_length_baseline, evaluation.check_message()


def test_a_gap_of_exactly_one_point_lands_in_the_one_to_two_bin():
    """Means of sevenths: one point on every principle must give a gap of exactly 1.0, binned as '1 to 2'."""
    row = {f"chosen_{p}_rating": 3 for p in PRINCIPLE_KEYS} | {f"rejected_{p}_rating": 2 for p in PRINCIPLE_KEYS}
    # unrounded, these means differ by 0.9999999999999998 and the pair would fall in "under 1"
    odd = {f"chosen_{p}_rating": v for p, v in zip(PRINCIPLE_KEYS, [4, 2, 2, 1, 2, 4, 1])} | {
        f"rejected_{p}_rating": v for p, v in zip(PRINCIPLE_KEYS, [1, 1, 1, 1, 1, 1, 3])}
    gaps = reward.rating_gap(pd.DataFrame([row, odd]))
    assert list(gaps) == [1.0, 1.0]
    assert list(reward.gap_bins(gaps)) == ["1 to 2", "1 to 2"]


def test_rendered_chat_keeps_lines_and_sets_template_tokens_apart():
    text = "<|user|>\nI feel *low* [today].<|end|>\n<|assistant|>\nTell me more.<|end|>"
    shown = show.reward_chat(text, "Chat").data
    assert shown.splitlines()[2:] == ["> `<|user|>`\\", "> I feel \\*low\\* \\[today\\].`<|end|>`\\",
                                      "> `<|assistant|>`\\", "> Tell me more.`<|end|>`"]
    llama = show.reward_chat("<|begin_of_text|><|start_header_id|>user<|end_header_id|>", "Chat").data
    assert "`<|begin_of_text|>` `<|start_header_id|>`user`<|end_header_id|>`" in llama
    assert show.reward_chat("word " * 200, "Chat", limit=50).data.endswith(r"word \[...\]")  # cut, marked


def test_the_bradley_terry_loss_by_hand_equals_trls_and_a_swapped_margin_does_not(trained, prefs, cfg, capsys):
    """Chapter 03's check of the reward-model loss: the loss, accuracy and mean margin computed from the scorer's
    rewards match what TRL's RewardTrainer logs for the same batch; with chosen and rejected swapped they do not.
    TRL's evaluation prints nothing onto the page."""
    from psyco_utils.by_hand import ByHandCheck

    result, _, _ = trained
    batch = prefs["train"].select(range(6))
    scorer = reward.RewardScorer.load(result.model_dir, cfg)
    capsys.readouterr()
    logged = reward.trl_metrics_on_batch(cfg, scorer, batch)
    assert "eval_loss" not in capsys.readouterr().out
    chosen, rejected = scorer.score_pairs(batch)

    def by_hand(margin):
        return {"loss": np.mean(np.logaddexp(0, -margin)), "accuracy": np.mean(margin > 0), "margin": margin.mean()}

    check = ByHandCheck(by_hand(chosen - rejected), logged, items=6, tolerance=reward.LOSS_CHECK_TOLERANCE)
    assert abs(logged["margin"]) > 1e-2  # a trained model separates the pairs, so the check is not 0 against 0
    assert check.agrees, check.table
    assert not ByHandCheck(by_hand(rejected - chosen), logged, items=6, tolerance=reward.LOSS_CHECK_TOLERANCE).agrees


def test_a_half_precision_reward_model_is_checked_in_float32(trained, prefs, cfg, monkeypatch):
    """Under a profile that trains in bf16 and scores with bf16 weights (the paper's), chapter 03's check runs on a
    float32 copy of the same model without autocast, so it compares the formula, not the rounding; a bf16 scorer
    given to the check is refused with the fix, and the copy is released after the block.  (bf16 autocast runs on a
    CPU with ``use_cpu``; the profile's guard against mixed precision without a GPU is lifted.)"""
    import torch

    import psyco_utils.models
    from psyco_utils.by_hand import ByHandCheck

    monkeypatch.setattr(psyco_utils.models, "check_precision", lambda training, section: None)
    result, _, _ = trained
    bf16_cfg = cfg.model_copy(update={"reward": cfg.reward.model_copy(
        update={"training": {**cfg.reward.training, "bf16": True, "use_cpu": True}})})
    batch = prefs["train"].select(range(6))
    scorer = reward.RewardScorer.load(result.model_dir, cfg, dtype="bfloat16")
    with pytest.raises(ValueError, match=r"in float32, and .* is torch.bfloat16: pass reward.in_float32"):
        reward.trl_metrics_on_batch(bf16_cfg, scorer, batch)
    with reward.in_float32(scorer) as check_scorer:
        assert check_scorer is not scorer and check_scorer.model.dtype == torch.float32
        before = check_scorer.score_pairs(batch)
        logged = reward.trl_metrics_on_batch(bf16_cfg, check_scorer, batch)
        chosen, rejected = check_scorer.score_pairs(batch)
    np.testing.assert_allclose(np.stack(before), np.stack([chosen, rejected]), atol=1e-6)  # TRL left no autocast
    assert check_scorer.model is None and scorer.model.dtype == torch.bfloat16
    margin = chosen - rejected
    by_hand = {"loss": np.mean(np.logaddexp(0, -margin)), "accuracy": np.mean(margin > 0), "margin": margin.mean()}
    assert ByHandCheck(by_hand, logged, items=6, tolerance=reward.LOSS_CHECK_TOLERANCE).agrees
    float32_scorer = reward.RewardScorer.load(result.model_dir, cfg)
    with reward.in_float32(float32_scorer) as same:
        assert same is float32_scorer  # already float32: nothing loaded again


def test_degenerate_negatives_add_a_share_of_the_train_pairs_with_the_chosen_answer_corrupted(prefs):
    from psyco_utils.style import TRAINING_CORRUPTIONS

    train = prefs["train"].to_pandas()
    cfg = load_profile("tiny", ["reward.degenerate_negatives=0.5"])
    pairs = reward.training_pairs(cfg, prefs)
    added = pairs[pairs["source"] == reward.DEGENERATE_NEGATIVE]
    assert len(pairs) == len(train) + len(added) and len(added) == round(0.5 * len(train))
    assert set(added["ID"]) <= set(train["ID"]) and set(added["chosen"]) <= set(train["chosen"])
    assert pairs["prefID"].is_unique and set(added["corruption"]) == set(TRAINING_CORRUPTIONS)
    assert (added["rejected"] != added["chosen"]).all()
    again = reward.training_pairs(cfg, prefs)
    assert again.equals(pairs)  # drawn with the profile's seed
    other_seed = reward.training_pairs(load_profile("tiny", ["reward.degenerate_negatives=0.5", "seed=7"]), prefs)
    assert not other_seed["rejected"].equals(pairs["rejected"])
    off = reward.training_pairs(load_profile("tiny", ["reward.degenerate_negatives=0"]), prefs)
    assert set(off["source"]) == {"psycopref"}
