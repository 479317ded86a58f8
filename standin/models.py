"""Stand-ins for every hub model the colab and paper profiles name, built locally with random weights.

Each stand-in has exactly the architecture of the model it replaces (the same ``transformers`` config and model
class: Qwen2, Llama, Mistral, Gemma-2, Phi-3, and the sequence classifiers of the Skywork reward models) at a tiny
size, and a byte-level BPE tokenizer trained here on the bundled corpus that carries the family's special tokens,
padding and chat template in the published format.  Each is saved as a hub snapshot is laid out (``config.json``,
``model.safetensors``, ``generation_config.json``, the tokenizer files) under ``<root>/<hub id>``, so a profile
names it by path where it named the hub id and every ``from_pretrained`` call in the package takes the same path.

The weights are random: the stand-ins prove that every stage loads, trains, saves, merges and reloads these
architectures and templates, not that anything is learned.  Built once per fingerprint (this file, the bundled
corpus and the seed); a rebuild of all of them takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

# ---------------------------------------------------------------------------------------------------- chat templates
# Written here after each family's published prompt format.

QWEN2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{% else %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SMOLLM2_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] | trim %}"
    "{% set turns = messages[1:] %}{% else %}{% set system_message = '' %}{% set turns = messages %}{% endif %}"
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n\n{{ system_message }}<|eot_id|>"
    "{% for message in turns %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# Mistral v0.3: no system turn of its own; a system message is put before the last user message.
MISTRAL_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}"
    "{% set turns = messages[1:] %}{% else %}{% set turns = messages %}{% endif %}"
    "{{ bos_token }}{% for message in turns %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{% if loop.last and system_message is defined %}"
    "[INST] {{ system_message }}\n\n{{ message['content'] }}[/INST]"
    "{% else %}[INST] {{ message['content'] }}[/INST]{% endif %}"
    "{% else %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)

GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}<|system|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n{{ message['content'] }}<|end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    """A model family's tokenizer: special tokens, which of them play bos/eos/pad, and its chat template.

    ``stop_tokens`` are the tokens ``generation_config.json`` stops on (instruct models stop at the end of a turn,
    which is not always the tokenizer's eos token).  ``add_bos``: the tokenizer puts bos before plain text.
    """

    name: str
    special_tokens: tuple[str, ...]
    chat_template: str
    eos: str
    stop_tokens: tuple[str, ...]
    bos: str | None = None
    pad: str | None = None
    unk: str | None = None
    add_bos: bool = False


QWEN2 = Family("qwen2", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), QWEN2_TEMPLATE, eos="<|im_end|>",
               stop_tokens=("<|im_end|>", "<|endoftext|>"), pad="<|endoftext|>")
SMOLLM2 = Family("smollm2", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), SMOLLM2_TEMPLATE, eos="<|im_end|>",
                 stop_tokens=("<|im_end|>",), bos="<|im_start|>", pad="<|im_end|>")
LLAMA3 = Family("llama3", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>", "<|finetune_right_pad_id|>"), LLAMA3_TEMPLATE, eos="<|eot_id|>",
                stop_tokens=("<|end_of_text|>", "<|eot_id|>"), bos="<|begin_of_text|>", add_bos=True)
# Skywork's Llama reward model adds a pad token of its own to the Llama-3 tokenizer.
LLAMA3_REWARD = Family("llama3-reward", LLAMA3.special_tokens + ("[PAD]",), LLAMA3_TEMPLATE, eos="<|eot_id|>",
                       stop_tokens=("<|eot_id|>",), bos="<|begin_of_text|>", pad="[PAD]", add_bos=True)
MISTRAL = Family("mistral", ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), MISTRAL_TEMPLATE, eos="</s>",
                 stop_tokens=("</s>",), bos="<s>", unk="<unk>", add_bos=True)
GEMMA2 = Family("gemma2", ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"), GEMMA2_TEMPLATE,
                eos="<eos>", stop_tokens=("<eos>", "<end_of_turn>"), bos="<bos>", pad="<pad>", unk="<unk>",
                add_bos=True)
PHI3 = Family("phi3", ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
              PHI3_TEMPLATE, eos="<|endoftext|>", stop_tokens=("<|end|>", "<|endoftext|>"), bos="<s>",
              pad="<|endoftext|>", unk="<unk>")


@dataclass(frozen=True)
class StandIn:
    """One hub model and what replaces it: its config class, model class and tokenizer family."""

    hub_id: str
    architecture: str  # the transformers model class, e.g. Qwen2ForCausalLM
    family: Family
    config_kwargs: dict = field(default_factory=dict)


SIZE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096)

STANDINS = {s.hub_id: s for s in (
    StandIn("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2ForCausalLM", QWEN2, {"tie_word_embeddings": True}),
    StandIn("Qwen/Qwen2.5-1.5B-Instruct", "Qwen2ForCausalLM", QWEN2, {"tie_word_embeddings": True}),
    StandIn("Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM", QWEN2),
    StandIn("HuggingFaceTB/SmolLM2-1.7B-Instruct", "LlamaForCausalLM", SMOLLM2, {"tie_word_embeddings": True}),
    StandIn("meta-llama/Llama-3.2-3B-Instruct", "LlamaForCausalLM", LLAMA3, {"tie_word_embeddings": True}),
    StandIn("meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM", LLAMA3),
    StandIn("meta-llama/Llama-3.1-70B-Instruct", "LlamaForCausalLM", LLAMA3),
    StandIn("mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM", MISTRAL),
    StandIn("google/gemma-2-9b-it", "Gemma2ForCausalLM", GEMMA2, {"head_dim": 16, "query_pre_attn_scalar": 16}),
    StandIn("microsoft/Phi-3.5-mini-instruct", "Phi3ForCausalLM", PHI3, {"num_key_value_heads": 4}),
    StandIn("Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", "LlamaForSequenceClassification", LLAMA3_REWARD,
            {"num_labels": 1}),
    StandIn("Skywork/Skywork-Reward-Gemma-2-27B", "Gemma2ForSequenceClassification", GEMMA2,
            {"num_labels": 1, "head_dim": 16, "query_pre_attn_scalar": 16}),
    StandIn("nvidia/Llama-3.1-Nemotron-70B-Reward-HF", "LlamaForCausalLM", LLAMA3),
)}

VOCAB_SIZE = 1024  # trained merges plus the family's special tokens


def _fingerprint(seed: int) -> str:
    from psyco_utils.data import CORPUS_DIR

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(Path(CORPUS_DIR).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    digest.update(str(seed).encode())
    return digest.hexdigest()[:16]


def _training_text() -> list[str]:
    from psyco_utils.data import load_bundled_corpus

    statements, responses = load_bundled_corpus()
    return list(statements["text"]) + list(responses["text"])


def build_tokenizer(family: Family, texts: list[str]):
    """A byte-level BPE tokenizer trained on ``texts`` with the family's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(family.special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if family.add_bos:
        bos_id = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[(family.bos, bos_id)])
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=family.eos, bos_token=family.bos,
                                     pad_token=family.pad, unk_token=family.unk, model_max_length=4096,
                                     clean_up_tokenization_spaces=False)
    hf_tok.chat_template = family.chat_template
    return hf_tok


