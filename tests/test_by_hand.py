"""The by-hand checks of chapters 03, 04 and 06 (psyco_utils.by_hand) and the training helpers the chapters call
around ``trainer.train()`` (psyco_utils.training)."""

import pytest

from psyco_utils.by_hand import ByHandCheck
from psyco_utils.training import train_seconds


def test_a_check_agrees_within_its_tolerance_and_names_the_largest_difference():
    check = ByHandCheck({"loss": 0.5, "margin": 1.0}, {"loss": 0.50005, "margin": 1.0, "unused": 3.0}, items=8,
                        tolerance=1e-4)
    assert check.agrees
    assert list(check.table.index) == ["loss", "margin"]
    assert check.line() == "largest |by hand - TRL logged| 5.00e-05 (loss) on 8 pairs, tolerance 0.0001"
    beyond = ByHandCheck({"loss": 0.5}, {"loss": 0.5002}, items=8, tolerance=1e-4)
    assert not beyond.agrees


def test_a_quantity_the_library_did_not_compute_is_named():
    check = ByHandCheck({"loss": 0.5, "accuracy": 1.0}, {"loss": 0.5}, items=8, tolerance=1e-4,
                        source="evaluation code")
    with pytest.raises(KeyError, match="evaluation code has no value for accuracy"):
        check.agrees


def test_the_training_time_is_the_one_the_trainer_logged():
    history = [{"loss": 0.69, "step": 1}, {"eval_loss": 0.6, "step": 1},
               {"train_runtime": 12.5, "train_loss": 0.65, "step": 1}]
    assert train_seconds(history) == 12.5
    with pytest.raises(ValueError, match="only after trainer.train"):
        train_seconds(history[:2])
