"""Figures of chapter 03, "The reward model": training curve, reliability, margins, accuracy by group."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .base import FIGURE_WIDTH_IN

__all__ = ["reward_training_curve", "reliability_diagram", "margin_histogram", "accuracy_by_group"]


def reward_training_curve(steps: pd.DataFrame, epochs: pd.DataFrame, title: str = "Reward-model training"):
    """Bradley-Terry loss per logging step (train) and after each epoch (dev), against the optimizer step."""
    fig, ax = plt.subplots()
    if len(steps):
        ax.plot(steps["step"], steps["loss"], marker=".", lw=1.2, label="train (mean over logging window)")
    if len(epochs):
        ax.plot(epochs["step"], epochs["dev loss"], marker="o", lw=2, label="dev (after each epoch)")
        if "kept" in epochs:
            kept = epochs[epochs["kept"] == "yes"]
            ax.scatter(kept["step"], kept["dev loss"], s=160, facecolors="none", edgecolors="black",
                       label="checkpoint kept", zorder=3)
    ax.axhline(np.log(2), color="grey", ls=":", lw=1, label="chance (log 2)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("Bradley-Terry loss (nats per pair)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reliability_diagram(tables: dict[str, pd.DataFrame], title: str = "Reliability diagram"):
    """Observed frequency against mean predicted probability per equal-width bin, one line per model, with the
    number of pairs per bin underneath (tables from ``metrics.reliability_table``)."""
    fig, (ax, counts_ax) = plt.subplots(2, 1, figsize=(FIGURE_WIDTH_IN, 5.2), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    n_models = max(1, len(tables))
    for k, (name, table) in enumerate(tables.items()):
        filled = table[table["count"] > 0]
        ax.plot(filled["mean_predicted"], filled["observed"], marker="o", lw=1.5, label=name)
        width = (table["bin_high"] - table["bin_low"]).to_numpy() / (n_models + 1)
        counts_ax.bar(table["bin_low"] + width * (k + 0.5), table["count"], width=width, align="edge", label=name)
    n_bins = len(next(iter(tables.values()))) if tables else 0
    ax.set_ylabel("observed frequency\n(first response preferred)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title} ({n_bins} equal-width bins)")
    ax.legend(fontsize=8, loc="upper left")
    counts_ax.set_xlabel("predicted probability that the first response is preferred, sigmoid(r_first - r_second)")
    counts_ax.set_ylabel("pairs (count)")
    fig.tight_layout()
    return fig


def margin_histogram(margins: dict[str, np.ndarray], title: str = "Reward margin on the test pairs", bins: int = 30,
                     xlabel: str = "reward margin r(chosen) - r(rejected) (reward units)"):
    """Histogram of r(chosen) - r(rejected) per model; mass right of zero is pairs ranked correctly."""
    fig, ax = plt.subplots()
    values = np.concatenate([np.asarray(m, float) for m in margins.values()]) if margins else np.zeros(1)
    edges = np.linspace(min(values.min(), -1e-6), max(values.max(), 1e-6), bins + 1)
    for name, m in margins.items():
        m = np.asarray(m, float)
        ax.hist(m, bins=edges, alpha=0.6, label=f"{name} ({(m > 0).mean():.0%} of {len(m)} pairs > 0)")
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs (count)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_by_group(table: pd.DataFrame, title: str, ylabel: str = "", chance: float | None = 0.5):
    """Horizontal bars of accuracy per group with 95% intervals and pair counts (``reward.accuracy_by`` tables)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.42 * len(table) + 1.4))
    labels = [str(i) for i in table.index]
    acc = table["accuracy"].astype(float).to_numpy()
    err = np.vstack([acc - table["ci_low"].astype(float).to_numpy(), table["ci_high"].astype(float).to_numpy() - acc])
    y = np.arange(len(table))
    ax.barh(y, acc, xerr=err, color="#4C72B0", alpha=0.85, capsize=3)
    for yi, a, n in zip(y, acc, table["pairs"]):
        ax.text(0.01, yi, f"{a:.0%} (n={int(n)})", va="center", color="white", fontsize=8)
    if chance is not None:
        ax.axvline(chance, color="grey", ls=":", lw=1, label="chance")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("pairwise accuracy (share of pairs with r(chosen) > r(rejected)), 95% bootstrap interval")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig
