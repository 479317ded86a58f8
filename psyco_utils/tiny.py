"""The tiny world: a tokenizer and tiny Llama models built locally from the bundled corpus.

The hub cannot be reached on CI machines, so the tiny profile builds its own models (chapter 01 builds them, every
later chapter reuses them from ``runs/tiny/tiny_world/``):

* a byte-level BPE tokenizer trained on the bundled statements and responses, with a chat template;
* a tiny Llama-architecture policy, warm-started by a short supervised pass over the bundled responses (all five
  styles, so the base policy is a blend of good and bad counselling and preference learning has room to move it);
* the reward-model backbone: the same warm-started weights loaded as a sequence classifier with one output, as the
  paper initialises its reward models from the instruct models.

Everything is deterministic for a seed; a fingerprint of the corpus, the tiny config and the seed decides whether a
saved world can be reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .config import TinyModelConfig

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n"
    "{% generation %}{{ message['content'] }} <|end|>{% endgeneration %}\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|unk|>"]
#: What the chat template writes between an assistant turn's text and ``<|end|>``: the separator that closes its last
#: sentence, so that every sentence of an answer, the last one included, is followed by whitespace.
ANSWER_END = " "
#: Where an answer breaks into sentences: after ``.``, ``?`` or ``!`` and spaces (not after a list number such as
#: ``1.``), and at every line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])(?<!\d[.?!]) +|\n")


def sentence_units(answer: str) -> list[str]:
    """An answer cut into the units the tiny policy writes: each sentence with the whitespace after it (the last one
    with :data:`ANSWER_END`, as the chat template writes it).  Joined, the units give back the answer and its end."""
    units, start = [], 0
    for cut in _SENTENCE_BREAK.finditer(answer):
        units.append(answer[start : cut.end()])
        start = cut.end()
    units.append(answer[start:] + ANSWER_END)
    return [unit for unit in units if unit.strip()]


@dataclass(frozen=True)
class TinyWorld:
    """Paths of the built tiny world."""

    root: Path
    tokenizer_dir: Path
    policy_dir: Path
    info: dict

    @property
    def reward_backbone_dir(self) -> Path:
        return self.policy_dir


def _fingerprint(texts: list[str], tiny: TinyModelConfig, seed: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(tiny.model_dump(), sort_keys=True).encode())
    h.update(str(seed).encode())
    h.update(CHAT_TEMPLATE.encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path, sentences: list[str] = ()):
    """Train a byte-level BPE tokenizer with the chat template and special tokens; save it as a HF tokenizer.

    Each of ``sentences`` (units of :func:`sentence_units`) becomes one added token, and so does each without its
    trailing whitespace: text containing one is cut there first, whole, the longest match winning, and the rest is
    BPE-tokenised as usual."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # each sentence also without its trailing whitespace, for an answer's last sentence tokenised outside the chat
    # template (when a sample's length is counted); the longer form wins where the whitespace follows
    bare = sorted({unit.rstrip() for unit in sentences} - set(sentences))
    tok.add_tokens([AddedToken(unit, normalized=False, special=False) for unit in [*sentences, *bare]])
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        unk_token="<|unk|>",
        bos_token=None,
        padding_side="left",
        model_max_length=4096,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out_dir)
    return hf_tok


def make_tiny_llama(tokenizer, tiny: TinyModelConfig, seed: int):
    """A randomly initialised Llama-architecture causal LM of the tiny size."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        num_key_value_heads=tiny.num_attention_heads,
        max_position_embeddings=tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=tiny.tie_word_embeddings,
    )
    return LlamaForCausalLM(config)


def _answer_loss(model, input_ids, attention, labels):
    """The mean next-token loss over the answer tokens, the output layer applied at those positions only: with a
    vocabulary of a few thousand sentences the output layer costs more than the model's layers, and most positions are
    the statement's.  Equal to ``model(..., labels=labels).loss``."""
    import torch.nn.functional as F

    hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    targets = labels[:, 1:]
    scored = targets != -100
    logits = model.lm_head(hidden[:, :-1][scored])
    return F.cross_entropy(logits.float(), targets[scored])


