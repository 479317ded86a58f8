"""Paper fidelity: for every number the paper reports, where the book computes it at paper scale, or why it does not.

Two kinds of number appear in the paper.  A *result* (a dataset size, an accuracy, a win rate) is computed by a chapter
cell; its row names the chapter, the call that computes it, and the profile setting that decides it.  A *setting* (a
learning rate, a batch size, a length window) is something the paper chose; its row names the profile setting and
compares the paper's value with the paper profile's, so a divergence shows up as soon as a preset changes.  A number
with no code path says why.  The rows are built from :mod:`psyco_utils.paper` (every number there gets a row, and a
test fails when one has no route) and from the paper preset (:func:`psyco_utils.config.load_profile`).

Where the paper is silent, the book had to choose; :data:`BOOK_CHOICES` lists those settings with the reason for each,
so the prose can point here instead of claiming that "the hyper-parameters are the paper's".
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from . import paper

__all__ = ["Result", "Setting", "Unavailable", "SECTIONS", "NOT_NUMBERS", "ROUTES", "BOOK_CHOICES", "paper_numbers", "route", "setting_value",
           "fidelity_table", "book_choices_table", "fidelity_counts"]


@dataclass(frozen=True)
class Result:
    """A number a chapter computes: ``chapter`` (its stage name), ``call`` (the call, as the chapter's source spells
    it), ``setting`` (the profile setting that decides it) and ``note`` (how the book's run differs, "" if not)."""

    chapter: str
    call: str
    setting: str
    note: str = ""


@dataclass(frozen=True)
class Setting:
    """A choice the paper states, held by the profile setting ``setting`` (a dotted path into the profile; a
    callable derives the value from the profile where no single setting holds it).  ``chapter`` and ``call`` name
    where the chapter uses it; ``note`` says why the paper profile differs, where it does."""

    chapter: str
    call: str
    setting: str
    note: str = ""
    derive: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Unavailable:
    """A number with no code path, and why."""

    reason: str


def _cells(name: str, frame: pd.DataFrame) -> Iterator[tuple[str, str, Any]]:
    for row in frame.index:
        for column in frame.columns:
            value = frame.at[row, column]
            if not (isinstance(value, float) and math.isnan(value)):
                yield name, f"{row}: {column}", value


#: The constants of :mod:`psyco_utils.paper` that hold numbers, with the title of their table or section.
SECTIONS = {
    "DATASET": "Dataset",
    "HUMAN_VALIDATION": "Human validation",
    "REWARD_TRAINING": "Reward-model training",
    "REWARD_TABLE": "Reward-model table",
    "HELPSTEER2_ABLATION": "HelpSteer2 ablation",
    "REWARDBENCH_HELPSTEER2_ABLATION": "HelpSteer2 ablation on RewardBench",
    "PAIR_BUDGET_ABLATION": "10k-pair budget ablation",
    "DPO": "Offline DPO",
    "DPO_ITER": "DPO-Iter",
    "WIN_RATE_VS_GPT4O": "Win rate against GPT-4o",
}
#: Public names of :mod:`psyco_utils.paper` that hold no number of their own: a citation, model names, functions, and
#: views of a table listed above (the win rates by size, the headline win rate and its key).
NOT_NUMBERS = {"CITATION", "JUDGE_MODEL", "win_rate", "reward_row", "POLICY_SIZES", "WIN_RATES_BY_SIZE",
               "HEADLINE_WIN_RATE", "HEADLINE_WIN_RATE_KEY"}


def _entries(name: str) -> Iterator[tuple[str, Any]]:
    """(quantity, value) for every number a paper constant holds: dict items, non-missing table cells, series items."""
    value = getattr(paper, name)
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, pd.DataFrame):
        yield from ((quantity, number) for _, quantity, number in _cells(name, value))
    elif isinstance(value, pd.Series):
        for key, number in value.items():
            parts = key if isinstance(key, tuple) else (key,)
            yield (f"{parts[0]}: {' '.join(map(str, parts[1:]))}" if len(parts) > 1 else str(parts[0])), number
    else:
        raise TypeError(f"psyco_utils.paper.{name} is a {type(value).__name__}: list it in fidelity.NOT_NUMBERS or "
                        "hold its numbers in a dict, DataFrame or Series")


def paper_numbers() -> pd.DataFrame:
    """Every number and stated setting in :mod:`psyco_utils.paper`: its constant, its quantity and its value."""
    rows = [(name, quantity, value) for name in SECTIONS for quantity, value in _entries(name)]
    return pd.DataFrame(rows, columns=["constant", "quantity", "value"])


