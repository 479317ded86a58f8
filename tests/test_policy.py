"""DPO and the DPO-Iter loop: best/worst selection, degenerate rounds, the reference refresh, a real round on tiny
models, the result objects, the reward-hacking diagnosis, the generator released after sampling, and the displays."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from psyco_utils import policy, show
from psyco_utils.config import load_profile
from psyco_utils.pair_schema import PairSchemaError

CRISIS = "I want to kill myself, I cannot go on like this."


def test_empty_answers_are_kept_out_of_the_pairs_and_counted():
    rewards = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.4, 0.6, 0.1]])
    usable = np.array([[True, False, True], [False, True, False], [True, True, True]])
    pairs, degenerate = policy.best_worst_pairs(rewards, usable)
    assert pairs == [(0, 0, 2), (2, 1, 2)] and degenerate == 1  # row 1 has a single answer: no pair
    samples = policy.Samples(statements=["a", "b"], responses=[["good", ""], ["fine", "ok"]],
                             rewards=np.array([[1.0, -5.0], [0.5, 0.2]]), raw_rewards=np.array([[1.0, -5.0], [0.5, 0.2]]),
                             lengths=np.array([[1, 0], [1, 1]]), generation_seconds=1.0, new_tokens=3)
    _, frame, none = policy.pairs_dataset(samples, ["A", "B"], 1)
    assert list(frame["ID"]) == ["B"] and none == 1 and (frame["rejected"] != "").all()
    assert policy.round_summary(samples, frame, none)["empty_samples"] == 1


def test_best_worst_selection_with_ties_and_degenerate_rows():
    rewards = np.array([[0.1, 0.9, 0.9, -0.5],   # best tie -> earliest (1); worst 3
                        [0.3, 0.3, 0.3, 0.3],    # degenerate: all equal, no pair
                        [-1.0, 2.0, -1.0, 0.0]])  # worst tie -> earliest (0)
    pairs, degenerate = policy.best_worst_pairs(rewards)
    assert pairs == [(0, 1, 3), (2, 1, 0)] and degenerate == 1


def test_a_round_of_only_degenerate_rows_gives_no_pairs():
    pairs, degenerate = policy.best_worst_pairs(np.zeros((5, 8)))
    assert pairs == [] and degenerate == 5


class KeywordScorer:
    """A stand-in reward model with the scorer's interface: rewards reflective words, penalises orders."""

    def score(self, statements, responses, batch_size=32):
        return np.array([r.lower().count("feel") + r.lower().count("sounds") - r.lower().count("should")
                         + 0.01 * len(r.split()) for r in responses], dtype=float)


LOOP = ["dpo_iter.rounds=2", "dpo_iter.statements_per_round=6", "dpo_iter.samples_per_statement=4",
        "dpo_iter.max_new_tokens=16", "dpo_iter.training.num_train_epochs=1",
        "dpo_iter.training.per_device_train_batch_size=4", "dpo_iter.training.global_batch_size=4"]


@pytest.fixture()
def tiny_cfg():
    return load_profile("tiny", LOOP)


def _questions():
    return pd.DataFrame({"ID": [f"s{i}" for i in range(8)],
                         "question": [f"I feel anxious about my exams and my family, case {i}." for i in range(8)]})


def test_two_rounds_refresh_the_reference(tiny_world, tiny_cfg, tmp_path):
    result = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), _questions(), tmp_path)
    rounds = result.rounds
    assert rounds["round"].tolist() == [1, 2]
    assert rounds["reference"][0] == result.start_path == str(tiny_world.policy_dir)
    assert rounds["reference"][1] == rounds["policy"][0] == str(tmp_path / "round_1" / "model")
    assert result.final_policy == str(tmp_path / "round_2" / "model")
    assert result.total_steps == rounds["dpo_steps"].sum() > 0
    for k in (1, 2):
        saved = json.loads((tmp_path / f"round_{k}" / "metrics.json").read_text())
        assert saved["pairs"] + saved["degenerate_statements"] == 6
        pairs = result.pairs(k)
        assert (pairs["reward_chosen"] > pairs["reward_rejected"]).all() and (pairs["round"] == k).all()
        assert (tmp_path / f"round_{k}" / "model" / "config.json").exists()
    from safetensors.torch import load_file

    before = load_file(tiny_world.policy_dir / "model.safetensors")
    after = load_file(tmp_path / "round_2" / "model" / "model.safetensors")
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before if k in after)
    assert not rounds["dpo_reused"].any()


