"""Metrics for the book: pairwise reward-model evaluation and win rates against a reference.

Two groups of pure functions of arrays (numpy, pandas and scikit-learn only; nothing here imports torch or another
``psyco_utils`` module):

* chapter 03, "Reward model": accuracy, AUC, ECE and Brier score of a reward model on the test pairs, with
  p = sigmoid(r_first - r_second) on randomly oriented pairs; reliability tables; percentile bootstrap intervals;
  the "longer response wins" and random baselines.
* chapter 06, "Win rate": pairwise judging against a reference in both orders (MT-Bench practice: inconsistent
  verdicts count as a tie, win rate = (wins + 0.5 * ties) / n), per-group tables with bootstrap intervals, and a
  length-controlled win rate in the manner of AlpacaEval 2.

scikit-learn computes what it already computes (ROC AUC, Brier score, logistic regression); the tests check the rest
against hand computations and brute-force implementations.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager, nullcontext
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

__all__ = [
    # chapter 03
    "sigmoid", "pair_probabilities", "orient_pairs", "preference_metrics", "expected_calibration_error",
    "reliability_table", "pair_correct", "bootstrap_ci", "paired_difference", "preference_metrics_with_ci",
    "length_baseline_rewards", "random_baseline_rewards",
    # chapter 06
    "combine_two_orders", "win_rate", "paired_win_rate_difference", "win_rate_table", "length_controlled_win_rate",
    "item_difficulty", "alpaca_eval_lc_win_rate", "ALPACA_EVAL_CS",
]

PREFERENCE_METRICS = ("accuracy", "auc", "ece", "brier")


# ================================================================================ chapter 03 "Reward model"


def sigmoid(x) -> np.ndarray:
    """Numerically stable logistic function 1 / (1 + exp(-x)), elementwise (chapter 03 "Reward model").

    Written so that no ``exp`` of a large positive number is ever taken: for x >= 0 it is 1 / (1 + e^-x), for x < 0
    it is e^x / (1 + e^x).  Returns an array (a 0-d array for a scalar input).
    """
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def pair_probabilities(margin) -> np.ndarray:
    """p = sigmoid(margin): the Bradley-Terry probability that the first response of a pair is preferred, given the
    reward margin r_first - r_second (chapter 03 "Reward model").  Numerically stable for any finite margin."""
    return sigmoid(margin)


def _rewards(reward_chosen, reward_rejected) -> tuple[np.ndarray, np.ndarray]:
    rc = np.asarray(reward_chosen, dtype=float).reshape(-1)
    rr = np.asarray(reward_rejected, dtype=float).reshape(-1)
    if rc.shape != rr.shape:
        raise ValueError(f"reward_chosen and reward_rejected differ in length: {len(rc)} != {len(rr)}")
    if not (np.isfinite(rc).all() and np.isfinite(rr).all()):
        raise ValueError("rewards must be finite (found NaN or inf)")
    return rc, rr


def orient_pairs(reward_chosen, reward_rejected, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Give each test pair a random orientation, drawn with ``numpy.random.default_rng(seed)`` (chapter 03
    "Reward model").

    Returns ``(margin, label)``: ``label`` is 1 when the first response of the oriented pair is the chosen one and 0
    when it is the rejected one; ``margin`` = r_first - r_second, i.e. r_chosen - r_rejected for label 1 and
    r_rejected - r_chosen for label 0.

    Why: the released test pairs always list the chosen response first, so with the natural orientation every label
    would be 1.  ROC AUC would then be undefined (one class only), and ECE and Brier would only ever see one side of
    the calibration curve.  A fair coin per pair puts both labels in the data (for more than a handful of pairs), so
    AUC, ECE and Brier measure how well p = sigmoid(margin) separates and calibrates "first preferred" against
    "second preferred".  Accuracy is unaffected by the orientation (see :func:`preference_metrics`).
    """
    rc, rr = _rewards(reward_chosen, reward_rejected)
    label = np.random.default_rng(seed).integers(0, 2, size=len(rc))
    margin = np.where(label == 1, rc - rr, rr - rc)
    return margin, label


