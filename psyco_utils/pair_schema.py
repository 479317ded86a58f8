"""The one schema of a preference pair: its columns, its validation, and its conversion to TRL's format.

Every stage that reads pairs (building them in chapter 02, the reward model in chapter 03, DPO in chapters 04 and 05,
the released data) validates them here, so a bad file fails the same way everywhere: a :class:`PairSchemaError` that
names the data, the row and the column, before TRL could fail deep inside with a bare ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .principles import PRINCIPLE_KEYS

__all__ = [
    "PairSchemaError", "TRAINING_COLUMNS", "TEXT_COLUMNS", "RATING_COLUMNS", "RELEASED_COLUMNS", "validate",
    "conversation", "to_trl",
]

#: What training and the artifacts need.
TRAINING_COLUMNS = ("ID", "prefID", "question", "chosen", "rejected")
#: What scoring and TRL's format need: the statement and both responses, as non-empty text.
TEXT_COLUMNS = ("question", "chosen", "rejected")
#: The 14 integer ratings (1 to 5) of the released data: chosen and rejected, on each of the seven principles.
RATING_COLUMNS = tuple(f"{side}_{p}_rating" for side in ("chosen", "rejected") for p in PRINCIPLE_KEYS)
#: The released PsychoCounsel-Preference schema.
RELEASED_COLUMNS = (*TRAINING_COLUMNS, "chosen_model", "rejected_model", *RATING_COLUMNS)


class PairSchemaError(ValueError):
    """Preference pairs that do not follow the schema; the message names the data, the row and the column."""


def _columns(data) -> list[str]:
    return list(data.column_names) if hasattr(data, "column_names") else list(data.columns)


def _first_bad_text(values) -> tuple[int, object] | None:
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            return i, value
    return None


def validate(data, where: str, columns: Sequence[str] = TRAINING_COLUMNS) -> None:
    """Raise :class:`PairSchemaError` unless ``data`` (a DataFrame or a ``datasets.Dataset``) has ``columns``, at least
    one row, non-empty text in the text columns, and integer ratings from 1 to 5 in any rating column asked for."""
    found = _columns(data)
    missing = [c for c in columns if c not in found]
    if missing:
        raise PairSchemaError(f"{where}: missing column(s) {missing}; found {found}. Pairs need {list(columns)}.")
    if len(data) == 0:
        raise PairSchemaError(f"{where}: no pairs")
    for column in (c for c in columns if c in TEXT_COLUMNS):
        bad = _first_bad_text(data[column])
        if bad:
            raise PairSchemaError(f"{where}: row {bad[0]}, column {column!r}: empty or not text ({bad[1]!r})")
    for column in (c for c in columns if c in RATING_COLUMNS):
        raw = pd.Series(list(data[column]))
        values = pd.to_numeric(raw, errors="coerce")
        bad = raw.index[values.isna() | (values < 1) | (values > 5) | (values % 1 != 0)]
        if len(bad):
            raise PairSchemaError(f"{where}: row {int(bad[0])}, column {column!r}: rating {raw[bad[0]]!r} is not an "
                                  "integer from 1 to 5")


def conversation(statement: str, response: str | None = None) -> list[dict]:
    """The chat a model reads: the client statement as the user turn, the response (if any) as the assistant turn."""
    messages = [{"role": "user", "content": statement}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def to_trl(data, where: str = "pairs for TRL"):
    """TRL's conversational preference format, as a ``datasets.Dataset``: ``prompt`` (the user turn), ``chosen`` and
    ``rejected`` (one assistant turn each).  TRL joins prompt and completion and applies the chat template once."""
    import datasets

    validate(data, where, TEXT_COLUMNS)
    rows = [{"prompt": conversation(q), "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]}
            for q, c, r in zip(data["question"], data["chosen"], data["rejected"])]
    return datasets.Dataset.from_list(rows)
