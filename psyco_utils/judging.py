"""Chapter 02's stage, "Judging": score the pool on the seven principles, build the pairs and splits exactly as the
paper did, check the judge, and write ``psycopref/`` for the chapters after it.

    plan = judging.plan(chapter)                          # statements, pool, splits and the position-swap sample
    judged = judge.judge_together(plan.tasks())           # every judgment, cached before it is used
    result = judging.collect(chapter, plan, judged, judge)  # scores, reports, pairs, swap consistency, agreement
    judging.save(chapter, result)                         # psycopref/, its card, scored.parquet, the manifest

Examples are drawn from statements without a ``crisis`` flag (patterns, plus the LLM's second opinion in colab and
paper), so no example on the page is a crisis statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import pairs, paper
from .judge import CompareItem, ScoreItem, judged_set_report
from .layout import RunLayout
from .principles import PRINCIPLE_KEYS
from .show.base import integer, percent

__all__ = ["JudgingPlan", "RubricDemo", "JudgingResult", "HumanLabels", "plan", "rubric_demo", "orient_swap_verdicts",
           "collect", "human_labels", "upvote_check", "save"]

SCORE_TASK, SWAP_FIRST, SWAP_SECOND = "scoring pool responses", "swap check, first order", "swap check, swapped order"


@dataclass
class JudgingPlan:
    """What will be judged: the pool, the splits (drawn by statement before any score) and the position-swap sample
    (two responses to each of the first test statements, picked with the seed)."""

    statements: pd.DataFrame
    pool: pd.DataFrame
    split_of: dict[str, str]
    swap_first: pd.DataFrame
    swap_second: pd.DataFrame

    def statement_text(self, statement_ids) -> list[str]:
        text = self.statements.set_index("statement_id")["text"]
        return list(pd.Series(list(statement_ids), dtype=object).map(text))

    def tasks(self) -> dict[str, list]:
        """The three lists of judgments, for ``judge.judge_together``: sent together (three batches in Batch API
        mode, awaited once)."""
        questions = self.statement_text(self.swap_first["statement_id"])
        a, b = list(self.swap_first["response"]), list(self.swap_second["response"])
        return {SCORE_TASK: [ScoreItem(s, r) for s, r in zip(self.statement_text(self.pool["statement_id"]),
                                                              self.pool["response"])],
                SWAP_FIRST: [CompareItem(q, x, y) for q, x, y in zip(questions, a, b)],
                SWAP_SECOND: [CompareItem(q, y, x) for q, x, y in zip(questions, a, b)]}

    def summary(self) -> str:
        return (f"{integer(len(self.pool))} pool responses to {integer(self.pool['statement_id'].nunique())} "
                f"statements; {integer(len(self.swap_first))} pairs of test responses for the position-swap check.")


def plan(chapter) -> JudgingPlan:
    """Read chapter 01's statements and pool, draw the splits by statement, and draw the position-swap sample."""
    cfg, layout = chapter.cfg, RunLayout(chapter.run)
    statements = pd.read_parquet(layout.statements)
    pool = pd.read_parquet(layout.pool)
    split_of = pairs.assign_splits(list(statements["statement_id"]), cfg.splits.dev_fraction,
                                   cfg.splits.test_fraction, cfg.seed)
    test_pool = pool[pool["statement_id"].map(split_of) == "test"]
    swap_ids = sorted(sid for sid, n in test_pool["statement_id"].value_counts().items() if n >= 2)
    swap_ids = swap_ids[:cfg.judging.swap_check_pairs]
    sample = (test_pool[test_pool["statement_id"].isin(swap_ids)].groupby("statement_id")
              .sample(2, random_state=cfg.seed).sort_values("statement_id", kind="stable"))
    return JudgingPlan(statements, pool, split_of, sample.iloc[0::2].reset_index(drop=True),
                       sample.iloc[1::2].reset_index(drop=True))


@dataclass
class RubricDemo:
    """Two bundled responses (empathic and directive) to one statement, the rubric judge's scores, and the surface
    features behind them."""

    statement: str
    responses: dict[str, str]
    results: dict
    features: pd.DataFrame