def test_a_rerun_on_the_same_inputs_reuses_every_round_and_a_change_retrains(tiny_world, tiny_cfg, tmp_path):
    first = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), _questions(), tmp_path)
    weights = (tmp_path / "round_2" / "model" / "model.safetensors").read_bytes()
    again = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), _questions(), tmp_path)
    assert again.rounds["dpo_reused"].tolist() == [True, True]  # same samples, same pairs, same start: no training
    assert again.rounds["dpo_steps"].tolist() == first.rounds["dpo_steps"].tolist()
    assert (tmp_path / "round_2" / "model" / "model.safetensors").read_bytes() == weights
    changed = load_profile("tiny", [*LOOP, "dpo_iter.training.learning_rate=0.001"])
    retrained = policy.run_dpo_iter(changed, str(tiny_world.policy_dir), KeywordScorer(), _questions(), tmp_path)
    assert not retrained.rounds["dpo_reused"].any()  # a new learning rate is a new training
    forced = load_profile("tiny", [*LOOP, "reuse_trained_models=false", "dpo_iter.rounds=1",
                                   "dpo_iter.training.learning_rate=0.001"])
    assert not policy.run_dpo_iter(forced, str(tiny_world.policy_dir), KeywordScorer(), _questions(),
                                   tmp_path).rounds["dpo_reused"].any()


def test_each_finished_round_is_reported_to_the_progress_callable(tiny_world, tmp_path):
    lines = []
    cfg = load_profile("tiny", [*LOOP, "dpo_iter.rounds=1"])
    policy.run_dpo_iter(cfg, str(tiny_world.policy_dir), KeywordScorer(), _questions(), tmp_path, progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("round 1: ")


def test_dpo_names_a_missing_column_with_the_pair_schema(tiny_world, tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"ID": ["a"], "prefID": [0], "question": ["q"], "chosen": ["c"]})
    with pytest.raises(PairSchemaError, match=r"DPO training pairs: missing column\(s\) \['rejected'\]"):
        policy.train_dpo({"beta": 0.1}, str(tiny_world.policy_dir), ds, tmp_path, seed=0)
    empty_text = datasets.Dataset.from_dict({"ID": ["a"], "prefID": [0], "question": ["q"], "chosen": ["c"],
                                             "rejected": [" "]})
    with pytest.raises(PairSchemaError, match=r"row 0, column 'rejected'"):
        policy.train_dpo({"beta": 0.1}, str(tiny_world.policy_dir), empty_text, tmp_path, seed=0)


