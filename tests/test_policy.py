"""DPO and the DPO-Iter loop: best/worst selection, degenerate rounds, the reference refresh, a real round on tiny models."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from psyco_utils import policy
from psyco_utils.config import load_profile


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


@pytest.fixture()
def tiny_cfg():
    return load_profile("tiny", ["dpo_iter.rounds=2", "dpo_iter.statements_per_round=6",
                                 "dpo_iter.samples_per_statement=4", "dpo_iter.max_new_tokens=16",
                                 "dpo_iter.training.num_train_epochs=1", "dpo_iter.training.per_device_train_batch_size=4"])


def test_two_rounds_refresh_the_reference(tiny_world, tiny_cfg, tmp_path):
    questions = pd.DataFrame({"ID": [f"s{i}" for i in range(8)],
                              "question": [f"I feel anxious about my exams and my family, case {i}." for i in range(8)]})
    rounds = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), questions, tmp_path,
                                 progress=lambda *_: None)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0]["reference"] == str(tiny_world.policy_dir)
    assert rounds[1]["reference"] == rounds[0]["policy"] == str(tmp_path / "round_1" / "model")
    for k in (1, 2):
        saved = json.loads((tmp_path / f"round_{k}" / "metrics.json").read_text())
        assert saved["pairs"] + saved["degenerate_statements"] == 6
        pairs = pd.read_parquet(tmp_path / f"round_{k}" / "pairs.parquet")
        assert (pairs["reward_chosen"] > pairs["reward_rejected"]).all()
        assert (tmp_path / f"round_{k}" / "model" / "config.json").exists()
    from safetensors.torch import load_file

    before = load_file(tiny_world.policy_dir / "model.safetensors")
    after = load_file(tmp_path / "round_2" / "model" / "model.safetensors")
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before if k in after)
    assert not any(r["dpo_reused"] for r in rounds)


def test_a_rerun_on_the_same_inputs_reuses_every_round_and_a_change_retrains(tiny_world, tiny_cfg, tmp_path):
    questions = pd.DataFrame({"ID": [f"s{i}" for i in range(8)],
                              "question": [f"I feel anxious about my exams and my family, case {i}." for i in range(8)]})
    first = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), questions, tmp_path,
                                progress=lambda *_: None)
    weights = (tmp_path / "round_2" / "model" / "model.safetensors").read_bytes()
    again = policy.run_dpo_iter(tiny_cfg, str(tiny_world.policy_dir), KeywordScorer(), questions, tmp_path,
                                progress=lambda *_: None)
    assert [r["dpo_reused"] for r in again] == [True, True]  # same samples, same pairs, same start: no training
    assert [r["dpo_steps"] for r in again] == [r["dpo_steps"] for r in first]
    assert (tmp_path / "round_2" / "model" / "model.safetensors").read_bytes() == weights
    changed = load_profile("tiny", ["dpo_iter.rounds=2", "dpo_iter.statements_per_round=6",
                                    "dpo_iter.samples_per_statement=4", "dpo_iter.max_new_tokens=16",
                                    "dpo_iter.training.num_train_epochs=1",
                                    "dpo_iter.training.per_device_train_batch_size=4",
                                    "dpo_iter.training.learning_rate=0.001"])
    retrained = policy.run_dpo_iter(changed, str(tiny_world.policy_dir), KeywordScorer(), questions, tmp_path,
                                    progress=lambda *_: None)
    assert [r["dpo_reused"] for r in retrained] == [False, False]  # a new learning rate is a new training
    forced = load_profile("tiny", ["reuse_trained_models=false", "dpo_iter.rounds=1", "dpo_iter.statements_per_round=6",
                                   "dpo_iter.samples_per_statement=4", "dpo_iter.max_new_tokens=16",
                                   "dpo_iter.training.num_train_epochs=1",
                                   "dpo_iter.training.per_device_train_batch_size=4",
                                   "dpo_iter.training.learning_rate=0.001"])
    assert not policy.run_dpo_iter(forced, str(tiny_world.policy_dir), KeywordScorer(), questions, tmp_path,
                                   progress=lambda *_: None)[0]["dpo_reused"]


def test_dpo_names_a_missing_column(tiny_world, tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"ID": ["a"], "prefID": [0], "question": ["q"], "chosen": ["c"]})
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rejected'\]"):
        policy.train_dpo({"beta": 0.1}, str(tiny_world.policy_dir), ds, tmp_path, seed=0)


def test_length_penalty_changes_the_pairing():
    samples = policy.Samples(statements=["s"], responses=[["short", "a much longer answer here"]],
                             rewards=np.array([[1.0, 1.5]]), raw_rewards=np.array([[1.0, 1.5]]),
                             lengths=np.array([[1, 5]]), generation_seconds=1.0, new_tokens=6)
    _, frame, _ = policy.pairs_dataset(samples, ["s1"], 1)
    assert frame["chosen"].iloc[0] == "a much longer answer here"
    penalised = policy.Samples(**{**samples.__dict__, "rewards": samples.raw_rewards - 0.2 * samples.lengths})
    _, frame, _ = policy.pairs_dataset(penalised, ["s1"], 1)
    assert frame["chosen"].iloc[0] == "short"


def test_held_out_samples_are_read_back_only_for_the_same_policy_scorer_and_statements(tiny_world, tiny_cfg, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from psyco_utils.reward import RewardScorer

    scorer_dir = tmp_path / "scorer"
    AutoModelForSequenceClassification.from_pretrained(str(tiny_world.policy_dir), num_labels=1).save_pretrained(scorer_dir)
    AutoTokenizer.from_pretrained(str(tiny_world.policy_dir)).save_pretrained(scorer_dir)
    scorer = RewardScorer.load(scorer_dir)
    cfg = load_profile("tiny", ["dpo.max_new_tokens=12"])
    questions = ["I cannot sleep before exams.", "My brother and I no longer talk."]
    saved = tmp_path / "held_out_samples"
    first = policy.held_out_rewards(str(tiny_world.policy_dir), cfg, scorer, questions, seed=3, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 1
    (stamp,) = saved.glob("*.parquet")
    mtime = stamp.stat().st_mtime_ns
    again = policy.held_out_rewards(str(tiny_world.policy_dir), cfg, scorer, questions, seed=3, n=2, saved_dir=saved)
    assert stamp.stat().st_mtime_ns == mtime  # read back, not written again
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    policy.held_out_rewards(str(tiny_world.policy_dir), cfg, scorer, questions[:1], seed=3, n=2, saved_dir=saved)
    policy.held_out_rewards(str(tiny_world.policy_dir), cfg, scorer, questions, seed=4, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 3  # other statements or another seed: sampled and kept apart
    off = load_profile("tiny", ["dpo.max_new_tokens=12", "reuse_trained_models=false"])
    policy.held_out_rewards(str(tiny_world.policy_dir), off, scorer, questions, seed=5, n=2, saved_dir=saved)
    assert len(list(saved.glob("*.parquet"))) == 3  # switched off: nothing kept
