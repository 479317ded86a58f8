"""What the reward model reads (chapter 03): the chat, its tokens, the pairs TRL drops for length, HelpSteer2.

Pairs follow the one schema of :mod:`psyco_utils.pair_schema` (validation, the chat, TRL's conversational format).
This module adds what only the reward model needs: token lengths rendered exactly as TRL renders them, the count of
pairs ``RewardTrainer`` would drop silently, and the HelpSteer2 pairs of the paper's mixing ablation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..pair_schema import TEXT_COLUMNS, TRAINING_COLUMNS, conversation, validate

__all__ = [
    "HelpSteer2Error", "HELPSTEER2_ID", "HELPSTEER2_COLUMNS", "frame_of", "set_padding", "chat_token_ids",
    "count_length_drops", "length_drop_table", "load_helpsteer2", "helpsteer2_pairs", "training_pairs",
    "example_pair", "read_table_file", "DEGENERATE_NEGATIVE", "degenerate_negative_pairs",
]

HELPSTEER2_ID = "nvidia/HelpSteer2"
HELPSTEER2_COLUMNS = ("prompt", "response", "helpfulness")
# Dedicated padding tokens some instruct tokenizers ship without declaring them (Llama 3 would fall back to eos).
_PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>")


class HelpSteer2Error(ValueError):
    """A HelpSteer2 file the reward model cannot use; the message names the file, and the row and column if one."""


def frame_of(data) -> pd.DataFrame:
    """Pairs as a DataFrame, from a DataFrame or a ``datasets.Dataset``."""
    return data if isinstance(data, pd.DataFrame) else data.to_pandas()


def set_padding(tokenizer) -> None:
    """Right padding and a pad token distinct from end-of-sequence where the vocabulary has one (the reward is read
    at the last real token, so padding must come after it)."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        for candidate in _PAD_CANDIDATES:
            if candidate in vocab:
                tokenizer.pad_token = candidate
                return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


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
    frame = frame_of(pairs)
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


def length_drop_table(splits, tokenizer, max_length: int | None) -> pd.DataFrame:
    """:func:`count_length_drops` for every non-empty split of ``splits`` (a mapping, e.g. a ``DatasetDict``)."""
    table = pd.DataFrame({name: count_length_drops(splits[name], tokenizer, max_length) for name in splits
                          if splits[name] is not None and len(splits[name])}).T
    table.index.name = "split"
    return table


def read_table_file(path: Path, error: type[ValueError], shown: str | None = None) -> pd.DataFrame:
    """A local data file (parquet, jsonl, json or csv) as a DataFrame; any other type raises ``error`` naming the
    file as ``shown`` (the path by default)."""
    readers = {".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True),
               ".json": pd.read_json, ".csv": pd.read_csv}
    if path.suffix not in readers:
        raise error(f"{shown or path}: unsupported file type {path.suffix!r}; use parquet, jsonl, json or csv")
    return readers[path.suffix](path)


