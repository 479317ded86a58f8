"""The Bradley-Terry reward model (chapter 03): training with TRL's RewardTrainer, scoring, evaluation, baselines.

The reward model is a sequence classifier with one output, ``r(x, y)``, read at the last token of the chat
``[user: client statement, assistant: response]`` rendered with the backbone's own chat template.  Training minimises
the Bradley-Terry loss ``-log sigmoid(r(x, y_chosen) - r(x, y_rejected))`` {cite}`bradley1952rank` with TRL's
``RewardTrainer``.  The pairs go to TRL in its conversational preference format (``prompt`` / ``chosen`` /
``rejected`` as lists of messages): TRL concatenates prompt and completion and applies the chat template once, and
:class:`RewardScorer` renders text for scoring the same way.

Chapters 04 to 06 score responses through :func:`load_trained_reward_model` (or :meth:`RewardScorer.load`).
"""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("ID", "prefID", "question", "chosen", "rejected")  # what training and the artifacts need
TEXT_COLUMNS = ("question", "chosen", "rejected")  # what scoring and TRL's format need
PREDICTION_COLUMNS = ["ID", "prefID", "reward_chosen", "reward_rejected"]
STAGE_DIR = "reward_model"
MODEL_SUBDIR = "model"
HELPSTEER2_ID = "nvidia/HelpSteer2"
HELPSTEER2_COLUMNS = ("prompt", "response", "helpfulness")
# Dedicated padding tokens some instruct tokenizers ship without declaring them (Llama 3 would fall back to eos).
_PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>")
# The values of RewardConfig the chapter shows.
SHOWN_CONFIG = ("num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
                "lr_scheduler_type", "warmup_steps", "max_length", "bf16", "fp16", "activation_checkpointing",
                "eval_strategy", "metric_for_best_model", "load_best_model_at_end", "seed")

# paper.md, "Reward model": test-pair metrics of the paper (Zhang et al. 2025); '-' where the paper has none.
PAPER_TABLE = pd.DataFrame(
    [("Skywork-Reward-Llama-3.1-8B-v0.2", 57.9, 0.623, 0.331, 0.379),
     ("Skywork-Reward-Gemma-2-27B", 69.2, 0.740, 0.123, 0.229),
     ("Llama-3.1-Nemotron-70B-Reward", 87.3, 0.938, 0.040, 0.102),
     ("Llama-3.1-70B-Instruct as a ranker", 88.2, np.nan, np.nan, np.nan),
     ("PsyCo-Llama3-3B-Reward", 98.1, 0.997, 0.050, 0.014),
     ("PsyCo-Llama3-8B-Reward", 97.8, 0.998, 0.045, 0.016)],
    columns=["model", "accuracy (%)", "AUC", "ECE", "Brier"],
).set_index("model")


class RewardDataError(ValueError):
    """Preference data the reward model cannot use: the message names the data, the row and the column."""


# --------------------------------------------------------------------------------------------------------------------
# Data: validation, the conversational format TRL expects, token lengths, HelpSteer2
# --------------------------------------------------------------------------------------------------------------------


def _frame(data) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else data.to_pandas()


def _columns(data) -> list[str]:
    return list(data.column_names) if hasattr(data, "column_names") else list(data.columns)


def validate_pairs(data, where: str = "pairs", required: Sequence[str] = REQUIRED_COLUMNS) -> None:
    """Raise :class:`RewardDataError` naming a missing column (TRL itself fails deep inside with a bare ``KeyError``).

    ``data`` is a ``datasets.Dataset`` or a DataFrame of preference pairs; the statement and both responses must be
    present and non-empty text.
    """
    columns = _columns(data)
    missing = [c for c in required if c not in columns]
    if missing:
        raise RewardDataError(f"{where}: missing column(s) {missing}; found {columns}. "
                              f"The reward model needs {list(required)} (the released PsyCoPref schema).")
    if len(data) == 0:
        raise RewardDataError(f"{where}: no pairs")
    for column in (c for c in required if c in TEXT_COLUMNS):
        for i, value in enumerate(data[column]):
            if not isinstance(value, str) or not value.strip():
                raise RewardDataError(f"{where}: row {i}, column {column!r}: empty or not text ({value!r})")


