"""What a policy writes, measured without a judge: its mix of response styles, its variety, and its repetition.

The bundled corpus answers every statement in five styles (empathic, generic, directive, dismissive, rambling; see
``psyco_utils/corpus/compose.py``).  A simple classifier trained on those answers (TF-IDF over words and word pairs,
then logistic regression) gives each sample its nearest style, or :data:`UNCLASSIFIABLE` when no style gets at least
:data:`MIN_CONFIDENCE` of the probability: a sample that is none of the styles, or an even blend of several, is not
forced into one.  Chapters 04 and 05 use it to show what preference learning changed in a policy's answers:

* the share of samples nearest each style (:func:`style_shares`);
* distinct-n, the distinct word n-grams over all n-grams of all samples (:func:`distinct_n`; Li et al., 2016);
* the repeated-4-gram rate, the share of a sample's word 4-grams that already occurred earlier in the same sample
  (:func:`repeated_ngram_rate`), which rises when a policy loops;
* the change of the empathic share between two policies on the same statements, with a paired bootstrap interval
  over statements (:func:`style_share_change`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = ["STYLES", "UNCLASSIFIABLE", "MIN_CONFIDENCE", "MAX_REPEATED_4GRAMS", "MIN_CLASSIFIABLE", "StyleClassifier",
           "fit_style_classifier", "style_classifier", "words", "distinct_n", "repeated_ngram_rate", "style_shares",
           "style_profile", "style_table", "style_share_change", "StyleComparison", "compare_styles", "CUE_STRING",
           "CUE_SENTENCES", "degenerate_answers", "TRAINING_CORRUPTIONS", "corrupt", "rank_degenerate",
           "require_style_targets", "bundled_styled_answers"]

#: The five styles of the bundled corpus, from the best counselling to the worst kinds of answer.
STYLES = ("empathic", "generic", "directive", "dismissive", "rambling")
#: The label of a sample that no style claims with at least :data:`MIN_CONFIDENCE`.
UNCLASSIFIABLE = "unclassifiable"
#: The least probability the nearest style must have for a sample to count as that style.
MIN_CONFIDENCE = 0.5
#: Chapters 04 and 05 require every policy's repeated-4-gram rate to stay at or below this ...
MAX_REPEATED_4GRAMS = 0.05
#: ... and at least this share of the base policy's samples to be classifiable as a style.
MIN_CLASSIFIABLE = 0.8

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-cased words (letters, digits, apostrophes) of a text."""
    return _WORD.findall(text.lower())


@dataclass
class StyleClassifier:
    """A fitted TF-IDF + logistic-regression pipeline over the five styles, and the confidence it needs."""

    pipeline: object
    min_confidence: float = MIN_CONFIDENCE

    def probabilities(self, texts: list[str]) -> pd.DataFrame:
        """One row per text, one column per style: the classifier's probability of each style."""
        proba = self.pipeline.predict_proba(list(texts))
        return pd.DataFrame(proba, columns=list(self.pipeline.classes_))[list(STYLES)]

    def classify(self, texts: list[str]) -> list[str]:
        """The nearest style of each text, or :data:`UNCLASSIFIABLE` below the confidence, and for a text with no
        word the classifier knows (its probabilities would be the styles' priors, not evidence)."""
        if not len(texts):
            return []
        proba = self.probabilities(texts)
        known = np.asarray(self.pipeline[0].transform(list(texts)).getnnz(axis=1)) > 0
        best, confidence = proba.idxmax(axis=1), proba.max(axis=1)
        return [style if conf >= self.min_confidence and has_words else UNCLASSIFIABLE
                for style, conf, has_words in zip(best, confidence, known)]