def _training(section: str, key: str) -> Callable[[Any], Any]:
    def value(cfg):
        stage = getattr(cfg, section)
        training = stage.training
        return training.get(key)
    return value


def _global_batch(section: str) -> Callable[[Any], Any]:
    """The pairs per optimizer step a section asks for (its ``global_batch_size``)."""
    def value(cfg):
        training = getattr(cfg, section).training
        return training["global_batch_size"]
    return value


def _dpo_iter_steps(cfg) -> int:
    it = cfg.dpo_iter
    per_round = it.statements_per_round // _global_batch("dpo_iter")(cfg)
    return it.rounds * per_round * int(it.training.get("num_train_epochs", 1))


_NEEDS_LABELS = "needs a labels file from therapists; chapter 02 shows its format"


def _ablation_pairs(cfg, name: str, source: str):
    """The pairs the paper profile's ablation model ``name`` takes from ``source`` (psycopref or helpsteer2)."""
    mix = next(m for m in cfg.reward.ablations if m.name == name)
    return getattr(mix, f"{source}_pairs")


_CH01, _CH02, _CH03 = "01_dataset_construction", "02_judging", "03_reward_model"
_CH04, _CH05, _CH06 = "04_dpo", "05_dpo_iter", "06_win_rate"
_REWARD_EVALUATION = Result(_CH03, "reward.evaluate(cfg, prefs[\"test\"], predictions,", "models.reward_backbone")
_EIGHT_B = ("a second run with --set models.policy=meta-llama/Llama-3.1-8B-Instruct (and the 8B reward backbone); "
            "chapter 06 sets each model run's rates beside the paper's column of its size")
_WIN_RATES = Result(_CH06, "evaluate.summarise(setup, answers, verdicts,", "eval.reference_model")
_WIN_RATES_LENGTH = Result(_CH06, "evaluate.summarise(setup, answers, verdicts,", "eval.word_limit")