def conversation(statement: str, response: str | None = None) -> list[dict]:
    """The chat the reward model scores: the client statement as the user turn, the response as the assistant turn."""
    messages = [{"role": "user", "content": statement}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def to_conversational(pairs):
    """TRL's conversational preference format: ``prompt`` (the user turn), ``chosen`` and ``rejected`` (one assistant
    turn each), all lists of messages.  TRL joins prompt + completion and applies the chat template once."""
    import datasets

    frame = _frame(pairs)
    validate_pairs(frame, "pairs for TRL", TEXT_COLUMNS)
    rows = [{"prompt": conversation(q), "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]}
            for q, c, r in zip(frame["question"], frame["chosen"], frame["rejected"])]
    return datasets.Dataset.from_list(rows)


def chat_token_ids(tokenizer, statements: Sequence[str], responses: Sequence[str], chunk: int = 256) -> list[list[int]]:
    """Token ids of each (statement, response) chat, rendered with the chat template exactly as TRL renders it."""
    convs = [conversation(s, r) for s, r in zip(statements, responses)]
    ids: list[list[int]] = []
    for start in range(0, len(convs), chunk):
        out = tokenizer.apply_chat_template(convs[start : start + chunk], tokenize=True, return_dict=True)
        ids.extend(list(x) for x in out["input_ids"])
    return ids


def count_length_drops(pairs, tokenizer, max_length: int | None) -> dict:
    """How many pairs TRL's RewardTrainer drops, without a word, because the chosen or the rejected chat is longer
    than ``max_length`` tokens (it filters on either side).  Also the longest chats and the count over on each side."""
    frame = _frame(pairs)
    chosen = np.array([len(x) for x in chat_token_ids(tokenizer, frame["question"], frame["chosen"])], dtype=int)
    rejected = np.array([len(x) for x in chat_token_ids(tokenizer, frame["question"], frame["rejected"])], dtype=int)
    limit = max_length if max_length is not None else np.inf
    over_c, over_r = chosen > limit, rejected > limit
    dropped = int((over_c | over_r).sum())
    return {"pairs": len(frame), "max_length (tokens)": max_length,
            "longest chosen (tokens)": int(chosen.max(initial=0)),
            "longest rejected (tokens)": int(rejected.max(initial=0)),
            "chosen over": int(over_c.sum()), "rejected over": int(over_r.sum()), "dropped": dropped,
            "dropped (%)": round(100 * dropped / max(1, len(frame)), 2)}


def length_drop_table(splits: dict, tokenizer, max_length: int | None) -> pd.DataFrame:
    """:func:`count_length_drops` for several splits, one row each."""
    table = pd.DataFrame({name: count_length_drops(pairs, tokenizer, max_length) for name, pairs in splits.items()
                          if pairs is not None and len(pairs)}).T
    table.index.name = "split"
    return table


def load_helpsteer2(path_or_id: str | None = None, split: str = "train") -> pd.DataFrame:
    """HelpSteer2-style data {cite}`wang2024helpsteer2`: one row per response with ``prompt``, ``response`` and
    attribute scores 0-4 (``helpfulness``, ``correctness``, ``coherence``, ``complexity``, ``verbosity``).

    ``path_or_id``: a local parquet / JSON Lines / JSON / CSV file, a local dataset folder, or a hub id
    (default ``nvidia/HelpSteer2``).
    """
    path_or_id = path_or_id or HELPSTEER2_ID
    path = Path(path_or_id)
    if path.is_file():
        readers = {".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True),
                   ".json": pd.read_json, ".csv": pd.read_csv}
        if path.suffix not in readers:
            raise RewardDataError(f"{path}: unsupported file type {path.suffix!r}; use parquet, jsonl, json or csv")
        frame = readers[path.suffix](path)
    else:
        import datasets

        frame = datasets.load_dataset(str(path_or_id), split=split).to_pandas()
    missing = [c for c in HELPSTEER2_COLUMNS if c not in frame.columns]
    if missing:
        raise RewardDataError(f"{path_or_id}: missing column(s) {missing}; HelpSteer2 data has "
                              f"{list(HELPSTEER2_COLUMNS)} and the other attribute scores; found {list(frame.columns)}")
    return frame


def helpsteer2_pairs(frame: pd.DataFrame, score: str = "helpfulness", min_gap: float = 1.0) -> pd.DataFrame:
    """Preference pairs from HelpSteer2-style rows: every two responses to the same prompt whose ``score`` differs by
    at least ``min_gap`` (ties dropped), the higher-scored one chosen.

    This is this book's conversion (the paper does not state its own); it mirrors chapter 02's train pairs.
    Returns ``ID``, ``prefID``, ``question``, ``chosen``, ``rejected``, ``score_gap`` and ``source``.
    """
    if score not in frame.columns:
        raise RewardDataError(f"HelpSteer2 data: missing score column {score!r}; found {list(frame.columns)}")
    rows = []
    for prompt_id, (prompt, group) in enumerate(frame.groupby("prompt", sort=False)):
        for a, b in itertools.combinations(group.to_dict("records"), 2):
            gap = float(a[score]) - float(b[score])
            if abs(gap) < min_gap - 1e-9:
                continue
            hi, lo = (a, b) if gap > 0 else (b, a)
            rows.append({"ID": f"helpsteer2:{prompt_id}", "prefID": len(rows), "question": prompt,
                         "chosen": hi["response"], "rejected": lo["response"], "score_gap": abs(gap),
                         "source": "helpsteer2"})
    return pd.DataFrame(rows, columns=["ID", "prefID", "question", "chosen", "rejected", "score_gap", "source"])


def training_pairs(cfg, data) -> pd.DataFrame:
    """The pairs the reward model trains on: PsyCoPref's train split, plus HelpSteer2 pairs when the profile sets
    ``reward.helpsteer2_mix`` (the paper's mixing ablation; ``reward.helpsteer2_path`` names a local file or hub id).
    A ``source`` column says where each pair came from."""
    frame = _frame(data["train"] if not isinstance(data, pd.DataFrame) else data)
    validate_pairs(frame, "train split")
    frame = frame.assign(source="psycopref")
    if cfg.reward.helpsteer2_mix:
        extra = helpsteer2_pairs(load_helpsteer2(cfg.reward.helpsteer2_path))
        frame = pd.concat([frame, extra], ignore_index=True)
    return frame


# --------------------------------------------------------------------------------------------------------------------
# Models and the training configuration
# --------------------------------------------------------------------------------------------------------------------


def _set_pad_token(tokenizer) -> None:
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        for candidate in _PAD_CANDIDATES:
            if candidate in vocab:
                tokenizer.pad_token = candidate
                return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def backbone_path(cfg, run_root: Path | None = None) -> str:
    """Where the reward backbone comes from: the tiny world's warm-started policy, a hub id, or a local folder."""
    from .models import resolve_model_path

    return resolve_model_path(cfg.models.reward_backbone, cfg, run_root)


def load_backbone_tokenizer(cfg, run_root: Path | None = None):
    """The backbone's tokenizer as the reward model uses it (right padding, a pad token)."""
    from .models import load_tokenizer

    tok = load_tokenizer(backbone_path(cfg, run_root))
    _set_pad_token(tok)
    return tok


def _training_dtype(cfg) -> str:
    """Mixed precision (fp16 on a T4, bf16 on newer GPUs) computes in half precision under autocast and keeps fp32
    master weights, so the backbone is loaded in float32; otherwise the profile's dtype."""
    training = cfg.reward.training
    return "float32" if training.get("fp16") or training.get("bf16") else cfg.models.dtype


def load_backbone(cfg, run_root: Path | None = None, dtype: str | None = None):
    """The reward backbone as a sequence classifier with one output (a freshly initialised ``score`` head), and its
    tokenizer.  ``tiny`` resolves to the tiny world's warm-started policy (built by chapter 01); any other name is a
    hub id or a local folder loaded by the same ``from_pretrained`` call."""
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from .models import load_reward_backbone

    models_cfg = cfg.models.model_copy(update={"dtype": dtype or cfg.models.dtype})
    with suppress_seqcls_warning():
        model, tok = load_reward_backbone(backbone_path(cfg, run_root), models_cfg)
    _set_pad_token(tok)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def lora_config(cfg):
    """PEFT LoRA for a sequence classifier; the new ``score`` head is trained in full (``modules_to_save``)."""
    from peft import LoraConfig

    lora = cfg.models.lora
    return LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                      target_modules=lora.target_modules, modules_to_save=["score"])


def reward_config(cfg, out_dir: str | Path, has_dev: bool = True, select_by: str = "loss", progress: bool = False,
                  **extra):
    """TRL's ``RewardConfig`` from the profile's ``reward.training`` plus what the chapter derives: the seed,
    evaluation and saving once per epoch on the dev split, and loading the best checkpoint (lowest dev loss, or
    highest dev accuracy with ``select_by="accuracy"``) at the end.  ``extra`` overrides any value (tests cap steps).
    """
    from .config import trl_config
    from .models import check_precision

    check_precision(cfg.reward.training, "reward.training")
    if select_by not in ("loss", "accuracy"):
        raise ValueError(f"select_by must be 'loss' or 'accuracy', not {select_by!r}")
    training = dict(cfg.reward.training)
    # transformers 5 renamed gradient_checkpointing; TRL turns it on unless told otherwise (slow for tiny models)
    checkpointing = bool(training.pop("activation_checkpointing", training.pop("gradient_checkpointing", False)))
    derived = {
        "seed": cfg.seed, "data_seed": cfg.seed, "activation_checkpointing": checkpointing,
        "eval_strategy": "epoch" if has_dev else "no", "save_strategy": "epoch" if has_dev else "no",
        "load_best_model_at_end": has_dev, "metric_for_best_model": f"eval_{select_by}",
        "greater_is_better": select_by == "accuracy", "save_total_limit": 1, "save_only_model": True,
        "disable_tqdm": not progress, "dataloader_pin_memory": False,
    }
    derived.update(extra)
    return trl_config("reward", training, Path(out_dir) / "checkpoints", **derived)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB), from ``resource.getrusage``."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


