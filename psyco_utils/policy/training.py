"""One DPO training through TRL's ``DPOTrainer``, done once per set of inputs (chapters 04 and 05).

The pairs go to TRL in its conversational form (:func:`psyco_utils.pair_schema.to_trl`): the statement as the user
turn, each response as the assistant turn.  The policy is passed to TRL as a saved directory with ``ref_model=None``,
so TRL loads the reference from that same directory: for offline DPO the reference is the starting policy; in DPO-Iter
each round starts from the previous round's saved policy, which is therefore also that round's reference.

A training is keyed by a fingerprint of its inputs (:mod:`psyco_utils.reuse`): run again on the same pairs, settings,
seed and starting policy, the saved model is kept and its record tells what the training did.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import pair_schema
from ..layout import TrainedModelFolder
from ..training import TrainingOutcome, train_seconds, without_log_printing

__all__ = ["TrainingInputs", "TrainingRun", "dpo_config", "lora_config", "training_inputs", "previous_record",
           "previous_run",
           "train_or_reuse", "save_trained", "train_dpo", "dpo_trainer", "release_trainer", "config_table"]

#: The columns of a pair that decide what DPO learns (the fingerprint's data).
_PAIR_TEXT = list(pair_schema.TEXT_COLUMNS)
#: DPOConfig fields the book sets itself, not the profile: shown apart from the profile's settings (the checkpoint
#: selection's only when there is one).
_DERIVED_FIELDS = ("seed", "eval_strategy")
_SELECTION_FIELDS = ("save_strategy", "load_best_model_at_end", "metric_for_best_model")
#: How a global batch is split into processes, per-device batches and accumulation: left out of the fingerprint (the
#: global batch is in it), so that the chapter reuses a model trained under a launcher with another split.
_PER_PROCESS_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps")


@dataclass(frozen=True)
class TrainingInputs:
    """What one DPO training depends on: its fingerprint, the starting policy (also the reference), the number of
    training pairs, and the folder that holds the trained model (``out_dir / 'model'``)."""

    key: str
    start_path: str
    pairs: int
    out_dir: Path

    @property
    def model_dir(self) -> Path:
        return TrainedModelFolder(self.out_dir).model


@dataclass(kw_only=True)
class TrainingRun(TrainingOutcome):
    """A finished (or reused) DPO training: beside every training's outcome (model folder, TRL's logs with
    ``rewards/margins`` and ``rewards/accuracies``, time, reuse), what it started from, its pairs and steps."""

    reference: str
    pairs: int
    steps: int

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    def record(self) -> dict:
        """What is saved beside the model so that a reuse can report this training."""
        return {"seconds": self.seconds, "steps": self.steps, "pairs": self.pairs, "log_history": self.log_history,
                "reference": self.reference}


def lora_config(lora):
    """PEFT's ``LoraConfig`` for a causal LM from the profile's ``models.lora`` section, or None (full fine-tuning)."""
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                      target_modules=lora.target_modules)


def dpo_config(training: dict, out_dir: Path, seed: int, select_on_dev: bool, section: str = "dpo.training",
               processes: int | None = None, **extra):
    """TRL's ``DPOConfig`` from a profile's ``training`` section.  With ``select_on_dev`` the dev loss is measured
    after each epoch and the checkpoint with the lowest one is kept; checkpoints go to ``out_dir / 'checkpoints'``.
    The section's ``global_batch_size`` sets the gradient accumulation for ``processes`` processes (default: the
    launcher's world size).  ``extra`` overrides any value (tests cap steps)."""
    from ..config import trl_config
    from ..models import check_precision

    check_precision(training, section)
    if select_on_dev:
        selection = dict(eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                         metric_for_best_model="eval_loss", greater_is_better=False, save_total_limit=1)
    else:
        selection = dict(eval_strategy="no", save_strategy="no")
    derived = dict(seed=seed, disable_tqdm=True, dataloader_pin_memory=False, save_only_model=True, **selection)
    return trl_config("dpo", training, TrainedModelFolder(Path(out_dir)).checkpoints, section=section,
                      processes=processes, **{**derived, **extra})


