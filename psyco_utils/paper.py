"""The paper's numbers, in one place, each with the table or section it comes from.

Zhang, Eack and Chen, "Preference Learning Unlocks LLMs' Psycho-Counseling Skills" (arXiv 2502.19731, 2025; ACL 2026),
and the public cards of its released dataset and models. Every chapter that sets its results beside the paper's reads
them from here, so a correction is made once.  Where the paper does not state a number, there is no constant: the
chapters say "not reported".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CITATION", "DATASET", "REWARD_TABLE", "REWARD_TRAINING", "HELPSTEER2_ABLATION", "DPO", "DPO_ITER",
    "WIN_RATE_VS_GPT4O", "HUMAN_VALIDATION", "JUDGE_MODEL", "win_rate", "reward_row",
    "POLICY_SIZES", "WIN_RATES_BY_SIZE", "HEADLINE_WIN_RATE", "HEADLINE_WIN_RATE_KEY",
    "REWARDBENCH_HELPSTEER2_ABLATION", "PAIR_BUDGET_ABLATION",
]

#: How the book cites the paper in table captions.
CITATION = "Zhang et al. 2025"

#: Section "Dataset construction" and the dataset card of PsychoCounsel-Preference.
DATASET = {
    "statements after cleaning": 26_483,
    "broad themes": 8,
    "sub-topics": 42,
    "statement length window (characters)": (100, 1_000),
    "pool generators": 20,
    "responses per statement": 4,
    "train pairs": 34_329,
    "test pairs": 2_324,
    "dev share of train statements": 0.10,
    "min score gap for a train pair": 1.0,
    "train rows over 2,048 tokens": 77,  # "about 77" in the dataset card
}

#: Section "Dataset construction", validation: two therapists labelled 200 pairs.
HUMAN_VALIDATION = {
    "labelled pairs": 200,
    "therapists": 2,
    "agreement with dataset labels": 0.885,
    "agreement between therapists": 0.87,
    "expert agreement with the win-rate judge": 0.825,
}

#: Table "Reward model": test-pair metrics; NaN where the paper reports none.
REWARD_TABLE = pd.DataFrame(
    [("Skywork-Reward-Llama-3.1-8B-v0.2", 57.9, 0.623, 0.331, 0.379),
     ("Skywork-Reward-Gemma-2-27B", 69.2, 0.740, 0.123, 0.229),
     ("Llama-3.1-Nemotron-70B-Reward", 87.3, 0.938, 0.040, 0.102),
     ("Llama-3.1-70B-Instruct as a ranker", 88.2, np.nan, np.nan, np.nan),
     ("PsyCo-Llama3-3B-Reward", 98.1, 0.997, 0.050, 0.014),
     ("PsyCo-Llama3-8B-Reward", 97.8, 0.998, 0.045, 0.016)],
    columns=["model", "accuracy (%)", "AUC", "ECE", "Brier"],
).set_index("model")

#: Section "Reward model": training settings.
REWARD_TRAINING = {"backbones": ("Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct"), "epochs": 2, "batch size": 128,
                   "learning rate": 9e-6, "max length (tokens)": 2_048}

#: Section "Reward model", ablation: test accuracy (%) of reward models trained on other data, and RewardBench.
HELPSTEER2_ABLATION = pd.DataFrame(
    {"3B": {"HelpSteer2 only": 81.6, "HelpSteer2 + PsyCoPref": 97.6},
     "8B": {"HelpSteer2 only": 81.7, "HelpSteer2 + PsyCoPref": 97.5}})

#: Section "Policy training": offline DPO.
DPO = {"beta": 0.1, "sft stage": False}

#: Section "Policy training": DPO-Iter.  Rounds, temperature and reference refresh are not stated by the paper.
DPO_ITER = {"statements per round": 6_400, "samples per statement": 8, "batch size": 64, "learning rate": 5e-7,
            "total steps": 1_600}

#: Table "Win rate against GPT-4o" (judge: GPT-4o), in percent, indexed by (setting, model size, policy).
WIN_RATE_VS_GPT4O = pd.Series({
    ("no constraint", "3B", "base"): 28.5, ("no constraint", "3B", "DPO"): 58.5,
    ("no constraint", "3B", "DPO-Iter"): 69.4,
    ("no constraint", "8B", "base"): 29.3, ("no constraint", "8B", "DPO"): 72.9,
    ("no constraint", "8B", "DPO-Iter"): 87.0,
    ("length constraint", "3B", "base"): 15.0, ("length constraint", "3B", "DPO"): 37.0,
    ("length constraint", "3B", "DPO-Iter"): 46.4,
    ("length constraint", "8B", "base"): 18.5, ("length constraint", "8B", "DPO"): 49.3,
    ("length constraint", "8B", "DPO-Iter"): 77.0,
}, name="win rate vs GPT-4o (%)")
WIN_RATE_VS_GPT4O.index.names = ["setting", "size", "policy"]


def win_rate(setting: str, policy: str, size: str = "3B") -> float:
    """The paper's win rate (%) for one setting and policy; NaN for a combination the paper does not report."""
    return float(WIN_RATE_VS_GPT4O.get((setting, size, policy), np.nan))