# --------------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class RewardTrainingResult:
    """What :func:`train_reward_model` returns: the saved model (also in memory), TRL's logs and the costs."""

    model_dir: Path
    model: Any
    tokenizer: Any
    log_history: list[dict]
    pairs_given: int
    train_pairs: int
    epochs: float
    seconds: float
    selected_by: str
    best_checkpoint: str | None
    best_metric: float | None
    peak_memory_mb: float
    config: dict = field(default_factory=dict)
    reused: bool = False  # loaded from an earlier training on identical inputs; seconds etc. are that training's

    @property
    def dropped_by_trl(self) -> int:
        """Train pairs RewardTrainer filtered out for length (what it does not report)."""
        return self.pairs_given - self.train_pairs

    @property
    def pairs_per_second(self) -> float:
        return self.train_pairs * self.epochs / self.seconds if self.seconds else float("nan")

    def steps(self) -> pd.DataFrame:
        """Training loss, accuracy and mean margin per logging step (TRL's logs)."""
        rows = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"], "accuracy": h.get("accuracy"),
                 "margin": h.get("margin")} for h in self.log_history if "loss" in h and "eval_loss" not in h]
        return pd.DataFrame(rows, columns=["step", "epoch", "loss", "accuracy", "margin"])

    def epochs_table(self) -> pd.DataFrame:
        """Dev loss, accuracy and mean margin after each epoch, and which checkpoint was kept."""
        rows = [{"epoch": round(h["epoch"], 2), "step": h["step"], "dev loss": h["eval_loss"],
                 "dev accuracy": h.get("eval_accuracy"), "dev mean margin": h.get("eval_margin")}
                for h in self.log_history if "eval_loss" in h]
        table = pd.DataFrame(rows, columns=["epoch", "step", "dev loss", "dev accuracy", "dev mean margin"])
        if self.best_checkpoint and len(table):
            best_step = int(str(self.best_checkpoint).rstrip("/").rsplit("-", 1)[-1])
            table["kept"] = np.where(table["step"] == best_step, "yes", "")
        return table


