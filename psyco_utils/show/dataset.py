"""Figures of chapter 01, "Building the dataset": cleaning funnel, lengths, themes, pool generators."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .base import FIGURE_WIDTH_IN

__all__ = ["filter_funnel", "length_histogram", "category_bars", "loss_curve", "grouped_boxplot"]


def filter_funnel(counts: pd.DataFrame, title: str = "Statements left after each step"):
    """Horizontal bars: statements remaining after each cleaning step (chapter 01)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.45 * len(counts) + 1))
    ax.barh(counts["step"][::-1], counts["statements"][::-1], color="#4C72B0")
    for y, (n, removed) in enumerate(zip(counts["statements"][::-1], counts["removed"][::-1])):
        ax.text(n, y, f" {n:,}" + (f"  (-{removed:,})" if removed else ""), va="center", fontsize=9)
    ax.set_xlabel("statements (count)")
    ax.set_ylabel("cleaning step")
    ax.set_title(title)
    ax.set_xlim(0, counts["statements"].max() * 1.25)
    fig.tight_layout()
    return fig


def length_histogram(lengths: dict[str, pd.Series], window: tuple[int, int] | None = None, bins: int = 40,
                     title: str = "Length of statements", xlabel: str = "length (characters)",
                     ylabel: str = "texts (count)"):
    """Overlaid histograms of character lengths, with the kept window shaded (chapter 01)."""
    fig, ax = plt.subplots()
    hi = max(float(s.max()) for s in lengths.values() if len(s))
    edges = np.linspace(0, hi, bins + 1)
    for label, series in lengths.items():
        ax.hist(series, bins=edges, alpha=0.55, label=f"{label} (n={len(series):,})")
    if window:
        ax.axvspan(*window, color="green", alpha=0.08, label=f"kept: {window[0]}-{window[1]} chars")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def category_bars(counts: pd.Series, title: str, xlabel: str = "count", color: str = "#55A868",
                  ylabel: str | None = None):
    """Horizontal bar chart of counts per category (themes, generators, ...)."""
    counts = counts.sort_values()
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 0.35 * len(counts) + 1.2))
    ax.barh(counts.index.astype(str), counts.values, color=color)
    for y, v in enumerate(counts.values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if ylabel is not None else (counts.index.name or "category"))
    ax.set_title(title)
    ax.set_xlim(0, counts.max() * 1.2)
    fig.tight_layout()
    return fig


def loss_curve(losses: list[float], title: str, xlabel: str = "optimizer step", ylabel: str = "loss (nats per token)"):
    fig, ax = plt.subplots()
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label="per step")
    if len(losses) >= 10:
        k = max(5, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(range(k, len(losses) + 1), smooth, lw=2, label=f"moving mean ({k} steps)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def grouped_boxplot(frame: pd.DataFrame, value: str, group: str, title: str, ylabel: str):
    """One box per group of ``value`` (e.g. response length per pool generator)."""
    order = frame.groupby(group)[value].median().sort_values().index
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN, 3.8))
    ax.boxplot([frame.loc[frame[group] == g, value] for g in order], tick_labels=list(order), vert=True)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(group)
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    return fig
