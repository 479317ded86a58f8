"""Offline DPO's result (chapter 04): the training and the held-out comparison of the base and DPO policies."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..by_hand import FLOAT32_EVALUATION, ByHandCheck
from ..layout import RunLayout, TrainedModelFolder
from .held_out import HeldOutComparison, PolicyChange
from .training import TrainingRun

__all__ = ["DPOResult", "finish_dpo", "offline_model_dir", "LOSS_CHECK_TOLERANCE", "LossCheck",
           "TRLBatchEvaluation", "trl_evaluation_on_batch", "completion_logps"]


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


@dataclass
class TRLBatchEvaluation:
    """TRL's evaluation of one batch of DPO pairs (chapters 04 and 05 check the DPO formula against it): the loss,
    ``rewards/chosen`` and ``rewards/margins`` it logged; the pairs as it tokenised them (``prompt_ids``,
    ``chosen_ids``, ``rejected_ids``); and the policy and reference models it evaluated, in float32 on its device, so
    that the same tokens are scored by hand with the same weights and no model is loaded twice."""

    logged: dict
    tokens: object
    policy_model: object
    reference_model: object


@contextmanager
def trl_evaluation_on_batch(policy_dir, reference_dir, pairs, training: dict, seed: int):
    """``DPOTrainer(model=policy_dir, ref_model=<reference_dir in float32>).evaluate()`` on exactly ``pairs`` as one
    evaluation batch, with the profile's ``training`` settings except mixed precision
    (:data:`psyco_utils.by_hand.FLOAT32_EVALUATION`).  Yields a :class:`TRLBatchEvaluation`; on leaving the block
    both models are released, so that the chapter's sampling that follows has the memory.  Both are held in float32
    on one device meanwhile: about 24 GB of weights for a 3B policy, 64 GB for an 8B one."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    from .. import pair_schema
    from ..models import load_tokenizer
    from ..training import without_log_printing
    from .training import dpo_config, release_trainer

    data = pair_schema.to_trl(pairs, "DPO pairs of the loss check")
    with tempfile.TemporaryDirectory() as scratch:
        args = dpo_config({**training, "per_device_eval_batch_size": len(data), **FLOAT32_EVALUATION},
                          Path(scratch), seed, select_on_dev=False)
        reference = AutoModelForCausalLM.from_pretrained(str(reference_dir), dtype=torch.float32)
        trainer = without_log_printing(DPOTrainer(model=str(policy_dir), ref_model=reference, args=args,
                                                  train_dataset=data, eval_dataset=data,
                                                  processing_class=load_tokenizer(str(policy_dir))))
        del reference
        metrics = trainer.evaluate()
    evaluation = TRLBatchEvaluation(logged={name: float(metrics[f"eval_{name}"]) for name in _CHECKED},
                                    tokens=trainer.eval_dataset, policy_model=trainer.model,
                                    reference_model=trainer.ref_model)
    try:
        yield evaluation
    finally:
        evaluation.policy_model = evaluation.reference_model = None
        release_trainer(trainer)


def completion_logps(model, tokenized):
    """Per pair, the log-probability ``model`` gives the chosen and the rejected completion after its prompt: the sum
    over the completion's tokens of log p(token | everything before it), one sequence at a time on the model's
    device.  Returns two arrays."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    model.eval()
    sums = {"chosen": [], "rejected": []}
    with torch.no_grad():
        for example in tokenized:
            prompt = list(example["prompt_ids"])
            for side in sums:
                ids = torch.tensor([prompt + list(example[f"{side}_ids"])], device=device)
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