def _fingerprint_hyperparameters(cfg, args) -> dict:
    """What the trained reward model depends on besides data and backbone: TRL's config (less where it writes) and
    the model settings."""
    shown = {k: v for k, v in args.to_dict().items() if k not in _UNFINGERPRINTED_ARGS}
    return {"args": shown, "lora": cfg.models.lora.model_dump() if cfg.models.lora else None,
            "dtype": cfg.models.dtype}


# RewardConfig fields that say where and how loudly to write, not what is trained.
_UNFINGERPRINTED_ARGS = {"output_dir", "logging_dir", "disable_tqdm", "report_to", "run_name", "hub_token",
                         "push_to_hub_token", "logging_first_step", "save_total_limit", "dataloader_num_workers"}


def train_reward_model(cfg, train, dev, out_dir: str | Path, run_root: Path | None = None, *, args=None,
                       keep_checkpoints: bool = False, **extra) -> RewardTrainingResult:
    """Train the Bradley-Terry reward model with TRL's ``RewardTrainer``; save it with its tokenizer to
    ``out_dir/model``.

    ``train`` and ``dev`` are preference pairs (Dataset or DataFrame with ``question``, ``chosen``, ``rejected``).
    ``args`` is a ``RewardConfig`` (default: :func:`reward_config` with ``extra``).  The dev split is evaluated after
    every epoch and the best checkpoint is loaded at the end.  With ``models.lora`` set, LoRA adapters plus a fully
    trained ``score`` head are trained, then merged into the saved model.

    When ``out_dir`` holds a model trained earlier on exactly these inputs (``cfg.reuse_trained_models``, see
    :mod:`psyco_utils.reuse`), that model is loaded instead and the result says ``reused=True``.
    """
    from transformers import PrinterCallback, set_seed
    from trl import RewardTrainer

    from .reuse import fingerprint, previous_training, save_record

    out_dir = Path(out_dir)
    train_frame = _frame(train)
    validate_pairs(train_frame, "train split")
    has_dev = dev is not None and len(dev) > 0
    if has_dev:
        validate_pairs(_frame(dev), "dev split")
    if args is None:
        args = reward_config(cfg, out_dir, has_dev=has_dev, **extra)

    model_dir = out_dir / MODEL_SUBDIR
    key = fingerprint(
        "reward_model", hyperparameters=_fingerprint_hyperparameters(cfg, args), seed=args.seed,
        start_model=backbone_path(cfg, run_root),
        data={"train": train_frame[list(TEXT_COLUMNS)], "dev": _frame(dev)[list(TEXT_COLUMNS)] if has_dev else None})
    record = previous_training(out_dir, key, model_dir, getattr(cfg, "reuse_trained_models", True))
    if record is not None:
        scorer = RewardScorer.load(model_dir, cfg)
        return RewardTrainingResult(
            model_dir=model_dir, model=scorer.model, tokenizer=scorer.tokenizer, log_history=record["log_history"],
            pairs_given=record["pairs_given"], train_pairs=record["train_pairs"], epochs=record["epochs"],
            seconds=record["seconds"], selected_by=record["selected_by"], best_checkpoint=record["best_checkpoint"],
            best_metric=record["best_metric"], peak_memory_mb=record["peak_memory_mb"], config=record["config"],
            reused=True)

    set_seed(args.seed)  # the new score head is drawn from the global RNG: same seed, same initial model
    model, tok = load_backbone(cfg, run_root, dtype=_training_dtype(cfg))
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=to_conversational(train_frame),
        eval_dataset=to_conversational(dev) if has_dev else None, processing_class=tok,
        peft_config=lora_config(cfg) if cfg.models.lora else None,
    )
    trainer.remove_callback(PrinterCallback)  # with tqdm off, Trainer would print every log line
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start

    model = trainer.model
    if cfg.models.lora:
        model = model.merge_and_unload()
    if cfg.models.dtype not in ("auto", "float32"):
        import torch

        model = model.to(getattr(torch, cfg.models.dtype))
    model_dir = out_dir / MODEL_SUBDIR
    shutil.rmtree(model_dir, ignore_errors=True)
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    if not keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    model.eval()
    state = trainer.state
    result = RewardTrainingResult(
        model_dir=model_dir, model=model, tokenizer=tok, log_history=list(state.log_history),
        pairs_given=len(train_frame), train_pairs=len(trainer.train_dataset), epochs=float(state.epoch or args.num_train_epochs),
        seconds=seconds, selected_by=f"dev {args.metric_for_best_model.removeprefix('eval_')}" if has_dev
        else "last step (no dev split)",
        best_checkpoint=state.best_model_checkpoint, best_metric=state.best_metric, peak_memory_mb=peak_memory_mb(),
        config={k: getattr(args, k) for k in SHOWN_CONFIG},
    )
    save_record(out_dir, key, {
        "stage": "reward_model", "log_history": result.log_history, "pairs_given": result.pairs_given,
        "train_pairs": result.train_pairs, "epochs": result.epochs, "seconds": result.seconds,
        "selected_by": result.selected_by, "best_checkpoint": result.best_checkpoint, "best_metric": result.best_metric,
        "peak_memory_mb": result.peak_memory_mb, "config": result.config})
    return result


