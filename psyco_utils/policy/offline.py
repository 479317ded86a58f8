"""Offline DPO's result (chapter 04): the training and the held-out comparison of the base and DPO policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..layout import RunLayout, TrainedModelFolder
from .held_out import HeldOutComparison, PolicyChange
from .training import TrainingRun

__all__ = ["DPOResult", "finish_dpo", "offline_model_dir"]


def offline_model_dir(run_root: Path) -> Path:
    """Where chapter 04 saves the DPO policy: ``dpo/model`` in the run folder."""
    return RunLayout(run_root).dpo.model


@dataclass
class DPOResult:
    """Offline DPO: the training (TRL's logs, steps, time, the saved model) and the base and DPO policies compared on
    held-out statements; ``metrics_path`` is the stage's ``dpo/metrics.json``."""

    training: TrainingRun
    held_out: HeldOutComparison
    metrics_path: Path

    @property
    def change(self) -> PolicyChange:
        """The DPO policy against the base policy (reward, length, repetition)."""
        return self.held_out.change("DPO", "base")

    def metrics(self) -> dict:
        t = self.training
        return {"steps": t.steps, "seconds": t.seconds, "steps_per_second": t.steps_per_second, "train_pairs": t.pairs,
                "reused": t.reused, "reference": "the starting policy", "final_train_loss": t.final_train_loss,
                **self.held_out.metrics()}

    def headline(self) -> dict:
        """The numbers recorded in the run manifest."""
        rewards = self.held_out.metrics()["held_out_mean_reward"]
        return {f"held_out_reward_{name}": round(value, 3) for name, value in rewards.items()}


def finish_dpo(training: TrainingRun, held_out: HeldOutComparison, out_dir: Path) -> DPOResult:
    """The stage's result, with its numbers saved to ``out_dir/metrics.json``."""
    result = DPOResult(training=training, held_out=held_out, metrics_path=TrainedModelFolder(Path(out_dir)).metrics)
    result.metrics_path.write_text(json.dumps(result.metrics(), indent=2, default=float))
    return result
