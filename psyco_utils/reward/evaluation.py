"""Evaluating the reward model on the test pairs (chapter 03): baselines, calibration, breakdowns, the artifacts.

:func:`evaluate` scores nothing itself: it takes the test predictions of the trained model, adds the two baselines
(and any off-the-shelf reward models the profile names), and returns a :class:`RewardEvaluation` with every number
the chapter shows.  :func:`finish` writes the stage's artifacts and headline metrics and returns the
:class:`RewardStageResult`.  The metrics themselves are :mod:`psyco_utils.metrics`'s (one implementation each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..layout import TrainedModelFolder
from ..pair_schema import RATING_COLUMNS, TRAINING_COLUMNS, validate
from .data import frame_of
from .scoring import PREDICTION_COLUMNS, ScoringStats, score_off_the_shelf, stage_dir
from .training import RewardTrainingResult

__all__ = [
    "THIS_MODEL", "RANDOM_BASELINE", "LENGTH_BASELINE", "RewardEvaluation", "RewardStageResult", "rating_gap",
    "gap_bins", "baseline_rewards", "comparison_table", "with_paper", "calibration", "accuracy_by",
    "confident_errors", "evaluate", "write_artifacts", "finish",
]

THIS_MODEL = "PsyCoPref reward model (this run)"
RANDOM_BASELINE = "random"
LENGTH_BASELINE = "longer response wins"
_METRICS = {"accuracy": "accuracy", "auc": "AUC", "ece": "ECE", "brier": "Brier"}


def rating_gap(pairs) -> np.ndarray:
    """Overall score of the chosen minus that of the rejected response (means of the seven rating columns)."""
    from ..principles import PRINCIPLE_KEYS

    frame = frame_of(pairs)
    chosen = frame[[f"chosen_{p}_rating" for p in PRINCIPLE_KEYS]].mean(axis=1)
    rejected = frame[[f"rejected_{p}_rating" for p in PRINCIPLE_KEYS]].mean(axis=1)
    return np.round((chosen - rejected).to_numpy(float), 6)  # means of sevenths: 7/7 must be 1.0, not 0.9999...


def gap_bins(gaps: np.ndarray) -> pd.Categorical:
    """Score-gap bins for the accuracy breakdown: under 1, 1-2, 2-3, 3 and over (points of the 1-5 overall score)."""
    return pd.cut(np.asarray(gaps, float), bins=[0, 1, 2, 3, np.inf], right=False,
                  labels=["under 1", "1 to 2", "2 to 3", "3 and over"])


def baseline_rewards(test, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two baselines, as rewards for (chosen, rejected): random (independent normals, seeded) and "the longer
    response wins" (reward = length in characters)."""
    frame = frame_of(test)
    return {RANDOM_BASELINE: metrics.random_baseline_rewards(len(frame), seed),
            LENGTH_BASELINE: metrics.length_baseline_rewards(list(frame["chosen"]), list(frame["rejected"]))}