# --------------------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class ScoringStats:
    sequences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0

    @property
    def sequences_per_second(self) -> float:
        return self.sequences / self.seconds if self.seconds else float("nan")


class RewardScorer:
    """Scores (statement, response) pairs with a reward model: ``rewards = scorer.score(statements, responses)``.

    The chat template is applied as in training (statement as the user turn, response as the assistant turn);
    sequences are sorted by length, batched and right-padded; no gradients.  Chats longer than ``max_length`` tokens
    are cut to it and counted in ``stats.truncated``.  Used by chapters 03 to 06.
    """

    def __init__(self, model, tokenizer, max_length: int | None = None, name: str = "reward model"):
        _set_pad_token(tokenizer)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.eval()
        self.model, self.tokenizer, self.max_length, self.name = model, tokenizer, max_length, name
        self.source_path: str | None = None  # the saved model's folder or hub id, when loaded with load()
        self.stats = ScoringStats()

    @classmethod
    def load(cls, path: str | Path, cfg=None, device: str | None = None, max_length: int | None = None,
             name: str | None = None) -> "RewardScorer":
        """A saved reward model: this chapter's, or any hub / local sequence classifier with one output."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .models import default_device

        kwargs = {}
        if cfg is not None and cfg.models.dtype != "auto":
            import torch

            kwargs["dtype"] = getattr(torch, cfg.models.dtype)
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), **kwargs)
        if model.config.num_labels != 1:
            raise ValueError(f"{path}: a reward model has one output; this one has "
                             f"num_labels={model.config.num_labels}")
        model.to(device or default_device())
        scorer = cls(model, tok, max_length=max_length, name=name or Path(str(path)).name)
        scorer.source_path = str(path)
        return scorer

    @property
    def device(self):
        return next(self.model.parameters()).device

    def encode(self, statements: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        ids = chat_token_ids(self.tokenizer, list(statements), list(responses))
        if self.max_length:
            self.stats.truncated += sum(len(x) > self.max_length for x in ids)
            ids = [x[: self.max_length] for x in ids]
        return ids

    def score(self, statements: Sequence[str], responses: Sequence[str], batch_size: int = 32,
              progress: bool = False) -> np.ndarray:
        """One scalar reward per (statement, response), as a float64 array in input order."""
        import torch
        from tqdm.auto import tqdm

        if len(statements) != len(responses):
            raise ValueError(f"{len(statements)} statements but {len(responses)} responses")
        if len(statements) == 0:
            return np.zeros(0)
        start = time.perf_counter()
        ids = self.encode(statements, responses)
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths together: less padding
        rewards = np.zeros(len(ids), dtype=np.float64)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for begin in tqdm(range(0, len(ids), batch_size), desc=f"scoring ({self.name})", disable=not progress):
                idx = order[begin : begin + batch_size]
                width = max(len(ids[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
                rewards[idx] = logits.float().squeeze(-1).cpu().numpy()
        self.stats.sequences += len(ids)
        self.stats.tokens += sum(len(x) for x in ids)
        self.stats.seconds += time.perf_counter() - start
        return rewards

    __call__ = score

    def score_pairs(self, pairs, batch_size: int = 32, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rewards of the chosen and of the rejected response of each pair (``question``, ``chosen``, ``rejected``)."""
        frame = _frame(pairs)
        validate_pairs(frame, "pairs to score", TEXT_COLUMNS)
        n = len(frame)
        both = self.score(list(frame["question"]) * 2, list(frame["chosen"]) + list(frame["rejected"]),
                          batch_size=batch_size, progress=progress)
        return both[:n], both[n:]


