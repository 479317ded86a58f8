"""The Bradley-Terry reward model (chapter 03): training with TRL's RewardTrainer, scoring, and baselines.

The loss is L = -log sigmoid(r(x, y_chosen) - r(x, y_rejected)) {cite}`bradley1952rank`.  Pairs are given to TRL in
conversational form (the client statement as the user turn, the response as the assistant turn), so the model's own
chat template is applied once, by TRL; :class:`RewardScorer` applies the same template when scoring.  Chapters 04 to
06 score (statement, response) batches through :func:`load_trained_reward_model`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("ID", "prefID", "question", "chosen", "rejected")


class PairDataError(ValueError):
    """Preference pairs that TRL would fail on deep inside with a bare KeyError: the message names split and column."""


def validate_pairs(dataset, where: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise PairDataError(f"{where}: missing column(s) {missing}; the reward model needs {list(REQUIRED_COLUMNS)}")
    if len(dataset) == 0:
        raise PairDataError(f"{where}: no pairs")


def to_conversational(dataset):
    """``prompt`` = [the statement as the user turn]; ``chosen`` / ``rejected`` = [the response as the assistant turn]."""

    def convert(row):
        return {"prompt": [{"role": "user", "content": row["question"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}]}

    return dataset.map(convert, remove_columns=dataset.column_names)


def conversation_tokens(tokenizer, statement: str, response: str) -> list[int]:
    """Token ids of one (statement, response) conversation, chat template applied as TRL applies it."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": statement},
                                         {"role": "assistant", "content": response}], tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def count_over_length(dataset, tokenizer, max_length: int) -> dict:
    """How many pairs RewardTrainer will drop because prompt + chosen or prompt + rejected exceed ``max_length``.

    TRL drops them without a word; the chapter shows this count.
    """
    longest = [max(len(conversation_tokens(tokenizer, q, c)), len(conversation_tokens(tokenizer, q, r)))
               for q, c, r in zip(dataset["question"], dataset["chosen"], dataset["rejected"])]
    over = int(sum(n > max_length for n in longest))
    return {"pairs": len(longest), "over_max_length": over, "max_length": max_length,
            "longest_tokens": int(max(longest)) if longest else 0, "median_tokens": float(np.median(longest)) if longest else 0}


def helpsteer2_pairs(path_or_id: str, seed: int = 0):
    """HelpSteer2-style ratings (prompt, response, helpfulness) as preference pairs in our schema.

    For each prompt with at least two responses, the most helpful response is chosen and the least helpful
    rejected (ties dropped).  Used by the paper profile's mixing ablation (``reward.helpsteer2_mix``).
    """
    import datasets

    if Path(path_or_id).suffix == ".parquet":
        frame = pd.read_parquet(path_or_id)
    else:
        frame = datasets.load_dataset(path_or_id, split="train").to_pandas()
    for column in ("prompt", "response", "helpfulness"):
        if column not in frame.columns:
            raise PairDataError(f"{path_or_id}: HelpSteer2 data needs column {column!r}; it has {list(frame.columns)}")
    rows = []
    for i, (prompt, group) in enumerate(frame.groupby("prompt", sort=False)):
        if len(group) < 2:
            continue
        ranked = group.sort_values("helpfulness", ascending=False)
        best, worst = ranked.iloc[0], ranked.iloc[-1]
        if best["helpfulness"] == worst["helpfulness"]:
            continue
        rows.append({"ID": f"helpsteer2:{i}", "prefID": len(rows), "question": prompt, "chosen": best["response"],
                     "rejected": worst["response"], "theme": "helpsteer2"})
    return datasets.Dataset.from_pandas(pd.DataFrame(rows), preserve_index=False)