#: Routes by (constant, quantity); a constant's rows without an entry of their own take the entry under (constant, "").
ROUTES: dict[tuple[str, str], Result | Setting | Unavailable] = {
    ("DATASET", "statements after cleaning"): Result(
        _CH01, "construction.clean_statements(chapter)", "data.sources",
        "MentalAgora and TherapistQA are not among the preset's sources (see the sources table of chapter 01)"),
    ("DATASET", "broad themes"): Setting(
        _CH01, "show.theme_taxonomy(corpus_statements)", "data.theme_labeller",
        "the paper's topic list is not published: the book labels its own eight broad themes",
        derive=lambda cfg: 8),
    ("DATASET", "sub-topics"): Unavailable(
        "the paper's 42 sub-topics are not published; the book labels broad themes only"),
    ("DATASET", "statement length window (characters)"): Setting(
        _CH01, "construction.clean_statements(chapter)", "data.min_chars, data.max_chars",
        derive=lambda cfg: (cfg.data.min_chars, cfg.data.max_chars)),
    ("DATASET", "pool generators"): Setting(
        _CH01, "construction.build_response_pool(chapter, cleaned)", "pool.generators",
        "the paper does not list its 20 models; the preset names public ones from 3B to 70B and two API models",
        derive=lambda cfg: len(cfg.pool.generators)),
    ("DATASET", "responses per statement"): Setting(
        _CH01, "construction.build_response_pool(chapter, cleaned)", "pool.responses_per_statement"),
    ("DATASET", "train pairs"): Result(_CH02, "judging.collect(chapter, plan, judged, judge)", "splits.min_score_gap"),
    ("DATASET", "test pairs"): Result(
        _CH02, "judging.collect(chapter, plan, judged, judge)", "splits.test_fraction",
        "the paper does not say how its test statements were chosen: the preset holds out a share of statements "
        "that gives about the paper's count"),
    ("DATASET", "dev share of train statements"): Setting(
        _CH02, "judging.collect(chapter, plan, judged, judge)", "splits.dev_fraction"),
    ("DATASET", "min score gap for a train pair"): Setting(
        _CH02, "judging.collect(chapter, plan, judged, judge)", "splits.min_score_gap"),
    ("DATASET", "train rows over 2,048 tokens"): Result(
        _CH03, "reward.length_drop_table(prefs, tokenizer, max_length)", "reward.training.max_length"),
    ("HUMAN_VALIDATION", "labelled pairs"): Result(
        _CH02, "judging.human_labels(chapter, result)", "judging.human_labels_path", _NEEDS_LABELS),
    ("HUMAN_VALIDATION", "agreement with dataset labels"): Result(
        _CH02, "judging.human_labels(chapter, result)", "judging.human_labels_path", _NEEDS_LABELS),
    ("HUMAN_VALIDATION", "therapists"): Unavailable("a fact about the paper's annotation, not a computed number"),
    ("HUMAN_VALIDATION", "agreement between therapists"): Result(
        _CH02, "judging.human_labels(chapter, result)", "judging.human_labels_path",
        "needs a labels file with a second therapist's label of each pair (its second_choice column)"),
    ("HUMAN_VALIDATION", "expert agreement with the win-rate judge"): Unavailable(
        "needs therapists' verdicts on chapter 06's comparisons, which the book does not collect; chapter 02 sets "
        "a public proxy beside it, the judge's agreement with therapists' upvotes (judging.upvote_check)"),
    ("REWARD_TRAINING", "backbones"): Setting(
        _CH03, "reward.plan_training(cfg, train_pairs, prefs[\"dev\"], out_dir,", "models.reward_backbone",
        "the preset trains the 3B backbone; the 8B one is --set models.reward_backbone=meta-llama/Llama-3.1-8B-Instruct",
        derive=lambda cfg: cfg.models.reward_backbone.split("/")[-1]),
    ("REWARD_TRAINING", "epochs"): Setting(
        _CH03, "reward.reward_config(cfg, out_dir,", "reward.training.num_train_epochs",
        derive=_training("reward", "num_train_epochs")),
    ("REWARD_TRAINING", "batch size"): Setting(
        _CH03, "reward.reward_config(cfg, out_dir,", "reward.training.global_batch_size",
        derive=_global_batch("reward")),
    ("REWARD_TRAINING", "learning rate"): Setting(
        _CH03, "reward.reward_config(cfg, out_dir,", "reward.training.learning_rate",
        derive=_training("reward", "learning_rate")),
    ("REWARD_TRAINING", "max length (tokens)"): Setting(
        _CH03, "reward.reward_config(cfg, out_dir,", "reward.training.max_length",
        derive=_training("reward", "max_length")),
    ("REWARD_TABLE", "Skywork-Reward-Llama-3.1-8B-v0.2"): Result(
        _CH03, "reward.evaluate(cfg, prefs[\"test\"], predictions,", "reward.off_the_shelf"),
    ("REWARD_TABLE", "Skywork-Reward-Gemma-2-27B"): Result(
        _CH03, "reward.evaluate(cfg, prefs[\"test\"], predictions,", "reward.off_the_shelf"),
    ("REWARD_TABLE", "Llama-3.1-Nemotron-70B-Reward"): Result(
        _CH03, "reward.evaluate(cfg, prefs[\"test\"], predictions,", "reward.off_the_shelf",
        "the hub's HF version is a causal LM: its reward is read as the logit of token 0 after the chat"),
    ("REWARD_TABLE", "Llama-3.1-70B-Instruct as a ranker"): Result(
        _CH03, "reward.rank_test_pairs(cfg, prefs[\"test\"], chapter.layout.judgments)", "reward.ranker",
        "the paper's ranker prompt is not published: the judge's compare prompt in both orders, ties as half"),
    ("REWARD_TABLE", "PsyCo-Llama3-3B-Reward"): _REWARD_EVALUATION,
    ("REWARD_TABLE", "PsyCo-Llama3-8B-Reward"): Result(
        _CH03, "reward.evaluate(cfg, prefs[\"test\"], predictions,", "models.reward_backbone",
        "run with --set models.reward_backbone=meta-llama/Llama-3.1-8B-Instruct"),
    ("HELPSTEER2_ABLATION", ""): Result(
        _CH03, "reward.train_ablations(cfg, prefs, run)", "reward.ablations, reward.helpsteer2_path",
        "HelpSteer2's scores become pairs by the book's rule (a helpfulness gap of at least 1); the 8B column needs "
        "the 8B reward backbone"),
    ("REWARDBENCH_HELPSTEER2_ABLATION", ""): Result(
        _CH03, "reward.rewardbench_table(cfg, scorer, ablations.scorers)", "reward.rewardbench",
        "the mean of RewardBench's four categories with their subsets pooled, not the leaderboard's weighting"),
    ("PAIR_BUDGET_ABLATION", ""): Result(
        _CH03, "reward.train_ablations(cfg, prefs, run)", "reward.ablations", "the paper does not state the backbone"),
    **{("PAIR_BUDGET_ABLATION", f"{row}: {source} pairs"): Setting(
        _CH03, "reward.train_ablations(cfg, prefs, run)", "reward.ablations",
        derive=lambda cfg, row=row, source=source: _ablation_pairs(cfg, row, source))
       for row in paper.PAIR_BUDGET_ABLATION.index for source in ("psycopref", "helpsteer2")},
    ("DPO", "beta"): Setting(_CH04, "policy.dpo_config(cfg.dpo.training,", "dpo.training.beta",
                             derive=_training("dpo", "beta")),
    ("DPO", "sft stage"): Setting(_CH04, "models.resolve_model_path(cfg.models.policy, cfg)", "models.policy",
                                  "neither has one: DPO starts from the instruct model",
                                  derive=lambda cfg: False),
    ("DPO_ITER", "statements per round"): Setting(
        _CH05, "policy.run_dpo_iter(cfg, start_path, scorer, statements,", "dpo_iter.statements_per_round",
        derive=lambda cfg: cfg.dpo_iter.statements_per_round),
    ("DPO_ITER", "samples per statement"): Setting(
        _CH05, "policy.run_dpo_iter(cfg, start_path, scorer, statements,", "dpo_iter.samples_per_statement",
        derive=lambda cfg: cfg.dpo_iter.samples_per_statement),
    ("DPO_ITER", "batch size"): Setting(
        _CH05, "policy.dpo_config(cfg.dpo_iter.training,", "dpo_iter.training.global_batch_size",
        derive=_global_batch("dpo_iter")),
    ("DPO_ITER", "learning rate"): Setting(
        _CH05, "policy.dpo_config(cfg.dpo_iter.training,", "dpo_iter.training.learning_rate",
        derive=_training("dpo_iter", "learning_rate")),
    ("DPO_ITER", "total steps"): Setting(
        _CH05, "policy.run_dpo_iter(cfg, start_path, scorer, statements,",
        "dpo_iter.rounds x statements_per_round / batch x epochs",
        "the paper states the total, not the rounds: the preset's 8 rounds of 2 epochs give the same total",
        derive=_dpo_iter_steps),
    ("WIN_RATE_VS_GPT4O", "no constraint: 3B"): _WIN_RATES,
    ("WIN_RATE_VS_GPT4O", "length constraint: 3B"): _WIN_RATES_LENGTH,
    ("WIN_RATE_VS_GPT4O", "no constraint: 8B"): Result(
        _CH06, "evaluate.summarise(setup, answers, verdicts,", "models.policy",
        _EIGHT_B),
    ("WIN_RATE_VS_GPT4O", "length constraint: 8B"): Result(
        _CH06, "evaluate.summarise(setup, answers, verdicts,", "models.policy, eval.word_limit",
        _EIGHT_B),
}


def route(constant: str, quantity: str) -> Result | Setting | Unavailable:
    """The route of one paper number: its own entry, else the entry of the longest prefix of its quantity (a win
    rate "no constraint: 3B DPO" takes "no constraint: 3B"), else its constant's; a KeyError names a number without."""
    if (constant, quantity) in ROUTES:
        return ROUTES[(constant, quantity)]
    prefixes = [q for (c, q) in ROUTES if c == constant and q and quantity.startswith(q)]
    if prefixes:
        return ROUTES[(constant, max(prefixes, key=len))]
    if (constant, "") in ROUTES:
        return ROUTES[(constant, "")]
    raise KeyError(f"paper number {constant}[{quantity!r}] has no route in psyco_utils.fidelity.ROUTES: give it a "
                   "code path (Result or Setting) or a reason (Unavailable)")


def setting_value(cfg, path: str) -> Any:
    """The value at a dotted path of a profile (``reward.training.learning_rate``): attributes, then dict keys."""
    value: Any = cfg
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _same(paper_value, profile_value) -> bool:
    if isinstance(paper_value, (int, float)) and isinstance(profile_value, (int, float)):
        return math.isclose(float(paper_value), float(profile_value), rel_tol=1e-9)
    if isinstance(paper_value, tuple) and isinstance(profile_value, tuple):
        return all(_same(a, b) for a, b in zip(paper_value, profile_value)) and len(paper_value) == len(profile_value)
    if isinstance(paper_value, tuple):
        return any(str(profile_value) in str(item) or str(item) in str(profile_value) for item in paper_value)
    return str(paper_value) == str(profile_value)