def reward_model_dir(run_root: str | Path) -> Path:
    """``runs/<profile>/reward_model/model``: where chapter 03 saves the trained reward model and its tokenizer."""
    return Path(run_root) / STAGE_DIR / MODEL_SUBDIR


def load_trained_reward_model(cfg, run_root: str | Path, device: str | None = None) -> RewardScorer:
    """This profile's trained reward model (chapter 03's artifact) as a :class:`RewardScorer`: chapters 04-06."""
    path = reward_model_dir(run_root)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} has no reward model: run chapter 03 (03_reward_model) first")
    return RewardScorer.load(path, cfg, device=device, max_length=cfg.reward.training.get("max_length"),
                             name="PsyCoPref reward model")


# --------------------------------------------------------------------------------------------------------------------
# Evaluation on the test pairs, baselines
# --------------------------------------------------------------------------------------------------------------------


def test_predictions(scorer: RewardScorer, test, batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """``ID, prefID, reward_chosen, reward_rejected`` for every test pair (design.md's artifact contract)."""
    frame = _frame(test)
    rc, rr = scorer.score_pairs(frame, batch_size=batch_size, progress=progress)
    return pd.DataFrame({"ID": frame["ID"].astype(str).to_numpy(), "prefID": frame["prefID"].astype("int64").to_numpy(),
                         "reward_chosen": rc, "reward_rejected": rr})


def rating_gap(pairs) -> np.ndarray:
    """Overall score of the chosen minus that of the rejected response (means of the seven rating columns)."""
    from .principles import PRINCIPLE_KEYS

    frame = _frame(pairs)
    chosen = frame[[f"chosen_{p}_rating" for p in PRINCIPLE_KEYS]].mean(axis=1)
    rejected = frame[[f"rejected_{p}_rating" for p in PRINCIPLE_KEYS]].mean(axis=1)
    return np.round((chosen - rejected).to_numpy(float), 6)  # means of sevenths: 7/7 must be 1.0, not 0.9999...


def baseline_rewards(test, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two baselines, as rewards for (chosen, rejected): random (independent normals, seeded) and "the longer
    response wins" (reward = length in characters)."""
    from . import metrics

    frame = _frame(test)
    return {"random": metrics.random_baseline_rewards(len(frame), seed),
            "longer response wins": metrics.length_baseline_rewards(list(frame["chosen"]), list(frame["rejected"]))}


def score_off_the_shelf(cfg, test, batch_size: int = 8) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rewards from the off-the-shelf reward models in ``cfg.reward.off_the_shelf`` (hub ids or local folders),
    each loaded as a sequence classifier and scored with :class:`RewardScorer`, then freed."""
    import gc

    out = {}
    for name in cfg.reward.off_the_shelf:
        scorer = RewardScorer.load(name, cfg, max_length=cfg.reward.training.get("max_length"), name=name)
        out[name] = scorer.score_pairs(test, batch_size=batch_size)
        del scorer
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
    return out


def metrics_with_ci(reward_chosen, reward_rejected, seed: int, n_bins: int = 10, n_boot: int = 1000) -> dict:
    """Accuracy, AUC, ECE and Brier (:func:`psyco_utils.metrics.preference_metrics`) with 95% percentile bootstrap
    intervals over test pairs; the four come from the same resamples, so one pass serves all."""
    from . import metrics

    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    point = metrics.preference_metrics(rc, rr, seed=seed, n_bins=n_bins)
    rng = np.random.default_rng(seed)
    samples = {k: [] for k in ("accuracy", "auc", "ece", "brier")}
    for _ in range(n_boot if len(rc) else 0):
        idx = rng.integers(0, len(rc), size=len(rc))
        resampled = metrics.preference_metrics(rc[idx], rr[idx], seed=seed, n_bins=n_bins)
        for k in samples:
            if np.isfinite(resampled[k]):
                samples[k].append(resampled[k])
    out = {"n": point["n"]}
    for k, values in samples.items():
        low, high = np.percentile(values, [2.5, 97.5]) if values else (np.nan, np.nan)
        out[k], out[f"{k}_low"], out[f"{k}_high"] = point[k], float(low), float(high)
    return out


def comparison_table(rewards: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, n_bins: int = 10,
                     n_boot: int = 1000) -> pd.DataFrame:
    """One row per model: accuracy (%), AUC, ECE, Brier with 95% bootstrap intervals, on the same test pairs."""
    rows = {}
    for name, (rc, rr) in rewards.items():
        m = metrics_with_ci(rc, rr, seed=seed, n_bins=n_bins, n_boot=n_boot)
        rows[name] = {"pairs": m["n"],
                      "accuracy (%)": 100 * m["accuracy"],
                      "accuracy 95% CI": _ci(100 * m["accuracy_low"], 100 * m["accuracy_high"], 1),
                      "AUC": m["auc"], "AUC 95% CI": _ci(m["auc_low"], m["auc_high"]),
                      "ECE": m["ece"], "ECE 95% CI": _ci(m["ece_low"], m["ece_high"]),
                      "Brier": m["brier"], "Brier 95% CI": _ci(m["brier_low"], m["brier_high"])}
    table = pd.DataFrame(rows).T.infer_objects()
    table.index.name = "model"
    return table


def _ci(low: float, high: float, digits: int = 3) -> str:
    return "-" if not (np.isfinite(low) and np.isfinite(high)) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def with_paper(ours: pd.DataFrame, profile: str) -> pd.DataFrame:
    """This run's comparison table stacked on the paper's (``source`` says which is which)."""
    cols = ["accuracy (%)", "AUC", "ECE", "Brier"]
    mine = ours[cols].astype(float).assign(source=f"this run ({profile})")
    paper = PAPER_TABLE[cols].assign(source="paper (Zhang et al. 2025)")
    return pd.concat([mine, paper]).set_index("source", append=True).reorder_levels([1, 0])


def calibration(reward_chosen, reward_rejected, seed: int, n_bins: int = 10) -> pd.DataFrame:
    """The reliability table (equal-width bins) of p = sigmoid(r_first - r_second) on randomly oriented pairs."""
    from . import metrics

    margin, label = metrics.orient_pairs(reward_chosen, reward_rejected, seed)
    return metrics.reliability_table(metrics.sigmoid(margin), label, n_bins)


def accuracy_by(groups, reward_chosen, reward_rejected, seed: int, n_boot: int = 1000) -> pd.DataFrame:
    """Pairwise accuracy (r_chosen > r_rejected, ties half) per group, with n and a 95% bootstrap interval."""
    from . import metrics

    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    correct = (rc > rr) + 0.5 * (rc == rr)
    groups = pd.Series(groups).reset_index(drop=True)
    keys = groups.cat.categories if isinstance(groups.dtype, pd.CategoricalDtype) else sorted(groups.unique(), key=str)
    rows = {}
    for key in keys:
        hits = correct[(groups == key).to_numpy()]
        if not len(hits):
            continue
        point, low, high = metrics.bootstrap_ci(hits, np.mean, n_boot, seed)
        rows[key] = {"pairs": len(hits), "accuracy": point, "ci_low": low, "ci_high": high}
    return pd.DataFrame(rows).T.astype({"pairs": int})


def gap_bins(gaps: np.ndarray) -> pd.Categorical:
    """Score-gap bins for the accuracy breakdown: under 1, 1-2, 2-3, 3 and over (points of the 1-5 overall score)."""
    return pd.cut(np.asarray(gaps, float), bins=[0, 1, 2, 3, np.inf], right=False,
                  labels=["under 1", "1 to 2", "2 to 3", "3 and over"])


def write_artifacts(out_dir: str | Path, predictions: pd.DataFrame, metrics: dict) -> list[Path]:
    """``test_predictions.parquet`` (ID, prefID, reward_chosen, reward_rejected) and ``metrics.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"test predictions lack column(s) {missing}")
    paths = [out_dir / "test_predictions.parquet", out_dir / "metrics.json"]
    predictions[PREDICTION_COLUMNS].to_parquet(paths[0], index=False)
    paths[1].write_text(json.dumps(metrics, indent=2, default=_json_default))
    return paths


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
