"""Pairs and splits exactly as the paper, the released schema, and the released-data loader on a local parquet."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from psyco_utils import pairs
from psyco_utils.pair_schema import RATING_COLUMNS, RELEASED_COLUMNS, PairSchemaError
from psyco_utils.principles import PRINCIPLE_KEYS


def _result(score, status="ok"):
    ratings = {k: score for k in PRINCIPLE_KEYS} if status == "ok" else None
    return SimpleNamespace(ratings=ratings, status=status, error=None if status == "ok" else "timeout", rationale="")


def _scored(overall_by_statement):
    pool_rows, results = [], []
    for sid, scores in overall_by_statement.items():
        for j, s in enumerate(scores):
            pool_rows.append({"statement_id": sid, "response_id": f"{sid}#g{j}", "generator": f"g{j}",
                              "response": f"response {j} to {sid}"})
            results.append(_result(s) if s is not None else _result(0, status="failed"))
    pool = pd.DataFrame(pool_rows)
    statements = pd.DataFrame({"statement_id": list(overall_by_statement),
                               "text": [f"statement {s}" for s in overall_by_statement], "theme": "anxiety"})
    return pairs.scores_frame(pool, results), statements


def test_train_pairs_every_gap_of_at_least_one_ties_dropped():
    scored, statements = _scored({"s1": [5, 4, 4, 2]})
    frames, drops = pairs.build_pairs(scored, statements, {"s1": "train"}, min_gap=1.0)
    got = sorted(zip(frames["train"]["chosen_model"], frames["train"]["rejected_model"]))
    # 5>4, 5>4, 5>2, 4>2, 4>2; the 4-4 tie is dropped
    assert got == [("g0", "g1"), ("g0", "g2"), ("g0", "g3"), ("g1", "g3"), ("g2", "g3")]
    assert drops.at["pairs under the gap (train/dev)", "count"] == 1
    assert (frames["train"]["score_gap"] >= 1).all()


def test_test_pairs_best_against_worst():
    scored, statements = _scored({"s1": [3, 5, 1, 2], "s2": [3, 3, 3, 3]})
    frames, drops = pairs.build_pairs(scored, statements, {"s1": "test", "s2": "test"})
    test = frames["test"]
    assert len(test) == 1 and test.iloc[0]["chosen_model"] == "g1" and test.iloc[0]["rejected_model"] == "g2"
    assert drops.at["test statements whose best and worst tie", "count"] == 1


def test_failed_judgments_are_counted_not_paired():
    scored, statements = _scored({"s1": [5, None, 1]})
    frames, drops = pairs.build_pairs(scored, statements, {"s1": "train"})
    assert len(frames["train"]) == 1 and drops.at["failed judgments", "count"] == 1


def test_splits_are_disjoint_by_statement_and_sized():
    ids = [f"s{i}" for i in range(200)]
    split = pairs.assign_splits(ids, dev_fraction=0.1, test_fraction=0.2, seed=3)
    counts = pd.Series(split).value_counts()
    assert counts["test"] == 40 and counts["dev"] == 16 and counts["train"] == 144
    assert pairs.assign_splits(ids, 0.1, 0.2, seed=3) == split


def test_released_schema_and_types(tmp_path):
    scored, statements = _scored({"a": [5, 3, 1], "b": [4, 2, 1], "c": [5, 1, 3]})
    frames, _ = pairs.build_pairs(scored, statements, {"a": "train", "b": "dev", "c": "test"})
    dd = pairs.to_dataset_dict(frames)
    assert list(dd) == ["train", "dev", "test"]
    assert list(dd["train"].features) == list(RELEASED_COLUMNS) + ["theme"]
    assert dd["train"].features["chosen_empathy_rating"].dtype == "int64"
    assert dd["train"].features["prefID"].dtype == "int64"


def _released_folder(tmp_path, rows_train=30, rows_test=6, break_column=None):
    rng = np.random.default_rng(0)

    def frame(n, prefix):
        data = {"ID": [f"{prefix}{i // 3}" for i in range(n)], "prefID": np.arange(n, dtype="int64"),
                "question": ["I cannot stop worrying about my exams."] * n, "chosen": ["It sounds hard."] * n,
                "rejected": ["Get over it."] * n, "chosen_model": ["m1"] * n, "rejected_model": ["m2"] * n}
        for col in RATING_COLUMNS:
            data[col] = rng.integers(1, 6, size=n).astype("int64")
        return pd.DataFrame(data)

    folder = tmp_path / "PsychoCounsel-Preference" / "data"
    folder.mkdir(parents=True)
    train = frame(rows_train, "q")
    if break_column:
        train = train.drop(columns=[break_column])
    train.to_parquet(folder / "train-00000-of-00001.parquet", index=False)
    test = frame(rows_test, "t")
    if break_column:
        test = test.drop(columns=[break_column])
    test.to_parquet(folder / "test-00000-of-00001.parquet", index=False)
    return str(tmp_path / "PsychoCounsel-Preference")


def test_load_released_carves_dev_by_statement(tmp_path):
    dd = pairs.load_released(_released_folder(tmp_path), dev_fraction=0.2, seed=1)
    train_ids, dev_ids = set(dd["train"]["ID"]), set(dd["dev"]["ID"])
    assert dev_ids and not (train_ids & dev_ids)
    assert len(dd["train"]) + len(dd["dev"]) == 30 and len(dd["test"]) == 6
    assert set(dd["test"]["theme"]) == {"anxiety"}


def test_load_released_names_missing_column(tmp_path):
    with pytest.raises(PairSchemaError, match=r"\[train\]: missing column\(s\) \['chosen_safety_rating'\]"):
        pairs.load_released(_released_folder(tmp_path, break_column="chosen_safety_rating"))


def test_a_bad_rating_in_the_released_data_is_named_by_split_row_and_column(tmp_path):
    folder = _released_folder(tmp_path)
    train = next(Path(folder).rglob("*train*.parquet"))
    frame = pd.read_parquet(train)
    frame.loc[1, "chosen_clarity_rating"] = 9
    frame.to_parquet(train, index=False)
    with pytest.raises(PairSchemaError, match=r"\[train\]: row 1, column 'chosen_clarity_rating'"):
        pairs.load_released(folder)


def test_built_pairs_are_validated_before_they_become_a_dataset_dict():
    frames = {"train": pd.DataFrame({c: [3] for c in RELEASED_COLUMNS} | {"question": [" "], "theme": ["grief"]})}
    with pytest.raises(PairSchemaError, match=r"train pairs: row 0, column 'question'"):
        pairs.to_dataset_dict(frames)


def test_swap_consistency_counts():
    out = pairs.swap_consistency(["A", "A", "tie", "B", None], ["B", "A", "tie", "A", "B"])
    assert out["pairs"] == 4 and out["failed"] == 1 and out["consistent"] == 3
    assert out["consistency"] == 0.75 and out["prefers_dataset_chosen_both_orders"] == 0.25


def test_human_agreement_accuracy_and_kappa(tmp_path):
    frame = pd.DataFrame({"ID": ["a", "b", "c", "d"], "prefID": [0, 1, 2, 3]})
    path = tmp_path / "labels.csv"
    pd.DataFrame({"ID": ["a", "b", "c", "d"], "prefID": [0, 1, 2, 3],
                  "shown_first": ["chosen", "rejected", "chosen", "rejected"],
                  "human_choice": ["A", "B", "B", "B"]}).to_csv(path, index=False)
    out = pairs.human_agreement(frame, path)
    assert out["accuracy"] == 0.75 and out["cohen_kappa"] == pytest.approx(0.5)
    pd.DataFrame({"ID": ["zz"], "prefID": [0], "shown_first": ["chosen"], "human_choice": ["A"]}).to_csv(path, index=False)
    with pytest.raises(pairs.HumanLabelsError, match=r"labels.csv: row 0, columns 'ID' and 'prefID'.*not in the data"):
        pairs.human_agreement(frame, path)
    pd.DataFrame({"ID": ["a", "b"], "prefID": [0, 1], "shown_first": ["chosen", "left"],
                  "human_choice": ["A", "B"]}).to_csv(path, index=False)
    with pytest.raises(pairs.HumanLabelsError, match=r"labels.csv: row 1, column 'shown_first': 'left'"):
        pairs.human_agreement(frame, path)



def test_an_empty_split_is_named_with_the_setting_that_fills_it():
    import pandas as pd

    from psyco_utils.pairs import empty_splits_problem

    full = pd.DataFrame({"ID": ["s1"]})
    assert empty_splits_problem({"train": full, "dev": full, "test": full}) is None
    problem = empty_splits_problem({"train": full, "dev": full.iloc[:0], "test": full})
    assert "split(s) dev" in problem and "dev: raise splits.dev_fraction" in problem
