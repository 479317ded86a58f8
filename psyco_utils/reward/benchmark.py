"""RewardBench (Lambert et al. 2024) for the reward models of chapter 03: its published schema, a loader,
and accuracy per subset and per category.

RewardBench (``allenai/reward-bench``, split ``filtered``) holds one row per comparison: ``prompt`` (a single user
turn), ``chosen``, ``rejected``, ``subset`` (and ``id``, ``chosen_model``, ``rejected_model``).  A reward model is
right on a row when it scores ``chosen`` above ``rejected``.  The subsets form four categories (its dataset card):
Chat, Chat Hard, Safety and Reasoning.  This module reports the accuracy of each subset, the pooled accuracy of each
category (every row of the category counts once), and the mean of the four categories.  RewardBench's leaderboard
weights its ``math-prm`` subset within Reasoning differently and adds a fifth category from prior preference sets;
this book's overall number is the plain mean of the four categories, and says so where it is shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data import read_table_file

__all__ = ["REWARDBENCH_ID", "REWARDBENCH_COLUMNS", "REWARDBENCH_CATEGORIES", "RewardBenchError", "category_of",
           "load_rewardbench", "rewardbench_accuracy", "score_rewardbench", "rewardbench_table"]

REWARDBENCH_ID = "allenai/reward-bench"
REWARDBENCH_COLUMNS = ("prompt", "chosen", "rejected", "subset")
#: Subsets of each category, as RewardBench's dataset card groups them.
REWARDBENCH_CATEGORIES = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
_CATEGORY_OF = {subset: category for category, subsets in REWARDBENCH_CATEGORIES.items() for subset in subsets}


class RewardBenchError(ValueError):
    """A RewardBench file that cannot be scored; the message names the file, and the row and column if one."""


def category_of(subset: str) -> str:
    """The RewardBench category of a subset; a subset the card does not list is its own category ("other")."""
    return _CATEGORY_OF.get(subset, "other")


def load_rewardbench(path_or_id: str | None = None, split: str = "filtered", max_rows: int | None = None
                     ) -> pd.DataFrame:
    """RewardBench rows from a local parquet / JSON Lines / JSON / CSV file or a hub id (default
    ``allenai/reward-bench``), with a ``category`` column added.  A missing column, or a cell of ``prompt``,
    ``chosen``, ``rejected`` or ``subset`` that is empty or not text, raises :class:`RewardBenchError` naming the
    file, the row and the column.  ``max_rows`` keeps the first rows of each subset in turn (a smaller, still
    complete, run)."""
    path_or_id = path_or_id or REWARDBENCH_ID
    path = Path(path_or_id)
    if path.is_file():
        frame, where = read_table_file(path, RewardBenchError, path.name), path.name
    else:
        import datasets

        frame, where = datasets.load_dataset(str(path_or_id), split=split).to_pandas(), f"{path_or_id} ({split})"
    missing = [c for c in REWARDBENCH_COLUMNS if c not in frame.columns]
    if missing:
        raise RewardBenchError(f"{where}: missing column(s) {missing}; RewardBench rows have "
                               f"{list(REWARDBENCH_COLUMNS)}; found {list(frame.columns)}")
    for column in REWARDBENCH_COLUMNS:
        bad = [i for i, v in enumerate(frame[column]) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise RewardBenchError(f"{where}: row {bad[0]}, column {column!r}: empty or not text")
    frame = frame.reset_index(drop=True).assign(category=lambda f: f["subset"].map(category_of))
    if max_rows is not None and len(frame) > max_rows:
        order = frame.groupby("subset", sort=False).cumcount().sort_values(kind="stable").index
        frame = frame.loc[sorted(order[:max_rows])].reset_index(drop=True)
    return frame


def rewardbench_accuracy(rows: pd.DataFrame, reward_chosen, reward_rejected) -> dict[str, pd.DataFrame]:
    """Accuracy (share of rows with ``reward_chosen > reward_rejected``) by ``subset`` and by ``category`` (rows
    pooled), each with its row count; ``overall`` holds the mean of the categories present and the pooled accuracy."""
    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    if not len(rc) == len(rr) == len(rows):
        raise ValueError(f"{len(rc)} chosen and {len(rr)} rejected rewards for {len(rows)} RewardBench rows")
    frame = rows[["subset", "category"]].assign(correct=(rc > rr).astype(float))

    def table(key: str) -> pd.DataFrame:
        grouped = frame.groupby(key, sort=False)["correct"]
        return pd.DataFrame({"rows": grouped.size(), "accuracy": grouped.mean()}).astype({"rows": int})

    by_category = table("category")
    known = by_category.drop(index="other", errors="ignore")
    overall = pd.DataFrame({"rows": [len(frame), len(frame)],
                            "accuracy": [known["accuracy"].mean() if len(known) else np.nan,
                                         frame["correct"].mean()]},
                           index=["mean of the categories", "all rows pooled"])
    return {"subset": table("subset"), "category": by_category, "overall": overall}


def score_rewardbench(cfg, rows: pd.DataFrame, models: dict, batch_size: int = 8) -> pd.DataFrame:
    """Each reward model of ``models`` (name -> a loaded :class:`RewardScorer`, or a model folder / hub id that is
    loaded when its turn comes and freed after) on the RewardBench rows: one row per model, one column per category
    (accuracy), then the mean of the categories and the rows scored."""
    import gc

    from .scoring import RewardScorer, shown_model_name

    table = {}
    pairs = rows.rename(columns={"prompt": "question"})
    for name, model in models.items():
        scorer = model if isinstance(model, RewardScorer) else RewardScorer.load(
            model, cfg, max_length=cfg.reward.training.get("max_length"), name=shown_model_name(name))
        rc, rr = scorer.score_pairs(pairs, batch_size=batch_size)
        acc = rewardbench_accuracy(rows, rc, rr)
        table[scorer.name] = {**acc["category"]["accuracy"].to_dict(),
                       "mean of the categories": acc["overall"].at["mean of the categories", "accuracy"],
                       "rows": len(rows)}
        if scorer is not model:
            del scorer
            gc.collect()
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.name = "model"
    return frame


def rewardbench_table(cfg, scorer, ablation_models: dict[str, str] | None = None) -> pd.DataFrame | None:
    """RewardBench accuracy of this chapter's reward model (``scorer``), the ablation models and the off-the-shelf
    models, when the profile names a RewardBench file or hub id (``reward.rewardbench``); else None."""
    if not cfg.reward.rewardbench:
        return None
    rows = load_rewardbench(cfg.reward.rewardbench, cfg.reward.rewardbench_split, cfg.reward.rewardbench_max_rows)
    models = {scorer.name: scorer, **(ablation_models or {}),
              **{name: name for name in cfg.reward.off_the_shelf}}
    return score_rewardbench(cfg, rows, models)