def config_table(args, training: dict, processes: int | None = None) -> pd.DataFrame:
    """The ``DPOConfig`` fields that shape this training: those the profile sets (its ``global_batch_size`` too),
    those the book derives, the gradient accumulation derived from the global batch and the processes, and the
    pairs per optimizer step."""
    from ..config import GLOBAL_BATCH_KEY, global_batch
    from ..distributed import world_size

    processes = processes or world_size()
    derived = [*_DERIVED_FIELDS, *(_SELECTION_FIELDS if args.load_best_model_at_end else ())]
    rows = [(name, "profile", training[name] if name == GLOBAL_BATCH_KEY else getattr(args, name))
            for name in training]
    rows += [(name, "book", getattr(args, name)) for name in derived if name not in training]
    if GLOBAL_BATCH_KEY in training:
        rows.append(("gradient_accumulation_steps", f"derived for {processes} process{'es' * (processes != 1)}",
                     args.gradient_accumulation_steps))
    rows.append(("pairs per optimizer step", "derived", global_batch(args, processes)))
    return pd.DataFrame(rows, columns=["DPOConfig field", "set by", "value"]).astype({"value": str})


def training_inputs(training: dict, start_path: str, train, dev, out_dir: Path, seed: int, lora=None) -> TrainingInputs:
    """Validate the pairs (:func:`psyco_utils.pair_schema.validate`) and fingerprint everything the training depends
    on: the profile's training section, LoRA, the seed, the starting policy's files, the train and dev pairs."""
    pair_schema.validate(train, "DPO training pairs")
    if dev is not None:
        pair_schema.validate(dev, "DPO dev pairs")
    from ..reuse import fingerprint

    def texts(data):
        return data.select_columns(_PAIR_TEXT) if hasattr(data, "select_columns") else data[_PAIR_TEXT]

    per_process = {k: v for k, v in training.items() if k not in _PER_PROCESS_FIELDS}
    key = fingerprint("dpo", hyperparameters={"training": per_process, "global_batch": _global_batch(training),
                                              "lora": lora.model_dump() if lora is not None else None},
                      seed=seed, start_model=start_path,
                      data={"train": texts(train), "eval": texts(dev) if dev is not None else None})
    return TrainingInputs(key=key, start_path=str(start_path), pairs=len(train), out_dir=Path(out_dir))


def _global_batch(training: dict) -> int:
    """Pairs per optimizer step with this section on the launcher's processes: its ``global_batch_size``, or else
    what its per-device batch and accumulation make on that many processes."""
    from trl import DPOConfig

    from ..config import GLOBAL_BATCH_KEY
    from ..distributed import world_size

    if GLOBAL_BATCH_KEY in training:
        return int(training[GLOBAL_BATCH_KEY])
    per_device = training.get("per_device_train_batch_size",
                              DPOConfig.__dataclass_fields__["per_device_train_batch_size"].default)
    return per_device * training.get("gradient_accumulation_steps", 1) * world_size()


def previous_record(out_dir: Path, key: str, model_dir: Path, reuse: bool) -> dict | None:
    """The record of the saved training with fingerprint ``key`` (:func:`psyco_utils.reuse.previous_training`).  Only
    the main process removes a stale record; under a launcher the others only read."""
    from ..distributed import is_main_process
    from ..reuse import load_record, previous_training

    if is_main_process():
        return previous_training(out_dir, key, model_dir, reuse)
    return load_record(out_dir, key, model_dir) if reuse else None


def previous_run(inputs: TrainingInputs, reuse: bool) -> TrainingRun | None:
    """The saved training with these inputs' fingerprint, when reuse is on and its model is still there."""
    record = previous_record(inputs.out_dir, inputs.key, inputs.model_dir, reuse)
    if record is None:
        return None
    return TrainingRun(model_dir=inputs.model_dir, reference=record.get("reference", inputs.start_path),
                       pairs=record["pairs"], steps=record["steps"], seconds=record["seconds"],
                       log_history=record.get("log_history", []), reused=True)


def _merged(model):
    """A LoRA-trained model with its adapter merged into the weights (saved as a plain model); others as they are."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return model
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def release_trainer(trainer) -> None:
    """Drop the trainer's models and optimizer so the sampling that follows has the memory (and the GPU)."""
    from ..models import release_unused_memory

    for name in ("model", "model_wrapped", "ref_model", "optimizer", "lr_scheduler"):
        if hasattr(trainer, name):
            setattr(trainer, name, None)
    trainer.accelerator.free_memory()
    release_unused_memory()


