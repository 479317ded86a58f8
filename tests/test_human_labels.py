"""A labels file with a second labeller: the paper's 88.5% (mean of two therapists) and 87% (between them)."""

import pandas as pd
import pytest

from psyco_utils import pairs


def test_second_labeller_gives_the_mean_and_the_agreement_between_labellers(tmp_path):
    frame = pd.DataFrame({"ID": ["a", "b", "c", "d"], "prefID": [0, 1, 2, 3]})
    path = tmp_path / "labels.csv"
    labels = pd.DataFrame({"ID": ["a", "b", "c", "d"], "prefID": [0, 1, 2, 3],
                           "shown_first": ["chosen", "rejected", "chosen", "rejected"],
                           "human_choice": ["A", "B", "B", "B"], "second_choice": ["A", "A", "A", "B"]})
    labels.to_csv(path, index=False)
    out = pairs.human_agreement(frame, path)
    assert out["accuracy"] == 0.75 and out["second_accuracy"] == 0.75
    assert out["mean_accuracy"] == 0.75 and out["between_labellers"] == 0.5
    labels.assign(second_choice=["A", "C", "A", "B"]).to_csv(path, index=False)
    with pytest.raises(pairs.HumanLabelsError, match=r"labels.csv: row 1, column 'second_choice': 'C'"):
        pairs.human_agreement(frame, path)
    labels.drop(columns="second_choice").to_csv(path, index=False)
    assert "between_labellers" not in pairs.human_agreement(frame, path)
