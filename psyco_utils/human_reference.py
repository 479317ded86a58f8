"""A human therapist as a second reference in chapter 06, beyond the paper.

Some statement sources publish licensed therapists' answers with upvotes (counsel-chat: one row per answer, with its
votes).  Chapter 01 keeps those answers beside the statements (``statements/answers.parquet``, ``rank`` 1 the most
upvoted).  Here each policy's answer to a held-out statement is compared with the statement's top-voted human answer,
with the same judge, the same swap of positions and the same tie rule as against the model reference, per principle
and overall.  No published result reports this comparison.

In the tiny profile no source has human answers: the bundled corpus's empathic responses, written for this book,
stand in for them, and :attr:`HumanReference.stand_in` says so for the page.

    against_human = human_reference.evaluate_against_human(setup, answers)   # None when eval.human_reference is off

which runs :func:`prepare` (the statements that have a human answer), :func:`policy_answers` (the chapter's own
answers where it can) and :func:`judge_policies` (win rates against the human answers).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import evaluate
from .evaluate import HUMAN_VERDICTS_FILE, judge_against_reference

__all__ = ["HUMAN_VERDICTS_FILE", "HumanReference", "HumanReferenceResult", "human_answers", "prepare",
           "policy_answers", "judge_policies", "evaluate_against_human"]



@dataclass
class HumanReference:
    """The held-out statements that have a human answer (``items``: ID, question, answer, upvotes), whether the
    answers are the bundled corpus's stand-ins, and how many held-out statements had none (left out, counted)."""

    items: pd.DataFrame
    stand_in: bool
    without_answer: int
    source: str

    @property
    def n(self) -> int:
        return len(self.items)


@dataclass
class HumanReferenceResult:
    """Win rates of each policy against the human answers: ``win_rates`` per (policy, aspect), as
    :func:`psyco_utils.metrics.win_rate_table` gives them; ``verdicts`` one row per comparison."""

    reference: HumanReference
    policies: list[str]
    win_rates: pd.DataFrame
    verdicts: pd.DataFrame

    def rate(self, policy: str, aspect: str = "overall") -> float:
        return float(self.win_rates.loc[(policy, aspect), "win_rate"])


def human_answers(cfg, layout) -> tuple[pd.DataFrame, bool, str]:
    """(statement_id, answer, upvotes) of each statement's top-voted human answer, whether they are stand-ins, and
    where they come from.  Sources with upvotes first (``statements/answers.parquet``, rank 1, votes present); with
    none, the bundled corpus's empathic responses stand in for them."""
    from .data import load_bundled_corpus, normalize_text

    if layout.answers.exists():
        answers = pd.read_parquet(layout.answers)
        voted = answers[(answers["rank"] == 1) & answers["upvotes"].notna()]
        if len(voted):
            sources = ", ".join(sorted(voted["source"].astype(str).unique()))
            return voted[["statement_id", "answer", "upvotes"]].reset_index(drop=True), False, sources
    labels = {s.name or s.kind for s in cfg.data.sources if s.kind == "bundled"}
    statements = layout.load_statements()
    bundled = statements[statements["source"].isin(labels)] if "source" in statements else statements.iloc[:0]
    if bundled.empty:
        return pd.DataFrame(columns=["statement_id", "answer", "upvotes"]), False, "none"
    _, responses = load_bundled_corpus()
    empathic = responses[responses["style"] == "empathic"].set_index("statement_id")["text"]
    found = bundled[bundled["source_id"].isin(empathic.index)]
    frame = pd.DataFrame({"statement_id": found["statement_id"].astype(str),
                          "answer": found["source_id"].map(empathic).map(normalize_text), "upvotes": float("nan")})
    return frame.reset_index(drop=True), True, "the bundled corpus's empathic responses"


def prepare(setup) -> HumanReference:
    """The held-out statements with a human answer: the chapter's own statements first, then other test statements
    (drawn with the profile's seed) up to ``eval.human_reference_statements`` (default ``eval.n_statements``)."""
    cfg = setup.cfg
    answers, stand_in, source = human_answers(cfg, setup.layout)
    by_id = answers.drop_duplicates("statement_id").set_index("statement_id")
    limit = cfg.eval.human_reference_statements or cfg.eval.n_statements
    own = setup.items[setup.items["ID"].astype(str).isin(by_id.index)]
    chosen = own[["ID", "question"]]
    if len(chosen) < limit and setup.test_statements is not None:
        others = setup.test_statements[["ID", "question"]]
        others = others[others["ID"].astype(str).isin(by_id.index) & ~others["ID"].isin(own["ID"])].sort_values("ID")
        extra = others.sample(n=min(limit - len(chosen), len(others)), random_state=cfg.seed)
        chosen = pd.concat([chosen, extra])
    chosen = chosen.head(limit).reset_index(drop=True)
    ids = chosen["ID"].astype(str)
    items = chosen.assign(answer=ids.map(by_id["answer"]).tolist(), upvotes=ids.map(by_id["upvotes"]).tolist())
    return HumanReference(items=items, stand_in=stand_in, without_answer=int((~setup.items["ID"].astype(str).isin(
        by_id.index)).sum()), source=source)


def policy_answers(setup, human: HumanReference, answers: dict) -> dict[str, list[str]]:
    """Each policy's unconstrained answer to every human-reference statement: the chapter's own answers where the
    statement is one of its held-out statements, newly generated (one load per policy) for the others."""
    cfg, position = setup.cfg, {str(i): k for k, i in enumerate(setup.items["ID"])}
    ids = human.items["ID"].astype(str).tolist()
    missing = [k for k, i in enumerate(ids) if i not in position]
    out = {}
    for name, path in setup.policies.items():
        texts = [answers["no constraint"][name][position[i]] if i in position else None for i in ids]
        if missing:
            questions = [human.items["question"].iloc[k] for k in missing]
            new = evaluate.generate_for_eval(path, cfg, questions, False, seed=cfg.seed)
            for k, text in zip(missing, new):
                texts[k] = text
        out[name] = texts
    return out


def judge_policies(setup, human: HumanReference, answers: dict[str, list[str]]) -> HumanReferenceResult:
    """Every policy against the human answers, both orders, per principle and overall (the chapter's protocol)."""
    from .metrics import win_rate_table

    questions, reference = human.items["question"].tolist(), human.items["answer"].tolist()
    frames = [judge_against_reference(setup.judge, questions, answers[name], reference).assign(policy=name)
              for name in setup.policies] if human.n else []
    verdicts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["item", "aspect", "verdict_policy_first", "verdict_policy_second", "outcome", "policy"])
    rates = win_rate_table(verdicts, ["policy", "aspect"], "outcome", n_boot=setup.cfg.eval.bootstrap_samples,
                           seed=setup.cfg.seed)
    return HumanReferenceResult(reference=human, policies=list(setup.policies), win_rates=rates, verdicts=verdicts)


def evaluate_against_human(setup, answers: dict) -> HumanReferenceResult | None:
    """The whole comparison (:func:`prepare`, :func:`policy_answers`, :func:`judge_policies`), or None when
    ``eval.human_reference`` is off."""
    if not setup.cfg.eval.human_reference:
        return None
    human = prepare(setup)
    return judge_policies(setup, human, policy_answers(setup, human, answers) if human.n else {})
