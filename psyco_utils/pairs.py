"""Preference pairs and splits in the released PsyCoPref schema (chapter 02), and the released-data loader.

The paper's construction: every response is scored 1-5 on the seven principles and its overall score is the mean.
Train pairs are every pair of a statement's responses whose overall scores differ by at least 1 (ties dropped);
test pairs are the best against the worst response of each test statement; 10% of the training statements are
held out as a dev split for checkpoint selection.  Splits are drawn by statement, so no statement is in two splits.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from . import pair_schema
from .layout import RunLayout
from .pair_schema import RATING_COLUMNS, RELEASED_COLUMNS, PairSchemaError
from .principles import PRINCIPLE_KEYS

__all__ = [
    "SPLITS", "HumanLabelsError", "scores_frame", "assign_splits", "build_pairs", "empty_splits_problem",
    "to_dataset_dict", "load_released", "load_preference_data", "dataset_card", "swap_consistency",
    "human_agreement", "HUMAN_LABEL_COLUMNS", "INTENDED_BEST", "INTENDED_WORST", "intended_style_labels",
]

SPLITS = ("train", "dev", "test")


class HumanLabelsError(ValueError):
    """A human-labels file that cannot be used; the message names the file, the row and the column."""


def scores_frame(pool: pd.DataFrame, results: list) -> pd.DataFrame:
    """The pool with one column per principle, the overall score (mean of the seven) and the judge's status.

    ``results`` are the judge's ``ScoreResult`` objects in pool order.  Failed judgments keep their row, with
    missing ratings and the failure reason, so the chapter can count and show them.
    """
    if len(results) != len(pool):
        raise ValueError(f"{len(results)} judge results for {len(pool)} pool responses")
    frame = pool.reset_index(drop=True).copy()
    for key in PRINCIPLE_KEYS:
        frame[key] = [r.ratings[key] if r.status == "ok" and r.ratings else np.nan for r in results]
    frame["overall"] = frame[list(PRINCIPLE_KEYS)].mean(axis=1, skipna=False)
    frame["judge_status"] = [r.status for r in results]
    frame["judge_error"] = [r.error for r in results]
    frame["rationale"] = [r.rationale for r in results]
    return frame


def assign_splits(statement_ids: list[str], dev_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Statement id -> ``train``, ``dev`` or ``test``: test first, then ``dev_fraction`` of the rest as dev."""
    ids = sorted(set(statement_ids))
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    n_test = max(1, round(test_fraction * len(ids)))
    rest = order[n_test:]
    n_dev = round(dev_fraction * len(rest))
    split = {s: "test" for s in order[:n_test]}
    split.update({s: "dev" for s in rest[:n_dev]})
    split.update({s: "train" for s in rest[n_dev:]})
    return split


def _pair_row(statement_id, question, theme, chosen, rejected) -> dict:
    row = {"ID": statement_id, "question": question, "chosen": chosen["response"], "rejected": rejected["response"],
           "chosen_model": chosen["generator"], "rejected_model": rejected["generator"], "theme": theme,
           "score_gap": round(float(chosen["overall"] - rejected["overall"]), 6)}  # 7/7 is 1.0, not 0.9999...
    for key in PRINCIPLE_KEYS:
        row[f"chosen_{key}_rating"] = int(chosen[key])
        row[f"rejected_{key}_rating"] = int(rejected[key])
    return row