def build_model(standin: StandIn, tokenizer, seed: int):
    """A randomly initialised model of ``standin``'s architecture at the tiny size, ids matching ``tokenizer``."""
    import torch
    import transformers

    model_class = getattr(transformers, standin.architecture)
    family = standin.family
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("bos_token_id", family.bos), ("eos_token_id", family.eos), ("pad_token_id", family.pad)) if token}
    config = model_class.config_class(vocab_size=len(tokenizer), **{**SIZE, **ids, **standin.config_kwargs})
    config.architectures = [standin.architecture]
    torch.manual_seed(seed)
    model = model_class(config)
    stops = [tokenizer.convert_tokens_to_ids(t) for t in family.stop_tokens]
    if model.can_generate():
        model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
        model.generation_config.bos_token_id = ids.get("bos_token_id")
        model.generation_config.pad_token_id = ids.get("pad_token_id")
        model.generation_config.do_sample = True  # instruct models ship sampling defaults
        model.generation_config.temperature = 0.7
        model.generation_config.top_p = 0.9
    return model


def build_standins(root: str | Path, seed: int = 1234, hub_ids=None, force: bool = False) -> dict[str, Path]:
    """Build (or reuse) the stand-in of each hub id in ``hub_ids`` (all known ones by default) under ``root``.

    Returns ``{hub id: folder}``.  A folder is reused when its ``standin.json`` carries the current fingerprint.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    root = Path(root)
    wanted = list(hub_ids) if hub_ids is not None else list(STANDINS)
    unknown = [h for h in wanted if h not in STANDINS]
    if unknown:
        raise KeyError(f"no stand-in for {', '.join(unknown)}; known: {', '.join(STANDINS)}")
    fingerprint = _fingerprint(seed)
    texts = None
    tokenizers = {}
    out = {}
    for hub_id in wanted:
        folder = root / hub_id
        info_path = folder / "standin.json"
        out[hub_id] = folder
        if not force and info_path.exists() and json.loads(info_path.read_text()).get("fingerprint") == fingerprint:
            continue
        start = time.perf_counter()
        standin = STANDINS[hub_id]
        texts = texts if texts is not None else _training_text()
        if standin.family.name not in tokenizers:
            tokenizers[standin.family.name] = build_tokenizer(standin.family, texts)
        tokenizer = tokenizers[standin.family.name]
        model = build_model(standin, tokenizer, seed)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        info_path.write_text(json.dumps({
            "fingerprint": fingerprint, "stands_in_for": hub_id, "architecture": standin.architecture,
            "chat_template_family": standin.family.name,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "build_seconds": round(time.perf_counter() - start, 2)}, indent=2))
    return out
