"""What every training stage returns, whichever TRL trainer ran it (the reward model's ``RewardTrainer`` in chapter
03, ``DPOTrainer`` in chapters 04 and 05): the saved model's folder, TRL's log history read as tables, the wall time,
and whether an earlier training on identical inputs was reused.  Each stage's result extends it with its own numbers
(:class:`psyco_utils.reward.RewardTrainingResult`, :class:`psyco_utils.policy.TrainingRun`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["TrainingOutcome"]


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
