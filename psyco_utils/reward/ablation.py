"""The paper's data ablation for the reward model (chapter 03): reward models trained on HelpSteer2 alone, on
HelpSteer2 plus PsyCoPref, and on a fixed pair budget split between the two, each scored on the same test pairs.

Each entry of ``reward.ablations`` (:class:`psyco_utils.config.RewardDataMix`) names how many pairs it takes from
each source; :func:`mix_pairs` draws them with the profile's seed and counts any shortfall (a budget larger than a
source is reported, never silently filled).  :func:`train_ablations` trains each with the same TRL settings, backbone
and dev split as the main model (through :func:`psyco_utils.reward.training.train_reward_model`, so an unchanged
ablation is reused, not retrained) and scores the test pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import frame_of, helpsteer2_pairs, load_helpsteer2

__all__ = ["AblationResult", "mix_pairs", "ablation_dir", "train_ablations", "paper_ablation_rows", "ablation_with_paper"]


def _take(frame: pd.DataFrame, wanted, seed: int) -> pd.DataFrame:
    if wanted == "all" or wanted >= len(frame):
        return frame
    return frame.sample(int(wanted), random_state=seed).sort_index()


def mix_pairs(mix, psycopref: pd.DataFrame, helpsteer2: pd.DataFrame | None, seed: int) -> tuple[pd.DataFrame, dict]:
    """The training pairs of one ablation entry, with a ``source`` column, and a record of what was asked for,
    what was available and what was used from each source."""
    parts, record = [], {"name": mix.name}
    for source, frame, wanted in (("psycopref", psycopref, mix.psycopref_pairs),
                                  ("helpsteer2", helpsteer2, mix.helpsteer2_pairs)):
        if wanted == 0:
            record.update({f"{source} asked": 0, f"{source} used": 0})
            continue
        if frame is None:
            raise ValueError(f"reward.ablations {mix.name!r} asks for {source} pairs, and none were loaded")
        taken = _take(frame_of(frame).assign(source=source), wanted, seed)
        parts.append(taken)
        record.update({f"{source} asked": wanted, f"{source} available": len(frame), f"{source} used": len(taken)})
    if not parts:
        raise ValueError(f"reward.ablations {mix.name!r} takes no pair from either source")
    pairs = pd.concat(parts, ignore_index=True)
    record["train pairs"] = len(pairs)
    return pairs, record


def ablation_dir(run_root, name: str) -> Path:
    """``reward_model/ablations/<name>/``: one ablation's model and training record."""
    from .scoring import stage_dir

    return stage_dir(run_root) / "ablations" / re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


@dataclass
class AblationResult:
    """The ablation models' test rewards (name -> (chosen, rejected)) and one record per model of its pairs."""

    rewards: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    scorers: dict[str, str] = field(default_factory=dict)  # name -> model folder, for RewardBench

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.records).set_index("name") if self.records else pd.DataFrame()


def train_ablations(cfg, prefs, run_root) -> AblationResult:
    """Train and score every ``reward.ablations`` entry on ``prefs`` (train, dev, test); empty when none."""
    from .scoring import RewardScorer
    from .training import train_reward_model

    result = AblationResult()
    if not cfg.reward.ablations:
        return result
    needs_helpsteer2 = any(m.helpsteer2_pairs != 0 for m in cfg.reward.ablations)
    helpsteer2 = (helpsteer2_pairs(load_helpsteer2(cfg.reward.helpsteer2_path), where=str(cfg.reward.helpsteer2_path))
                  if needs_helpsteer2 else None)
    dev = prefs["dev"] if len(prefs["dev"]) else None
    for mix in cfg.reward.ablations:
        pairs, record = mix_pairs(mix, frame_of(prefs["train"]), helpsteer2, cfg.seed)
        out_dir = ablation_dir(run_root, mix.name)
        training = train_reward_model(cfg, pairs, dev, out_dir, run_root)
        scorer = RewardScorer.load(out_dir / "model", cfg, max_length=cfg.reward.training.get("max_length"),
                                   name=mix.name)
        result.rewards[mix.name] = scorer.score_pairs(prefs["test"])
        record.update({"reused": training.reused, "train seconds": round(training.seconds, 1)})
        result.records.append(record)
        result.scorers[mix.name] = str(out_dir / "model")
        del scorer
    return result


def paper_ablation_rows(size: str = "3B") -> pd.DataFrame:
    """The paper's ablation rows as shares: test accuracy and RewardBench accuracy per training-data mix (the
    HelpSteer2 rows for the backbone ``size``; the 10k-budget rows, whose backbone the paper does not state)."""
    from ..paper import HELPSTEER2_ABLATION, PAIR_BUDGET_ABLATION, REWARDBENCH_HELPSTEER2_ABLATION

    helpsteer2 = pd.DataFrame({"test accuracy": HELPSTEER2_ABLATION[size] / 100,
                               "RewardBench": REWARDBENCH_HELPSTEER2_ABLATION[size] / 100})
    budget = PAIR_BUDGET_ABLATION.rename(columns={"in-domain accuracy": "test accuracy",
                                                  "RewardBench accuracy": "RewardBench"})
    return pd.concat([helpsteer2, budget[["test accuracy", "RewardBench"]]])


def ablation_with_paper(comparison: pd.DataFrame, ablations: AblationResult, bench: pd.DataFrame | None,
                        size: str = "3B") -> pd.DataFrame:
    """Each ablation model's test accuracy (from ``comparison``) and RewardBench mean of the categories (from
    ``bench``, when scored) beside the paper's row of the same name (a mix the paper did not train has none)."""
    ours = pd.DataFrame({"test accuracy": [comparison.at[name, "accuracy"] for name in ablations.rewards],
                         "RewardBench": [bench.at[name, "mean of the categories"] if bench is not None
                                         and name in bench.index else np.nan for name in ablations.rewards]},
                        index=list(ablations.rewards))
    paper = paper_ablation_rows(size)
    table = ours.join(paper.add_suffix(" (paper)"), how="left")
    table.index.name = "training data"
    return table