def test_offline_dpo_with_the_trainer_built_by_the_caller_trains_once_then_reuses(tiny_world, tmp_path, capsys):
    """Chapter 04's steps (look for a saved training, else build the trainer, ``.train()`` it and save it), then the
    launcher's ``train_or_reuse`` on the same inputs, which keeps the saved model."""
    import datasets
    from trl import DPOTrainer

    from psyco_utils import pair_schema
    from psyco_utils.models import load_tokenizer
    from psyco_utils.training import without_log_printing

    n = 8
    train = datasets.Dataset.from_dict({"ID": [f"s{i}" for i in range(n)], "prefID": list(range(n)),
                                        "question": [f"I cannot sleep before exam {i}." for i in range(n)],
                                        "chosen": ["It sounds like you feel worn out. What keeps you awake?"] * n,
                                        "rejected": ["Just sleep."] * n})
    dev = train.select(range(4))
    training = {"beta": 0.1, "num_train_epochs": 1, "per_device_train_batch_size": 4, "learning_rate": 5e-4,
                "max_length": 128, "bf16": False, "gradient_checkpointing": False, "logging_steps": 1}
    start = str(tiny_world.policy_dir)

    def build():
        args = policy.dpo_config(training, tmp_path, seed=0, select_on_dev=True)
        return DPOTrainer(model=start, ref_model=None, args=args, train_dataset=pair_schema.to_trl(train),
                          eval_dataset=pair_schema.to_trl(dev), processing_class=load_tokenizer(start))

    inputs = policy.training_inputs(training, start, train, dev, tmp_path, seed=0)
    assert policy.previous_run(inputs, reuse=True) is None
    capsys.readouterr()
    trainer = build()
    without_log_printing(trainer).train()
    first = policy.save_trained(trainer, inputs)
    assert "'loss'" not in capsys.readouterr().out  # TRL's log stays off the page, in the record
    assert first.seconds == first.log_history[-1]["train_runtime"] > 0
    assert not first.reused and first.steps == 2 and first.pairs == n and first.reference == start
    assert (first.model_dir / "config.json").exists() and not (tmp_path / "checkpoints").exists()
    assert len(first.train_log) == 2 and "rewards/margins" in first.train_log
    assert len(first.eval_log) == 1 and "eval_loss" in first.eval_log
    again = policy.train_or_reuse(build(), inputs)
    assert again.reused and again.steps == first.steps and again.log_history == first.log_history
    other = policy.training_inputs({**training, "beta": 0.2}, start, train, dev, tmp_path, seed=0)
    assert other.key != inputs.key
    assert policy.previous_run(other, reuse=True) is None


def test_the_settings_table_shows_the_profiles_fields_the_books_and_the_global_batch(tmp_path):
    training = {"beta": 0.1, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 8, "bf16": False}
    args = policy.dpo_config(training, tmp_path, seed=7, select_on_dev=True)
    table = policy.config_table(args, training).set_index("DPOConfig field")
    assert table.loc["beta", "set by"] == "profile" and table.loc["seed", "value"] == "7"
    assert table.loc["eval_strategy", "set by"] == "book"
    assert table.loc["pairs per optimizer step", "value"] == "32"
    assert table.loc["metric_for_best_model", "value"] == "eval_loss"
    no_dev = policy.dpo_config(training, tmp_path, seed=7, select_on_dev=False)
    assert no_dev.eval_strategy == "no"
    assert "metric_for_best_model" not in policy.config_table(no_dev, training)["DPOConfig field"].tolist()


def test_length_penalty_changes_the_pairing():
    samples = policy.Samples(statements=["s"], responses=[["short", "a much longer answer here"]],
                             rewards=np.array([[1.0, 1.5]]), raw_rewards=np.array([[1.0, 1.5]]),
                             lengths=np.array([[1, 5]]), generation_seconds=1.0, new_tokens=6)
    _, frame, _ = policy.pairs_dataset(samples, ["s1"], 1)
    assert frame["chosen"].iloc[0] == "a much longer answer here"
    penalised = policy.Samples(**{**samples.__dict__, "rewards": samples.raw_rewards - 0.2 * samples.lengths})
    _, frame, _ = policy.pairs_dataset(penalised, ["s1"], 1)
    assert frame["chosen"].iloc[0] == "short"


class _Tokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