def build_pairs(scored: pd.DataFrame, statements: pd.DataFrame, split_of: dict[str, str],
                min_gap: float = 1.0) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Pairs per split in the released schema plus ``theme`` and ``score_gap``, and a table of what was dropped.

    train and dev: every pair of a statement's judged responses with an overall gap of at least ``min_gap``;
    test: the best against the worst response of each statement (dropped when they tie).  Responses whose judgment
    failed are left out and counted.
    """
    by_statement = statements.set_index("statement_id")
    ok = scored[scored["judge_status"] == "ok"]
    drops = {"failed judgments": int((scored["judge_status"] != "ok").sum()), "pairs under the gap (train/dev)": 0,
             "test statements whose best and worst tie": 0, "statements with fewer than 2 judged responses": 0}
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for sid, group in ok.groupby("statement_id", sort=True):
        split = split_of[sid]
        question, theme = by_statement.at[sid, "text"], by_statement.at[sid, "theme"]
        if len(group) < 2:
            drops["statements with fewer than 2 judged responses"] += 1
            continue
        records = group.sort_values(["overall", "response_id"], ascending=[False, True]).to_dict("records")
        if split == "test":
            best, worst = records[0], records[-1]
            if best["overall"] == worst["overall"]:
                drops["test statements whose best and worst tie"] += 1
                continue
            rows[split].append(_pair_row(sid, question, theme, best, worst))
            continue
        for a, b in itertools.combinations(records, 2):
            if a["overall"] - b["overall"] >= min_gap - 1e-9:
                rows[split].append(_pair_row(sid, question, theme, a, b))
            else:
                drops["pairs under the gap (train/dev)"] += 1
    frames = {}
    for split in SPLITS:
        frame = pd.DataFrame(rows[split], columns=[c for c in RELEASED_COLUMNS if c != "prefID"] + ["theme", "score_gap"])
        frame.insert(1, "prefID", np.arange(len(frame), dtype="int64"))
        frames[split] = frame
    return frames, pd.Series(drops, name="count").to_frame()


_MORE_PAIRS_IN = {"train": "lower splits.dev_fraction or splits.test_fraction", "dev": "raise splits.dev_fraction",
                  "test": "raise splits.test_fraction"}


def empty_splits_problem(frames: dict[str, pd.DataFrame]) -> str | None:
    """Why the pairs cannot be trained on, when a split has no pair (chapter 03 selects its checkpoint on dev and
    evaluates on test), with the settings that fill it; None when every split has pairs."""
    empty = [split for split, frame in frames.items() if frame.empty]
    if not empty:
        return None
    hints = "; ".join(f"{split}: {_MORE_PAIRS_IN.get(split, 'change the splits')}" for split in empty)
    return (f"no preference pair in split(s) {', '.join(empty)}. If judgments failed, re-run this chapter once the "
            f"judge answers; otherwise use more statements (data.max_statements, or more sources), or {hints}")


def to_dataset_dict(frames: dict[str, pd.DataFrame]):
    """A ``datasets.DatasetDict`` with the released column types (ratings and prefID int64, the rest strings); each
    non-empty split is validated by :func:`psyco_utils.pair_schema.validate` first."""
    import datasets

    for split, frame in frames.items():
        if len(frame):
            pair_schema.validate(frame, f"{split} pairs", RELEASED_COLUMNS)

    features = datasets.Features({
        "ID": datasets.Value("string"), "prefID": datasets.Value("int64"), "question": datasets.Value("string"),
        "chosen": datasets.Value("string"), "rejected": datasets.Value("string"),
        "chosen_model": datasets.Value("string"), "rejected_model": datasets.Value("string"),
        **{c: datasets.Value("int64") for c in RATING_COLUMNS}, "theme": datasets.Value("string"),
    })
    return datasets.DatasetDict({
        split: datasets.Dataset.from_pandas(frame[list(features)].reset_index(drop=True), features=features,
                                            preserve_index=False)
        for split, frame in frames.items()
    })


def load_released(path_or_id: str, dev_fraction: float = 0.1, seed: int = 0):
    """The released Psychotherapy-LLM/PsychoCounsel-Preference as a DatasetDict with train, dev and test.

    ``path_or_id`` is the hub id or a local folder in the hub's layout (parquet files per split).  The dev split is
    carved from train by statement (``ID``), so no statement is in two splits.  The released data has no topic
    column: ``theme`` is added with the keyword labeller of chapter 01.
    """
    import datasets

    from .data import keyword_theme

    try:
        raw = datasets.load_dataset(path_or_id)
    except Exception as exc:
        raise ValueError(f"could not load the released data from {path_or_id!r}: {type(exc).__name__}: {exc}") from None
    for split in ("train", "test"):
        if split not in raw:
            raise PairSchemaError(f"{path_or_id}: split {split!r} missing; found {list(raw)}")
    frames = {}
    for split in ("train", "test"):
        frame = raw[split].to_pandas()
        pair_schema.validate(frame, f"{path_or_id} [{split}]", RELEASED_COLUMNS)
        frame["ID"] = frame["ID"].astype(str)
        frame["theme"] = frame["question"].map(lambda q: keyword_theme(q)[0])
        frames[split] = frame
    train_ids = sorted(frames["train"]["ID"].unique())
    rng = np.random.default_rng(seed)
    dev_ids = set(rng.choice(train_ids, size=round(dev_fraction * len(train_ids)), replace=False)) if dev_fraction else set()
    train = frames["train"]
    frames["dev"] = train[train["ID"].isin(dev_ids)].reset_index(drop=True)
    frames["train"] = train[~train["ID"].isin(dev_ids)].reset_index(drop=True)
    return to_dataset_dict({s: frames[s] for s in SPLITS})


def load_preference_data(cfg, run_root: Path):
    """The pairs chapters 03 to 06 train and evaluate on: constructed by chapter 02, or the released dataset."""
    import datasets

    if cfg.splits.source == "released":
        return load_released(cfg.splits.released_path or cfg.splits.released_id, cfg.splits.dev_fraction, cfg.seed)
    path = RunLayout(run_root).preference_data
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run chapter 02 first, or set splits.source=released")
    try:
        return datasets.load_from_disk(str(path))
    except IndexError:  # datasets saves an empty split but cannot load it back
        raise ValueError(f"{path} has a split without pairs (chapter 02 says which and why): re-run chapter 02 once "
                         "its judgments succeed, or use more statements") from None


def dataset_card(frames: dict[str, pd.DataFrame], profile: str, judge_desc: str, drops: pd.DataFrame) -> str:
    """A dataset card (README.md) for the constructed pairs."""
    sizes = "\n".join(f"| {s} | {len(f):,} | {f['ID'].nunique():,} |" for s, f in frames.items())
    themes = pd.concat(frames.values())["theme"].value_counts()
    theme_lines = "\n".join(f"| {t} | {n:,} |" for t, n in themes.items())
    drop_lines = "\n".join(f"| {k} | {int(v):,} |" for k, v in drops["count"].items())
    return f"""---
