"""The reward chapter's extra tables (issue 17): RewardBench, the data ablation, general reward models read from a
causal language model, and an LLM as a ranker."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from psyco_utils import paper, reward
from psyco_utils.config import RewardDataMix, load_profile
from psyco_utils.judge import CompareResult

FIXTURES = Path(__file__).resolve().parent.parent / "standin" / "fixtures"
REWARDBENCH_FILE = FIXTURES / "reward-bench.jsonl"


# ------------------------------------------------------------------------------------------------------ RewardBench


def test_rewardbench_fixture_loads_with_its_categories():
    rows = reward.load_rewardbench(str(REWARDBENCH_FILE))
    assert set(reward.REWARDBENCH_COLUMNS) <= set(rows.columns)
    assert set(rows["category"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    assert rows.loc[rows["subset"] == "donotanswer", "category"].item() == "Safety"
    assert reward.category_of("a-new-subset") == "other"


def test_rewardbench_bad_cell_names_file_row_and_column(tmp_path):
    frame = pd.read_json(REWARDBENCH_FILE, lines=True)
    frame.loc[3, "rejected"] = "  "
    path = tmp_path / "bench.jsonl"
    frame.to_json(path, orient="records", lines=True)
    with pytest.raises(reward.RewardBenchError, match=r"bench.jsonl: row 3, column 'rejected'"):
        reward.load_rewardbench(str(path))
    with pytest.raises(reward.RewardBenchError, match=r"missing column\(s\) \['subset'\]"):
        frame.drop(columns="subset").to_json(path, orient="records", lines=True)
        reward.load_rewardbench(str(path))


def test_rewardbench_accuracy_by_subset_category_and_mean():
    rows = pd.DataFrame({"subset": ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-hard", "math-prm"],
                         "prompt": "p", "chosen": "c", "rejected": "r"})
    rows["category"] = rows["subset"].map(reward.category_of)
    acc = reward.rewardbench_accuracy(rows, [1, 0, 1, 0], [0, 1, 0, 1])
    assert acc["subset"].at["alpacaeval-easy", "accuracy"] == 0.5
    assert acc["category"]["accuracy"].to_dict() == {"Chat": 0.5, "Chat Hard": 1.0, "Reasoning": 0.0}
    assert acc["overall"].at["mean of the categories", "accuracy"] == pytest.approx(0.5)
    assert acc["overall"].at["all rows pooled", "accuracy"] == 0.5
    with pytest.raises(ValueError, match="3 chosen"):
        reward.rewardbench_accuracy(rows, [1, 0, 1], [0, 1, 0])


def test_rewardbench_max_rows_takes_every_subset_in_turn():
    rows = reward.load_rewardbench(str(REWARDBENCH_FILE), max_rows=4)
    assert len(rows) == 4 and rows["subset"].nunique() == 4


def test_rewardbench_table_is_none_without_a_setting():
    assert reward.rewardbench_table(load_profile("tiny"), scorer=None) is None


# ------------------------------------------------------------------------------------------------------ the ablation


def _pairs(n: int, source: str) -> pd.DataFrame:
    return pd.DataFrame({"ID": [f"{source}{i}" for i in range(n)], "prefID": range(n),
                         "question": "q", "chosen": "c", "rejected": "r"})


def test_mix_pairs_draws_each_source_and_counts_a_shortfall():
    psy, help_ = _pairs(30, "p"), _pairs(8, "h")
    pairs, record = reward.mix_pairs(RewardDataMix(name="budget", psycopref_pairs=10, helpsteer2_pairs=10),
                                     psy, help_, seed=1)
    assert (pairs["source"] == "psycopref").sum() == 10 and (pairs["source"] == "helpsteer2").sum() == 8
    assert record["helpsteer2 asked"] == 10 and record["helpsteer2 available"] == 8 and record["helpsteer2 used"] == 8
    alone, record = reward.mix_pairs(RewardDataMix(name="HelpSteer2 only", psycopref_pairs=0, helpsteer2_pairs="all"),
                                     psy, help_, seed=1)
    assert set(alone["source"]) == {"helpsteer2"} and record["train pairs"] == 8
    with pytest.raises(ValueError, match="none were loaded"):
        reward.mix_pairs(RewardDataMix(name="x", helpsteer2_pairs=5), psy, None, seed=1)
    with pytest.raises(ValueError, match="takes no pair"):
        reward.mix_pairs(RewardDataMix(name="x", psycopref_pairs=0), psy, help_, seed=1)


def test_paper_profile_trains_every_ablation_row_of_the_paper():
    cfg = load_profile("paper")
    names = {m.name for m in cfg.reward.ablations}
    assert names == set(reward.paper_ablation_rows().index)
    assert cfg.reward.rewardbench == reward.REWARDBENCH_ID
    budget = {m.name: (m.psycopref_pairs, m.helpsteer2_pairs) for m in cfg.reward.ablations}
    for name, row in paper.PAIR_BUDGET_ABLATION.iterrows():
        assert budget[name] == (row["psycopref pairs"], row["helpsteer2 pairs"])


def test_ablation_with_paper_joins_by_name():
    result = reward.AblationResult(rewards={"Psy10k": (np.ones(2), np.zeros(2)), "mine": (np.ones(2), np.zeros(2))})
    comparison = pd.DataFrame({"accuracy": [0.9, 0.7]}, index=["Psy10k", "mine"])
    bench = pd.DataFrame({"mean of the categories": [0.6]}, index=["Psy10k"])
    table = reward.ablation_with_paper(comparison, result, bench)
    assert table.at["Psy10k", "test accuracy (paper)"] == 0.963 and table.at["Psy10k", "RewardBench"] == 0.6
    assert np.isnan(table.at["mine", "test accuracy (paper)"])


# ------------------------------------------------------------------------ a reward model published as a causal LM


class _Tok:
    pad_token, eos_token, pad_token_id, padding_side = "<pad>", "<eos>", 0, "right"


def _tiny_causal_lm():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))


def test_causal_lm_reward_is_token_zeros_logit_after_the_chat():
    import torch

    model = _tiny_causal_lm()
    scorer = reward.CausalLMRewardScorer(model, _Tok())
    ids = [[5, 6, 7, 8, 9], [5, 11, 12]]
    rewards = scorer._batch_rewards(ids)
    with torch.no_grad():
        expected = [model(input_ids=torch.tensor([x])).logits[0, -1, reward.CAUSAL_LM_REWARD_TOKEN].item()
                    for x in ids]
    np.testing.assert_allclose(rewards, expected, rtol=1e-4, atol=1e-5)


def test_load_reads_a_causal_lm_and_refuses_a_classifier_with_two_outputs(tiny_world, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_world.tokenizer_dir)
    causal = _tiny_causal_lm()
    causal.resize_token_embeddings(len(tokenizer))
    causal.save_pretrained(tmp_path / "causal")
    tokenizer.save_pretrained(tmp_path / "causal")
    scorer = reward.RewardScorer.load(tmp_path / "causal", device="cpu")
    assert isinstance(scorer, reward.CausalLMRewardScorer)
    rc, rr = scorer.score_pairs(pd.DataFrame({"question": ["I feel stuck at work."], "chosen": ["Tell me more."],
                                              "rejected": ["Stop it."]}))
    assert np.isfinite(rc).all() and rc[0] != rr[0]
    two = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                                     num_hidden_layers=1, num_attention_heads=2, num_labels=2))
    two.save_pretrained(tmp_path / "two")
    tokenizer.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="num_labels=2"):
        reward.RewardScorer.load(tmp_path / "two", device="cpu")


# --------------------------------------------------------------------------------------------- an LLM as a ranker


class _Judge:
    """Answers every comparison with ``verdict(first shown response, second shown response)``."""

    def __init__(self, verdict):
        self.verdict, self.asked = verdict, 0

    def compare_many(self, items, progress=True, task=""):
        self.asked += len(items)
        return [CompareResult(None, self.verdict(i.response_a, i.response_b), "", "ok") for i in items]


def test_two_order_agreement_counts_ties_and_position_bias():
    from psyco_utils.agreement import two_order_agreement

    better, worse = ["good"] * 6, ["bad"] * 6
    always_right = two_order_agreement(_Judge(lambda a, b: "A" if a == "good" else "B"), ["q"] * 6, better, worse,
                                       n_boot=50)
    assert always_right["agreement"] == 1.0 and always_right["cohen_kappa"] == 1.0
    always_first = two_order_agreement(_Judge(lambda a, b: "A"), ["q"] * 6, better, worse, n_boot=50)
    assert always_first["ties"] == 6 and always_first["agreement"] == 0.5 and always_first["strict_agreement"] == 0
    always_wrong = two_order_agreement(_Judge(lambda a, b: "B" if a == "good" else "A"), ["q"] * 6, better, worse,
                                       n_boot=50)
    assert always_wrong["agreement"] == 0.0 and always_wrong["cohen_kappa"] < 0


def test_rubric_ranker_on_pairs_it_labelled(tmp_path):
    cfg = load_profile("tiny")
    test = pd.DataFrame({"question": ["I can't stop worrying about my exams and I don't sleep."] * 2,
                         "chosen": ["It sounds exhausting to carry that worry. What feels hardest about it?"] * 2,
                         "rejected": ["Just stop worrying. Go to bed earlier."] * 2})
    result = reward.rank_test_pairs(cfg, test, tmp_path / "judgments.sqlite")
    assert result.backend == "rubric" and result.agreement["judged"] == 2
    assert result.agreement["agreement"] == 1.0
    assert reward.with_paper(pd.DataFrame({"accuracy": [0.9], "AUC": [0.9], "ECE": [0.1], "Brier": [0.1]},
                                          index=["m"]), "tiny", result).loc[("this run (tiny profile)",
                                                                             result.name), "accuracy"] == 1.0


def test_ranker_without_an_endpoint_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("PSYCO_RANKER_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="PSYCO_RANKER_BASE_URL"):
        reward.ranker_judge_config(load_profile("paper"))
    monkeypatch.setenv("PSYCO_RANKER_BASE_URL", "http://127.0.0.1:9/v1")
    config = reward.ranker_judge_config(load_profile("paper"))
    assert config.base_url == "http://127.0.0.1:9/v1" and config.model == "meta-llama/Llama-3.1-70B-Instruct"
