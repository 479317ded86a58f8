"""The book's length-controlled win rates against the alpaca-eval package's own code, on a run's verdicts.

    python3 -m venv /work/venv_alpaca && /work/venv_alpaca/bin/pip install alpaca-eval==0.6.6 pandas
    PYTHONPATH=. /work/venv_alpaca/bin/python benchmarks/lc_against_alpaca_eval.py [RUN_DIR]

alpaca-eval lives in a virtual environment of its own (its pins differ from the book's); ``psyco_utils.metrics``
needs only numpy, pandas and scikit-learn, which it brings.  RUN_DIR is a run folder whose chapter 06 has run
(default ``$PSYCO_RUNS_DIR/tiny``, else ``runs/tiny``).  For every (setting, policy) of ``eval/verdicts.parquet`` two
checks are made, each against alpaca-eval 0.6.6's ``get_length_controlled_winrate``:

1. the book's estimator (``metrics.length_controlled_win_rate``) against the ``length_controlled_minimal`` formula
   fitted without a penalty (``n_splits: 0`` and ``penalty: None``), in the book's length unit (words) and in
   alpaca-eval's (characters); the issue asks for agreement within 0.0006;
2. the book's reimplementation of AlpacaEval 2's estimator (``metrics.alpaca_eval_lc_win_rate``: L1 fit,
   cross-validated, with an instruction-difficulty term, averaged over items) against ``length_controlled_noreg``
   given the same difficulties.

alpaca-eval reads lengths with ``str.len`` from its ``output_1``/``output_2`` columns and instruction difficulties
from a file it downloads from the hub; here the outputs are strings of the measured length and the download is
replaced by a local file of the book's difficulties (``metrics.item_difficulty``), so both packages fit the same
numbers.  It prints a Markdown table and writes it, with the largest differences, to
``benchmarks/lc_against_alpaca_eval.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psyco_utils.metrics import alpaca_eval_lc_win_rate, item_difficulty, length_controlled_win_rate  # noqa: E402

TOLERANCE = 0.0006
PREFERENCE = {"win": 2.0, "loss": 1.0, "tie": 0.0}  # alpaca-eval: 2 = output_2 (the policy) preferred, 0 = draw
UNPENALISED = {"n_splits": 0, "penalty": None, "solver": "lbfgs"}


def alpaca_rate(outcomes, policy_lengths, reference_lengths, difficulty, glm: str, kwargs: dict | None = None) -> float:
    """alpaca-eval's own length-controlled win rate (a share) for one policy against the reference."""
    from alpaca_eval.metrics import glm_winrate

    n = len(outcomes)
    with tempfile.TemporaryDirectory() as tmp:
        difficulty_file = Path(tmp) / "df_gamed.csv"
        pd.DataFrame({"model": "reference", "index": range(n), "instruction_difficulty": difficulty}).to_csv(
            difficulty_file, index=False)
        glm_winrate.hf_hub_download = lambda **_: str(difficulty_file)
        frame = pd.DataFrame({"preference": [PREFERENCE[o] for o in outcomes],
                              "output_1": ["x" * int(r) for r in reference_lengths],
                              "output_2": ["x" * int(p) for p in policy_lengths],
                              "index": range(n), "generator_1": "reference", "generator_2": "policy",
                              "annotator": "judge"})
        info = dict(glm_winrate.GLM_INFO[glm])
        if kwargs is not None:
            info["kwargs"] = kwargs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = glm_winrate.get_length_controlled_winrate(frame, glm_info=info, save_weights_dir=None,
                                                                is_warn_extreme_changes=False)
    return float(metrics["length_controlled_winrate"]) / 100


def comparisons(run: Path) -> pd.DataFrame:
    """One row per (setting, policy): both packages' rates and their differences."""
    verdicts = pd.read_parquet(run / "eval" / "verdicts.parquet")
    overall = verdicts[verdicts["aspect"] == "overall"].sort_values("item")
    answers = pd.read_parquet(run / "eval" / "answers.parquet")
    chars = answers.assign(chars=answers["response"].str.len()).set_index(["setting", "responder", "item"])["chars"]
    rows = []
    for setting, in_setting in overall.groupby("setting", sort=False):
        by_policy = {p: g["outcome"].tolist() for p, g in in_setting.groupby("policy", sort=False)}
        against_itself = {p for p, o in by_policy.items() if all(x == "tie" for x in o)}
        for policy, group in in_setting.groupby("policy", sort=False):
            outcomes = group["outcome"].tolist()
            if policy in against_itself or any(o is None for o in outcomes):
                continue
            others = {p: o for p, o in by_policy.items() if p not in against_itself}
            difficulty = item_difficulty(others, leave_out=policy)
            words = (group["policy_words"].to_numpy(), group["reference_words"].to_numpy())
            characters = (chars.loc[[(setting, policy, i) for i in group["item"]]].to_numpy(),
                          chars.loc[[(setting, "reference", i) for i in group["item"]]].to_numpy())
            row = {"setting": setting, "policy": policy, "n": len(outcomes)}
            for unit, (pol, ref) in (("words", words), ("characters", characters)):
                book = length_controlled_win_rate(outcomes, pol, ref)["lc_win_rate"]
                theirs = alpaca_rate(outcomes, pol, ref, difficulty, "length_controlled_minimal", UNPENALISED)
                row |= {f"book ({unit})": book, f"alpaca minimal ({unit})": theirs,
                        f"difference ({unit})": abs(book - theirs)}
            book_v2 = alpaca_eval_lc_win_rate(outcomes, *words, difficulty)["lc_win_rate"]
            theirs_v2 = alpaca_rate(outcomes, *words, difficulty, "length_controlled_noreg")
            row |= {"book AlpacaEval 2": book_v2, "alpaca noreg": theirs_v2,
                    "difference (AlpacaEval 2)": abs(book_v2 - theirs_v2),
                    "AlpacaEval 2 minus book's": book_v2 - row["book (words)"]}
            rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    cells = [[f"{v:.5f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def report(frame: pd.DataFrame, run: Path) -> str:
    import alpaca_eval
    import sklearn

    worst = frame[["difference (words)", "difference (characters)"]].to_numpy().max()
    worst_v2 = frame["difference (AlpacaEval 2)"].max()
    gap = frame["AlpacaEval 2 minus book's"]
    lines = [
        "# The book's LC win rate against alpaca-eval",
        "",
        f"Written by `benchmarks/lc_against_alpaca_eval.py` on {pd.Timestamp.now('UTC'):%Y-%m-%d %H:%M} UTC from the "
        f"verdicts of the run `{run.name}` (alpaca-eval {alpaca_eval.__version__}, scikit-learn {sklearn.__version__}).",
        "",
        markdown_table(frame),
        "",
        f"- largest difference, book's estimator against `length_controlled_minimal` without a penalty: "
        f"{worst:.6f} (tolerance {TOLERANCE}): {'met' if worst <= TOLERANCE else 'NOT met'}",
        f"- largest difference, book's AlpacaEval 2 estimator against `length_controlled_noreg`: {worst_v2:.6f}",
        f"- AlpacaEval 2's estimator minus the book's, in points: from "
        f"{100 * gap.min():.1f} to {100 * gap.max():.1f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("PSYCO_RUNS_DIR", ROOT / "runs")) / "tiny"
    parser.add_argument("run", nargs="?", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "lc_against_alpaca_eval.md")
    args = parser.parse_args()
    frame = comparisons(args.run)
    text = report(frame, args.run)
    args.out.write_text(text)
    print(text)
    worst = frame[["difference (words)", "difference (characters)"]].to_numpy().max()
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
