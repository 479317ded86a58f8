"""What every training stage returns, whichever TRL trainer ran it (the reward model's ``RewardTrainer`` in chapter
03, ``DPOTrainer`` in chapters 04 and 05): the saved model's folder, TRL's log history read as tables, the wall time,
and whether an earlier training on identical inputs was reused.  Each stage's result extends it with its own numbers
(:class:`psyco_utils.reward.RewardTrainingResult`, :class:`psyco_utils.policy.TrainingRun`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["TrainingOutcome", "without_log_printing", "train_seconds"]


@dataclass(kw_only=True)
class TrainingOutcome:
    """A finished (or reused) training: where its model was saved, TRL's ``log_history``, and its wall time.  For a
    reused model, ``seconds`` and the logs are those of the training that made it."""

    model_dir: Path
    seconds: float
    log_history: list[dict] = field(default_factory=list)
    reused: bool = False

    def _logged(self, key: str) -> pd.DataFrame:
        history = pd.DataFrame(self.log_history)
        return history.dropna(subset=[key]).reset_index(drop=True) if key in history else pd.DataFrame()

    @property
    def train_log(self) -> pd.DataFrame:
        """TRL's training rows (one per logging step): epoch, step, loss and the trainer's own metrics."""
        return self._logged("loss")

    @property
    def eval_log(self) -> pd.DataFrame:
        """TRL's dev rows (one per evaluation, after each epoch when a dev split was given): ``eval_loss``, ..."""
        return self._logged("eval_loss")

    @property
    def final_train_loss(self) -> float | None:
        log = self.train_log
        return float(log["loss"].iloc[-1]) if len(log) else None


def without_log_printing(trainer):
    """The trainer, less the callback that transformers adds when progress bars are off and that prints every log line
    onto the page.  Nothing is lost: the log stays in ``trainer.state.log_history``, which the chapters plot."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def train_seconds(log_history: list[dict]) -> float:
    """The wall time of ``trainer.train()``, as the trainer logged it at the end (``train_runtime``)."""
    runtimes = [entry["train_runtime"] for entry in log_history if "train_runtime" in entry]
    if not runtimes:
        raise ValueError("the trainer's log has no train_runtime: save a trained model only after trainer.train()")
    return float(runtimes[-1])