def rubric_demo(judge, plan: JudgingPlan, styles: tuple[str, str] = ("empathic", "directive")) -> RubricDemo | None:
    """What moves the rubric judge, on the first bundled statement without a crisis flag; None for another judge."""
    if judge.config.backend != "rubric":
        return None
    from .data import load_bundled_corpus
    from .judge.rubric import rubric_features

    _, responses = load_bundled_corpus()
    kept = plan.statements[(plan.statements["source"] == "bundled") & ~plan.statements["crisis"].astype(bool)]
    by_statement = responses.pivot_table(index="statement_id", columns="style", values="text", aggfunc="first")
    usable = [sid for sid in kept["source_id"] if sid in by_statement.index
              and by_statement.loc[sid, list(styles)].notna().all()]
    if not usable:
        return None
    row = kept.set_index("source_id").loc[usable[0]]
    texts = {s: by_statement.at[usable[0], s] for s in styles}
    results = dict(zip(styles, judge.score_many([ScoreItem(row["text"], texts[s]) for s in styles], progress=False)))
    features = pd.DataFrame({s: rubric_features(row["text"], texts[s]) for s in styles})
    return RubricDemo(row["text"], texts, results, features)


def orient_swap_verdicts(first_overall, second_overall, verdicts_first, verdicts_swapped
                         ) -> tuple[list, list, int]:
    """Each compared pair oriented by its scores: (verdicts with the higher-scored response shown first, verdicts
    with it shown second, pairs left out because their scores tie or are missing)."""
    shown_first, shown_second, left_out = [], [], 0
    for a, b, v_ab, v_ba in zip(first_overall, second_overall, verdicts_first, verdicts_swapped):
        if np.isnan(a) or np.isnan(b) or a == b:
            left_out += 1
        elif a > b:  # the first response scored higher: it was shown first in the first order
            shown_first.append(v_ab)
            shown_second.append(v_ba)
        else:
            shown_first.append(v_ba)
            shown_second.append(v_ab)
    return shown_first, shown_second, left_out


