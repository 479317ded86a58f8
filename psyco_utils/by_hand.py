"""A quantity a chapter computes by hand from its equation, beside the value a library computed on the same data
(chapter 03: the reward-model loss against TRL's ``RewardTrainer``; chapter 04: the DPO loss against ``DPOTrainer``;
chapter 06: the win rate and its length-controlled form against the book's own evaluation code)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["ByHandCheck", "FLOAT32_EVALUATION"]

#: ``TrainingArguments`` values that turn mixed precision off.  The checks against TRL (chapters 03 to 05) evaluate
#: in float32 whatever precision the profile trains in: under bf16 autocast a log-probability moved by 1e-2 and the DPO
#: loss by 6e-4 (a tiny model, measured), and a half-precision reward keeps about three significant digits, all more
#: than the checks' tolerance of 1e-4, so the checks would test the precision instead of the formula.
FLOAT32_EVALUATION = {"bf16": False, "fp16": False}


@dataclass
class ByHandCheck:
    """Each quantity of ``by_hand`` beside ``logged[name]``, the value ``source`` computed for the same ``items``;
    they agree when every absolute difference is at most ``tolerance``."""

    by_hand: dict
    logged: dict
    items: int
    tolerance: float
    source: str = "TRL logged"
    item_name: str = "pairs"

    @property
    def table(self) -> pd.DataFrame:
        missing = [name for name in self.by_hand if name not in self.logged]
        if missing:
            raise KeyError(f"{self.source} has no value for {', '.join(missing)}")
        rows = {name: {"by hand": float(value), self.source: float(self.logged[name]),
                       "difference": float(value) - float(self.logged[name])} for name, value in self.by_hand.items()}
        return pd.DataFrame(rows).T

    @property
    def agrees(self) -> bool:
        return bool((self.table["difference"].abs() <= self.tolerance).all())

    def line(self) -> str:
        """The largest difference in one line, for the check's message."""
        worst = self.table["difference"].abs()
        return (f"largest |by hand - {self.source}| {worst.max():.2e} ({worst.idxmax()}) on {self.items} "
                f"{self.item_name}, tolerance {self.tolerance:g}")
