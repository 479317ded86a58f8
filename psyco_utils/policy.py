"""Policy training: offline DPO (chapter 04) and the iterative online DPO loop, DPO-Iter (chapter 05).

Both go through TRL's ``DPOTrainer`` with the statement as an explicit prompt (conversational form).  The policy is
passed to TRL as a saved directory and ``ref_model`` is left empty, so TRL loads the reference from that same
directory: for offline DPO the reference is the starting policy; in DPO-Iter each round starts from the previous
round's saved policy, which is therefore also that round's reference (the RLHFlow recipe).

TRL's online DPO trainer samples only two completions per prompt; the paper's DPO-Iter takes the best and the worst
of eight, so the loop here is explicit: sample, score with the chapter-03 reward model, pair, train, save.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("ID", "prefID", "question", "chosen", "rejected")
DISTINCT_WORDS = "distinct words in the first 30 (%)"  # the repetition column of held_out_comparison


def validate_pairs(dataset, where: str) -> None:
    """Name a missing column before TRL fails on it with a bare KeyError."""
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; DPO needs {list(REQUIRED_COLUMNS)}")
    if len(dataset) == 0:
        raise ValueError(f"{where}: no pairs")


def to_conversational(dataset):
    """``prompt`` = [the statement as the user turn]; ``chosen`` / ``rejected`` = [the response as the assistant turn]."""

    def convert(row):
        return {"prompt": [{"role": "user", "content": row["question"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}]}

    return dataset.map(convert, remove_columns=dataset.column_names)


def train_dpo(training: dict, start_path: str, train_dataset, out_dir: Path, seed: int, eval_dataset=None,
              lora=None, reuse: bool = True, section: str = "dpo.training") -> dict:
    """One DPO run from the policy saved at ``start_path`` (also the reference); the trained (best) model is saved to
    ``out_dir / 'model'``.  With an ``eval_dataset`` the checkpoint with the lowest eval loss is kept.

    With ``reuse``, a model trained earlier in ``out_dir`` on exactly these inputs is kept instead of training again
    (:mod:`psyco_utils.reuse`); the returned record then says ``reused: True`` and its times are that
    training's.  ``section`` names the profile section ``training`` came from, for error messages."""
    from transformers import PrinterCallback
    from trl import DPOTrainer

    from .config import trl_config
    from .models import check_precision, load_tokenizer
    from .reuse import fingerprint, previous_training, save_record

    check_precision(training, section)
    out_dir = Path(out_dir)
    validate_pairs(train_dataset, "DPO training pairs")
    if eval_dataset is not None:
        validate_pairs(eval_dataset, "DPO eval pairs")
    pair_columns = ["question", "chosen", "rejected"]
    key = fingerprint(
        "dpo", hyperparameters={"training": training, "lora": lora.model_dump() if lora is not None else None},
        seed=seed, start_model=start_path,
        data={"train": train_dataset.select_columns(pair_columns),
              "eval": eval_dataset.select_columns(pair_columns) if eval_dataset is not None else None})
    record = previous_training(out_dir, key, out_dir / "model", reuse)
    if record is not None:
        return {**{k: v for k, v in record.items() if k != "fingerprint"}, "model_dir": str(out_dir / "model"),
                "reused": True}
    if eval_dataset is not None:
        selection = dict(eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                         metric_for_best_model="eval_loss", greater_is_better=False, save_total_limit=1)
    else:
        selection = dict(eval_strategy="no", save_strategy="no")
    args = trl_config("dpo", training, out_dir / "checkpoints", seed=seed, disable_tqdm=True,
                      dataloader_pin_memory=False, save_only_model=True, **selection)
    tokenizer = load_tokenizer(start_path)
    peft_config = None
    if lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.lora_alpha,
                                 lora_dropout=lora.lora_dropout, target_modules=lora.target_modules)
    trainer = DPOTrainer(model=start_path, ref_model=None, args=args,
                         train_dataset=to_conversational(train_dataset),
                         eval_dataset=to_conversational(eval_dataset) if eval_dataset is not None else None,
                         processing_class=tokenizer, peft_config=peft_config)
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model = trainer.model
    if peft_config is not None:
        model = model.merge_and_unload()
    model_dir = out_dir / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    steps = trainer.state.global_step
    result = {"seconds": seconds, "steps": steps, "steps_per_second": steps / seconds if seconds else 0.0,
              "pairs": len(train_dataset), "log_history": trainer.state.log_history, "model_dir": str(model_dir),
              "reference": start_path}
    save_record(out_dir, key, result)
    return {**result, "reused": False}