def _shown(value) -> str:
    """A paper or profile value as the tables show it: counts with thousands separators, other numbers as written
    (87.0, 0.885, 9e-06), tuples as ranges or lists."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:,}" if value == 0 or abs(value) >= 1e-3 else f"{value:g}"
    if isinstance(value, tuple):
        return " to ".join(_shown(v) for v in value) if all(isinstance(v, int) for v in value) else \
            ", ".join(map(str, value))
    return str(value)


def _row(cfg, constant: str, quantity: str, value) -> dict:
    entry = route(constant, quantity)
    row = {"section": SECTIONS[constant], "number": quantity, "paper": _shown(value)}
    if isinstance(entry, Unavailable):
        return {**row, "kind": "no code path", "computed in": "-", "setting": "-", "paper profile": "-",
                "as the paper": "-", "why": entry.reason}
    where = f"{entry.chapter}: {entry.call.rstrip(',')}"
    if isinstance(entry, Result):
        return {**row, "kind": "result", "computed in": where, "setting": entry.setting, "paper profile": "-",
                "as the paper": "yes" if not entry.note else "see why", "why": entry.note}
    ours = entry.derive(cfg) if entry.derive is not None else setting_value(cfg, entry.setting)
    same = _same(value, ours)
    return {**row, "kind": "setting", "computed in": where, "setting": entry.setting, "paper profile": _shown(ours),
            "as the paper": "yes" if same else "no", "why": entry.note}


def fidelity_table(cfg=None) -> pd.DataFrame:
    """One row per paper number: section, quantity, the paper's value, kind (result, setting, no code path), the
    chapter call that computes or uses it, the profile setting, the paper profile's value (settings), whether the
    paper profile does as the paper did, and why not."""
    if cfg is None:
        from .config import load_profile

        cfg = load_profile("paper")
    numbers = paper_numbers()
    return pd.DataFrame([_row(cfg, r.constant, r.quantity, r.value) for r in numbers.itertuples()])


def fidelity_counts(table: pd.DataFrame) -> pd.Series:
    """How many of the paper's numbers have a code path (results and settings) and how many do not."""
    return table["kind"].value_counts().reindex(["result", "setting", "no code path"], fill_value=0)


def _pool_sampling(cfg) -> str:
    local = [g for g in cfg.pool.generators if g.kind == "hf"]
    temperatures = sorted({g.temperature for g in local})
    top_ps = sorted({g.top_p for g in local})
    tokens = sorted({g.max_new_tokens for g in local})
    return (f"temperature {', '.join(map(str, temperatures))}, top-p {', '.join(map(str, top_ps))}, up to "
            f"{', '.join(map(str, tokens))} new tokens, the statement as the only (user) turn")


#: Settings the paper does not state: the setting (a dotted path, or a label with a function of the profile), and why
#: the paper profile chose its value.
BOOK_CHOICES: list[tuple[str, Callable[[Any], Any] | None, str]] = [
    ("dpo.training.learning_rate", None, "not stated for offline DPO; DPO-Iter's 5e-7 is used for both"),
    ("dpo.training.num_train_epochs", None, "not stated for offline DPO; DPO-Iter's 2 epochs per round"),
    ("dpo.training.global_batch_size", None, "not stated for offline DPO; DPO-Iter's batch of 64"),
    ("dpo_iter.rounds", None, "not stated; 8 rounds of 2 epochs give the paper's 1,600 steps"),
    ("dpo_iter.temperature", None, "not stated; 1.0 as in RLHFlow's public iterative-DPO recipe"),
    ("pool.generators (local models)", _pool_sampling,
     "the pool's sampling settings and prompt are not stated: common chat defaults, and no system prompt, so each "
     "model answers in its own manner"),
    ("eval.n_statements", None, "the size of the paper's evaluation set is not stated"),
    ("eval.word_limit", None, "how the paper imposed its length constraint is not stated: a word limit in the prompt"),
    ("judge.length_instructions", None,
     "the paper's judge prompt is not published; off, since the paper reports that length moved its win rates"),
    ("judge.temperature", None, "not stated; 0 for repeatable verdicts"),
    ("eval.lc_estimator", None, "the paper reports no length-controlled rate; the book's is the minimal, unpenalised "
                                "fit, and AlpacaEval 2's estimator is the other choice"),
]


def book_choices_table(cfg=None) -> pd.DataFrame:
    """The settings the paper leaves open: the paper profile's value of each and the reason for it."""
    if cfg is None:
        from .config import load_profile

        cfg = load_profile("paper")
    rows = [{"setting": name, "paper profile": _shown(derive(cfg) if derive else setting_value(cfg, name)),
             "why": why} for name, derive, why in BOOK_CHOICES]
    return pd.DataFrame(rows)
