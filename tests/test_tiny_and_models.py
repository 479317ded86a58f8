"""The tiny world is deterministic and usable; the hub loading path works on a locally saved model."""

import json

import torch

from psyco_utils import models
from psyco_utils.config import ModelsConfig, TinyModelConfig
from psyco_utils.tiny import build_tiny_world


def test_tiny_world_files_and_warm_start(tiny_world):
    assert (tiny_world.policy_dir / "config.json").exists()
    info = json.loads((tiny_world.root / "tiny_world.json").read_text())
    assert info["sft_loss_last"] < info["sft_loss_first"]  # the warm start learned something
    tok = models.load_tokenizer(str(tiny_world.policy_dir))
    text = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nhello<|end|>\n<|assistant|>\n"


def test_tiny_world_is_reused_and_deterministic(tiny_world, tmp_path):
    small = TinyModelConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, sft_epochs=1, sft_max_length=128, sft_batch_size=32)
    again = build_tiny_world(tiny_world.root, small, seed=7)
    assert again.info["reused"] is True
    other = build_tiny_world(tmp_path / "w2", small, seed=7)
    from safetensors.torch import load_file

    wa = load_file(tiny_world.policy_dir / "model.safetensors")
    wb = load_file(other.policy_dir / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_hub_loading_path_on_local_directory(tiny_world):
    """colab and paper pass hub ids to the same from_pretrained calls; a local directory exercises that path."""
    cfg = ModelsConfig(policy=str(tiny_world.policy_dir), reward_backbone=str(tiny_world.policy_dir))
    model, tok = models.load_policy(cfg.policy, cfg)
    assert tok.padding_side == "left" and tok.pad_token is not None
    rm, rm_tok = models.load_reward_backbone(cfg.reward_backbone, cfg)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == rm_tok.pad_token_id


def test_hub_id_fails_fast_offline():
    import pytest

    with pytest.raises(Exception):
        models.load_tokenizer("meta-llama/Llama-3.2-3B-Instruct")


def test_batched_generation_shapes_and_greedy_determinism(tiny_world):
    cfg = ModelsConfig(policy=str(tiny_world.policy_dir), reward_backbone=str(tiny_world.policy_dir))
    model, tok = models.load_policy(cfg.policy, cfg)
    statements = ["I feel anxious before every exam.", "My sister stopped talking to me after the wedding."]
    stats = models.GenerationStats()
    out = models.generate_responses(model, tok, statements, n=3, temperature=1.0, max_new_tokens=12, batch_size=2,
                                    stats=stats)
    assert len(out) == 2 and all(len(o) == 3 for o in out)
    assert stats.samples == 6 and stats.new_tokens > 0
    g1 = models.generate_responses(model, tok, statements, n=1, temperature=0, max_new_tokens=10)
    g2 = models.generate_responses(model, tok, statements[::-1], n=1, temperature=0, max_new_tokens=10, batch_size=1)
    assert g1 == g2[::-1]  # left padding: batching does not change greedy outputs


def test_every_bundled_answer_is_written_as_its_sentences_one_token_each(tiny_world):
    """The sentence tokens: each bundled answer cuts into sentences that join back to it, the tokenizer turns each
    sentence into one token inside the chat template, and decoding gives the answer back."""
    from psyco_utils.data import load_bundled_corpus
    from psyco_utils.tiny import ANSWER_END, sentence_units

    _, responses = load_bundled_corpus()
    tok = models.load_tokenizer(str(tiny_world.policy_dir))
    assert tiny_world.info["sentence_tokens"] > 2000
    for answer in responses["text"].iloc[::7]:
        units = sentence_units(answer)
        assert "".join(units) == answer + ANSWER_END
        conversation = [{"role": "user", "content": "I keep worrying."}, {"role": "assistant", "content": answer}]
        ids = tok.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
        tokens = tok.convert_ids_to_tokens(ids)
        start = tokens.index("<|assistant|>") + 2  # after the role and its line break
        assert tokens[start : start + len(units) + 1] == [*units, "<|end|>"]
        assert tok.decode(ids[start : start + len(units)]).strip() == answer
    assert sentence_units("1. Go now.\n2. Stop. Rest!") == ["1. Go now.\n", "2. Stop. ", "Rest! "]


def test_statements_stay_word_pieces(tiny_world):
    tok = models.load_tokenizer(str(tiny_world.policy_dir))
    ids = tok("Since my divorce I feel lonely every evening.", add_special_tokens=False)["input_ids"]
    assert len(ids) > 5 and max(ids) < 600  # BPE pieces only, below the added sentence tokens
