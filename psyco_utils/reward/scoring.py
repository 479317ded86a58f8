"""Scoring with a reward model (chapters 03 to 06): :class:`RewardScorer` and the trained model of chapter 03.

The chat is rendered as in training (statement as the user turn, response as the assistant turn, the backbone's
chat template applied once); sequences are sorted by length, batched and right-padded; no gradients.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import RunLayout, has_model
from ..pair_schema import TEXT_COLUMNS, validate
from .data import chat_token_ids, frame_of, set_padding

__all__ = [
    "PREDICTION_COLUMNS", "CAUSAL_LM_REWARD_TOKEN", "ScoringStats", "RewardScorer", "CausalLMRewardScorer",
    "stage_dir",
    "reward_model_dir", "load_trained_reward_model", "in_float32", "test_predictions", "shown_model_name",
    "score_off_the_shelf",
]

PREDICTION_COLUMNS = ["ID", "prefID", "reward_chosen", "reward_rejected"]
#: A reward model published as a causal language model (Llama-3.1-Nemotron-70B-Reward-HF) gives its reward as the
#: logit of this token id at the position after the chat: its model card generates one token after the chat (no
#: generation prompt) and reads ``scores[0][0][0]``.  :class:`CausalLMRewardScorer` reads the same number without
#: generating.
CAUSAL_LM_REWARD_TOKEN = 0


@dataclass
class ScoringStats:
    """What scoring cost: chats scored, their tokens, seconds, and chats cut to the maximum length."""

    sequences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0

    @property
    def sequences_per_second(self) -> float:
        return self.sequences / self.seconds if self.seconds else float("nan")

    def as_record(self) -> dict:
        return {"chats": self.sequences, "tokens": self.tokens, "seconds": round(self.seconds, 3),
                "chats_per_second": round(self.sequences_per_second, 1), "truncated": self.truncated}


class RewardScorer:
    """Scores (statement, response) pairs with a reward model: ``rewards = scorer.score(statements, responses)``.

    Chats longer than ``max_length`` tokens are cut to it and counted in ``stats.truncated``.
    """

    def __init__(self, model, tokenizer, max_length: int | None = None, name: str = "reward model"):
        set_padding(tokenizer)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.eval()
        self.model, self.tokenizer, self.max_length, self.name = model, tokenizer, max_length, name
        self.source_path: str | None = None  # the saved model's folder or hub id, when loaded with load()
        self.stats = ScoringStats()

    @classmethod
    def load(cls, path: str | Path, cfg=None, device: str | None = None, max_length: int | None = None,
             name: str | None = None, dtype: str | None = None) -> "RewardScorer":
        """A saved reward model: this chapter's, or any hub / local reward model: a sequence classifier with one
        output (its logit is the reward), or a causal language model whose config names a ``...ForCausalLM``
        architecture (the reward is the logit of :data:`CAUSAL_LM_REWARD_TOKEN` after the chat, as
        Llama-3.1-Nemotron-70B-Reward-HF publishes it); a classifier with several outputs is refused.  The weights
        load in ``dtype`` (a torch dtype's name), else in the profile's ``models.dtype``."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        from ..models import default_device

        kwargs = {}
        dtype = dtype or (cfg.models.dtype if cfg is not None else "auto")
        if dtype != "auto":
            import torch

            kwargs["dtype"] = getattr(torch, dtype)
        tok = AutoTokenizer.from_pretrained(str(path))
        architectures = AutoConfig.from_pretrained(str(path)).architectures or []
        if any(a.endswith("ForCausalLM") for a in architectures):
            model, kind = AutoModelForCausalLM.from_pretrained(str(path), **kwargs), CausalLMRewardScorer
        else:
            model, kind = AutoModelForSequenceClassification.from_pretrained(str(path), **kwargs), cls
            if model.config.num_labels != 1:
                raise ValueError(f"{path}: a reward model has one output; this one has "
                                 f"num_labels={model.config.num_labels}")
        model.to(device or default_device())
        scorer = kind(model, tok, max_length=max_length, name=name or Path(str(path)).name)
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

    def _right_padded(self, ids: list[list[int]]):
        """A batch of token ids as right-padded ``input_ids`` and ``attention_mask`` tensors."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        return input_ids, mask

    def _batch_rewards(self, ids: list[list[int]]) -> np.ndarray:
        input_ids, mask = self._right_padded(ids)
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
        return logits.float().squeeze(-1).cpu().numpy()

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
        with torch.inference_mode():
            for begin in tqdm(range(0, len(ids), batch_size), desc=f"scoring ({self.name})", disable=not progress):
                idx = order[begin : begin + batch_size]
                rewards[idx] = self._batch_rewards([ids[i] for i in idx])
        self.stats.sequences += len(ids)
        self.stats.tokens += sum(len(x) for x in ids)
        self.stats.seconds += time.perf_counter() - start
        return rewards

    __call__ = score

    def score_pairs(self, pairs, batch_size: int = 32, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rewards of the chosen and of the rejected response of each pair (``question``, ``chosen``, ``rejected``)."""
        frame = frame_of(pairs)
        validate(frame, "pairs to score", TEXT_COLUMNS)
        n = len(frame)
        both = self.score(list(frame["question"]) * 2, list(frame["chosen"]) + list(frame["rejected"]),
                          batch_size=batch_size, progress=progress)
        return both[:n], both[n:]


class CausalLMRewardScorer(RewardScorer):
    """A reward model published as a causal language model: the reward of a chat is the logit of
    :data:`CAUSAL_LM_REWARD_TOKEN` at the position after its last token (Llama-3.1-Nemotron-70B-Reward-HF).  Only
    that one row of the output layer is computed, at one position per chat, not the whole vocabulary at every
    position."""

    def _batch_rewards(self, ids: list[list[int]]) -> np.ndarray:
        import torch

        input_ids, mask = self._right_padded(ids)
        hidden = self.model.base_model(input_ids=input_ids.to(self.device),
                                       attention_mask=mask.to(self.device)).last_hidden_state
        last = torch.tensor([len(x) - 1 for x in ids], device=hidden.device)
        final = hidden[torch.arange(len(ids), device=hidden.device), last]
        head = self.model.get_output_embeddings()
        logit = final @ head.weight[CAUSAL_LM_REWARD_TOKEN].to(final.dtype)
        if getattr(head, "bias", None) is not None:
            logit = logit + head.bias[CAUSAL_LM_REWARD_TOKEN]
        return logit.detach().float().cpu().numpy()


def stage_dir(run_root: str | Path) -> Path:
    """``runs/<profile>/reward_model``: everything chapter 03 writes."""
    return RunLayout(run_root).reward_model.root


def reward_model_dir(run_root: str | Path) -> Path:
    """``runs/<profile>/reward_model/model``: where chapter 03 saves the trained reward model and its tokenizer."""
    return RunLayout(run_root).reward_model.model


def load_trained_reward_model(cfg, run_root: str | Path, device: str | None = None) -> RewardScorer:
    """This profile's trained reward model (chapter 03's artifact) as a :class:`RewardScorer`: chapters 04-06."""
    path = reward_model_dir(run_root)
    if not has_model(path):
        raise FileNotFoundError(f"{path} has no reward model: run chapter 03 (03_reward_model) first")
    return RewardScorer.load(path, cfg, device=device, max_length=cfg.reward.training.get("max_length"),
                             name="PsyCoPref reward model")


@contextmanager
def in_float32(scorer: RewardScorer):
    """``scorer`` itself when its model is float32, else the same saved model loaded again in float32 (same device,
    length limit and name), for chapter 03's check against TRL (:data:`psyco_utils.by_hand.FLOAT32_EVALUATION`).  A
    copy loaded here is released on leaving the block."""
    import torch

    from ..models import release_unused_memory

    if scorer.model.dtype == torch.float32:
        yield scorer
        return
    if scorer.source_path is None:
        raise ValueError(f"{scorer.name}: a {scorer.model.dtype} model built in memory cannot be loaded again in "
                         "float32; load it with RewardScorer.load()")
    float32_copy = type(scorer).load(scorer.source_path, device=str(scorer.device), max_length=scorer.max_length,
                                     name=scorer.name, dtype="float32")
    try:
        yield float32_copy
    finally:
        float32_copy.model = None
        release_unused_memory()


def test_predictions(scorer: RewardScorer, test, batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """``ID, prefID, reward_chosen, reward_rejected`` for every test pair (design.md's artifact contract)."""
    frame = frame_of(test)
    validate(frame, "test split")
    rc, rr = scorer.score_pairs(frame, batch_size=batch_size, progress=progress)
    return pd.DataFrame({"ID": frame["ID"].astype(str).to_numpy(), "prefID": frame["prefID"].astype("int64").to_numpy(),
                         "reward_chosen": rc, "reward_rejected": rr})


test_predictions.__test__ = False  # a function of the package, not a pytest test


def shown_model_name(name: str) -> str:
    """A hub id as it is; a local folder by its last part and "(local copy)": pages show no machine paths."""
    path = Path(name)
    return f"{path.name} (local copy)" if path.is_absolute() or name.startswith(".") or path.exists() else name


def score_off_the_shelf(cfg, test, batch_size: int = 8) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rewards from the off-the-shelf reward models in ``cfg.reward.off_the_shelf`` (hub ids or local folders),
    each loaded as a sequence classifier and scored with :class:`RewardScorer`, then freed."""
    from ..models import release_unused_memory

    out = {}
    for name in cfg.reward.off_the_shelf:
        scorer = RewardScorer.load(name, cfg, max_length=cfg.reward.training.get("max_length"),
                                   name=shown_model_name(name))
        out[scorer.name] = scorer.score_pairs(test, batch_size=batch_size)
        del scorer
        release_unused_memory()
    return out
