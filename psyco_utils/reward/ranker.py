"""An LLM used as a ranker of the reward test pairs (chapter 03; the paper's Llama-3.1-70B-Instruct row).

The ranker is the judge's ``compare`` operation with another model behind it (``reward.ranker``: a model name and
any OpenAI-compatible endpoint), run on every test pair in both orders with the tie protocol of
:func:`psyco_utils.agreement.two_order_agreement`.  Its preference accuracy counts a tie as one half; a ranker gives
no reward, so AUC, ECE and Brier do not apply.  Every verdict is cached in the run's judgments file first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from ..pair_schema import TEXT_COLUMNS, validate
from .data import frame_of

__all__ = ["RankerResult", "ranker_judge_config", "rank_test_pairs"]


@dataclass
class RankerResult:
    """The ranker's name, what stood behind it, and its agreement with the test pairs' labels."""

    name: str
    backend: str
    model: str
    agreement: dict

    def row(self) -> pd.DataFrame:
        """One row in the units of the comparison table: accuracy (ties half) and its interval, pairs judged."""
        a = self.agreement
        return pd.DataFrame({"pairs": [a["judged"]], "accuracy": [a["agreement"]], "accuracy low": [a["ci_low"]],
                             "accuracy high": [a["ci_high"]], "ties": [a["ties"]], "failed": [a["failed"]]},
                            index=pd.Index([self.name], name="model"))


def ranker_judge_config(cfg):
    """The judge's settings with the ranker's backend, model and endpoint (``reward.ranker``: the URL in its
    ``base_url_env`` variable, else its ``base_url``, else the judge's).  A ranker model other than the judge's with
    no endpoint of its own, and none in ``OPENAI_BASE_URL``, would be sent to OpenAI's API, which does not serve
    it: that is an error naming the variable to set.  The ranker's requests go online (a vLLM server has no Batch
    API)."""
    ranker = cfg.reward.ranker
    update = {"backend": ranker.backend, "use_batch_api": False}  # a vLLM server has no Batch API
    if ranker.model:
        update["model"] = ranker.model
    base_url = os.environ.get(ranker.base_url_env) or ranker.base_url
    if base_url:
        update["base_url"] = base_url
    config = cfg.judge.model_copy(update=update)
    if (config.backend == "openai" and config.model != cfg.judge.model and not config.base_url
            and not os.environ.get("OPENAI_BASE_URL")):
        raise ValueError(f"reward.ranker {ranker.name!r}: model {config.model!r} has no endpoint; set "
                         f"{ranker.base_url_env} (or reward.ranker.base_url) to the server that serves it")
    return config


def rank_test_pairs(cfg, test, cache_path) -> RankerResult | None:
    """The ranker of ``reward.ranker`` on the test pairs (at most ``max_pairs``, the first ones), or None when the
    profile names no ranker."""
    from ..agreement import two_order_agreement
    from ..judge import make_judge

    if cfg.reward.ranker is None:
        return None
    frame = frame_of(test)
    validate(frame, "test split", TEXT_COLUMNS)
    if cfg.reward.ranker.max_pairs:
        frame = frame.head(cfg.reward.ranker.max_pairs)
    config = ranker_judge_config(cfg)
    judge = make_judge(config, cache_path=cache_path)
    try:
        agreement = two_order_agreement(judge, frame["question"], frame["chosen"], frame["rejected"],
                                        n_boot=cfg.reward.bootstrap_samples, seed=cfg.seed, task="ranker")
    finally:
        judge.close()
    model = "offline rubric judge" if config.backend == "rubric" else config.model
    return RankerResult(cfg.reward.ranker.name, config.backend, model, agreement)