def supervised_warm_start(model, tokenizer, conversations: list[list[dict]], tiny: TinyModelConfig, seed: int) -> list[float]:
    """A short supervised pass (next-token loss on the assistant turn only); returns the loss per step.

    A plain PyTorch loop: with models this small, the loop is the clearest way to show what a warm start is.
    """
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    examples = []
    for conv in conversations:
        prompt_ids = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=True)
        if hasattr(prompt_ids, "keys"):
            prompt_ids = prompt_ids["input_ids"]
        answer_ids = tokenizer(conv[-1]["content"] + ANSWER_END + "<|end|>", add_special_tokens=False)["input_ids"]
        ids = (list(prompt_ids) + answer_ids)[: tiny.sft_max_length]
        labels = ([-100] * len(prompt_ids) + answer_ids)[: tiny.sft_max_length]
        examples.append((ids, labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=tiny.sft_learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / tiny.sft_batch_size)
    total = steps_per_epoch * tiny.sft_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, total // 10)) * max(0.05, 1 - step / total)
    )
    model.train()
    losses = []
    for _ in range(tiny.sft_epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        # batches of similar length waste less compute on padding: sort each window of eight batches by length
        window = 8 * tiny.sft_batch_size
        order = [i for w in range(0, len(order), window)
                 for i in sorted(order[w : w + window], key=lambda i: len(examples[i][0]))]
        batch_starts = list(range(0, len(order), tiny.sft_batch_size))
        rng.shuffle(batch_starts)
        for start in batch_starts:
            batch = [examples[i] for i in order[start : start + tiny.sft_batch_size]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (ids, lab) in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, : len(lab)] = torch.tensor(lab)
                attention[row, : len(ids)] = 1
            loss = _answer_loss(model, input_ids, attention, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    model.eval()
    return losses


def build_tiny_world(root: str | Path, tiny: TinyModelConfig, seed: int, force: bool = False) -> TinyWorld:
    """Build (or reuse) the tokenizer and the warm-started tiny policy under ``root`` (chapter 01).

    The statements and responses of the bundled corpus are the training text.  Reuse is decided by a fingerprint of
    that text, the tiny config and the seed, so a changed corpus or size rebuilds.
    """
    import torch

    from .data import load_bundled_corpus

    root = Path(root)
    statements, responses = load_bundled_corpus()
    usable = statements[statements["edge_case"].isna() | statements["edge_case"].isin(["personal_data", "crisis"])]
    by_id = dict(zip(usable["id"], usable["text"]))
    pairs = [(by_id[sid], text) for sid, text in zip(responses["statement_id"], responses["text"]) if sid in by_id]
    texts = list(statements["text"]) + list(responses["text"])
    sentences = (sorted({unit for text in responses["text"] for unit in sentence_units(text)})
                 if tiny.sentence_tokens else [])
    fingerprint = _fingerprint(texts, tiny, seed)
    info_path = root / "tiny_world.json"
    tokenizer_dir, policy_dir = root / "tokenizer", root / "policy"
    if not force and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") == fingerprint and (policy_dir / "config.json").exists():
            return TinyWorld(root, tokenizer_dir, policy_dir, {**info, "reused": True})

    start = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts, tiny.vocab_size, tokenizer_dir, sentences)
    model = make_tiny_llama(tokenizer, tiny, seed)
    conversations = [[{"role": "user", "content": s}, {"role": "assistant", "content": r}] for s, r in pairs]
    losses = supervised_warm_start(model, tokenizer, conversations, tiny, seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(policy_dir)
    tokenizer.save_pretrained(policy_dir)
    info = {
        "fingerprint": fingerprint,
        "seed": seed,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": len(tokenizer),
        "sentence_tokens": len(sentences),
        "sft_examples": len(conversations),
        "sft_steps": len(losses),
        "sft_loss_first": round(losses[0], 4),
        "sft_loss_last": round(sum(losses[-10:]) / min(10, len(losses)), 4),
        "sft_losses": [round(x, 4) for x in losses],
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))
    return TinyWorld(root, tokenizer_dir, policy_dir, {**info, "reused": False})


__all__ = [
    "CHAT_TEMPLATE", "SPECIAL_TOKENS", "TinyWorld", "train_tokenizer", "make_tiny_llama",
    "supervised_warm_start", "build_tiny_world",
]