def _probabilities_and_labels(p, y) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"p and y differ in length: {len(p)} != {len(y)}")
    if len(p) and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return p, y


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin 0 is [0, 1/n_bins], bin b > 0 is (b/n_bins, (b+1)/n_bins]."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    return np.clip(np.searchsorted(edges[1:-1], p, side="left"), 0, int(n_bins) - 1)


def expected_calibration_error(p, y, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins on [0, 1] (chapter 03 "Reward model").

    ECE = sum over non-empty bins B of |B| / n * |mean(y in B) - mean(p in B)|.  Bins are right-closed,
    (b/n_bins, (b+1)/n_bins], except the first, which also holds p = 0.  ``y`` holds 0/1 labels.  NaN for no data.
    """
    p, y = _probabilities_and_labels(p, y)
    if len(p) == 0:
        return float("nan")
    index = _bin_index(p, n_bins)
    count = np.bincount(index, minlength=int(n_bins))
    sum_p = np.bincount(index, weights=p, minlength=int(n_bins))
    sum_y = np.bincount(index, weights=y, minlength=int(n_bins))
    # sum_B |B|/n * |sum_y/|B| - sum_p/|B||  ==  sum_B |sum_y - sum_p| / n   (empty bins contribute 0)
    return float(np.abs(sum_y - sum_p).sum() / len(p))


def reliability_table(p, y, n_bins: int = 10) -> pd.DataFrame:
    """The data of a reliability diagram (chapter 03 "Reward model"): one row per equal-width bin, with columns
    ``bin_low``, ``bin_high`` (edges), ``count``, ``mean_predicted`` (mean p in the bin) and ``observed`` (share of
    label 1 in the bin); the two means are NaN in empty bins.  Same bins as :func:`expected_calibration_error`,
    so ``sum(count / n * |observed - mean_predicted|)`` over non-empty rows is the ECE."""
    p, y = _probabilities_and_labels(p, y)
    index = _bin_index(p, n_bins)
    count = np.bincount(index, minlength=int(n_bins))
    sum_p = np.bincount(index, weights=p, minlength=int(n_bins))
    sum_y = np.bincount(index, weights=y, minlength=int(n_bins))
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / np.maximum(count, 1), np.nan)
        observed = np.where(count > 0, sum_y / np.maximum(count, 1), np.nan)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "count": count.astype(int),
                         "mean_predicted": mean_p, "observed": observed})


def pair_correct(reward_chosen, reward_rejected) -> np.ndarray:
    """Per pair: 1 when the chosen response gets the higher reward, 0.5 on a tie, 0 otherwise (chapter 03's accuracy
    and its paired comparison with a baseline): the one place pairwise accuracy is computed."""
    rc, rr = _rewards(reward_chosen, reward_rejected)
    return (rc > rr) + 0.5 * (rc == rr)


def _pair_accuracy(rc: np.ndarray, rr: np.ndarray) -> float:
    return float(np.mean(pair_correct(rc, rr))) if len(rc) else float("nan")


def _oriented_metrics(rc, rr, margin, label, n_bins) -> dict:
    """The four metrics from pairs that are already oriented; AUC is NaN when only one label is present."""
    n = len(rc)
    if n == 0:
        return {"accuracy": float("nan"), "auc": float("nan"), "ece": float("nan"), "brier": float("nan"), "n": 0}
    p = pair_probabilities(margin)
    both = 0 < label.sum() < n
    return {"accuracy": _pair_accuracy(rc, rr),
            "auc": float(roc_auc_score(label, margin)) if both else float("nan"),
            "ece": expected_calibration_error(p, label, n_bins),
            "brier": float(brier_score_loss(label, p, labels=[0, 1])),
            "n": int(n)}


def preference_metrics(reward_chosen, reward_rejected, seed: int = 0, n_bins: int = 10) -> dict:
    """Accuracy, AUC, ECE and Brier score of a reward model on test pairs (chapter 03 "Reward model").

    Returns ``{"accuracy", "auc", "ece", "brier", "n"}``:

    * accuracy: share of pairs with r_chosen > r_rejected, a tie counting 0.5.  It compares the two rewards of the
      same pair, so it does not depend on which response is listed first and needs no orientation.
    * auc: ``sklearn.metrics.roc_auc_score(label, margin)`` on the randomly oriented pairs of
      :func:`orient_pairs` (``seed``); NaN if the orientation left only one label (possible only for tiny n).
    * ece: :func:`expected_calibration_error` of p = sigmoid(margin) against the labels, ``n_bins`` equal-width bins.
    * brier: ``sklearn.metrics.brier_score_loss(label, p)``.

    AUC, ECE and Brier need orientation because they score a probability against a binary outcome: with the chosen
    response always first, every outcome would be 1 (see :func:`orient_pairs`).  The random orientation is fixed by
    ``seed``; AUC and Brier do not depend on it in expectation (flipping a pair maps (margin, label) to
    (-margin, 1 - label), and sigmoid(-m) = 1 - sigmoid(m)), but ECE's bin assignment and AUC's pair count do, a
    little, in any one draw.
    """
    rc, rr = _rewards(reward_chosen, reward_rejected)
    margin, label = orient_pairs(rc, rr, seed)
    return _oriented_metrics(rc, rr, margin, label, n_bins)


def _as_arrays(values_or_arrays) -> tuple[list[np.ndarray], bool]:
    """One array, or several (a list/tuple whose items are all arrays) to be resampled jointly by row."""
    if isinstance(values_or_arrays, (list, tuple)) and len(values_or_arrays) > 0 \
            and all(np.ndim(a) >= 1 for a in values_or_arrays):
        arrays = [np.asarray(a) for a in values_or_arrays]
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"arrays to resample jointly differ in length: {sorted(lengths)}")
        return arrays, True
    return [np.asarray(values_or_arrays)], False


def _bootstrap_indices(n: int, n_boot: int, seed: int):
    """The resampling plan shared by every bootstrap in this module: ``n_boot`` draws of n row indices with
    replacement from ``numpy.random.default_rng(seed)``."""
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    for _ in range(int(n_boot)):
        yield rng.integers(0, n, size=n)


def _percentile_interval(samples, alpha: float) -> tuple[float, float]:
    samples = np.asarray([s for s in samples if np.isfinite(s)], dtype=float)
    if len(samples) == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_ci(values_or_arrays, statistic: Callable, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """Percentile bootstrap interval over items (chapter 03 "Reward model"; chapter 06 "Win rate" uses it too).

    ``values_or_arrays`` is either one array (items along the first axis; ``statistic(array)``) or a list/tuple of
    equally long arrays that are resampled jointly by row (``statistic(*arrays)``), e.g. (reward_chosen,
    reward_rejected).  A plain list of numbers counts as one array.  Returns ``(point, low, high)``: the statistic on
    the full data and the alpha/2 and 1 - alpha/2 percentiles of ``n_boot`` resampled statistics (resamples whose
    statistic is not finite are skipped).  Empty input gives NaNs.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    arrays, _ = _as_arrays(values_or_arrays)
    n = len(arrays[0]) if arrays[0].ndim else 0
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(statistic(*arrays))
    stats = [float(statistic(*(a[idx] for a in arrays))) for idx in _bootstrap_indices(n, n_boot, seed)]
    low, high = _percentile_interval(stats, alpha)
    return point, low, high


def paired_difference(scores_a, scores_b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``scores_a`` minus mean of ``scores_b`` on the same items, with a paired percentile bootstrap interval
    (:func:`bootstrap_ci`, the items resampled jointly).  Chapter 03 compares the reward model's per-pair correctness
    (:func:`pair_correct`) with the length baseline's; chapter 06 compares two policies' win-rate scores.

    Returns ``difference``, ``ci_low``, ``ci_high``, ``n`` and ``distinguishable`` (the interval excludes 0).
    """
    a, b = np.asarray(scores_a, dtype=float).reshape(-1), np.asarray(scores_b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {len(a)} and {len(b)}")
    point, low, high = bootstrap_ci([a, b], lambda x, y: x.mean() - y.mean(), n_boot, seed, alpha)
    return {"difference": point, "ci_low": low, "ci_high": high, "n": int(len(a)),
            "distinguishable": bool(low > 0 or high < 0)}


def preference_metrics_with_ci(reward_chosen, reward_rejected, n_boot: int = 1000, seed: int = 0,
                               n_bins: int = 10) -> pd.DataFrame:
    """Accuracy, AUC, ECE and Brier with 95% percentile bootstrap intervals over test pairs (chapter 03
    "Reward model").

    Returns a DataFrame indexed by metric (accuracy, auc, ece, brier) with columns ``value``, ``ci_low``,
    ``ci_high``; ``frame.attrs["n"]`` is the number of pairs.  The values equal :func:`preference_metrics` with the
    same ``seed`` and ``n_bins``.  The pairs are oriented once (``seed``); each resample draws oriented pairs with
    replacement and computes all four metrics, so the intervals share resamples, and they use the same resampling
    plan as :func:`bootstrap_ci` with the same ``seed`` and ``n_boot``.
    """
    rc, rr = _rewards(reward_chosen, reward_rejected)
    margin, label = orient_pairs(rc, rr, seed)
    point = _oriented_metrics(rc, rr, margin, label, n_bins)
    samples = {name: [] for name in PREFERENCE_METRICS}
    if len(rc):
        for idx in _bootstrap_indices(len(rc), n_boot, seed):
            m = _oriented_metrics(rc[idx], rr[idx], margin[idx], label[idx], n_bins)
            for name in PREFERENCE_METRICS:
                samples[name].append(m[name])
    rows = []
    for name in PREFERENCE_METRICS:
        low, high = _percentile_interval(samples[name], 0.05)
        rows.append({"metric": name, "value": point[name], "ci_low": low, "ci_high": high})
    frame = pd.DataFrame(rows).set_index("metric")
    frame.attrs["n"] = point["n"]
    return frame


def length_baseline_rewards(chosen_texts: Sequence[str], rejected_texts: Sequence[str]) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """The "longer response wins" baseline (chapter 03 "Reward model"): each response's reward is its length in
    characters, returned as float arrays ``(reward_chosen, reward_rejected)``.  Equal lengths tie (accuracy 0.5)."""
    chosen, rejected = list(chosen_texts), list(rejected_texts)
    if len(chosen) != len(rejected):
        raise ValueError(f"chosen_texts and rejected_texts differ in length: {len(chosen)} != {len(rejected)}")
    return (np.array([len(t) for t in chosen], dtype=float), np.array([len(t) for t in rejected], dtype=float))


def random_baseline_rewards(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reward model that knows nothing (chapter 03 "Reward model"): independent standard normal rewards
    ``(reward_chosen, reward_rejected)`` for n pairs from ``numpy.random.default_rng(seed)``; accuracy and AUC
    near 0.5."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(n)), rng.standard_normal(int(n))


# ================================================================================ chapter 06 "Win rate"

_AS_A = {"A": "win", "B": "loss", "TIE": "tie"}  # the policy was shown as A
_AS_B = {"B": "win", "A": "loss", "TIE": "tie"}  # the policy was shown as B
_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def _missing(value) -> bool:
    """None, or a float NaN (how pandas stores a missing value in an object column)."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _verdict(value, table: dict, which: str) -> str:
    key = value.strip().upper() if isinstance(value, str) else value
    if key not in table:
        raise ValueError(f"{which} must be 'A', 'B', 'tie' or None, got {value!r}")
    return table[key]


def combine_two_orders(verdict_ab, verdict_ba) -> str | None:
    """The policy's outcome against the reference from two judgments, one per presentation order (chapter 06
    "Win rate"; MT-Bench practice).

    ``verdict_ab`` is the judge's verdict ("A", "B" or "tie") with the policy shown as A and the reference as B;
    ``verdict_ba`` the verdict with the reference as A and the policy as B.  Both orders favouring the policy give
    "win", both favouring the reference give "loss"; verdicts that disagree (position bias) or a tie in either order
    give "tie".  A failed judgment (None, or NaN) in either order gives None: the caller excludes the item from the
    win rate and counts it (``excluded`` in :func:`win_rate_table`).  Verdict letters are case-insensitive; any
    other value raises ValueError.
    """
    if _missing(verdict_ab) or _missing(verdict_ba):
        return None
    first = _verdict(verdict_ab, _AS_A, "verdict_ab")
    second = _verdict(verdict_ba, _AS_B, "verdict_ba")
    return first if first == second else "tie"


def _outcome_scores(outcomes) -> tuple[np.ndarray, int]:
    """Scores (win 1, tie 0.5, loss 0) of the usable outcomes, and the number excluded (None or NaN)."""
    scores, excluded = [], 0
    for o in outcomes:
        if _missing(o):
            excluded += 1
        elif o in _SCORE:
            scores.append(_SCORE[o])
        else:
            raise ValueError(f"an outcome must be 'win', 'loss', 'tie' or None, got {o!r}")
    return np.asarray(scores, dtype=float), excluded


def win_rate(outcomes: Sequence[str | None]) -> float:
    """(wins + 0.5 * ties) / n, with n the number of outcomes that are not None (chapter 06 "Win rate").

    Failed judgments (None, or NaN) are excluded from numerator and denominator; NaN when none is usable.
    """
    scores, _ = _outcome_scores(outcomes)
    return float(scores.mean()) if len(scores) else float("nan")


def paired_win_rate_difference(outcomes_a: Sequence[str | None], outcomes_b: Sequence[str | None],
                               n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Win rate of A minus win rate of B on the same items, with a paired percentile bootstrap interval over items
    (chapter 06: is DPO-Iter really ahead of DPO, or within noise?).

    ``outcomes_a[i]`` and ``outcomes_b[i]`` are two policies' outcomes against the reference on item i; an item where
    either is missing is left out of both.  Returns ``difference``, ``ci_low``, ``ci_high``, ``n`` and
    ``distinguishable`` (the interval excludes 0)."""
    if len(outcomes_a) != len(outcomes_b):
        raise ValueError(f"paired outcomes differ in length: {len(outcomes_a)} and {len(outcomes_b)}")
    both = [(a, b) for a, b in zip(outcomes_a, outcomes_b) if not _missing(a) and not _missing(b)]
    scores_a, _ = _outcome_scores([a for a, _ in both])
    scores_b, _ = _outcome_scores([b for _, b in both])
    return paired_difference(scores_a, scores_b, n_boot, seed, alpha)


def win_rate_table(df: pd.DataFrame, group_cols: str | Sequence[str], outcome_col: str = "outcome",
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Win rate per group with a 95% percentile bootstrap interval over items (chapter 06 "Win rate").

    One row per group of ``group_cols`` (a column name or a list; the index, a MultiIndex for several), in order of
    first appearance, with columns ``n`` (usable outcomes), ``wins``, ``ties``, ``losses``, ``excluded`` (None/NaN
    outcomes: failed judgments), ``win_rate`` = (wins + 0.5 * ties) / n, ``ci_low`` and ``ci_high``
    (:func:`bootstrap_ci` of the per-item scores 1 / 0.5 / 0, ``n_boot`` resamples, ``seed``).  A group with no usable
    outcome has NaN rate and interval.
    """
    cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    columns = ["n", "wins", "ties", "losses", "excluded", "win_rate", "ci_low", "ci_high"]
    keys, rows = [], []
    for key, group in df.groupby(cols, sort=False, dropna=False):
        outcomes = group[outcome_col].tolist()
        scores, excluded = _outcome_scores(outcomes)
        point, low, high = bootstrap_ci(scores, np.mean, n_boot, seed)
        keys.append(key[0] if isinstance(key, tuple) and len(cols) == 1 else key)
        rows.append({"n": len(scores), "wins": int((scores == 1.0).sum()), "ties": int((scores == 0.5).sum()),
                     "losses": int((scores == 0.0).sum()), "excluded": excluded,
                     "win_rate": point, "ci_low": low, "ci_high": high})
    if len(cols) > 1:
        index = pd.MultiIndex.from_tuples(keys, names=cols) if keys else \
            pd.MultiIndex.from_arrays([[]] * len(cols), names=cols)
    else:
        index = pd.Index(keys, name=cols[0])
    table = pd.DataFrame(rows, index=index, columns=columns)
    return table.astype({c: int for c in ("n", "wins", "ties", "losses", "excluded")})


def length_controlled_win_rate(outcomes: Sequence[str | None], policy_lengths, reference_lengths,
                               seed: int = 0) -> dict:
    """A length-controlled win rate in the manner of AlpacaEval 2 (chapter 06 "Win rate").

    Model: P(judge prefers the policy) = sigmoid(intercept + length_coefficient * x), with one feature per item,
    x = tanh((len_policy - len_reference) / s), where s is the standard deviation (ddof 0) of the length differences
    over the usable items.  We chose this (AlpacaEval 2's own standardised, tanh-bounded length term) over a log
    length ratio because it is defined for zero lengths and the tanh keeps a few very long responses from dominating
    the fit.  Fitted by ``sklearn.linear_model.LogisticRegression`` (lbfgs to a tolerance of 1e-10,
    C = :data:`LC_PENALTY_C`: practically unpenalised, the intercept never penalised); each win enters as label 1
    with weight 1, each loss as label 0 with weight 1, and each tie twice, as label 1 and as label 0 with weight 0.5
    each.  The length-controlled win rate is the prediction with the length term set to zero, sigmoid(intercept):
    the judge's preference between responses of equal length.

    Returns a dict: ``n`` (usable outcomes), ``excluded`` (None/NaN outcomes), ``win_rate`` (raw, as
    :func:`win_rate`), ``lc_win_rate``, ``intercept``, ``length_coefficient``, ``length_scale`` (s),
    ``mean_length_difference``, ``fitted`` (whether the model was fitted) and ``note`` ("" when fitted normally).

    Degenerate inputs return without fitting, with ``fitted`` False and a ``note``:

    * no usable outcome: every rate NaN;
    * all wins, or all losses (no weight on the other label: the fit would diverge): ``lc_win_rate`` = the raw rate
      (1 or 0), ``intercept`` and ``length_coefficient`` NaN (not identifiable);
    * no variation in the length differences (s = 0, including a single item): the length effect cannot be separated
      from the intercept, so ``lc_win_rate`` = the raw rate and ``length_coefficient`` NaN.

    ``seed`` is passed to scikit-learn as ``random_state`` (lbfgs is deterministic; kept for a stable signature).
    """
    outcomes = list(outcomes)
    pol = np.asarray(policy_lengths, dtype=float).reshape(-1)
    ref = np.asarray(reference_lengths, dtype=float).reshape(-1)
    if not len(outcomes) == len(pol) == len(ref):
        raise ValueError(f"outcomes, policy_lengths and reference_lengths differ in length: "
                         f"{len(outcomes)}, {len(pol)}, {len(ref)}")
    keep = np.array([not _missing(o) for o in outcomes], dtype=bool)
    scores, excluded = _outcome_scores(outcomes)
    diff = pol[keep] - ref[keep]
    if not np.isfinite(diff).all():
        raise ValueError("lengths of the usable items must be finite")
    nan = float("nan")
    raw = float(scores.mean()) if len(scores) else nan
    result = {"n": int(len(scores)), "excluded": int(excluded), "win_rate": raw, "lc_win_rate": raw,
              "intercept": nan, "length_coefficient": nan, "length_scale": nan,
              "mean_length_difference": float(diff.mean()) if len(diff) else nan, "fitted": False, "note": ""}
    if len(scores):
        result["length_scale"] = float(diff.std())
    result["note"] = _unfittable(scores, result["length_scale"])
    if result["note"]:
        return result
    result.update(_fit_length_model(diff, scores, result["length_scale"], seed))
    return result


def _unfittable(scores: np.ndarray, scale: float) -> str:
    """Why the length model cannot be fitted on these scores, or "" when it can."""
    if len(scores) == 0:
        return "no usable outcomes: nothing to fit"
    if (scores == 1.0).all():
        return "all wins: the model cannot be fitted; the length-controlled rate is the raw rate"
    if (scores == 0.0).all():
        return "all losses: the model cannot be fitted; the length-controlled rate is the raw rate"
    if scale == 0.0:
        return ("no length variation: the length effect cannot be separated from the intercept; "
                "the length-controlled rate is the raw rate")
    return ""


#: scikit-learn's inverse penalty strength in the book's length-controlled fit: a penalty of
#: length_coefficient ** 2 / (2 * C) on the log-likelihood, weak enough to change almost nothing where the fit has a
#: maximum, and enough to give it one where the verdicts are separable by length (chapter 06's by-hand fit adds it too).
LC_PENALTY_C = 1e4


def _fit_length_model(diff: np.ndarray, scores: np.ndarray, scale: float, seed: int) -> dict:
    """The logistic regression of :func:`length_controlled_win_rate` (ties as half a win and half a loss)."""
    x = np.tanh(diff / scale)
    X = np.concatenate([x, x])[:, None]
    y = np.concatenate([np.ones(len(x), dtype=int), np.zeros(len(x), dtype=int)])
    w = np.concatenate([scores, 1.0 - scores])
    use = w > 0  # a win adds no loss row, a loss no win row
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression(C=LC_PENALTY_C, tol=1e-10, max_iter=1000, random_state=seed).fit(
            X[use], y[use], sample_weight=w[use])
    intercept, coef = float(model.intercept_[0]), float(model.coef_[0, 0])
    note = ("the logistic regression did not converge (nearly separable by length); read with care"
            if any(issubclass(c.category, ConvergenceWarning) for c in caught) else "")
    return {"lc_win_rate": float(sigmoid(intercept)), "intercept": intercept, "length_coefficient": coef,
            "fitted": True, "note": note}


def item_difficulty(outcomes_by_policy: dict[str, Sequence[str | None]], leave_out: str | None = None) -> np.ndarray:
    """Per item, how hard it is to beat the reference on it, from every policy's outcomes but ``leave_out``'s
    (chapter 06; AlpacaEval 2's ``instruction_difficulty`` term, estimated locally).

    AlpacaEval 2 reads each instruction's difficulty from a model fitted once over its whole leaderboard; with a
    handful of policies here, it is the log-odds that the reference is preferred on the item, over the other
    policies' outcomes (win 0, tie 0.5, loss 1 for the reference's side, missing outcomes left out), smoothed by half
    a win and half a loss so that it stays finite: log((r + 0.5) / (m - r + 0.5)) with r the reference's score over m
    outcomes.  Leaving the policy being fitted out keeps its own verdicts from predicting themselves.  Zeros when no
    other policy has an outcome on an item.
    """
    others = [list(o) for name, o in outcomes_by_policy.items() if name != leave_out]
    lengths = {len(o) for o in outcomes_by_policy.values()}
    if len(lengths) > 1:
        raise ValueError(f"outcomes of the policies differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    difficulty = np.zeros(n)
    for i in range(n):
        scores, _ = _outcome_scores([o[i] for o in others])
        reference = float((1.0 - scores).sum())
        difficulty[i] = np.log((reference + 0.5) / (len(scores) - reference + 0.5)) if len(scores) else 0.0
    return difficulty


#: AlpacaEval 2's grid of inverse penalty strengths (scikit-learn's LogisticRegressionCV default, Cs=10).
ALPACA_EVAL_CS = tuple(np.logspace(-4, 4, 10))


def alpaca_eval_lc_win_rate(outcomes: Sequence[str | None], policy_lengths, reference_lengths, difficulty,
                            n_splits: int = 5, seed: int = 123) -> dict:
    """AlpacaEval 2's length-controlled win rate (``length_controlled_noreg`` in alpaca-eval 0.6.6's
    ``glm_winrate``), chapter 06's alternative to :func:`length_controlled_win_rate`.

    Model: P(judge prefers the policy on item i) = sigmoid(b0 + b_len * tanh(d_i / s) + b_diff * difficulty_i), with
    d_i the length difference and s its standard deviation (ddof 1, as pandas computes it there); each item enters
    twice, as label 1 weighted by its score (win 1, tie 0.5, loss 0) and as label 0 weighted by one minus it.  Fitted
    with an L1 penalty (liblinear, the constant a column like any other, as there), its strength chosen among
    :data:`ALPACA_EVAL_CS` by ``n_splits``-fold cross-validation over items (GroupKFold: an item's two rows stay
    together) on the mean log loss of the held-out items.  The rate is the mean over items of the prediction with the
    length term set to zero: sigmoid(b0 + b_diff * difficulty_i), averaged, where :func:`length_controlled_win_rate`
    reads sigmoid(intercept) off a model without the difficulty term and without a penalty.  ``difficulty``: per item,
    e.g. :func:`item_difficulty`.

    Returns ``n``, ``excluded``, ``win_rate``, ``lc_win_rate``, ``intercept``, ``length_coefficient``,
    ``difficulty_coefficient``, ``C`` (the strength chosen), ``fitted`` and ``note``; degenerate inputs (no usable
    outcome, all wins, all losses, no length variation, fewer items than folds) return the raw rate unfitted with a
    ``note``, as :func:`length_controlled_win_rate` does.
    """
    outcomes = list(outcomes)
    pol, ref, hard = (np.asarray(a, dtype=float).reshape(-1) for a in (policy_lengths, reference_lengths, difficulty))
    if not len(outcomes) == len(pol) == len(ref) == len(hard):
        raise ValueError(f"outcomes, policy_lengths, reference_lengths and difficulty differ in length: "
                         f"{len(outcomes)}, {len(pol)}, {len(ref)}, {len(hard)}")
    keep = np.array([not _missing(o) for o in outcomes], dtype=bool)
    scores, excluded = _outcome_scores(outcomes)
    diff, hard = pol[keep] - ref[keep], hard[keep]
    nan = float("nan")
    scale = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    result = {"n": int(len(scores)), "excluded": int(excluded), "win_rate": float(scores.mean()) if len(scores) else nan,
              "intercept": nan, "length_coefficient": nan, "difficulty_coefficient": nan, "C": nan, "fitted": False,
              "note": _unfittable(scores, scale) if len(scores) else "no usable outcomes: nothing to fit"}
    result["lc_win_rate"] = result["win_rate"]
    if not result["note"] and len(scores) < n_splits:
        result["note"] = f"{len(scores)} items, fewer than the {n_splits} cross-validation folds: not fitted"
    if result["note"]:
        return result
    X = np.column_stack([np.ones(len(diff)), np.tanh(diff / scale), hard])
    C = _cross_validated_c(X, scores, n_splits, seed)
    model = _l1_fit(X, scores, C, seed)
    b = model.coef_[0]
    return {**result, "lc_win_rate": float(np.mean(sigmoid(b[0] + b[2] * hard))), "intercept": float(b[0]),
            "length_coefficient": float(b[1]), "difficulty_coefficient": float(b[2]), "C": float(C), "fitted": True}


def _duplicated(X: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item twice: label 1 weighted by its score, label 0 weighted by one minus it."""
    return (np.concatenate([X, X]), np.concatenate([np.ones(len(X), dtype=int), np.zeros(len(X), dtype=int)]),
            np.concatenate([scores, 1.0 - scores]))


@contextmanager
def _silenced_stdout_fd():
    """liblinear's C code prints a warning straight to file descriptor 1 when one label has no weight (a fold of all
    wins): keep it off the page."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _l1_fit(X: np.ndarray, scores: np.ndarray, C: float, seed: int) -> LogisticRegression:
    """alpaca-eval's fit: L1, liblinear, no separate intercept; both labels present, zero weights included."""
    Xd, yd, wd = _duplicated(X, scores)
    one_label = bool((scores == 1.0).all() or (scores == 0.0).all())
    with warnings.catch_warnings(), (_silenced_stdout_fd() if one_label else nullcontext()):
        # scikit-learn 1.8+ deprecates "penalty" in favour of l1_ratio; older versions ignore l1_ratio without it
        warnings.simplefilter("ignore", (FutureWarning, UserWarning, ConvergenceWarning))
        return LogisticRegression(C=C, penalty="l1", l1_ratio=1.0, solver="liblinear", fit_intercept=False,
                                  random_state=seed).fit(Xd, yd, sample_weight=wd)


def _cross_validated_c(X: np.ndarray, scores: np.ndarray, n_splits: int, seed: int) -> float:
    """The inverse penalty strength with the lowest mean held-out log loss over GroupKFold folds of items."""
    from sklearn.model_selection import GroupKFold

    losses = np.zeros(len(ALPACA_EVAL_CS))
    for train, test in GroupKFold(n_splits=n_splits).split(X, groups=np.arange(len(X))):
        for k, C in enumerate(ALPACA_EVAL_CS):
            q = np.clip(_l1_fit(X[train], scores[train], C, seed).predict_proba(X[test])[:, 1], 1e-15, 1 - 1e-15)
            p = scores[test]
            losses[k] += -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q)) / n_splits
    return float(ALPACA_EVAL_CS[int(np.argmin(losses))])