def reward_row(model: str = "PsyCo-Llama3-3B-Reward") -> pd.Series:
    """One model's row of the paper's reward-model table."""
    return REWARD_TABLE.loc[model]


# Numbers added while the chapters were redesigned; each block is one chapter's, kept apart so that parallel edits merge.

# -- chapter 01 (dataset) --

# -- chapter 02 (judging) --

#: Section "Dataset construction": the judge that scored the pool.
JUDGE_MODEL = "GPT-4o"

# -- chapter 03 (reward model) --

# -- chapters 04 and 05 (DPO, DPO-Iter) --

# -- chapters 06 and 07 (win rate, reproducibility) --

# -- h4: win rates by model size (chapter 06) --

#: The paper's policy backbones by the size its win-rate table names them (section "Policy training").
POLICY_SIZES = {"meta-llama/Llama-3.2-3B-Instruct": "3B", "meta-llama/Llama-3.1-8B-Instruct": "8B"}

#: Table "Win rate against GPT-4o" with one column per model size (3B, 8B); rows (setting, policy), in percent.
WIN_RATES_BY_SIZE = WIN_RATE_VS_GPT4O.unstack("size")

#: The paper's headline result: the 8B DPO-Iter policy against GPT-4o, without a constraint (87.0%).
HEADLINE_WIN_RATE_KEY = ("no constraint", "8B", "DPO-Iter")
HEADLINE_WIN_RATE = float(WIN_RATE_VS_GPT4O[HEADLINE_WIN_RATE_KEY])

# ------------------------------------------------------------------------------------------------------------ h3
#: Section "Reward model", ablation: RewardBench accuracy (%) of the HelpSteer2-only reward model and of HelpSteer2
#: plus PsyCoPref, by backbone size.
REWARDBENCH_HELPSTEER2_ABLATION = pd.DataFrame(
    {"3B": {"HelpSteer2 only": 83.6, "HelpSteer2 + PsyCoPref": 86.1},
     "8B": {"HelpSteer2 only": 86.6, "HelpSteer2 + PsyCoPref": 87.2}})

#: Section "Reward model", ablation with a 10k-pair budget: accuracy (a share) on the PsyCoPref test pairs
#: ("in-domain") and on RewardBench, and the pairs each model took from each source.  The backbone is not stated.
PAIR_BUDGET_ABLATION = pd.DataFrame(
    [("Psy10k", 10_000, 0, 0.963, 0.745), ("Help10k", 0, 10_000, 0.855, 0.888),
     ("Psy5k+Help5k", 5_000, 5_000, 0.958, 0.896)],
    columns=["model", "psycopref pairs", "helpsteer2 pairs", "in-domain accuracy", "RewardBench accuracy"],
).set_index("model")