def comparison_table(rewards: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, n_bins: int = 10,
                     n_boot: int = 1000) -> pd.DataFrame:
    """One row per model on the same test pairs: ``pairs``, then accuracy (a share), AUC, ECE and Brier, each with
    its 95% bootstrap interval in ``<metric> low`` and ``<metric> high`` (:func:`metrics.preference_metrics_with_ci`:
    the four from the same resamples)."""
    rows = {}
    for name, (rc, rr) in rewards.items():
        table = metrics.preference_metrics_with_ci(rc, rr, n_boot=n_boot, seed=seed, n_bins=n_bins)
        row = {"pairs": table.attrs["n"]}
        for key, label in _METRICS.items():
            row.update({label: table.at[key, "value"], f"{label} low": table.at[key, "ci_low"],
                        f"{label} high": table.at[key, "ci_high"]})
        rows[name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index").astype({"pairs": int})
    frame.index.name = "model"
    return frame


def with_paper(comparison: pd.DataFrame, profile: str, ranker=None) -> pd.DataFrame:
    """This run's models (and its LLM ranker, a :class:`~psyco_utils.reward.ranker.RankerResult`, whose AUC, ECE
    and Brier do not exist) stacked on the paper's reward-model table (:data:`psyco_utils.paper.REWARD_TABLE`), with
    accuracy as a share; the index is (source, model)."""
    from ..paper import CITATION, REWARD_TABLE

    cols = list(_METRICS.values())
    paper = REWARD_TABLE.rename(columns={"accuracy (%)": "accuracy"}).assign(accuracy=lambda t: t["accuracy"] / 100)
    ours = comparison[cols].astype(float)
    if ranker is not None:
        ours = pd.concat([ours, ranker.row()[["accuracy"]].reindex(columns=cols).astype(float)])
    stacked = pd.concat([ours.assign(source=f"this run ({profile} profile)"),
                         paper[cols].assign(source=f"paper ({CITATION})")])
    return stacked.set_index("source", append=True).reorder_levels([1, 0])


def calibration(reward_chosen, reward_rejected, seed: int, n_bins: int = 10) -> pd.DataFrame:
    """The reliability table (equal-width bins) of p = sigmoid(r_first - r_second) on randomly oriented pairs."""
    margin, label = metrics.orient_pairs(reward_chosen, reward_rejected, seed)
    return metrics.reliability_table(metrics.sigmoid(margin), label, n_bins)


def accuracy_by(groups, reward_chosen, reward_rejected, seed: int, n_boot: int = 1000) -> pd.DataFrame:
    """Pairwise accuracy (:func:`metrics.pair_correct`) per group, with ``pairs`` and a 95% bootstrap interval
    (``ci_low``, ``ci_high``); groups in category order, else sorted; empty groups left out."""
    correct = metrics.pair_correct(reward_chosen, reward_rejected)
    groups = pd.Series(groups).reset_index(drop=True)
    if len(groups) != len(correct):
        raise ValueError(f"{len(groups)} group labels for {len(correct)} pairs")
    keys = groups.cat.categories if isinstance(groups.dtype, pd.CategoricalDtype) else sorted(groups.unique(), key=str)
    rows = {}
    for key in keys:
        hits = correct[(groups == key).to_numpy()]
        if len(hits):
            point, low, high = metrics.bootstrap_ci(hits, np.mean, n_boot, seed)
            rows[key] = {"pairs": len(hits), "accuracy": point, "ci_low": low, "ci_high": high}
    return pd.DataFrame.from_dict(rows, orient="index").astype({"pairs": int})


def confident_errors(test, reward_chosen, reward_rejected, gaps, limit: int = 2) -> pd.DataFrame:
    """The test pairs ranked wrongly (margin r_chosen - r_rejected at most 0), most confident first, up to
    ``limit``; statements with crisis language are left out (pages never show them as examples)."""
    from ..crisis import crisis_signals

    frame = frame_of(test).assign(margin=np.asarray(reward_chosen, float) - np.asarray(reward_rejected, float),
                                  gap=np.asarray(gaps, float))
    wrong = frame[frame["margin"] <= 0]
    shown = wrong[np.array([not crisis_signals(q) for q in wrong["question"]], dtype=bool)]
    return shown.sort_values("margin").head(limit).reset_index(drop=True)


@dataclass
class RewardEvaluation:
    """Every number chapter 03 shows about the test pairs: the comparison with the baselines (and off-the-shelf
    models), calibration, accuracy by theme and by the judge's score gap, the paired difference with the length
    baseline, and the most confident errors."""

    test_pairs: int
    ece_bins: int
    bootstrap_samples: int
    seed: int
    rewards: dict[str, tuple[np.ndarray, np.ndarray]]
    comparison: pd.DataFrame
    calibration: dict[str, pd.DataFrame]
    by_theme: pd.DataFrame
    by_gap: pd.DataFrame
    versus_length: dict
    errors: pd.DataFrame
    off_the_shelf: list[str] = field(default_factory=list)

    @property
    def ours(self) -> pd.Series:
        return self.comparison.loc[THIS_MODEL]

    @property
    def length_baseline(self) -> pd.Series:
        return self.comparison.loc[LENGTH_BASELINE]

    @property
    def margins(self) -> np.ndarray:
        rc, rr = self.rewards[THIS_MODEL]
        return rc - rr

    @property
    def beats_chance(self) -> bool:
        """The accuracy's 95% interval lies above 50%."""
        return bool(self.ours["accuracy low"] > 0.5)

    @property
    def above_length_baseline(self) -> bool:
        """The accuracy's point estimate exceeds the length baseline's (the paired interval says how surely)."""
        return bool(self.ours["accuracy"] > self.length_baseline["accuracy"])

    def check_message(self) -> str:
        """What the chapter's check measured: accuracy and interval, the baseline, and the paired difference."""
        d = self.versus_length
        return (f"accuracy {self.ours['accuracy']:.1%} (95% interval {self.ours['accuracy low']:.1%} to "
                f"{self.ours['accuracy high']:.1%}) against chance at 50%; length baseline "
                f"{self.length_baseline['accuracy']:.1%}; paired difference {100 * d['difference']:+.1f} points "
                f"(95% interval {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})")

    def headline(self) -> dict:
        """The stage's headline numbers for the run manifest."""
        return {"test_accuracy": round(float(self.ours["accuracy"]), 4), "test_auc": round(float(self.ours["AUC"]), 4),
                "test_ece": round(float(self.ours["ECE"]), 4), "test_brier": round(float(self.ours["Brier"]), 4),
                "length_baseline_accuracy": round(float(self.length_baseline["accuracy"]), 4),
                "accuracy_minus_length_baseline": round(float(self.versus_length["difference"]), 4)}

    def as_record(self) -> dict:
        return {"test_pairs": self.test_pairs, "ece_bins": self.ece_bins, "bootstrap_samples": self.bootstrap_samples,
                "orientation_seed": self.seed, "models": self.comparison.reset_index().to_dict(orient="records"),
                "by_theme": self.by_theme.reset_index(names="theme").to_dict(orient="records"),
                "by_score_gap": self.by_gap.reset_index(names="score_gap").to_dict(orient="records"),
                "versus_length_baseline": self.versus_length}


def _aligned_rewards(test: pd.DataFrame, predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"test predictions lack column(s) {missing}")
    if list(predictions["prefID"].astype("int64")) != list(test["prefID"].astype("int64")):
        raise ValueError(f"test predictions ({len(predictions):,} rows) do not follow the test split's pairs "
                         f"({len(test):,} rows) in order: score the test split again")
    return predictions["reward_chosen"].to_numpy(float), predictions["reward_rejected"].to_numpy(float)


def evaluate(cfg, test, predictions: pd.DataFrame, extra_rewards: dict | None = None) -> RewardEvaluation:
    """The reward model's test predictions beside the baselines and the profile's off-the-shelf reward models
    (``reward.off_the_shelf``, scored here), with ``reward.ece_bins`` bins, ``reward.bootstrap_samples`` resamples
    and the profile's seed for the random orientation of the pairs.  ``extra_rewards`` (name -> (chosen, rejected)
    rewards on the same test pairs, e.g. the ablation models) join the comparison."""
    frame = frame_of(test)
    validate(frame, "test split", (*TRAINING_COLUMNS, "theme", *RATING_COLUMNS))
    rc, rr = _aligned_rewards(frame, predictions)
    seed, n_bins, n_boot = cfg.seed, cfg.reward.ece_bins, cfg.reward.bootstrap_samples
    off_the_shelf = score_off_the_shelf(cfg, frame) if cfg.reward.off_the_shelf else {}
    rewards = {THIS_MODEL: (rc, rr), **baseline_rewards(frame, seed), **off_the_shelf, **(extra_rewards or {})}
    gaps = rating_gap(frame)
    versus_length = metrics.paired_difference(metrics.pair_correct(rc, rr),
                                              metrics.pair_correct(*rewards[LENGTH_BASELINE]), n_boot, seed)
    return RewardEvaluation(
        test_pairs=len(frame), ece_bins=n_bins, bootstrap_samples=n_boot, seed=seed, rewards=rewards,
        comparison=comparison_table(rewards, seed=seed, n_bins=n_bins, n_boot=n_boot),
        calibration={name: calibration(c, r, seed=seed, n_bins=n_bins) for name, (c, r) in rewards.items()
                     if name != RANDOM_BASELINE},
        by_theme=accuracy_by(frame["theme"], rc, rr, seed=seed, n_boot=n_boot),
        by_gap=accuracy_by(gap_bins(gaps), rc, rr, seed=seed, n_boot=n_boot),
        versus_length=versus_length, errors=confident_errors(frame, rc, rr, gaps), off_the_shelf=list(off_the_shelf))


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return str(value)


def write_artifacts(out_dir: str | Path, predictions: pd.DataFrame, record: dict) -> list[Path]:
    """``test_predictions.parquet`` (ID, prefID, reward_chosen, reward_rejected) and ``metrics.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"test predictions lack column(s) {missing}")
    folder = TrainedModelFolder(out_dir)
    paths = [folder.test_predictions, folder.metrics]
    predictions[PREDICTION_COLUMNS].to_parquet(paths[0], index=False)
    paths[1].write_text(json.dumps(record, indent=2, default=_json_default))
    return paths


@dataclass
class RewardStageResult:
    """Chapter 03's result: the training, what scoring cost, the evaluation, the length drops counted before
    training, and the artifacts written (paths relative to the run folder)."""

    training: RewardTrainingResult
    scoring: ScoringStats
    evaluation: RewardEvaluation
    length_drops: pd.DataFrame
    artifacts: list[str]
    extra: dict = field(default_factory=dict)

    def headline(self) -> dict:
        return {**self.evaluation.headline(), "train_seconds": round(self.training.seconds, 1),
                "train_pairs": self.training.train_pairs}

    def as_record(self) -> dict:
        """What ``metrics.json`` holds."""
        training = {k: v for k, v in self.training.as_record().items() if k != "log_history"}
        return {**self.evaluation.as_record(), "training": {**training, "reused": self.training.reused},
                "scoring": self.scoring.as_record(),
                "length_drops": self.length_drops.reset_index().to_dict(orient="records"), **self.extra}


def _records(extra: dict) -> dict:
    """Tables as lists of records (index kept), anything else as it is: for ``metrics.json``."""
    return {key: value.reset_index().to_dict(orient="records") if isinstance(value, pd.DataFrame) else value
            for key, value in extra.items() if value is not None}


def finish(chapter, training: RewardTrainingResult, scoring: ScoringStats, evaluation: RewardEvaluation,
           predictions: pd.DataFrame, length_drops: pd.DataFrame, extra: dict | None = None) -> RewardStageResult:
    """Write ``test_predictions.parquet`` and ``metrics.json`` under ``reward_model/`` (beside ``model/``), record
    the headline numbers in the run manifest, and return the stage's result.  ``extra`` (e.g. the ablations, the
    ranker and RewardBench) is kept in ``metrics.json`` as given, tables as records."""
    out_dir = stage_dir(chapter.run)
    result = RewardStageResult(training=training, scoring=scoring, evaluation=evaluation,
                               length_drops=length_drops, artifacts=[], extra=_records(extra or {}))
    write_artifacts(out_dir, predictions, result.as_record())
    result.artifacts = sorted(p.relative_to(chapter.run).as_posix() for p in out_dir.rglob("*") if p.is_file())
    chapter.finish(result.headline())
    return result
