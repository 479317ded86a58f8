"""Offline DPO's result (chapter 04): the training and the held-out comparison of the base and DPO policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..by_hand import ByHandCheck
from ..layout import RunLayout, TrainedModelFolder
from .held_out import HeldOutComparison, PolicyChange
from .training import TrainingRun

__all__ = ["DPOResult", "finish_dpo", "offline_model_dir", "LOSS_CHECK_TOLERANCE", "LossCheck", "trl_metrics_on_batch",
           "completion_logps"]


def offline_model_dir(run_root: Path) -> Path:
    """Where chapter 04 saves the DPO policy: ``dpo/model`` in the run folder."""
    return RunLayout(run_root).dpo.model


@dataclass
class DPOResult:
    """Offline DPO: the training (TRL's logs, steps, time, the saved model) and the base and DPO policies compared on
    held-out statements; ``metrics_path`` is the stage's ``dpo/metrics.json``."""

    training: TrainingRun
    held_out: HeldOutComparison
    metrics_path: Path

    @property
    def change(self) -> PolicyChange:
        """The DPO policy against the base policy (reward, length, repetition)."""
        return self.held_out.change("DPO", "base")

    def metrics(self) -> dict:
        t = self.training
        return {"steps": t.steps, "seconds": t.seconds, "steps_per_second": t.steps_per_second, "train_pairs": t.pairs,
                "reused": t.reused, "reference": "the starting policy", "final_train_loss": t.final_train_loss,
                **self.held_out.metrics()}

    def headline(self) -> dict:
        """The numbers recorded in the run manifest."""
        rewards = self.held_out.metrics()["held_out_mean_reward"]
        return {f"held_out_reward_{name}": round(value, 3) for name, value in rewards.items()}


def finish_dpo(training: TrainingRun, held_out: HeldOutComparison, out_dir: Path) -> DPOResult:
    """The stage's result, with its numbers saved to ``out_dir/metrics.json``."""
    result = DPOResult(training=training, held_out=held_out, metrics_path=TrainedModelFolder(Path(out_dir)).metrics)
    result.metrics_path.write_text(json.dumps(result.metrics(), indent=2, default=float))
    return result


#: How closely the DPO loss and rewards computed by hand must match TRL's (absolute): float32 sums over a few hundred
#: tokens, batched and padded by TRL, one sequence at a time here, agree to about 1e-6.
LOSS_CHECK_TOLERANCE = 1e-4
#: TRL's logged names of the quantities the chapter computes by hand.
_CHECKED = ("loss", "rewards/chosen", "rewards/margins")


def trl_metrics_on_batch(policy_dir, reference_dir, pairs, training: dict, seed: int, models_cfg=None):
    """TRL's own loss, ``rewards/chosen`` and ``rewards/margins`` for one batch of pairs (chapter 04's check of the
    DPO formula): ``DPOTrainer(model=policy_dir, ref_model=<reference_dir loaded>).evaluate()`` on exactly the pairs
    as one evaluation batch.  Returns the three logged values and the pairs as TRL tokenised them (``prompt_ids``,
    ``chosen_ids``, ``rejected_ids``), so the same tokens can be scored by hand."""
    import tempfile

    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    from .. import pair_schema
    from ..models import load_tokenizer
    from ..training import without_log_printing
    from .training import dpo_config

    data = pair_schema.to_trl(pairs, "DPO pairs of the loss check")
    with tempfile.TemporaryDirectory() as scratch:
        args = dpo_config({**training, "per_device_eval_batch_size": len(data)}, Path(scratch), seed,
                          select_on_dev=False)
        reference = AutoModelForCausalLM.from_pretrained(str(reference_dir))
        trainer = without_log_printing(DPOTrainer(model=str(policy_dir), ref_model=reference, args=args,
                                                  train_dataset=data, eval_dataset=data,
                                                  processing_class=load_tokenizer(str(policy_dir))))
        metrics = trainer.evaluate()
        tokenized = trainer.eval_dataset
    return {name: float(metrics[f"eval_{name}"]) for name in _CHECKED}, tokenized


def completion_logps(model_dir, tokenized):
    """Per pair, the log-probability the model at ``model_dir`` gives the chosen and the rejected completion after
    its prompt: the sum over the completion's tokens of log p(token | everything before it).  Returns two arrays."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    sums = {"chosen": [], "rejected": []}
    with torch.no_grad():
        for example in tokenized:
            prompt = list(example["prompt_ids"])
            for side in sums:
                ids = torch.tensor([prompt + list(example[f"{side}_ids"])])
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
                picked = logprobs.gather(1, ids[0, 1:, None])[:, 0]
                sums[side].append(float(picked[len(prompt) - 1 :].sum()))
    return np.array(sums["chosen"]), np.array(sums["rejected"])


@dataclass(kw_only=True)
class LossCheck(ByHandCheck):
    """The DPO loss and rewards computed by hand beside TRL's logged values for the same batch of pairs, at ``beta``."""

    beta: float
    tolerance: float = LOSS_CHECK_TOLERANCE

    def __post_init__(self):
        self.by_hand = {name: self.by_hand[name] for name in _CHECKED}
