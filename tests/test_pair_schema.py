"""The one pair schema: validation names the data, row and column; TRL's format has one user and one assistant turn."""

import datasets
import pandas as pd
import pytest

from psyco_utils import pair_schema
from psyco_utils.pair_schema import PairSchemaError


def _pairs(n: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame({"ID": [f"s{i}" for i in range(n)], "prefID": range(n),
                          "question": [f"statement {i}" for i in range(n)], "chosen": ["kind reply"] * n,
                          "rejected": ["curt reply"] * n, "chosen_model": ["a"] * n, "rejected_model": ["b"] * n})
    for column in pair_schema.RATING_COLUMNS:
        frame[column] = 3
    return frame


def test_valid_pairs_pass_as_a_frame_and_as_a_dataset():
    pair_schema.validate(_pairs(), "frame", pair_schema.RELEASED_COLUMNS)
    pair_schema.validate(datasets.Dataset.from_pandas(_pairs()), "dataset")


def test_a_missing_column_is_named_with_what_was_found():
    with pytest.raises(PairSchemaError, match=r"train: missing column\(s\) \['rejected'\]; found .*'chosen'"):
        pair_schema.validate(_pairs().drop(columns="rejected"), "train")


def test_empty_text_names_row_and_column():
    frame = _pairs()
    frame.loc[2, "chosen"] = "   "
    with pytest.raises(PairSchemaError, match=r"dev: row 2, column 'chosen': empty or not text"):
        pair_schema.validate(frame, "dev")
    frame.loc[2, "chosen"] = None
    with pytest.raises(PairSchemaError, match=r"row 2, column 'chosen'"):
        pair_schema.validate(datasets.Dataset.from_pandas(frame), "dev")


@pytest.mark.parametrize("rating", [0, 6, 2.5, "five"])
def test_ratings_must_be_integers_from_1_to_5(rating):
    frame = _pairs().astype({"rejected_safety_rating": object})
    frame.loc[1, "rejected_safety_rating"] = rating
    with pytest.raises(PairSchemaError, match=r"mine: row 1, column 'rejected_safety_rating': rating"):
        pair_schema.validate(frame, "mine", pair_schema.RELEASED_COLUMNS)


def test_no_rows_is_an_error():
    with pytest.raises(PairSchemaError, match="test: no pairs"):
        pair_schema.validate(_pairs(0), "test")


def test_trl_format_has_one_user_turn_and_one_assistant_turn_per_side():
    record = pair_schema.to_trl(_pairs(2))[1]
    assert record["prompt"] == [{"role": "user", "content": "statement 1"}]
    assert record["chosen"] == [{"role": "assistant", "content": "kind reply"}]
    assert record["rejected"] == [{"role": "assistant", "content": "curt reply"}]
    with pytest.raises(PairSchemaError, match="pairs for TRL: row 0, column 'question'"):
        pair_schema.to_trl(_pairs(1).assign(question=[""]))
