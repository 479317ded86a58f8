"""Metrics: pairwise reward-model evaluation (chapter 03) and win rates against a reference (chapter 06).

Pure functions of arrays; scikit-learn computes what it already computes (AUC, Brier, logistic regression).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

# ------------------------------------------------------------------------------------------------------ chapter 03


def sigmoid(x):
    x = np.asarray(x, dtype=float)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def orient_pairs(reward_chosen, reward_rejected, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw each pair's orientation at random (fixed seed): ``label`` 1 when the first response is the chosen one,
    ``margin`` = reward(first) - reward(second).

    The test pairs always list the chosen response first, so without this every label would be 1: AUC would be
    undefined and ECE and Brier would only see one side of the calibration curve.  Accuracy does not depend on it.
    """
    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    label = np.random.default_rng(seed).integers(0, 2, size=len(rc))
    margin = np.where(label == 1, rc - rr, rr - rc)
    return margin, label


def expected_calibration_error(p, y, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum over bins of |bin|/n * |mean(y) - mean(p)|."""
    table = reliability_table(p, y, n_bins)
    n = table["count"].sum()
    if n == 0:
        return float("nan")
    filled = table[table["count"] > 0]
    return float((filled["count"] / n * (filled["observed"] - filled["mean_predicted"]).abs()).sum())


def reliability_table(p, y, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin: edges, count, mean predicted probability, observed frequency (a reliability diagram)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    edges = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = index == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "count": int(mask.sum()),
                     "mean_predicted": float(p[mask].mean()) if mask.any() else np.nan,
                     "observed": float(y[mask].mean()) if mask.any() else np.nan})
    return pd.DataFrame(rows)


def auc_from_ranks(score, label) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity, ties given average ranks; equal to scikit-learn's
    ``roc_auc_score`` (tested) and much cheaper inside a bootstrap loop."""
    from scipy.stats import rankdata

    score, label = np.asarray(score, float), np.asarray(label)
    n_pos = int(label.sum())
    n_neg = len(label) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def preference_metrics(reward_chosen, reward_rejected, seed: int = 0, n_bins: int = 10) -> dict:
    """Accuracy, AUC, ECE and Brier of a reward model on test pairs, with p = sigmoid(r_first - r_second).

    Accuracy is the share of pairs with r_chosen > r_rejected (a tie counts half).  AUC, ECE and Brier are computed on
    randomly oriented pairs (:func:`orient_pairs`).
    """
    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    margin, label = orient_pairs(rc, rr, seed)
    return _metrics_oriented(rc, rr, margin, label, n_bins)


def _metrics_oriented(rc, rr, margin, label, n_bins) -> dict:
    n = len(rc)
    if n == 0:
        return {"n": 0, "accuracy": float("nan"), "auc": float("nan"), "ece": float("nan"), "brier": float("nan")}
    p = sigmoid(margin)
    return {"n": int(n), "accuracy": float(np.mean((rc > rr) + 0.5 * (rc == rr))),
            "auc": auc_from_ranks(margin, label), "ece": expected_calibration_error(p, label, n_bins),
            "brier": float(np.mean((p - label) ** 2))}


def bootstrap_ci(arrays: np.ndarray | Sequence[np.ndarray], statistic: Callable, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """Percentile bootstrap over items: ``(point, low, high)``.  Several arrays are resampled jointly by row."""
    many = isinstance(arrays, (list, tuple))
    arrays = [np.asarray(a) for a in arrays] if many else [np.asarray(arrays)]
    n = len(arrays[0])
    point = float(statistic(*arrays))
    if n == 0:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        value = statistic(*(a[idx] for a in arrays))
        if np.isfinite(value):
            stats.append(value)
    if not stats:
        return point, float("nan"), float("nan")
    low, high = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return point, float(low), float(high)


def preference_metrics_with_ci(reward_chosen, reward_rejected, n_boot: int = 1000, seed: int = 0,
                               n_bins: int = 10) -> pd.DataFrame:
    """One row per metric: value and 95% bootstrap interval over test pairs (chapter 03's table).

    The pairs are oriented once and every resample computes all four metrics, so the intervals share resamples.
    """
    rc, rr = np.asarray(reward_chosen, float), np.asarray(reward_rejected, float)
    margin, label = orient_pairs(rc, rr, seed)
    point = _metrics_oriented(rc, rr, margin, label, n_bins)
    rng = np.random.default_rng(seed)
    names = ("accuracy", "auc", "ece", "brier")
    samples = {name: [] for name in names}
    for _ in range(n_boot if len(rc) else 0):
        idx = rng.integers(0, len(rc), size=len(rc))
        m = _metrics_oriented(rc[idx], rr[idx], margin[idx], label[idx], n_bins)
        for name in names:
            if np.isfinite(m[name]):
                samples[name].append(m[name])
    rows = {}
    for name in names:
        low, high = np.percentile(samples[name], [2.5, 97.5]) if samples[name] else (np.nan, np.nan)
        rows[name] = {"value": point[name], "ci_low": float(low), "ci_high": float(high)}
    return pd.DataFrame(rows).T


def length_baseline_rewards(chosen_texts: Sequence[str], rejected_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """"The longer response wins": each response's reward is its length in characters."""
    return (np.array([len(t) for t in chosen_texts], float), np.array([len(t) for t in rejected_texts], float))


def random_baseline_rewards(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reward model that knows nothing: independent standard normal rewards."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal(n)


# ------------------------------------------------------------------------------------------------------ chapter 06

_FLIP = {"A": "B", "B": "A", "tie": "tie"}


def combine_two_orders(verdict_policy_first: str | None, verdict_policy_second: str | None) -> str | None:
    """The policy's outcome from two judgments: policy shown as A, then as B.

    Consistent verdicts give a win or a loss; a tie in either order, or verdicts that disagree, give a tie; a failed
    judgment (None) gives None, which the win rate excludes and counts.
    """
    if verdict_policy_first is None or verdict_policy_second is None:
        return None
    first = {"A": "win", "B": "loss", "tie": "tie"}[verdict_policy_first]
    second = {"B": "win", "A": "loss", "tie": "tie"}[verdict_policy_second]
    return first if first == second else "tie"


def win_rate(outcomes: Sequence[str | None]) -> float:
    """(wins + 0.5 ties) / n over the outcomes that are not None."""
    usable = [o for o in outcomes if o is not None]
    if not usable:
        return float("nan")
    return (sum(o == "win" for o in usable) + 0.5 * sum(o == "tie" for o in usable)) / len(usable)


def _scores(outcomes) -> np.ndarray:
    return np.array([{"win": 1.0, "tie": 0.5, "loss": 0.0}[o] for o in outcomes if o is not None])


def win_rate_table(frame: pd.DataFrame, group_cols: list[str], outcome_col: str = "outcome", n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Per group: n, wins, ties, losses, excluded (failed judgments), win rate and 95% bootstrap interval."""
    rows = {}
    for key, group in frame.groupby(group_cols, sort=False):
        outcomes = [o if isinstance(o, str) else None for o in group[outcome_col].tolist()]
        scores = _scores(outcomes)
        point, low, high = bootstrap_ci(scores, np.mean, n_boot, seed) if len(scores) else (np.nan, np.nan, np.nan)
        key = key[0] if isinstance(key, tuple) and len(group_cols) == 1 else key
        rows[key] = {"n": len(scores), "wins": outcomes.count("win"), "ties": outcomes.count("tie"),
                     "losses": outcomes.count("loss"), "excluded": sum(o is None for o in outcomes),
                     "win_rate": point, "ci_low": low, "ci_high": high}
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(group_cols) > 1:
        table.index = pd.MultiIndex.from_tuples(table.index, names=group_cols)
    else:
        table.index.name = group_cols[0]
    return table


def length_controlled_win_rate(outcomes: Sequence[str | None], policy_lengths, reference_lengths, seed: int = 0) -> dict:
    """A length-controlled win rate in the manner of AlpacaEval 2.

    A logistic regression of the judge's preference for the policy on one feature, the standardised length
    difference ``tanh((len_policy - len_reference) / s)`` with ``s`` the standard deviation of the differences; ties
    enter as half a win and half a loss (sample weights).  The length-controlled win rate is the model's prediction at
    zero length difference, ``sigmoid(intercept)``.  Degenerate inputs (no usable outcome, one outcome only, or no
    length variation) return the raw win rate with ``note`` saying why no model was fitted.
    """
    from sklearn.linear_model import LogisticRegression

    outcomes = [o if isinstance(o, str) else None for o in outcomes]
    keep = [i for i, o in enumerate(outcomes) if o is not None]
    raw = win_rate(outcomes)
    result = {"n": len(keep), "win_rate": raw, "lc_win_rate": raw, "length_coefficient": 0.0, "note": ""}
    if not keep:
        result["note"] = "no usable outcomes"
        return result
    diff = np.asarray(policy_lengths, float)[keep] - np.asarray(reference_lengths, float)[keep]
    scores = _scores([outcomes[i] for i in keep])
    scale = diff.std()
    if scale == 0:
        result["note"] = "no length variation: the length-controlled rate equals the raw rate"
        return result
    x = np.tanh(diff / scale)
    X = np.concatenate([x, x])[:, None]
    y = np.concatenate([np.ones_like(scores), np.zeros_like(scores)])
    w = np.concatenate([scores, 1 - scores])
    if w[y == 1].sum() == 0 or w[y == 0].sum() == 0:
        result["note"] = "all losses" if w[y == 1].sum() == 0 else "all wins"
        return result
    model = LogisticRegression(C=1e4, random_state=seed).fit(X, y, sample_weight=w)
    result.update(lc_win_rate=float(sigmoid(model.intercept_[0])), length_coefficient=float(model.coef_[0, 0]),
                  mean_length_difference=float(diff.mean()))
    return result