def train_reward_model(cfg, dataset, backbone: str, out_dir: Path, extra_train=None) -> dict:
    """Train with TRL's RewardTrainer on ``dataset['train']``, select the checkpoint on ``dataset['dev']``, save the
    best model and its tokenizer to ``out_dir / 'model'``.  Returns timings, the log history and the length drops."""
    import datasets
    from transformers import AutoModelForSequenceClassification
    from trl import RewardTrainer

    from .config import trl_config
    from .models import load_tokenizer

    for split in ("train", "dev"):
        validate_pairs(dataset[split], f"psycopref [{split}]")
    train = dataset["train"]
    if extra_train is not None:
        validate_pairs(extra_train, "extra training pairs")
        train = datasets.concatenate_datasets([train.select_columns(list(REQUIRED_COLUMNS)),
                                               extra_train.select_columns(list(REQUIRED_COLUMNS))])
    tokenizer = load_tokenizer(backbone)
    tokenizer.padding_side = "right"
    args = trl_config("reward", cfg.reward.training, out_dir / "checkpoints", seed=cfg.seed, eval_strategy="epoch",
                      save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="eval_loss",
                      greater_is_better=False, save_total_limit=1, disable_tqdm=True, save_only_model=True)
    drops = {split: count_over_length(ds, tokenizer, args.max_length) for split, ds in
             (("train", train), ("dev", dataset["dev"]))}
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = None
    if cfg.models.lora is not None:
        from peft import LoraConfig

        lora = cfg.models.lora
        peft_config = LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.lora_alpha,
                                 lora_dropout=lora.lora_dropout, target_modules=lora.target_modules,
                                 modules_to_save=["score"])
    trainer = RewardTrainer(model=model, args=args, train_dataset=to_conversational(train),
                            eval_dataset=to_conversational(dataset["dev"]), processing_class=tokenizer,
                            peft_config=peft_config)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    best = trainer.model
    if peft_config is not None:
        best = best.merge_and_unload()
    model_dir = out_dir / "model"
    best.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    import shutil

    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    train_pairs = len(train) - drops["train"]["over_max_length"]
    return {"seconds": seconds, "train_pairs": train_pairs,
            "pairs_per_second": train_pairs * args.num_train_epochs / seconds,
            "log_history": trainer.state.log_history, "length_drops": drops, "model_dir": str(model_dir),
            "best_checkpoint_dev_loss": trainer.state.best_metric}


class RewardScorer:
    """Scores (statement, response) pairs with a trained reward model (chapters 03 to 06)."""

    def __init__(self, model, tokenizer, max_length: int = 2048):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(cls, path: str | Path, max_length: int = 2048, device: str | None = None) -> "RewardScorer":
        from transformers import AutoModelForSequenceClassification

        from .models import default_device, load_tokenizer

        tokenizer = load_tokenizer(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        model.to(device or default_device())
        return cls(model, tokenizer, max_length)

    def score(self, statements: list[str], responses: list[str], batch_size: int = 32) -> np.ndarray:
        """One scalar reward per (statement, response), in batches, right-padded, without gradients."""
        import torch

        if len(statements) != len(responses):
            raise ValueError(f"{len(statements)} statements but {len(responses)} responses")
        ids = [conversation_tokens(self.tokenizer, s, r)[: self.max_length] for s, r in zip(statements, responses)]
        order = np.argsort([len(x) for x in ids])  # similar lengths together: less padding
        rewards = np.empty(len(ids), dtype=np.float32)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(ids), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                rewards[chunk] = logits[:, 0].float().cpu().numpy()
        return rewards


def load_trained_reward_model(cfg, run_root: Path) -> RewardScorer:
    """The chapter-03 reward model of this profile's run (chapters 04, 05, 06)."""
    path = Path(run_root) / "reward_model" / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} does not exist: run chapter 03 first")
    return RewardScorer.load(path, max_length=int(cfg.reward.training.get("max_length", 2048)))


def test_predictions(scorer: RewardScorer, test) -> pd.DataFrame:
    """``ID, prefID, reward_chosen, reward_rejected`` for every test pair (design.md's artifact contract)."""
    chosen = scorer.score(list(test["question"]), list(test["chosen"]))
    rejected = scorer.score(list(test["question"]), list(test["rejected"]))
    return pd.DataFrame({"ID": list(test["ID"]), "prefID": list(test["prefID"]), "reward_chosen": chosen,
                         "reward_rejected": rejected})


def write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=2, default=float))