license: cc-by-4.0
language: [en]
task_categories: [text-generation]
tags: [preference, counselling, dpo, reward-model]
---
# PsyCoPref pairs ({profile} profile)

Preference pairs over client statements, built by chapter 2 of the PsyCoPref book in the schema of the released
Psychotherapy-LLM/PsychoCounsel-Preference, plus a `theme` column.

**Not for clinical use.** Research data for studying counselling responses; it drafts nothing for real clients.

- Judge: {judge_desc}.
- Ratings: integers 1-5 on empathy, relevance, clarity, safety, exploration, autonomy, staging; overall = mean.
- Train and dev: every pair of a statement's responses whose overall scores differ by at least 1.
- Test: best against worst response per statement. Splits are drawn by statement.
- Personal data in statements and responses was replaced by typed placeholders before judging.

| split | pairs | statements |
|---|---|---|
{sizes}

| theme | pairs |
|---|---|
{theme_lines}

| dropped | count |
|---|---|
{drop_lines}
"""


def swap_consistency(verdicts_ab: list[str | None], verdicts_ba: list[str | None]) -> dict:
    """How often the judge's overall verdict survives swapping the two responses' positions (chapter 02).

    ``verdicts_ab[i]`` is the verdict with the chosen response as A, ``verdicts_ba[i]`` with it as B.  Consistent
    means A then B (or B then A, or tie both times); failed judgments (None) are excluded and counted.
    """
    flip = {"A": "B", "B": "A", "tie": "tie"}
    usable = [(a, b) for a, b in zip(verdicts_ab, verdicts_ba) if a is not None and b is not None]
    consistent = sum(flip[a] == b for a, b in usable)
    agrees = sum(a == "A" and b == "B" for a, b in usable)
    n = len(usable)
    return {"pairs": n, "failed": len(verdicts_ab) - n, "consistent": consistent,
            "consistency": consistent / n if n else float("nan"),
            "prefers_dataset_chosen_both_orders": agrees / n if n else float("nan")}


def human_agreement(pairs_frame: pd.DataFrame, labels_path: str | Path) -> dict:
    """Agreement of human labels with the dataset's labels: accuracy and Cohen's kappa (chapter 02).

    The labels file (CSV) has ID, prefID, shown_first (``chosen``/``rejected``: what was shown as A) and
    human_choice (``A``/``B``), and optionally ``second_choice`` (``A``/``B``: a second labeller on the same pairs,
    shown the same way).  In the A/B space the dataset's label is A when the chosen response was shown first, so kappa
    is defined even though the dataset always prefers "chosen".  With a second labeller the result adds
    ``second_accuracy``, ``mean_accuracy`` (the paper's 88.5% is such a mean) and ``between_labellers`` (the paper's
    87%).  Rows that match no pair are an error.
    """
    from sklearn.metrics import cohen_kappa_score

    labels = pd.read_csv(labels_path, dtype={"ID": str})
    name = Path(labels_path).name
    required = ["ID", "prefID", "shown_first", "human_choice"]
    missing = [c for c in required if c not in labels.columns]
    if missing:
        raise HumanLabelsError(f"{name}: missing column(s) {missing}; expected {required}")
    allowed = {"shown_first": ("chosen", "rejected"), "human_choice": ("A", "B"), "second_choice": ("A", "B")}
    for column, values in allowed.items():
        bad = labels.index[~labels[column].isin(values)] if column in labels.columns else []
        if len(bad):
            raise HumanLabelsError(f"{name}: row {int(bad[0])}, column {column!r}: {labels.at[bad[0], column]!r} "
                                   f"is not one of {list(values)}")
    keys = set(zip(pairs_frame["ID"].astype(str), pairs_frame["prefID"].astype(int)))
    unknown = [i for i, r in labels.iterrows() if (str(r["ID"]), int(r["prefID"])) not in keys]
    if unknown:
        raise HumanLabelsError(f"{name}: row {unknown[0]}, columns 'ID' and 'prefID': "
                               f"({labels.at[unknown[0], 'ID']}, {labels.at[unknown[0], 'prefID']}) names a pair that "
                               "is not in the data")
    dataset = labels["shown_first"].map({"chosen": "A", "rejected": "B"})
    result = {"pairs": len(labels), "accuracy": float((dataset == labels["human_choice"]).mean()),
              "cohen_kappa": float(cohen_kappa_score(dataset, labels["human_choice"]))}
    if "second_choice" in labels.columns:
        second = float((dataset == labels["second_choice"]).mean())
        result.update({"second_accuracy": second, "mean_accuracy": (result["accuracy"] + second) / 2,
                       "between_labellers": float((labels["human_choice"] == labels["second_choice"]).mean())})
    return result


#: The labels file's columns: what each holds and the values it may take (chapter 02 shows this table).
HUMAN_LABEL_COLUMNS = {
    "ID": ("the statement's id in the preference data", "text"),
    "prefID": ("the pair's number in the preference data", "integer"),
    "shown_first": ("which response the labeller saw as A", "chosen or rejected"),
    "human_choice": ("the response the labeller preferred", "A or B"),
    "second_choice": ("optional: a second labeller's choice on the same pair", "A or B"),
}
#: The bundled corpus's styles its authors meant to be the best and the worst (psyco_utils.data.RESPONSE_STYLES).
INTENDED_BEST, INTENDED_WORST = "bundled-empathic", "bundled-dismissive"


def intended_style_labels(pairs_frame: pd.DataFrame, seed: int, limit: int = 200) -> tuple[pd.DataFrame, dict]:
    """A labels file (:data:`HUMAN_LABEL_COLUMNS`) from the bundled corpus's authors' intent, for the tiny profile:
    the empathic response was written to be the best and the dismissive one the worst, so a pair of two bundled
    responses with one of them has a label a person gave before any judge ran.  Each pair's presentation order is
    drawn with ``seed``; at most ``limit`` pairs (the paper's therapists labelled 200).  Also returns the counts of
    pairs kept and left out (generated responses, and bundled pairs the intent does not order)."""
    frame = pairs_frame.reset_index(drop=True)
    chosen, rejected = frame["chosen_model"].astype(str), frame["rejected_model"].astype(str)
    both_bundled = (chosen.str.startswith("bundled-") & rejected.str.startswith("bundled-")).to_numpy(dtype=bool)
    prefers_chosen = ((chosen == INTENDED_BEST) | (rejected == INTENDED_WORST)).to_numpy(dtype=bool)
    prefers_rejected = ((rejected == INTENDED_BEST) | (chosen == INTENDED_WORST)).to_numpy(dtype=bool)
    ordered = both_bundled & (prefers_chosen | prefers_rejected)
    usable = frame[ordered].assign(preferred=np.where(prefers_chosen[ordered], "chosen", "rejected"))
    if len(usable) > limit:
        usable = usable.sample(limit, random_state=seed).sort_index()
    rng = np.random.default_rng(seed)
    shown_first = np.where(rng.random(len(usable)) < 0.5, "chosen", "rejected")
    choice = np.where(shown_first == usable["preferred"].to_numpy(), "A", "B")
    labels = pd.DataFrame({"ID": usable["ID"].astype(str).to_numpy(),
                           "prefID": usable["prefID"].to_numpy(dtype=np.int64),
                           "shown_first": shown_first, "human_choice": choice})
    counts = {"pairs": len(frame), "with a generated response": int((~both_bundled).sum()),
              "bundled pairs the intent does not order": int((both_bundled & ~ordered).sum()),
              "labelled": len(labels)}
    return labels, counts
