"""How often the judge's pairwise verdict agrees with another signal of which response is better (chapters 02, 03).

:func:`two_order_agreement` is the one protocol: the judge's ``compare`` runs on every pair in both presentation
orders; the two verdicts combine as in chapter 06 (:func:`psyco_utils.metrics.combine_two_orders`: both orders for
the better response is agreement, both against it is disagreement, anything else a tie that counts one half); a
failed judgment leaves the pair out and is counted.  Every judgment goes through the judge's cache first.

Two signals use it:

* **therapists' upvotes** (chapter 02): sources such as counsel-chat publish several licensed therapists' answers to
  one question with the readers' upvotes.  :func:`upvote_pairs` takes pairs of answers to one question whose upvotes
  differ; :func:`upvote_agreement` reports how often the judge prefers the better-voted answer.  Upvotes are a weak
  proxy for expert judgement: readers vote, not a panel, early answers collect more votes, and a gap of one vote is
  close to noise.
* **the reward test pairs** (chapter 03): an LLM used as a ranker (:mod:`psyco_utils.reward.ranker`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from . import metrics

__all__ = ["UPVOTE_PAIR_COLUMNS", "two_order_agreement", "upvote_pairs", "upvote_agreement"]

UPVOTE_PAIR_COLUMNS = ["statement_id", "question", "better", "worse", "upvotes_better", "upvotes_worse"]
_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def _kappa(first, swapped) -> float:
    """Cohen's kappa between the verdicts of both orders and the label (A in the first order, B in the swapped one);
    a tie is a verdict of its own, which never agrees with the label."""
    from sklearn.metrics import cohen_kappa_score

    verdicts = [str(v).upper() for v in (*first, *swapped)]
    labels = ["A"] * len(first) + ["B"] * len(swapped)
    if len(set(verdicts) | set(labels)) < 2:
        return float("nan")
    return float(cohen_kappa_score(labels, verdicts))


def two_order_agreement(judge, questions, better, worse, n_boot: int = 1000, seed: int = 0,
                        task: str = "agreement pairs") -> dict:
    """The judge on each (question, better, worse) in both orders: ``pairs`` asked, ``judged`` (both orders
    answered), ``failed``, ``agree`` / ``ties`` / ``disagree``, ``agreement`` ((agree + ties / 2) / judged) with its
    95% bootstrap interval ``ci_low`` / ``ci_high`` over pairs, ``strict_agreement`` (agree / judged) and
    ``cohen_kappa`` (with ``kappa_low`` / ``kappa_high``) between the verdicts of both orders and the label."""
    from .judge import CompareItem

    questions, better, worse = list(questions), list(better), list(worse)
    first = judge.compare_many([CompareItem(q, b, w) for q, b, w in zip(questions, better, worse)],
                               progress=False, task=f"{task}, better shown first")
    swapped = judge.compare_many([CompareItem(q, w, b) for q, b, w in zip(questions, better, worse)],
                                 progress=False, task=f"{task}, better shown second")
    usable = [(a.overall, b.overall) for a, b in zip(first, swapped) if a.status == "ok" and b.status == "ok"]
    outcomes = [metrics.combine_two_orders(a, b) for a, b in usable]
    scores = np.array([_SCORE[o] for o in outcomes], dtype=float)
    point, low, high = metrics.bootstrap_ci(scores, np.mean, n_boot, seed)
    kappa_of = (lambda idx: _kappa([usable[i][0] for i in idx], [usable[i][1] for i in idx]))
    kappa = kappa_of(range(len(usable)))
    _, k_low, k_high = metrics.bootstrap_ci(np.arange(len(usable)), lambda idx: kappa_of(idx), n_boot, seed)
    return {"pairs": len(questions), "judged": len(usable), "failed": len(questions) - len(usable),
            "agree": outcomes.count("win"), "ties": outcomes.count("tie"), "disagree": outcomes.count("loss"),
            "agreement": point, "ci_low": low, "ci_high": high,
            "strict_agreement": outcomes.count("win") / len(usable) if usable else float("nan"),
            "cohen_kappa": kappa, "kappa_low": k_low, "kappa_high": k_high}


def upvote_pairs(answers: pd.DataFrame, statements: pd.DataFrame, min_gap: int = 1, max_pairs: int | None = None,
                 seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Pairs of answers to one statement whose upvotes differ by at least ``min_gap``, the better-voted one first,
    from chapter 01's ``answers.parquet`` (``statement_id``, ``answer``, ``upvotes``) and ``statements.parquet``
    (``statement_id``, ``text``, ``crisis``).  Statements flagged for crisis language are left out (their answers
    are not judged for this check).  At most ``max_pairs`` pairs, drawn with ``seed``.  Also returns how many
    answers and pairs each step kept, so nothing is dropped without a count."""
    voted = answers[pd.to_numeric(answers["upvotes"], errors="coerce").notna()].astype({"upvotes": float})
    text = statements.set_index("statement_id")["text"]
    crisis = set(statements.loc[statements["crisis"].astype(bool), "statement_id"])
    counts = {"answers": len(answers), "answers with upvotes": len(voted)}
    voted = voted[~voted["statement_id"].isin(crisis) & voted["statement_id"].isin(text.index)]
    counts["answers to statements without a crisis flag"] = len(voted)
    rows, ties = [], 0
    for sid, group in voted.groupby("statement_id", sort=True):
        for a, b in itertools.combinations(group.to_dict("records"), 2):
            if abs(a["upvotes"] - b["upvotes"]) < min_gap:
                ties += 1
                continue
            hi, lo = (a, b) if a["upvotes"] > b["upvotes"] else (b, a)
            rows.append((sid, text[sid], hi["answer"], lo["answer"], int(hi["upvotes"]), int(lo["upvotes"])))
    pairs = pd.DataFrame(rows, columns=UPVOTE_PAIR_COLUMNS)
    counts.update({"pairs of answers to one statement": len(rows) + ties,
                   f"pairs whose upvotes differ by less than {min_gap}": ties, "pairs with an upvote gap": len(rows)})
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = pairs.sample(max_pairs, random_state=seed).sort_index()
    counts["pairs judged (the sample)"] = len(pairs)
    return pairs.reset_index(drop=True), counts


def upvote_agreement(judge, answers: pd.DataFrame, statements: pd.DataFrame, cfg) -> dict | None:
    """How often the judge prefers the better-voted of two therapists' answers (``judging.upvote_pairs``,
    ``judging.upvote_min_gap``), with the counts of :func:`upvote_pairs`; None when no source published upvotes or
    the check is off."""
    if not cfg.judging.upvote_pairs or answers is None or answers.empty or answers["upvotes"].isna().all():
        return None
    pairs, counts = upvote_pairs(answers, statements, cfg.judging.upvote_min_gap, cfg.judging.upvote_pairs,
                                 cfg.seed)
    if pairs.empty:
        return {"counts": counts, "result": None, "pairs": pairs}
    result = two_order_agreement(judge, pairs["question"], pairs["better"], pairs["worse"],
                                 n_boot=cfg.reward.bootstrap_samples, seed=cfg.seed, task="upvoted answers")
    return {"counts": counts, "result": result, "pairs": pairs}