def fit_style_classifier(texts: list[str], styles: list[str], min_confidence: float = MIN_CONFIDENCE,
                         seed: int = 0) -> StyleClassifier:
    """Fit the classifier on answers labelled with their style (every label one of :data:`STYLES`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        raise ValueError(f"style labels {unknown} are not among {list(STYLES)}")
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                             LogisticRegression(C=10.0, max_iter=2000, random_state=seed))
    pipeline.fit(list(texts), list(styles))
    return StyleClassifier(pipeline, min_confidence)


@lru_cache(maxsize=1)
def style_classifier(min_confidence: float = MIN_CONFIDENCE) -> StyleClassifier:
    """The classifier trained on every answer of the bundled corpus (fitted once per process, in about a second)."""
    from .data import load_bundled_corpus

    _, responses = load_bundled_corpus()
    return fit_style_classifier(responses["text"].tolist(), responses["style"].tolist(), min_confidence)


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams over all word n-grams, pooled over ``texts`` (NaN when there are none)."""
    grams = [g for text in texts for g in _ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repeated_ngram_rate(texts: list[str], n: int = 4) -> float:
    """The share of word n-grams that repeat an n-gram seen earlier in the same text, pooled over ``texts`` (NaN
    when there are none).  0 for text that never repeats itself; near 1 for a loop."""
    repeated = total = 0
    for text in texts:
        grams = _ngrams(words(text), n)
        repeated += len(grams) - len(set(grams))
        total += len(grams)
    return repeated / total if total else float("nan")


def style_shares(labels: list[str]) -> dict[str, float]:
    """The share of each style (and of :data:`UNCLASSIFIABLE`) among the labels."""
    counts = pd.Series(list(labels), dtype=object).value_counts()
    return {style: float(counts.get(style, 0)) / max(1, len(labels)) for style in (*STYLES, UNCLASSIFIABLE)}


def style_profile(texts: list[str], classifier: StyleClassifier | None = None) -> dict[str, float]:
    """One policy's samples: the share per style, distinct-1, distinct-2 and the repeated-4-gram rate."""
    classifier = classifier or style_classifier()
    return {**style_shares(classifier.classify(list(texts))), "distinct-1": distinct_n(texts, 1),
            "distinct-2": distinct_n(texts, 2), "repeated 4-grams": repeated_ngram_rate(texts, 4),
            "samples": len(texts)}


def style_table(samples: dict[str, list[str]], classifier: StyleClassifier | None = None) -> pd.DataFrame:
    """One row per policy (name -> its samples), the columns of :func:`style_profile`."""
    return pd.DataFrame({name: style_profile(texts, classifier) for name, texts in samples.items()}).T


def style_share_change(new: list[list[str]], old: list[list[str]], style: str = "empathic", n_boot: int = 1000,
                       seed: int = 0, classifier: StyleClassifier | None = None) -> dict:
    """How much more often ``new`` than ``old`` writes ``style``: per statement, the share of its samples classified
    as ``style`` (``new[i]`` and ``old[i]`` are two policies' samples for statement ``i``), and the mean difference
    over statements with a paired bootstrap interval (:func:`psyco_utils.metrics.paired_difference`)."""
    from .metrics import paired_difference

    if len(new) != len(old):
        raise ValueError(f"style_share_change: {len(new)} statements against {len(old)}; pair the same statements")
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not among {list(STYLES)}")
    classifier = classifier or style_classifier()

    def per_statement(groups: list[list[str]]) -> np.ndarray:
        return np.array([np.mean([label == style for label in classifier.classify(list(g))]) if len(g) else np.nan
                         for g in groups])

    return {"style": style, **paired_difference(per_statement(new), per_statement(old), n_boot, seed)}


@dataclass
class StyleComparison:
    """Policies' samples on the same statements, measured (chapters 04 and 05): ``table`` has one row per policy
    (:func:`style_profile`), ``changes`` one row per policy other than ``baseline`` with the change of the empathic
    share and its paired 95% interval (:func:`style_share_change`)."""

    baseline: str
    table: pd.DataFrame
    changes: pd.DataFrame

    def classifiable(self, name: str) -> float:
        """The share of ``name``'s samples that the classifier assigns to a style."""
        return 1 - float(self.table.loc[name, UNCLASSIFIABLE])

    def max_repeated(self) -> tuple[str, float]:
        """The policy with the highest repeated-4-gram rate, and the rate."""
        rates = self.table["repeated 4-grams"].astype(float)
        return str(rates.idxmax()), float(rates.max())

    def empathic_rise(self, name: str) -> dict:
        """The change of the empathic share from the baseline to ``name`` (difference, ci_low, ci_high, n)."""
        return self.changes.loc[name].to_dict()

    def rise_line(self, name: str) -> str:
        """The change in one line, for a check's message."""
        c = self.empathic_rise(name)
        return (f"empathic share {self.table.loc[self.baseline, 'empathic']:.0%} ({self.baseline}) -> "
                f"{self.table.loc[name, 'empathic']:.0%} ({name}): {c['difference']:+.1%}, paired 95% interval "
                f"{c['ci_low']:+.1%} to {c['ci_high']:+.1%} over {int(c['n'])} statements")


def compare_styles(answers: dict[str, list[list[str]]], baseline: str, seed: int = 0, n_boot: int = 1000,
                   classifier: StyleClassifier | None = None) -> StyleComparison:
    """Measure each policy's samples (``answers[policy][i]``: its samples for statement ``i``) and the change of the
    empathic share of every other policy against ``baseline``."""
    classifier = classifier or style_classifier()
    table = style_table({name: [a for group in groups for a in group] for name, groups in answers.items()},
                        classifier)
    changes = {name: style_share_change(groups, answers[baseline], "empathic", n_boot, seed, classifier)
               for name, groups in answers.items() if name != baseline}
    frame = pd.DataFrame(changes).T.drop(columns=["style", "distinguishable"]) if changes else pd.DataFrame(
        columns=["difference", "ci_low", "ci_high", "n"])
    return StyleComparison(baseline, table, frame.astype(float))


#: Cue words of the rubric judge strung together, without and with sentence punctuation.
CUE_STRING = ("it sounds like you feel anxious scared lonely makes sense what how i wonder only you can decide small "
              "step part of you you might consider")
CUE_SENTENCES = ("It sounds like. Feeling anxious scared lonely. Makes sense. I wonder. Only you can decide. Small "
                 "step. Part of you. You might consider. What comes up?")


def degenerate_answers(statement: str, good_answer: str) -> dict[str, str]:
    """Text a policy could write to game a judge or reward model that counts surface cues: cue words strung together
    (bare, punctuated, with the client's own feeling words), and repetition (a phrase looping, one good sentence said
    again and again, the whole good answer twice over with a word loop, the tiny policy's old word salad)."""
    from .judge.rubric import _FEELING

    first = good_answer.split(". ")[0].rstrip(".") + "."
    feelings = " ".join(_FEELING.findall(statement.lower())) or "sad"
    return {
        "cue string": CUE_STRING,
        "cue sentences": CUE_SENTENCES,
        "cues with the client's feeling words": (f"It sounds like you feel {feelings}. Makes sense, {feelings}. "
                                                 "I wonder. Only you can decide, small step. What comes up?"),
        "a phrase looping": " ".join(["it sounds like you are feeling"] * 8) + ".",
        "one good sentence again and again": " ".join([first] * 6),
        "the good answer twice with a word loop": f"{good_answer} {good_answer} " + " ".join(["feeling"] * 5),
        "word salad": "Thank you are feeling feeling feeling feeling feeling feeling feeling",
    }


#: The corruptions of a good answer that ``reward.degenerate_negatives`` puts into the reward model's training pairs
#: as rejected answers (chapter 03), each with the kind of :func:`degenerate_answers` it is of the same family as.
#: Both are repetition, which the rubric judge itself ranks below the answer they were made from (its words shuffled
#: would not do: the rubric counts cues, and shuffling keeps them).  The other kinds of :func:`degenerate_answers`
#: (cue words strung together, word salad, the good answer twice with a word loop) are never trained on: they show
#: whether what the reward model learned carries over.
TRAINING_CORRUPTIONS = {"a sentence repeated": "one good sentence again and again",
                        "a phrase looping": "a phrase looping"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def corrupt(answer: str, kind: str, rng: np.random.Generator) -> str:
    """``answer`` made degenerate in one of the :data:`TRAINING_CORRUPTIONS` ways, drawn with ``rng``: one of its
    sentences said over and over, at least three times and from about the answer's length to twice it; or a run of 3
    to 6 of its words looping to the answer's length.  Neither is shorter than the answer, and the loop is as long, so
    that length alone does not tell the reward model which answer is the degenerate one."""
    sentences = [part for part in _SENTENCE_END.split(answer.strip()) if part]
    tokens = answer.split()
    if not tokens:
        raise ValueError("an empty answer cannot be corrupted")
    if kind == "a sentence repeated":
        sentence = sentences[int(rng.integers(len(sentences)))]
        as_long = max(3, round(len(tokens) / len(sentence.split())))
        return " ".join([sentence] * int(rng.integers(as_long, 2 * as_long + 1)))
    if kind == "a phrase looping":
        width = min(len(tokens), int(rng.integers(3, 7)))
        start = int(rng.integers(len(tokens) - width + 1))
        phrase = tokens[start:start + width]
        return " ".join((phrase * (len(tokens) // width + 1))[:max(len(tokens), 2 * width)])
    raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(TRAINING_CORRUPTIONS)}")


def rank_degenerate(score, statements: list[str], styled: dict[str, list[str]], trained_on=()) -> pd.DataFrame:
    """How a scorer ranks degenerate text (:func:`degenerate_answers`) against the five hand-written styles.

    ``score(statements, answers)`` returns one number per answer (a reward model's ``score``, or a judge's mean);
    ``styled[style][i]`` is the hand-written answer of that style to statement ``i``.  One row per kind of answer:
    its mean score, and for the degenerate kinds the share of statements where it scores below every style and
    whether the scorer was trained on text of its family (its name in ``trained_on``)."""
    kinds = {style: list(styled[style]) for style in STYLES}
    degenerate = [degenerate_answers(s, good) for s, good in zip(statements, styled["empathic"])]
    for name in degenerate[0] if degenerate else []:
        kinds[name] = [d[name] for d in degenerate]
    scores = {name: np.asarray(score(list(statements), answers), dtype=float) for name, answers in kinds.items()}
    worst_style = np.min([scores[style] for style in STYLES], axis=0)
    rows = {name: {"kind": "hand-written style" if name in STYLES else "degenerate",
                   "mean score": float(values.mean()),
                   "below every style": float(np.mean(values < worst_style)) if name not in STYLES else np.nan,
                   "family trained on": None if name in STYLES else ("yes" if name in trained_on else "no")}
            for name, values in scores.items()}
    frame = pd.DataFrame(rows).T.astype({"mean score": float, "below every style": float})
    frame.attrs["statements"] = len(statements)
    return frame


def require_style_targets(chapter, styles: StyleComparison, trained: list[str]) -> list:
    """The tiny world's style targets as the chapter's checks (:func:`psyco_utils.checks.require`): every policy's
    repeated-4-gram rate at most :data:`MAX_REPEATED_4GRAMS`, at least :data:`MIN_CLASSIFIABLE` of the baseline's
    samples classifiable, and each ``trained`` policy's empathic share above the baseline's with a paired interval
    above 0, each a check of what training achieved (``model_quality``).  Only when the policy is the tiny one, whose
    answers are made of the corpus's sentences; a real model writes its own, so nothing is checked and an empty list
    is returned."""
    from .checks import require

    if chapter.cfg.models.policy != "tiny":
        return []
    worst, rate = styles.max_repeated()
    results = [
        require(chapter, "no policy loops", rate <= MAX_REPEATED_4GRAMS,
                f"highest repeated-4-gram rate {rate:.1%} ({worst}), at most {MAX_REPEATED_4GRAMS:.0%} allowed",
                model_quality=True),
        require(chapter, "base samples have a style", styles.classifiable(styles.baseline) >= MIN_CLASSIFIABLE,
                f"{styles.classifiable(styles.baseline):.0%} of {styles.baseline}'s samples classifiable, at least "
                f"{MIN_CLASSIFIABLE:.0%} required", model_quality=True),
    ]
    for name in trained:
        results.append(require(chapter, f"{name} raises the empathic share", styles.empathic_rise(name)["ci_low"] > 0,
                               styles.rise_line(name), model_quality=True))
    return results


def bundled_styled_answers(n: int = 30) -> tuple[list[str], dict[str, list[str]]]:
    """The first ``n`` bundled statements without an edge case, and their hand-written answer in each style
    (``styled[style][i]`` answers statement ``i``): the yardstick of :func:`rank_degenerate`."""
    from .data import load_bundled_corpus

    statements, responses = load_bundled_corpus()
    plain = statements[statements["edge_case"].isna()].head(n)
    by_key = {(sid, s): text for sid, s, text in zip(responses["statement_id"], responses["style"], responses["text"])}
    styled = {s: [by_key[sid, s] for sid in plain["id"]] for s in STYLES}
    return plain["text"].tolist(), styled