def load_helpsteer2(path_or_id: str | None = None, split: str = "train") -> pd.DataFrame:
    """HelpSteer2-style data {cite}`wang2024helpsteer2`: one row per response with ``prompt``, ``response`` and
    attribute scores 0-4 (``helpfulness``, ``correctness``, ``coherence``, ``complexity``, ``verbosity``).

    ``path_or_id``: a local parquet / JSON Lines / JSON / CSV file, a local dataset folder, or a hub id
    (default ``nvidia/HelpSteer2``).  A missing column, an empty prompt or response, or a score that is not a number
    raises :class:`HelpSteer2Error` naming the file, the row and the column.
    """
    path_or_id = path_or_id or HELPSTEER2_ID
    path = Path(path_or_id)
    if path.is_file():
        frame = read_table_file(path, HelpSteer2Error)
    else:
        import datasets

        frame = datasets.load_dataset(str(path_or_id), split=split).to_pandas()
    missing = [c for c in HELPSTEER2_COLUMNS if c not in frame.columns]
    if missing:
        raise HelpSteer2Error(f"{path_or_id}: missing column(s) {missing}; HelpSteer2 data has "
                              f"{list(HELPSTEER2_COLUMNS)} and the other attribute scores; found {list(frame.columns)}")
    for column in ("prompt", "response"):
        bad = [i for i, v in enumerate(frame[column]) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise HelpSteer2Error(f"{path_or_id}: row {bad[0]}, column {column!r}: empty or not text")
    return frame


def helpsteer2_pairs(frame: pd.DataFrame, score: str = "helpfulness", min_gap: float = 1.0,
                     where: str = "HelpSteer2 data") -> pd.DataFrame:
    """Preference pairs from HelpSteer2-style rows: every two responses to the same prompt whose ``score`` differs by
    at least ``min_gap`` (ties dropped), the higher-scored one chosen.

    This is this book's conversion (the paper does not state its own); it mirrors chapter 02's train pairs.
    Returns ``ID``, ``prefID``, ``question``, ``chosen``, ``rejected``, ``score_gap`` and ``source``.
    """
    if score not in frame.columns:
        raise HelpSteer2Error(f"{where}: missing score column {score!r}; found {list(frame.columns)}")
    scores = pd.to_numeric(frame[score], errors="coerce")
    if scores.isna().any():
        row = int(np.flatnonzero(scores.isna().to_numpy())[0])
        raise HelpSteer2Error(f"{where}: row {row}, column {score!r}: {frame[score].iloc[row]!r} is not a number")
    rows = []
    scored = frame.assign(**{score: scores})
    for prompt_id, (prompt, group) in enumerate(scored.groupby("prompt", sort=False)):
        for a, b in itertools.combinations(group.to_dict("records"), 2):
            gap = float(a[score]) - float(b[score])
            if abs(gap) < min_gap - 1e-9:
                continue
            hi, lo = (a, b) if gap > 0 else (b, a)
            rows.append({"ID": f"helpsteer2:{prompt_id}", "prefID": len(rows), "question": prompt,
                         "chosen": hi["response"], "rejected": lo["response"], "score_gap": abs(gap),
                         "source": "helpsteer2"})
    return pd.DataFrame(rows, columns=[*TRAINING_COLUMNS, "score_gap", "source"])


def training_pairs(cfg, data) -> pd.DataFrame:
    """The pairs the reward model trains on: PsyCoPref's train split, plus HelpSteer2 pairs when the profile sets
    ``reward.helpsteer2_mix`` (the paper's mixing ablation; ``reward.helpsteer2_path`` names a local file or hub id).
    A ``source`` column says where each pair came from."""
    frame = frame_of(data if isinstance(data, pd.DataFrame) else data["train"])
    validate(frame, "train split")
    frame = frame.assign(source="psycopref")
    extra = []
    if cfg.reward.degenerate_negatives:
        extra.append(degenerate_negative_pairs(frame, cfg.reward.degenerate_negatives, cfg.seed))
    if cfg.reward.helpsteer2_mix:
        extra.append(helpsteer2_pairs(load_helpsteer2(cfg.reward.helpsteer2_path),
                                      where=str(cfg.reward.helpsteer2_path)))
    return pd.concat([frame, *extra], ignore_index=True) if extra else frame


#: The ``source`` of the pairs :func:`degenerate_negative_pairs` adds.
DEGENERATE_NEGATIVE = "degenerate negative"


def degenerate_negative_pairs(train: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Pairs that show the reward model degenerate text as the worse answer (``reward.degenerate_negatives``, a book
    choice, not the paper's): for ``share`` of the train pairs, drawn with ``seed``, the pair's chosen answer against
    a corrupted copy of it (:func:`psyco_utils.style.corrupt`), the kinds of
    :data:`~psyco_utils.style.TRAINING_CORRUPTIONS` in turn.  Each new pair keeps its statement's ``ID`` (so it
    stays in the split of its statement) and gets a ``prefID`` after the split's; ``corruption`` names its kind.
    Pairs whose chosen answer is empty are skipped."""
    import numpy as np

    from ..style import TRAINING_CORRUPTIONS, corrupt

    rng = np.random.default_rng(seed)
    usable = train[train["chosen"].fillna("").str.strip().astype(bool)]
    picked = usable.iloc[np.sort(rng.choice(len(usable), size=round(share * len(usable)), replace=False))]
    kinds = list(TRAINING_CORRUPTIONS)
    first_id = int(pd.to_numeric(train["prefID"]).max()) + 1 if len(train) else 0
    rows = [{"ID": row.ID, "prefID": first_id + k, "question": row.question, "chosen": row.chosen,
             "rejected": corrupt(row.chosen, kinds[k % len(kinds)], rng), "corruption": kinds[k % len(kinds)],
             "source": DEGENERATE_NEGATIVE}
            for k, row in enumerate(picked.itertuples(index=False))]
    return pd.DataFrame(rows, columns=[*TRAINING_COLUMNS, "corruption", "source"])


def example_pair(pairs) -> pd.Series:
    """The first pair whose statement carries no crisis language: the example a page may show."""
    from ..crisis import crisis_signals

    frame = frame_of(pairs)
    validate(frame, "example pairs", TEXT_COLUMNS)
    for _, row in frame.iterrows():
        if not crisis_signals(row["question"]):
            return row
    raise ValueError(f"all {len(frame):,} pairs have crisis language in the statement; none is shown as an example")
