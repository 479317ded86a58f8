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


def test_intended_style_labels_without_bundled_responses_is_empty():
    frame = pd.DataFrame({"ID": ["a", "b"], "prefID": [0, 1], "chosen_model": ["gpt-4o-mini", "bundled-empathic"],
                          "rejected_model": ["qwen", "gpt-4o-mini"]})
    labels, counts = pairs.intended_style_labels(frame, seed=0)
    assert labels.empty and list(labels.columns) == ["ID", "prefID", "shown_first", "human_choice"]
    assert counts == {"pairs": 2, "with a generated response": 2, "bundled pairs the intent does not order": 0,
                      "labelled": 0}


def test_intended_style_labels_follow_the_authors_intent():
    frame = pd.DataFrame({"ID": list("abcd"), "prefID": range(4),
                          "chosen_model": ["bundled-empathic", "bundled-generic", "bundled-dismissive", "bundled-generic"],
                          "rejected_model": ["bundled-generic", "bundled-dismissive", "bundled-empathic",
                                             "bundled-rambling"]})
    labels, counts = pairs.intended_style_labels(frame, seed=3)
    assert counts["labelled"] == 3 and counts["bundled pairs the intent does not order"] == 1
    preferred = labels.set_index("ID").apply(
        lambda r: r["shown_first"] if r["human_choice"] == "A" else
        {"chosen": "rejected", "rejected": "chosen"}[r["shown_first"]], axis=1)
    assert preferred.to_dict() == {"a": "chosen", "b": "chosen", "c": "rejected"}