def train_or_reuse(trainer, inputs: TrainingInputs, reuse: bool = True) -> TrainingRun:
    """``trainer.train()`` and :func:`save_trained`, or, when a training with the same fingerprint saved its model
    before, keep that model and report its record instead (the launcher's and DPO-Iter's rounds' path; chapter 04 writes
    the same steps out).  Either way the trainer is spent afterwards: its models are released."""
    earlier = previous_run(inputs, reuse)
    if earlier is not None:
        release_trainer(trainer)
        return earlier
    without_log_printing(trainer).train()
    return save_trained(trainer, inputs)


def save_trained(trainer, inputs: TrainingInputs) -> TrainingRun:
    """After ``trainer.train()``: save the trained (best) model to ``inputs.model_dir`` with its tokenizer, drop the
    checkpoints, record the training under its fingerprint for reuse, and release the trainer's models.

    Under a launcher every process trains and calls this; only the main one writes the model, its tokenizer and the
    record (:mod:`psyco_utils.distributed`)."""
    from ..distributed import is_main_process, wait_for_everyone
    from ..reuse import save_record

    wait_for_everyone()  # every process has loaded the selected checkpoint before the checkpoints go
    if is_main_process():
        inputs.out_dir.mkdir(parents=True, exist_ok=True)
    _save_policy(trainer, inputs.model_dir)
    log_history = list(trainer.state.log_history)
    run = TrainingRun(model_dir=inputs.model_dir, reference=inputs.start_path, pairs=inputs.pairs,
                      steps=trainer.state.global_step, seconds=train_seconds(log_history), log_history=log_history)
    if is_main_process():
        shutil.rmtree(TrainedModelFolder(inputs.out_dir).checkpoints, ignore_errors=True)
        save_record(inputs.out_dir, inputs.key, run.record())
    wait_for_everyone()
    release_trainer(trainer)
    return run


def _save_policy(trainer, model_dir: Path) -> None:
    """The trained policy (LoRA merged) and its tokenizer, written by the main process only; a model sharded by
    DeepSpeed ZeRO-3 or FSDP is gathered by the trainer's own ``save_model`` (every process takes part)."""
    from ..distributed import is_main_process

    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if getattr(trainer, "is_fsdp_enabled", False) or (plugin is not None and plugin.zero_stage == 3):
        trainer.save_model(str(model_dir))
    elif is_main_process():
        _merged(trainer.model).save_pretrained(model_dir)
        trainer.processing_class.save_pretrained(model_dir)


def train_dpo(training: dict, start_path: str, train_dataset, out_dir: Path, seed: int, eval_dataset=None,
              lora=None, reuse: bool = True, section: str = "dpo.training") -> TrainingRun:
    """One DPO training from the policy saved at ``start_path`` (also the reference), as chapter 04 writes it out:
    ``DPOConfig`` from the profile, ``DPOTrainer`` on the pairs in TRL's format, :func:`train_or_reuse`.  A reused
    training builds no trainer.  ``section`` names the profile section ``training`` came from, for error messages."""
    from ..models import check_precision

    check_precision(training, section)
    inputs = training_inputs(training, start_path, train_dataset, eval_dataset, out_dir, seed, lora)
    earlier = previous_run(inputs, reuse)
    if earlier is not None:
        return earlier
    trainer = dpo_trainer(training, start_path, train_dataset, out_dir, seed, eval_dataset, lora, section)
    return train_or_reuse(trainer, inputs, reuse=False)


def dpo_trainer(training: dict, start_path: str, train_dataset, out_dir: Path, seed: int, eval_dataset=None,
                lora=None, section: str = "dpo.training", **extra):
    """TRL's ``DPOTrainer`` as chapters 04 and 05 build it: the policy given as the path it is saved at (TRL loads
    it, and the reference from the same path, in float32: fp32 master weights under fp16/bf16 autocast), the pairs
    in TRL's format, LoRA from the profile.  ``extra`` overrides ``DPOConfig`` values (tests cap steps)."""
    from trl import DPOTrainer

    from ..models import load_tokenizer

    args = dpo_config(training, out_dir, seed, select_on_dev=eval_dataset is not None, section=section, **extra)
    return DPOTrainer(model=start_path, ref_model=None, args=args,
                      train_dataset=pair_schema.to_trl(train_dataset, "DPO training pairs"),
                      eval_dataset=(pair_schema.to_trl(eval_dataset, "DPO dev pairs")
                                    if eval_dataset is not None else None),
                      processing_class=load_tokenizer(start_path), peft_config=lora_config(lora))