@dataclass
class JudgingResult:
    """Chapter 02's result: the scored pool, how complete the judgments are, the pairs per split, the judge checks,
    and (after :func:`save`) the artifacts."""

    profile: str
    judge_label: str
    scored: pd.DataFrame
    score_report: dict
    swap_report: dict
    frames: dict[str, pd.DataFrame]
    drops: pd.DataFrame
    split_of: dict[str, str]
    min_gap: float
    swap: dict
    swap_left_out: int
    usage: dict
    statements: pd.DataFrame
    agreement: dict | None = None
    upvotes: dict | None = None
    artifacts: list[str] = field(default_factory=list)

    def usage_table(self) -> pd.DataFrame:
        labels = {"requested": "judgments asked for", "cache_hits": "answered from the cache",
                  "requests_sent": "judged now", "api_attempts": "API requests (retries included)",
                  "failed_now": "failed now", "cache_rows": "judgments in the cache",
                  "prompt_tokens": "prompt tokens (cache total)", "completion_tokens": "completion tokens (cache total)",
                  "cost_usd": "cost (US$, cache total)"}
        return pd.Series({label: self.usage[key] for key, label in labels.items()}, name="judge usage",
                         dtype=object).to_frame()

    def failures(self) -> pd.DataFrame:
        """Failed score judgments per reason (empty when every response was judged)."""
        failed = self.scored.loc[self.scored["judge_status"] != "ok", "judge_error"]
        return failed.str.split(":").str[0].value_counts().rename_axis("reason").rename("failed judgments").to_frame()

    def by_generator(self) -> pd.DataFrame:
        """Mean score per principle, overall and length per pool generator, best first."""
        columns = [*PRINCIPLE_KEYS, "overall", "chars"]
        return self.scored.groupby("generator")[columns].mean().sort_values("overall", ascending=False)

    def score_findings(self) -> list[str]:
        """Which principle's scores are the most concentrated on one value, and how the overall score spreads."""
        judged = self.scored[self.scored["judge_status"] == "ok"]
        if judged.empty:
            return ["No response was judged, so there are no scores to describe."]
        modal = {k: judged[k].value_counts(normalize=True).iloc[0] for k in PRINCIPLE_KEYS}
        narrow = max(modal, key=modal.get)
        wide = min(modal, key=modal.get)
        value = int(judged[narrow].mode().iloc[0])
        return [f"{narrow.capitalize()} separates responses least: {percent(modal[narrow])} of them get a {value}.",
                f"{wide.capitalize()} spreads the most: its commonest score covers {percent(modal[wide])} of responses.",
                f"The overall score runs from {judged['overall'].min():.2f} to {judged['overall'].max():.2f} "
                f"(median {judged['overall'].median():.2f})."]

    def correlation_findings(self) -> list[str]:
        """The most and the least correlated pair of principles (Spearman)."""
        corr = self.scored[list(PRINCIPLE_KEYS)].corr(method="spearman")
        pairs_ = [(corr.iat[i, j], a, b) for i, a in enumerate(PRINCIPLE_KEYS) for j, b in enumerate(PRINCIPLE_KEYS)
                  if i < j and not np.isnan(corr.iat[i, j])]
        if not pairs_:
            return ["Too few judged responses with varying scores to correlate the principles."]
        high, low = max(pairs_), min(pairs_)
        return [f"{high[1].capitalize()} and {high[2]} move together most ({high[0]:.2f}).",
                f"{low[1].capitalize()} and {low[2]} are the least related ({low[0]:.2f})."]

    def generator_findings(self) -> list[str]:
        ranked = self.by_generator()["overall"].dropna()
        if ranked.empty:
            return ["No generator has a judged response."]
        return [f"Ranked by mean overall score, {ranked.index[0]} comes first ({ranked.iloc[0]:.2f}) and "
                f"{ranked.index[-1]} last ({ranked.iloc[-1]:.2f})."]

    def theme_findings(self) -> list[str]:
        table = self.per_theme().drop(index="total")
        missing = list(table.index[table["test"] == 0])
        if not missing:
            return [f"All {len(table)} themes have test pairs, so chapter 3 can report accuracy per theme."]
        return [f"{len(missing)} of {len(table)} themes have no test pair ({', '.join(missing)}): chapter 3's "
                "accuracy per theme leaves them out."]

    def split_sizes(self) -> pd.DataFrame:
        return pd.DataFrame({s: {"statements": sum(v == s for v in self.split_of.values()),
                                 "statements with a pair": f["ID"].nunique(), "pairs": len(f)}
                             for s, f in self.frames.items()}).T.rename_axis("split")

    def per_theme(self) -> pd.DataFrame:
        table = pd.concat([f.assign(split=s) for s, f in self.frames.items()]).pivot_table(
            index="theme", columns="split", values="prefID", aggfunc="count", fill_value=0
        ).reindex(columns=list(pairs.SPLITS), fill_value=0)
        table.loc["total"] = table.sum()
        return table

    def pair_examples(self, n: int = 2) -> pd.DataFrame:
        """Training pairs to read (the widest gap and a middle one), from statements without a crisis flag."""
        safe = set(self.statements.loc[~self.statements["crisis"].astype(bool), "statement_id"])
        train = self.frames["train"]
        train = train[train["ID"].isin(safe)].sort_values("score_gap", ascending=False)
        return train.iloc[sorted({0, len(train) // 2})[:n]] if len(train) else train

    def swap_table(self) -> pd.DataFrame:
        s = self.swap
        rows = {"pairs compared in both orders": integer(s["pairs"]),
                "pairs with a failed comparison": integer(s["failed"]),
                "pairs left out (scores tie or missing)": integer(self.swap_left_out),
                "same response named in both orders": integer(s["consistent"]),
                "consistency": percent(s["consistency"]),
                "higher-scored response named in both orders": percent(s["prefers_dataset_chosen_both_orders"])}
        return pd.Series(rows, name="position-swap check").to_frame()

    def empty_splits_problem(self) -> str | None:
        """Why the pairs cannot be trained on (a split without pairs), or None."""
        return pairs.empty_splits_problem(self.frames)

    def splits_message(self) -> str:
        return self.empty_splits_problem() or "train, dev and test each hold pairs"

    def metrics(self) -> dict:
        return {"train_pairs": len(self.frames["train"]), "dev_pairs": len(self.frames["dev"]),
                "test_pairs": len(self.frames["test"]), "failed_judgments": self.score_report["failed"],
                "failed_judgments_by_reason": self.score_report["by_reason"],
                "swap_consistency": round(self.swap["consistency"], 3) if self.swap["pairs"] else None,
                "human_label_agreement": round(self.agreement["accuracy"], 4) if self.agreement else None,
                "upvote_agreement": (round(self.upvotes["result"]["agreement"], 4)
                                     if self.upvotes and self.upvotes["result"] else None),
                "judge_cost_usd": self.usage["cost_usd"]}

    def ours(self) -> dict[str, str]:
        return {"train pairs": integer(len(self.frames["train"])), "test pairs": integer(len(self.frames["test"])),
                "dev pairs": integer(len(self.frames["dev"])), "judge": self.judge_label,
                "position-swap consistency": percent(self.swap["consistency"]) if self.swap["pairs"]
                else "not measured (no usable pairs)",
                "agreement with human labels": (f"{percent(self.agreement['accuracy'])} "
                                                f"({self.agreement.get('labelled by', 'labels file')}, "
                                                f"{integer(self.agreement['pairs'])} pairs)")
                if self.agreement else "no labels given"}

    @staticmethod
    def paper_numbers() -> dict[str, str]:
        d, h = paper.DATASET, paper.HUMAN_VALIDATION
        return {"train pairs": integer(d["train pairs"]), "test pairs": integer(d["test pairs"]),
                "dev pairs": f"{percent(d['dev share of train statements'], 0)} of train statements",
                "judge": paper.JUDGE_MODEL,
                "agreement with human labels": f"{percent(h['agreement with dataset labels'])} "
                                               f"({h['therapists']} therapists, {h['labelled pairs']} pairs)"}

    def findings(self) -> list[str]:
        sizes = {s: len(f) for s, f in self.frames.items()}
        points = [f"The {self.judge_label} judged {integer(self.score_report['answered'])} of "
                  f"{integer(self.score_report['asked'])} pool responses.",
                  f"{integer(sizes['train'])} train, {integer(sizes['dev'])} dev and {integer(sizes['test'])} test "
                  f"pairs, against the paper's {integer(paper.DATASET['train pairs'])} train and "
                  f"{integer(paper.DATASET['test pairs'])} test pairs: the {self.profile} profile judges "
                  f"{integer(self.scored['statement_id'].nunique())} statements, the paper "
                  f"{integer(paper.DATASET['statements after cleaning'])}."]
        if self.swap["pairs"]:
            points.append(f"The judge named the same response in both orders on "
                          f"{percent(self.swap['consistency'])} of {integer(self.swap['pairs'])} "
                          f"{'pair' if self.swap['pairs'] == 1 else 'pairs'}"
                          + (", as the rubric judge must by construction: this checks the code path, not a bias."
                             if self.judge_label.startswith("offline") else "."))
        return points


def collect(chapter, plan: JudgingPlan, judged: dict[str, list], judge) -> JudgingResult:
    """Scores, completeness reports, pairs per split, the position-swap consistency and (with a labels file) the
    agreement with human labels, from the judgments of :meth:`JudgingPlan.tasks`."""
    from .config import judge_summary

    cfg = chapter.cfg
    rerun = f"run `psyco-book run --profile {cfg.name} --only 02`"
    scored = pairs.scores_frame(plan.pool, judged[SCORE_TASK])
    score_report = judged_set_report(judged[SCORE_TASK], "pool responses", cfg.judge, rerun)
    swap_report = judged_set_report(judged[SWAP_FIRST] + judged[SWAP_SECOND], "position-swap comparisons",
                                    cfg.judge, rerun)
    frames, drops = pairs.build_pairs(scored, plan.statements, plan.split_of, min_gap=cfg.splits.min_score_gap)
    overall = scored.set_index("response_id")["overall"]
    chosen_first, chosen_second, left_out = orient_swap_verdicts(
        plan.swap_first["response_id"].map(overall).to_numpy(dtype=float),
        plan.swap_second["response_id"].map(overall).to_numpy(dtype=float),
        [v.overall for v in judged[SWAP_FIRST]], [v.overall for v in judged[SWAP_SECOND]])
    return JudgingResult(cfg.name, judge_summary(cfg.judge), scored, score_report, swap_report, frames, drops,
                         plan.split_of, cfg.splits.min_score_gap, pairs.swap_consistency(chosen_first, chosen_second),
                         left_out, judge.usage(), plan.statements)


@dataclass
class HumanLabels:
    """The labels file chapter 02 measured agreement on: who labelled, the file's name, its first rows, the error a
    bad row gets (from the same validation, on a copy with one bad cell), and the agreement."""

    source: str
    file_name: str
    example: pd.DataFrame
    counts: dict | None
    bad_row_error: str
    agreement: dict


def _bad_row_error(labels: pd.DataFrame, folder: Path, frames: pd.DataFrame) -> str:
    """The error :func:`pairs.human_agreement` raises for a copy of ``labels`` whose first ``human_choice`` is
    not A or B (the validation itself, not a description of it)."""
    broken = labels.head(3).copy()
    broken.loc[broken.index[0], "human_choice"] = "both"
    path = folder / "labels_with_a_bad_row.csv"
    broken.to_csv(path, index=False)
    try:
        pairs.human_agreement(frames, path)
    except pairs.HumanLabelsError as exc:
        return str(exc)
    finally:
        path.unlink(missing_ok=True)
    raise AssertionError("a labels file with human_choice 'both' was accepted")


def human_labels(chapter, result: JudgingResult) -> HumanLabels | None:
    """Agreement of a labels file with the dataset's labels (``result.agreement`` is set too): the profile's
    ``judging.human_labels_path``, or, in a profile without one whose pool has the bundled styles, a file written
    from the corpus authors' intent (:func:`pairs.intended_style_labels`, under ``human_labels/``).  None when
    neither exists."""
    cfg = chapter.cfg
    every_pair = pd.concat(result.frames.values(), ignore_index=True)
    folder = Path(chapter.run) / "human_labels"
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.judging.human_labels_path:
        path, counts, source = Path(cfg.judging.human_labels_path), None, "the profile's labels file"
    else:
        labels, counts = pairs.intended_style_labels(every_pair, cfg.seed)
        if labels.empty:
            return None
        path, source = folder / "corpus_author_labels.csv", "the bundled corpus's authors' intended order"
        labels.to_csv(path, index=False)
    result.agreement = {**pairs.human_agreement(every_pair, path), "labelled by": source}
    labels = pd.read_csv(path, dtype={"ID": str})
    return HumanLabels(source, path.name, labels.head(3), counts, _bad_row_error(labels, folder, every_pair),
                       result.agreement)


def upvote_check(chapter, judge, result: JudgingResult) -> dict | None:
    """The judge against therapists' upvotes (:func:`psyco_utils.agreement.upvote_agreement`) on the answers chapter
    01 kept beside the statements; None when no source of the profile published upvotes.  The result is kept in
    ``result.upvotes`` for the manifest."""
    from .agreement import upvote_agreement

    layout = RunLayout(chapter.run)
    answers = pd.read_parquet(layout.answers) if layout.answers.exists() else None
    result.upvotes = upvote_agreement(judge, answers, result.statements, chapter.cfg)
    return result.upvotes


def save(chapter, result: JudgingResult) -> JudgingResult:
    """Write ``psycopref/`` (a DatasetDict in the released schema plus ``theme``, with its dataset card) and
    ``pool/scored.parquet``, and record the stage in the run manifest."""
    layout = RunLayout(chapter.run)
    dataset = pairs.to_dataset_dict(result.frames)
    dataset.save_to_disk(str(layout.preference_data))
    judge_desc = f"{chapter.cfg.judge.backend} backend, model {chapter.cfg.judge.model}"
    layout.dataset_card.write_text(pairs.dataset_card(result.frames, result.profile, judge_desc,
                                                                    result.drops))
    result.scored.drop(columns=["rationale"]).to_parquet(layout.scored_pool, index=False)
    result.artifacts = [layout.relative(layout.preference_data) + "/"] + [
        layout.relative(p) for p in (layout.dataset_card, layout.scored_pool, layout.judgments)]
    chapter.finish(result.metrics())
    return result
