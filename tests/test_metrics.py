"""Reward-model metrics against scikit-learn and hand computations; win-rate accounting and the length-controlled model."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from psyco_utils import metrics


def test_metrics_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    rc, rr = rng.normal(0.5, 1, 500), rng.normal(0, 1, 500)
    out = metrics.preference_metrics(rc, rr, seed=3)
    margin, label = metrics.orient_pairs(rc, rr, seed=3)
    assert set(label) == {0, 1}
    assert out["auc"] == pytest.approx(roc_auc_score(label, margin))
    assert out["brier"] == pytest.approx(brier_score_loss(label, metrics.sigmoid(margin)))
    assert out["accuracy"] == pytest.approx(np.mean(rc > rr))


def test_ece_hand_case_and_brute_force():
    p = np.array([0.05, 0.15, 0.95, 0.85, 0.55])
    y = np.array([0, 0, 1, 0, 1])
    # bins of width 0.5: [0, .5] holds p=.05,.15 (y 0,0); (.5, 1] holds .95,.85,.55 (y 1,0,1)
    expected = 2 / 5 * abs(0 - 0.1) + 3 / 5 * abs(2 / 3 - (0.95 + 0.85 + 0.55) / 3)
    assert metrics.expected_calibration_error(p, y, n_bins=2) == pytest.approx(expected)
    rng = np.random.default_rng(1)
    p, y = rng.random(300), rng.integers(0, 2, 300)
    brute = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        mask = (p > lo) & (p <= hi) if b else (p >= lo) & (p <= hi)
        if mask.any():
            brute += mask.sum() / 300 * abs(y[mask].mean() - p[mask].mean())
    assert metrics.expected_calibration_error(p, y, 10) == pytest.approx(brute)


def test_accuracy_invariant_to_orientation_and_ties_half():
    rc, rr = np.array([1.0, 2.0, 0.0, 3.0]), np.array([0.0, 3.0, 0.0, 1.0])
    accs = {metrics.preference_metrics(rc, rr, seed=s)["accuracy"] for s in range(5)}
    assert accs == {(1 + 0 + 0.5 + 1) / 4}


def test_perfect_separation():
    rc, rr = np.arange(10, 20, dtype=float), np.arange(0, 10, dtype=float)
    out = metrics.preference_metrics(rc, rr, seed=0)
    assert out["accuracy"] == 1.0 and out["auc"] == 1.0


def test_bootstrap_known_cases():
    point, low, high = metrics.bootstrap_ci(np.full(50, 0.3), np.mean, n_boot=200)
    assert point == low == high == pytest.approx(0.3)
    covered = 0
    for rep in range(100):
        sample = np.random.default_rng(rep).random(80) < 0.7
        _, low, high = metrics.bootstrap_ci(sample.astype(float), np.mean, n_boot=300, seed=rep)
        covered += low <= 0.7 <= high
    assert covered >= 88


@pytest.mark.parametrize("first, second, outcome", [
    ("A", "B", "win"), ("B", "A", "loss"), ("A", "A", "tie"), ("B", "B", "tie"), ("tie", "tie", "tie"),
    ("A", "tie", "tie"), ("tie", "B", "tie"), ("B", "tie", "tie"), ("tie", "A", "tie"), (None, "B", None)])
def test_combine_two_orders(first, second, outcome):
    assert metrics.combine_two_orders(first, second) == outcome


def test_win_rate_formula_and_table():
    assert metrics.win_rate(["win", "win", "tie", "loss", None]) == pytest.approx((2 + 0.5) / 4)
    import pandas as pd

    frame = pd.DataFrame({"policy": ["p"] * 5, "outcome": ["win", "win", "tie", "loss", None]})
    row = metrics.win_rate_table(frame, ["policy"], n_boot=100).loc["p"]
    assert row["n"] == 4 and row["excluded"] == 1 and row["win_rate"] == pytest.approx(0.625)
    assert row["ci_low"] <= 0.625 <= row["ci_high"]


def _simulate(a, b, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(100, 20, n)
    pol = ref + rng.normal(60, 40, n)  # the policy writes much more on average
    diff = pol - ref
    p = metrics.sigmoid(a + b * np.tanh(diff / diff.std()))
    outcomes = np.where(rng.random(n) < p, "win", "loss").tolist()
    return outcomes, pol, ref


def test_length_controlled_recovers_known_length_bias():
    outcomes, pol, ref = _simulate(a=0.0, b=3.0)
    out = metrics.length_controlled_win_rate(outcomes, pol, ref)
    assert out["win_rate"] > 0.7
    assert abs(out["lc_win_rate"] - 0.5) < 0.05
    assert out["length_coefficient"] > 2
    outcomes, pol, ref = _simulate(a=1.0, b=3.0, seed=1)
    out = metrics.length_controlled_win_rate(outcomes, pol, ref)
    assert abs(out["lc_win_rate"] - metrics.sigmoid(1.0)) < 0.05


def test_length_controlled_degenerate_inputs():
    assert metrics.length_controlled_win_rate(["win"] * 5, [10] * 5, [5] * 5)["note"].startswith("no length")
    assert metrics.length_controlled_win_rate(["win", "win"], [10, 20], [5, 5])["note"] == "all wins"
    assert metrics.length_controlled_win_rate([None, None], [1, 2], [1, 1])["note"] == "no usable outcomes"
