"""Full fine-tuning keeps fp32 master weights under mixed precision: for every training stage (the reward model, DPO,
DPO-Iter's DPO) under the paper's settings (bf16 autocast, full fine-tuning) and the colab profile's (fp16 autocast,
LoRA), the trainable parameters and the optimizer's state after one step are float32, while the trainer computes
in half precision.

The stages run on the tiny world's model on the CPU.  ``models.check_precision`` refuses bf16 and fp16 without a GPU
(it protects a user's run), so it is patched out here, and ``use_cpu`` lets transformers accept bf16 on a CPU.  fp16
autocast does not run on a CPU: the colab cases run under bf16 autocast instead, which leaves the question asked
(in which dtype are the weights the optimizer updates?) unchanged, since autocast casts only the computation.
"""

import pandas as pd
import pytest
import torch

from psyco_utils import models, policy, reward
from psyco_utils.config import load_profile

STAGES = ("reward", "dpo", "dpo_iter")
#: Sizes only: one optimizer step over 4 pairs, without activation checkpointing (slow and irrelevant here).
_ONE_STEP = {"max_steps": 1, "logging_steps": 1}


def _pairs(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"ID": [f"s{i}" for i in range(n)], "prefID": list(range(n)),
                         "question": [f"I cannot sleep before my exam number {i}." for i in range(n)],
                         "chosen": ["It sounds like you feel worn out. What keeps you awake?"] * n,
                         "rejected": ["Just sleep."] * n})


def _profile(name: str, tiny_world, stage: str):
    """The preset as it is (precision, LoRA, models.dtype), with the tiny world's model and 4 pairs per step."""
    section = {"reward": "reward", "dpo": "dpo", "dpo_iter": "dpo_iter"}[stage]
    cfg = load_profile(name, [f"models.policy={tiny_world.policy_dir}",
                              f"models.reward_backbone={tiny_world.policy_dir}",
                              f"{section}.training.per_device_train_batch_size=2",
                              f"{section}.training.global_batch_size=4",
                              f"{section}.training.max_length=128",
                              f"{section}.training.gradient_checkpointing=false"])
    training = dict(getattr(cfg, section).training)
    if training.pop("fp16", False):  # fp16 autocast needs a GPU: bf16 autocast stands in for it (module docstring)
        training["bf16"] = True
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update={"training": training})}), training


def _trainer(name: str, stage: str, tiny_world, tmp_path):
    cfg, training = _profile(name, tiny_world, stage)
    if stage == "reward":
        from trl import RewardTrainer

        plan = reward.plan_training(cfg, _pairs(), None, tmp_path, use_cpu=True, **_ONE_STEP)
        model, tokenizer = plan.backbone()
        return RewardTrainer(model=model, args=plan.args, train_dataset=plan.train_dataset(),
                             processing_class=tokenizer, peft_config=plan.peft_config()), cfg
    import datasets

    trainer = policy.dpo_trainer(training, str(tiny_world.policy_dir), datasets.Dataset.from_pandas(_pairs()),
                                 tmp_path, seed=cfg.seed, lora=cfg.models.lora, section=f"{stage}.training",
                                 use_cpu=True, **_ONE_STEP)
    return trainer, cfg


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("profile", ["paper", "colab"])
def test_trainable_weights_and_optimizer_state_stay_float32_under_mixed_precision(profile, stage, tiny_world,
                                                                                  tmp_path, monkeypatch):
    monkeypatch.setattr(models, "check_precision", lambda training, section: None)
    trainer, cfg = _trainer(profile, stage, tiny_world, tmp_path)
    assert trainer.accelerator.mixed_precision == "bf16"  # the step below computes under half-precision autocast
    assert cfg.models.dtype in ("bfloat16", "float16")  # the dtype the trained model is saved in, not trained in
    trainer.train()
    trainable = {name: p for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable, "nothing is trained"
    if cfg.models.lora:  # colab: LoRA adapters (and the reward model's new score head), the base frozen
        assert all("lora_" in name or "score" in name for name in trainable), sorted(trainable)[:5]
    else:  # paper: full fine-tuning
        assert len(trainable) == len(list(trainer.model.parameters()))
    wrong = {name: p.dtype for name, p in trainable.items() if p.dtype != torch.float32}
    assert not wrong, f"{profile} {stage}: trainable parameters not float32: {wrong}"
    states = [v for s in trainer.optimizer.state.values() for k, v in s.items() if torch.is_tensor(v) and v.numel() > 1]
    assert len(states) >= len(trainable), "the optimizer took no step"
    assert {v.dtype for v in states} == {torch.float32}, f"{profile} {stage}: optimizer state dtypes"