def log_frame(log_history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trainer's log history as (train rows, eval rows) with loss, reward margins and preference accuracy."""
    history = pd.DataFrame(log_history)
    train = history.dropna(subset=["loss"]) if "loss" in history else history.iloc[0:0]
    evals = history.dropna(subset=["eval_loss"]) if "eval_loss" in history else history.iloc[0:0]
    return train, evals


@dataclass
class Samples:
    """``n`` sampled responses per statement with their rewards (reward-model score minus any length penalty)."""

    statements: list[str]
    responses: list[list[str]]
    rewards: np.ndarray  # shape (statements, n)
    raw_rewards: np.ndarray
    lengths: np.ndarray  # response length in tokens
    generation_seconds: float
    new_tokens: int


def sample_and_score(policy_path: str, models_cfg, scorer, statements: list[str], n: int, temperature: float,
                     max_new_tokens: int, batch_size: int, seed: int, length_penalty: float = 0.0) -> Samples:
    """Sample ``n`` responses per statement from the policy in batched calls and score them with the reward model."""
    from .models import GenerationStats, generate_responses, load_generator

    model, tok, backend = load_generator(policy_path, models_cfg)
    stats = GenerationStats()
    responses = generate_responses(model, tok, statements, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                   batch_size=max(1, batch_size // max(1, n)), seed=seed, backend=backend,
                                   stats=stats)
    flat_statements = [s for s, group in zip(statements, responses) for _ in group]
    flat = [r for group in responses for r in group]
    raw = scorer.score(flat_statements, flat).reshape(len(statements), n)
    lengths = np.array([len(tok(r, add_special_tokens=False)["input_ids"]) for r in flat]).reshape(len(statements), n)
    rewards = raw - length_penalty * lengths
    del model
    return Samples(statements, responses, rewards, raw, lengths, stats.seconds, stats.new_tokens)


def best_worst_pairs(rewards: np.ndarray) -> tuple[list[tuple[int, int, int]], int]:
    """For each row (a statement's samples), the highest against the lowest reward: ``[(row, best, worst)]``.

    A row whose samples all score the same gives no pair; the number of such degenerate rows is returned too.
    Ties for best or worst go to the earliest sample, so the selection is deterministic.
    """
    pairs, degenerate = [], 0
    for row, values in enumerate(np.asarray(rewards, float)):
        best, worst = int(np.argmax(values)), int(np.argmin(values))
        if values[best] == values[worst]:
            degenerate += 1
            continue
        pairs.append((row, best, worst))
    return pairs, degenerate


def pairs_dataset(samples: Samples, ids: list[str], round_index: int):
    """The round's best-versus-worst pairs as a Dataset with the columns DPO needs (and the rewards, for the book)."""
    import datasets

    chosen_pairs, degenerate = best_worst_pairs(samples.rewards)
    rows = [{"ID": ids[r], "prefID": k, "question": samples.statements[r], "chosen": samples.responses[r][b],
             "rejected": samples.responses[r][w], "reward_chosen": float(samples.rewards[r, b]),
             "reward_rejected": float(samples.rewards[r, w]), "round": round_index}
            for k, (r, b, w) in enumerate(chosen_pairs)]
    frame = pd.DataFrame(rows, columns=[*REQUIRED_COLUMNS, "reward_chosen", "reward_rejected", "round"])
    return datasets.Dataset.from_pandas(frame, preserve_index=False), frame, degenerate


def round_summary(samples: Samples, frame: pd.DataFrame, degenerate: int) -> dict:
    return {"statements": len(samples.statements), "samples_per_statement": samples.rewards.shape[1],
            "mean_reward": float(samples.raw_rewards.mean()), "best_reward": float(samples.raw_rewards.max(axis=1).mean()),
            "worst_reward": float(samples.raw_rewards.min(axis=1).mean()),
            "mean_length_tokens": float(samples.lengths.mean()), "pairs": len(frame), "degenerate_statements": degenerate,
            "mean_pair_margin": float((frame["reward_chosen"] - frame["reward_rejected"]).mean()) if len(frame) else 0.0,
            "generation_seconds": samples.generation_seconds,
            "tokens_per_second": samples.new_tokens / samples.generation_seconds if samples.generation_seconds else 0.0}


def run_dpo_iter(cfg, start_path: str, scorer, train_questions: pd.DataFrame, out_root: Path, progress=print) -> list[dict]:
    """The DPO-Iter loop: each round samples ``statements_per_round`` training statements, draws
    ``samples_per_statement`` responses each, pairs the best with the worst under the reward model, and trains one
    DPO round whose reference is the previous round's policy.  Every round is saved under ``round_<k>/``."""
    it = cfg.dpo_iter
    policy_path = start_path
    rng = np.random.default_rng(cfg.seed)
    rounds = []
    for k in range(1, it.rounds + 1):
        round_dir = out_root / f"round_{k}"
        round_dir.mkdir(parents=True, exist_ok=True)
        n = min(it.statements_per_round, len(train_questions))
        chosen = train_questions.iloc[np.sort(rng.choice(len(train_questions), size=n, replace=False))]
        start = time.perf_counter()
        samples = sample_and_score(policy_path, cfg.models, scorer, chosen["question"].tolist(), it.samples_per_statement,
                                   it.temperature, it.max_new_tokens, cfg.pool.generation_batch_size * it.samples_per_statement,
                                   seed=cfg.seed + k, length_penalty=it.length_penalty)
        dataset, frame, degenerate = pairs_dataset(samples, chosen["ID"].tolist(), k)
        summary = round_summary(samples, frame, degenerate)
        frame.to_parquet(round_dir / "pairs.parquet", index=False)
        if len(frame) == 0:
            raise RuntimeError(f"DPO-Iter round {k}: every statement's samples scored the same; no pairs to train on")
        training = train_dpo(it.training, policy_path, dataset, round_dir, seed=cfg.seed + k, lora=cfg.models.lora,
                             reuse=cfg.reuse_trained_models, section="dpo_iter.training")
        summary.update({"round": k, "reference": policy_path, "policy": training["model_dir"],
                        "dpo_seconds": training["seconds"], "dpo_steps": training["steps"],
                        "dpo_steps_per_second": training["steps_per_second"], "dpo_reused": training["reused"],
                        "round_seconds": time.perf_counter() - start,
                        "final_train_loss": next((h["loss"] for h in reversed(training["log_history"]) if "loss" in h), None)})
        (round_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        progress(f"round {k}: {summary['pairs']} pairs, mean reward {summary['mean_reward']:.3f}, "
                 f"mean length {summary['mean_length_tokens']:.0f} tokens, {summary['round_seconds']:.1f} s"
                 + (" (DPO model reused: trained earlier on these same pairs)" if training["reused"] else ""))
        rounds.append(summary)
        policy_path = training["model_dir"]
    return rounds


def held_out_comparison(held_out: dict[str, tuple[np.ndarray, list[str], np.ndarray]], seed: int,
                        n_boot: int = 1000) -> pd.DataFrame:
    """One row per policy from :func:`held_out_rewards` results: mean reward with a 95% bootstrap interval over
    statements, mean length in tokens, and the share of distinct words in the first sample's first 30 words (chapters
    04 and 05)."""
    from .evaluate import distinct_word_share
    from .metrics import bootstrap_ci

    rows = {}
    for name, (rewards, answers, lengths) in held_out.items():
        mean, low, high = bootstrap_ci(rewards, np.mean, n_boot, seed)
        rows[name] = {"mean reward": mean, "ci_low": low, "ci_high": high, "mean length (tokens)": float(np.mean(lengths)),
                      DISTINCT_WORDS: 100 * float(np.nanmean([distinct_word_share(a) for a in answers]))}
    return pd.DataFrame(rows).T


def held_out_rewards(policy_path: str, cfg, scorer, questions: list[str], seed: int, n: int = 4,
                     saved_dir: Path | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``n`` sampled responses per held-out statement, scored by the reward model (chapters 04 and 05 compare
    policies this way): the mean reward per statement, the first response of each, and its mean length in tokens.

    With ``saved_dir`` (and ``cfg.reuse_trained_models``), the result is kept there under a fingerprint of the policy's
    and the reward model's files, the statements, the sampling settings and the seed, and read back instead of
    sampled again when all of them are unchanged (:mod:`psyco_utils.reuse`)."""
    from .reuse import fingerprint, model_digest

    settings = {"n": n, "temperature": cfg.dpo.temperature, "max_new_tokens": cfg.dpo.max_new_tokens,
                "batch_size": cfg.pool.generation_batch_size * n, "models": cfg.models.model_dump()}
    path = None
    scorer_source = getattr(scorer, "source_path", None)
    if saved_dir is not None and scorer_source and cfg.reuse_trained_models:
        key = fingerprint("held_out_samples", hyperparameters={**settings, "scorer": model_digest(scorer_source)},
                          seed=seed, start_model=policy_path, data={"questions": pd.DataFrame({"question": questions})})
        path = Path(saved_dir) / f"{key}.parquet"
        if path.is_file():
            saved = pd.read_parquet(path)
            if saved["question"].tolist() == list(questions):
                return saved["mean_reward"].to_numpy(), saved["first_response"].tolist(), saved["mean_length"].to_numpy()
    samples = sample_and_score(policy_path, cfg.models, scorer, questions, n, cfg.dpo.temperature, cfg.dpo.max_new_tokens,
                               cfg.pool.generation_batch_size * n, seed=seed)
    result = samples.raw_rewards.mean(axis=1), [r[0] for r in samples.responses], samples.lengths.mean(axis=1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        pd.DataFrame({"question": list(questions), "mean_reward": result[0], "first_response": result[1],
                      "mean_length": result[2]}).to_parquet(partial, index=False)
        partial.replace(path)
    return result