@pytest.mark.parametrize("fails", [False, True])
def test_sampling_shuts_a_vllm_engine_down_even_when_generation_fails(monkeypatch, fails):
    from psyco_utils import models, pool

    engine, shut = object(), []
    monkeypatch.setattr(models, "load_generator", lambda path, cfg: (engine, _Tokenizer(), "vllm"))
    monkeypatch.setattr(pool, "shutdown_vllm", shut.append)

    def generate(model, tok, statements, n, **kwargs):
        if fails:
            raise RuntimeError("generation failed")
        return [[f"answer {i} {j}" for j in range(n)] for i in range(len(statements))]

    monkeypatch.setattr(models, "generate_responses", generate)
    if fails:
        with pytest.raises(RuntimeError, match="generation failed"):
            policy.sample_and_score("p", None, KeywordScorer(), ["a", "b"], 2, 1.0, 8, 4, seed=0)
    else:
        samples = policy.sample_and_score("p", None, KeywordScorer(), ["a", "b"], 2, 1.0, 8, 4, seed=0)
        assert samples.rewards.shape == (2, 2) and samples.lengths.tolist() == [[3, 3], [3, 3]]
    assert shut == [engine]


def test_held_out_samples_are_read_back_only_for_the_same_policy_scorer_and_statements(tiny_world, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from psyco_utils.reward import RewardScorer

    scorer_dir = tmp_path / "scorer"
    backbone = AutoModelForSequenceClassification.from_pretrained(str(tiny_world.policy_dir), num_labels=1)
    backbone.save_pretrained(scorer_dir)
    AutoTokenizer.from_pretrained(str(tiny_world.policy_dir)).save_pretrained(scorer_dir)
    scorer = RewardScorer.load(scorer_dir)
    cfg = load_profile("tiny", ["dpo.max_new_tokens=12"])
    questions = ["I cannot sleep before exams.", "My brother and I no longer talk."]
    saved = tmp_path / "held_out_samples"
    first = policy.held_out_samples(str(tiny_world.policy_dir), cfg, scorer, questions, seed=3, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 1 and first.mean_reward.shape == (2,)
    (stamp,) = saved.glob("*.parquet")
    mtime = stamp.stat().st_mtime_ns
    again = policy.held_out_samples(str(tiny_world.policy_dir), cfg, scorer, questions, seed=3, n=2, saved_dir=saved)
    assert stamp.stat().st_mtime_ns == mtime  # read back, not written again
    assert np.array_equal(first.mean_reward, again.mean_reward) and first.answers == again.answers
    policy.held_out_samples(str(tiny_world.policy_dir), cfg, scorer, questions[:1], seed=3, n=2, saved_dir=saved)
    policy.held_out_samples(str(tiny_world.policy_dir), cfg, scorer, questions, seed=4, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 3  # other statements or another seed: sampled and kept apart
    off = load_profile("tiny", ["dpo.max_new_tokens=12", "reuse_trained_models=false"])
    policy.held_out_samples(str(tiny_world.policy_dir), off, scorer, questions, seed=5, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 3  # switched off: nothing kept


# ----------------------------------------------------------------------------- result objects, built from known numbers

STATEMENTS = ["I cannot sleep before exams.", CRISIS, "My brother and I no longer talk."]
FLUENT = ["It sounds hard. What keeps you awake at night?", "That is a lot to carry. Who could you call tonight?",
          "You miss him. What happened between the two of them?"]
REPETITIVE = ["feeling feeling feeling you are feeling feeling like you feel feeling sounds sounds",
              "feeling feeling feeling feeling feeling feeling", "you are feeling feeling feeling feeling"]


def _one_sample_each(texts: list[str]) -> list[list[str]]:
    return [[text] for text in texts]


def _comparison(base_rewards, dpo_rewards, dpo_answers, dpo_length) -> policy.HeldOutComparison:
    held = {"base": policy.HeldOutSamples(np.array(base_rewards, float), _one_sample_each(FLUENT), np.full(3, 40.0)),
            "DPO": policy.HeldOutSamples(np.array(dpo_rewards, float), _one_sample_each(dpo_answers),
                                         np.full(3, dpo_length))}
    return policy.HeldOutComparison(STATEMENTS, 4, held, policy.held_out_comparison(held, seed=0, n_boot=200))


def test_a_reward_gained_with_longer_repetitive_answers_is_called_reward_hacking():
    change = _comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0).change("DPO", "base")
    assert change.reward_gain == pytest.approx(10 / 3) and change.length_ratio == 2.0
    assert change.longer and change.more_repetitive and change.reward_hacking
    assert change.repeated[0][0] == "feeling" and change.repeated[0][2] == 0.0 and len(change.repeated) == 3
    assert change.reward_line() == "held-out reward -1.333 (base) -> +2.000 (DPO)"


def test_a_reward_gained_with_answers_like_the_base_ones_is_not_reward_hacking():
    change = _comparison([-1, -2, -1], [2, 3, 1], FLUENT, 42.0).change("DPO", "base")
    assert change.reward_gain > 0 and not change.longer and not change.more_repetitive
    assert not change.reward_hacking and change.repeated == ()
    lower = _comparison([1, 1, 1], [0, 0, 0], REPETITIVE, 80.0).change("DPO", "base")
    assert not lower.reward_hacking  # no gain, nothing hacked


def test_the_comparison_table_orders_and_examples_skip_crisis_statements():
    comparison = _comparison([-1, -2, -1], [2, 9, 1], REPETITIVE, 80.0)
    table = comparison.table
    assert list(table.index) == ["base", "DPO"]
    assert table.loc["DPO", "ci_low"] <= table.loc["DPO", "mean reward"] <= table.loc["DPO", "ci_high"]
    assert table.loc["base", policy.DISTINCT_WORDS] == pytest.approx(1.0)
    assert comparison.biggest_gains("DPO", "base", k=2) == [0, 2]  # statement 1, the largest gain, is a crisis one
    assert comparison.rises(["base", "DPO"]) and not comparison.rises(["DPO", "base"])
    saved = comparison.metrics()
    assert saved["held_out_distinct_words_first_30_pct"]["base"] == pytest.approx(100.0)
    assert saved["held_out_statements"] == 3 and set(saved["held_out_mean_reward"]) == {"base", "DPO"}


def test_held_out_statements_take_one_row_per_statement_in_order():
    test = pd.DataFrame({"ID": ["a", "a", "b", "c"], "question": ["qa", "qa", "qb", "qc"]})
    assert policy.held_out_statements(test, 2) == ["qa", "qb"]


def _training_run(tmp_path, reused=False) -> policy.TrainingRun:
    log = [{"epoch": 0.5, "step": 1, "loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.5},
           {"epoch": 1.0, "step": 2, "loss": 0.6, "rewards/margins": 0.2, "rewards/accuracies": 0.75},
           {"epoch": 1.0, "step": 2, "eval_loss": 0.65, "eval_rewards/margins": 0.1, "eval_rewards/accuracies": 0.6}]
    return policy.TrainingRun(model_dir=tmp_path / "model", reference="base", pairs=16, steps=2, seconds=4.0,
                              log_history=log, reused=reused)


def test_finish_dpo_saves_the_headline_numbers(tmp_path):
    training = _training_run(tmp_path)
    assert training.steps_per_second == 0.5 and training.final_train_loss == 0.6
    assert len(training.train_log) == 2 and training.eval_log["eval_loss"].tolist() == [0.65]
    result = policy.finish_dpo(training, _comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0), tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == 2 and saved["train_pairs"] == 16 and saved["held_out_mean_reward"]["DPO"] == 2.0
    assert result.headline() == {"held_out_reward_base": -1.333, "held_out_reward_DPO": 2.0}
    assert result.change.reward_hacking


def _iteration(tmp_path) -> policy.DPOIterResult:
    rows = []
    for k, (mean, length) in enumerate([(-1.5, 60.0), (0.9, 100.0)], start=1):
        rows.append({"round": k, "statements": 3, "samples_per_statement": 8, "mean_reward": mean,
                     "best_reward": mean + 2, "worst_reward": mean - 2, "mean_length_tokens": length, "pairs": 2,
                     "degenerate_statements": 1, "empty_samples": 0, "mean_pair_margin": 4.0, "generation_seconds": 1.0,
                     "tokens_per_second": 10.0, "reference": f"r{k - 1}", "policy": str(tmp_path / f"round_{k}"),
                     "dpo_seconds": 2.0, "dpo_steps": 3, "dpo_steps_per_second": 1.5, "dpo_reused": k == 2,
                     "round_seconds": 3.0, "final_train_loss": 0.5})
        (tmp_path / f"round_{k}").mkdir(exist_ok=True)
        pd.DataFrame({"ID": ["a", "b"], "prefID": [0, 1], "question": [CRISIS, STATEMENTS[0]],
                      "chosen": ["best crisis answer", "best calm answer"], "rejected": ["worst", "worst calm"],
                      "reward_chosen": [5.0, 3.0], "reward_rejected": [0.0, -1.0], "round": [k, k]}).to_parquet(
            tmp_path / f"round_{k}" / "pairs.parquet")
    return policy.DPOIterResult("base", "r0", pd.DataFrame(rows), tmp_path)


def test_the_dpo_iter_result_sums_its_rounds_and_saves_what_chapter_6_reads(tmp_path):
    iteration = _iteration(tmp_path)
    assert iteration.total_steps == 6 and iteration.degenerate_statements == 2
    assert iteration.final_policy == str(tmp_path / "round_2")
    assert iteration.example_pair()["chosen"] == "best calm answer"  # the crisis statement's pair is not shown
    held = _comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0)
    result = policy.finish_dpo_iter(iteration, held)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["held_out_mean_reward"]["DPO"] == 2.0 and "held_out_distinct_words_first_30_pct" in saved
    assert [r["round"] for r in saved["rounds"]] == [1, 2] and "policy" not in saved["rounds"][0]
    assert result.headline()["total_dpo_steps"] == 6 and iteration.held_out is None


def test_dpo_iter_starts_from_the_base_or_the_dpo_policy(tmp_path):
    assert policy.dpo_iter_start(load_profile("tiny", ["dpo_iter.start_from=dpo"]), tmp_path) == str(
        tmp_path / "dpo" / "model")
    assert policy.dpo_iter_start(load_profile("tiny"), tmp_path) != str(tmp_path / "dpo" / "model")


# ------------------------------------------------------------------------------------------------------ the displays


def test_figures_are_page_wide_with_their_legends_outside_the_axes(tmp_path):
    figures = [show.dpo_training_curves(_training_run(tmp_path)), show.dpo_iter_rounds(_iteration(tmp_path)),
               show.held_out_figure(_comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0))]
    for fig in figures:
        assert fig.get_size_inches()[0] == pytest.approx(show.FIGURE_WIDTH_IN)
        assert all(ax.get_legend() is None for ax in fig.axes)  # any legend is the figure's, above the panels
        plt.close(fig)
    assert len(figures[0].legends) == 1 and len(figures[1].legends) == 1


def test_tables_format_shares_as_percentages_and_counts_with_separators(tmp_path):
    html = show.held_out_table(_comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0)).to_html()
    assert "100.0%" in html and "3 held-out statements, 4 samples each" in html and show.TABLE_CLASS in html
    rounds = show.dpo_iter_rounds_table(_iteration(tmp_path)).to_html()
    assert "-1.50" in rounds and "100.0" in rounds and "3 statements x 8 samples" in rounds
    assert rounds.count("col_heading") == 7  # seven columns fit the page
    with_empty = _iteration(tmp_path)
    with_empty.rounds.loc[0, "empty_samples"] = 2  # a round with empty answers gets their column
    assert "empty answers" not in rounds and "empty answers" in show.dpo_iter_rounds_table(with_empty).to_html()


def test_findings_call_a_gamed_reward_reward_hacking_and_say_when_nothing_was_gained(tmp_path):
    hacked = show.dpo_findings(policy.finish_dpo(_training_run(tmp_path),
                                                 _comparison([-1, -2, -1], [2, 3, 1], REPETITIVE, 80.0), tmp_path))
    assert "Reward hacking, not preference learning" in hacked.data and '"feeling" (0.0 to ' in hacked.data
    assert "28.5% to 58.5%" in hacked.data
    flat = show.dpo_findings(policy.finish_dpo(_training_run(tmp_path),
                                               _comparison([1, 1, 1], [0, 0, 0], FLUENT, 40.0), tmp_path))
    assert "did not raise the held-out reward" in flat.data and "Reward hacking" not in flat.data
    iteration = policy.finish_dpo_iter(_iteration(tmp_path), _three_policies())
    text = show.dpo_iter_findings(iteration).data
    assert "base < DPO < DPO-Iter: the paper's order" in text and "Reward hacking" in text
    assert "-1.50 in round 1 to +0.90 in round 2" in text
    tied = _three_policies()
    tied.table.loc["DPO-Iter", "mean reward"] = tied.table.loc["DPO", "mean reward"]
    tied_text = show.dpo_iter_findings(policy.finish_dpo_iter(_iteration(tmp_path), tied)).data
    assert "base < DPO = DPO-Iter: not the paper's order" in tied_text


def _three_policies() -> policy.HeldOutComparison:
    held = {"base": policy.HeldOutSamples(np.array([-1.0, -2, -1]), _one_sample_each(FLUENT), np.full(3, 40.0)),
            "DPO": policy.HeldOutSamples(np.array([1.0, 1, 1]), _one_sample_each(FLUENT), np.full(3, 45.0)),
            "DPO-Iter": policy.HeldOutSamples(np.array([3.0, 3, 3]), _one_sample_each(REPETITIVE),
                                              np.full(3, 90.0))}
    return policy.HeldOutComparison(STATEMENTS, 4, held, policy.held_out_comparison(held, seed=0, n_boot=100))


def test_examples_leave_out_crisis_statements_and_show_both_policies(tmp_path):
    text = show.policy_examples(_comparison([-1, -2, -1], [2, 9, 1], REPETITIVE, 80.0), "DPO", "base", k=2).data
    assert "kill myself" not in text and "exams" in text and "DPO (mean reward +2.00)" in text
    pair = show.round_pair(_iteration(tmp_path)).data
    assert "best calm answer" in pair and "kill myself" not in pair


@pytest.mark.parametrize("mixed_precision", [{}, {"bf16": True, "use_cpu": True}], ids=["float32", "bf16"])
def test_the_dpo_loss_by_hand_equals_trls_and_a_wrong_beta_does_not(tiny_world, tmp_path, monkeypatch,
                                                                     mixed_precision):
    """Chapter 04's check of the DPO formula on a policy that differs from its reference: the loss, the chosen reward
    and the margin computed from the two models' log-probabilities match TRL's logged values within the tolerance;
    computed with the wrong beta they do not.  A profile that trains in bf16 (the paper's) is checked in float32 too:
    under bf16 autocast TRL's loss moved by 6e-4 from the float32 one, more than the tolerance, and a check against
    float32 sums failed on the precision.  (bf16 autocast runs on a CPU with ``use_cpu``; the profile's guard against
    mixed precision without a GPU is lifted.)"""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import psyco_utils.models

    monkeypatch.setattr(psyco_utils.models, "check_precision", lambda training, section: None)
    reference = tmp_path / "reference"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_world.policy_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(reference)
    AutoTokenizer.from_pretrained(str(tiny_world.policy_dir)).save_pretrained(reference)
    n = 4
    pairs = datasets.Dataset.from_dict({"ID": [f"s{i}" for i in range(n)], "prefID": list(range(n)),
                                        "question": [f"I cannot sleep before exam {i}." for i in range(n)],
                                        "chosen": ["It sounds like you feel worn out. What keeps you awake? " * 3] * n,
                                        "rejected": ["Just sleep."] * n})
    training = {"beta": 0.1, "max_length": 128, "bf16": False, "gradient_checkpointing": False, **mixed_precision}
    with policy.trl_evaluation_on_batch(tiny_world.policy_dir, reference, pairs, training, seed=0) as trl_run:
        assert {trl_run.policy_model.dtype, trl_run.reference_model.dtype} == {torch.float32}
        chosen, rejected = policy.completion_logps(trl_run.policy_model, trl_run.tokens)
        ref_chosen, ref_rejected = policy.completion_logps(trl_run.reference_model, trl_run.tokens)
    assert trl_run.policy_model is None and trl_run.reference_model is None  # released for the sampling that follows
    # TRL's models scored exactly as float32 copies loaded afresh do: no autocast was left on them
    for folder, scored in ((tiny_world.policy_dir, (chosen, rejected)), (reference, (ref_chosen, ref_rejected))):
        fresh = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        np.testing.assert_allclose(policy.completion_logps(fresh, trl_run.tokens), scored, atol=1e-5)

    def by_hand(beta):
        rc, rr = beta * (chosen - ref_chosen), beta * (rejected - ref_rejected)
        return {"loss": float(np.mean(np.logaddexp(0, -(rc - rr)))), "rewards/chosen": float(rc.mean()),
                "rewards/margins": float((rc - rr).mean())}

    check = policy.LossCheck(by_hand(0.1), trl_run.logged, beta=0.1, items=n)
    assert abs(trl_run.logged["rewards/margins"]) > 1e-3  # the two models differ, so the check is not 0 against 0
    assert check.agrees, check.table
    assert not policy.LossCheck(by_hand(0.2), trl_run.logged, beta=0.2, items=n).agrees
    assert "tolerance" in check.line()


def test_every_held_out_sample_is_kept_and_read_back(tiny_world, tmp_path):
    """compare_on_held_out keeps all n samples per statement (the style measures need them) in one file per policy,
    read back unchanged; a file saved before the samples were kept (no answers column) is sampled again, not misread."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from psyco_utils.reward import RewardScorer

    scorer_dir = tmp_path / "scorer"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_world.policy_dir), num_labels=1).save_pretrained(
        scorer_dir)
    AutoTokenizer.from_pretrained(str(tiny_world.policy_dir)).save_pretrained(scorer_dir)
    scorer = RewardScorer.load(scorer_dir)
    cfg = load_profile("tiny", ["dpo.max_new_tokens=12", "dpo.eval_statements=2", "dpo.eval_samples_per_statement=3"])
    test = pd.DataFrame({"ID": ["a", "b"], "question": ["I cannot sleep before exams.", "My brother ignores me."]})
    saved = tmp_path / "held_out_samples"
    first = policy.compare_on_held_out({"base": tiny_world.policy_dir}, cfg, scorer, test, saved_dir=saved)
    assert [len(a) for a in first.answers["base"]] == [3, 3]
    assert first.policies["base"].first_response == [a[0] for a in first.answers["base"]]
    (stamp,) = saved.glob("*.parquet")
    mtime = stamp.stat().st_mtime_ns
    again = policy.compare_on_held_out({"base": tiny_world.policy_dir}, cfg, scorer, test, saved_dir=saved)
    assert stamp.stat().st_mtime_ns == mtime and again.answers == first.answers
    assert np.array_equal(again.policies["base"].mean_reward, first.policies["base"].mean_reward)
    pd.read_parquet(stamp).drop(columns="answers").assign(first_response=["x", "y"]).to_parquet(stamp)
    resampled = policy.compare_on_held_out({"base": tiny_world.policy_dir}, cfg, scorer, test, saved_dir=saved)
    assert resampled.answers == first.answers and "answers" in pd.read_parquet(stamp)
