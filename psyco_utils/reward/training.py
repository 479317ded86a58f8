"""Training the Bradley-Terry reward model with TRL's ``RewardTrainer`` (chapter 03).

The reward model is a sequence classifier with one output, ``r(x, y)``, read at the last token of the chat.  Training
minimises ``-log sigmoid(r(x, y_chosen) - r(x, y_rejected))`` {cite}`bradley1952rank`.  A :class:`TrainingPlan`
holds what one training needs (TRL's ``RewardConfig``, the pairs, the reuse fingerprint); the chapter builds the
``RewardTrainer`` itself from the plan's parts and hands it to :meth:`TrainingPlan.run`, which trains, selects and
saves.  :func:`train_reward_model` does the same in one call (tests, benchmarks).
"""

from __future__ import annotations

import resource
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..by_hand import FLOAT32_EVALUATION
from ..pair_schema import TEXT_COLUMNS, to_trl, validate
from .data import frame_of, set_padding
from ..layout import TrainedModelFolder
from ..training import TrainingOutcome, train_seconds, without_log_printing
from .scoring import RewardScorer

__all__ = [
    "SHOWN_CONFIG", "RewardTrainingResult", "TrainingPlan", "backbone_path", "load_backbone_tokenizer",
    "load_backbone", "lora_config", "reward_config", "shown_config", "max_length", "peak_memory_mb",
    "plan_training", "train_reward_model", "LOSS_CHECK_TOLERANCE", "LOSS_CHECK_NAMES", "trl_metrics_on_batch",
]

# The values of RewardConfig the chapter shows.
SHOWN_CONFIG = ("num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
                "lr_scheduler_type", "warmup_steps", "max_length", "bf16", "fp16", "activation_checkpointing",
                "eval_strategy", "metric_for_best_model", "load_best_model_at_end", "seed")
# RewardConfig fields that say where and how loudly to write, not what is trained.
_UNFINGERPRINTED_ARGS = {"output_dir", "logging_dir", "disable_tqdm", "report_to", "run_name", "hub_token",
                         "push_to_hub_token", "logging_first_step", "save_total_limit", "dataloader_num_workers"}
# RewardConfig fields that depend on how many processes run the training, not on what is trained.
# (The global batch is fingerprinted instead of its split into per-device batch and accumulation.)
_PER_PROCESS_ARGS = {"per_device_train_batch_size", "gradient_accumulation_steps", "local_rank", "ddp_backend",
                     "use_cpu"}
# What the training record keeps, so that a reused model reports its training as the first run did.
_RECORDED = ("log_history", "pairs_given", "train_pairs", "epochs", "seconds", "selected_by", "best_checkpoint",
             "best_metric", "peak_memory_mb", "config")


def backbone_path(cfg, run_root: Path | None = None) -> str:
    """Where the reward backbone comes from: the tiny world's warm-started policy, a hub id, or a local folder."""
    from ..models import resolve_model_path

    return resolve_model_path(cfg.models.reward_backbone, cfg, run_root)


def load_backbone_tokenizer(cfg, run_root: Path | None = None):
    """The backbone's tokenizer as the reward model uses it (right padding, a pad token)."""
    from ..models import load_tokenizer

    tok = load_tokenizer(backbone_path(cfg, run_root))
    set_padding(tok)
    return tok


def _training_dtype(cfg) -> str:
    """The dtype the backbone is trained in: always float32.  The trainable weights are then the optimizer's fp32
    master weights (at the paper's learning rate of 9e-6 most bf16 updates would round away); ``fp16``/``bf16`` in
    ``reward.training`` compute in half precision under autocast (and DeepSpeed's bf16 keeps fp32 optimizer states).
    ``models.dtype`` is the dtype the trained model is saved and scored in.  DPO does the same: TRL loads a policy
    given as a path in float32."""
    return "float32"


def load_backbone(cfg, run_root: Path | None = None, dtype: str | None = None):
    """The reward backbone as a sequence classifier with one output (a freshly initialised ``score`` head), and its
    tokenizer.  ``tiny`` resolves to the tiny world's warm-started policy (built by chapter 01); any other name is a
    hub id or a local folder loaded by the same ``from_pretrained`` call."""
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from ..models import load_reward_backbone

    models_cfg = cfg.models.model_copy(update={"dtype": dtype or cfg.models.dtype})
    with suppress_seqcls_warning():
        model, tok = load_reward_backbone(backbone_path(cfg, run_root), models_cfg)
    set_padding(tok)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def lora_config(cfg):
    """PEFT LoRA for a sequence classifier (the new ``score`` head trained in full), or None without ``models.lora``."""
    if not cfg.models.lora:
        return None
    from peft import LoraConfig

    lora = cfg.models.lora
    return LoraConfig(task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                      target_modules=lora.target_modules, modules_to_save=["score"])


def reward_config(cfg, out_dir: str | Path, has_dev: bool = True, select_by: str = "loss", progress: bool = False,
                  processes: int | None = None, **extra):
    """TRL's ``RewardConfig`` from the profile's ``reward.training`` plus what the chapter derives: the seed,
    evaluation and saving once per epoch on the dev split, and loading the best checkpoint (lowest dev loss, or
    highest dev accuracy with ``select_by="accuracy"``) at the end.  Progress bars stay off unless ``progress``
    (pages show none).  The profile's ``global_batch_size`` sets the gradient accumulation for ``processes``
    processes (default: the launcher's world size).  ``extra`` overrides any value (tests cap steps).
    """
    from ..config import trl_config
    from ..models import check_precision

    check_precision(cfg.reward.training, "reward.training")
    if select_by not in ("loss", "accuracy"):
        raise ValueError(f"select_by must be 'loss' or 'accuracy', not {select_by!r}")
    training = dict(cfg.reward.training)
    # transformers 5 renamed gradient_checkpointing; TRL turns it on unless told otherwise (slow for tiny models)
    checkpointing = bool(training.pop("activation_checkpointing", training.pop("gradient_checkpointing", False)))
    derived = {
        "seed": cfg.seed, "data_seed": cfg.seed, "activation_checkpointing": checkpointing,
        "eval_strategy": "epoch" if has_dev else "no", "save_strategy": "epoch" if has_dev else "no",
        "load_best_model_at_end": has_dev, "metric_for_best_model": f"eval_{select_by}",
        "greater_is_better": select_by == "accuracy", "save_total_limit": 1, "save_only_model": True,
        "disable_tqdm": not progress, "dataloader_pin_memory": False,
    }
    derived.update(extra)
    return trl_config("reward", training, TrainedModelFolder(Path(out_dir)).checkpoints, section="reward.training",
                      processes=processes, **derived)


def shown_config(args, processes: int | None = None) -> pd.DataFrame:
    """The ``RewardConfig`` values the chapter shows (:data:`SHOWN_CONFIG`), one row each, as text, then the
    processes and the global batch they make (pairs per optimizer step: per-device batch x accumulation x
    processes)."""
    from ..config import global_batch
    from ..distributed import world_size

    processes = processes or world_size()
    values = [str(getattr(v, "value", v)) for v in (getattr(args, k) for k in SHOWN_CONFIG)]  # enums by value
    names = [*SHOWN_CONFIG, "processes", "global batch (pairs per optimizer step)"]
    values += [str(processes), str(global_batch(args, processes))]
    return pd.DataFrame({"value": values}, index=pd.Index(names, name="RewardConfig field"))


def max_length(cfg) -> int | None:
    """The longest chat in tokens that training keeps: the profile's ``reward.training.max_length``, else TRL's
    ``RewardConfig`` default."""
    from trl import RewardConfig

    return cfg.reward.training.get("max_length", RewardConfig.__dataclass_fields__["max_length"].default)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB), from ``resource.getrusage``."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass(kw_only=True)
class RewardTrainingResult(TrainingOutcome):
    """What the reward model's training returns: beside every training's outcome (model folder, TRL's logs, time,
    reuse), the model in memory, the pairs TRL kept, checkpoint selection and peak memory."""

    model: Any
    tokenizer: Any
    pairs_given: int
    train_pairs: int
    epochs: float
    selected_by: str
    best_checkpoint: str | None
    best_metric: float | None
    peak_memory_mb: float
    config: dict = field(default_factory=dict)

    @property
    def dropped_by_trl(self) -> int:
        """Train pairs RewardTrainer filtered out for length (what it does not report)."""
        return self.pairs_given - self.train_pairs

    @property
    def pairs_per_second(self) -> float:
        return self.train_pairs * self.epochs / self.seconds if self.seconds else float("nan")

    @property
    def kept(self) -> str:
        """Which weights were kept: the selected checkpoint's folder name, or the final weights."""
        return Path(str(self.best_checkpoint)).name if self.best_checkpoint else "final weights"

    def steps(self) -> pd.DataFrame:
        """Training loss, accuracy and mean margin per logging step (TRL's logs)."""
        rows = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"], "accuracy": h.get("accuracy"),
                 "margin": h.get("margin")} for h in self.log_history if "loss" in h and "eval_loss" not in h]
        return pd.DataFrame(rows, columns=["step", "epoch", "loss", "accuracy", "margin"])

    def epochs_table(self) -> pd.DataFrame:
        """Dev loss, accuracy and mean margin after each epoch, and which checkpoint was kept."""
        rows = [{"epoch": round(h["epoch"], 2), "step": h["step"], "dev loss": h["eval_loss"],
                 "dev accuracy": h.get("eval_accuracy"), "dev mean margin": h.get("eval_margin")}
                for h in self.log_history if "eval_loss" in h]
        table = pd.DataFrame(rows, columns=["epoch", "step", "dev loss", "dev accuracy", "dev mean margin"])
        if self.best_checkpoint and len(table):
            best_step = int(str(self.best_checkpoint).rstrip("/").rsplit("-", 1)[-1])
            table["kept"] = np.where(table["step"] == best_step, "yes", "")
        return table

    def as_record(self) -> dict:
        """The training as the stage's ``metrics.json`` and the reuse record keep it."""
        return {name: getattr(self, name) for name in _RECORDED}


def _fingerprint_hyperparameters(cfg, args) -> dict:
    """What the trained reward model depends on besides data and backbone: TRL's config (less where it writes and
    what the launcher sets per process), the global batch (not its split into processes, per-device batches and
    accumulation, so that a model trained under a launcher is reused by the chapter on one device), and the model
    settings."""
    from ..config import global_batch

    shown = {k: v for k, v in args.to_dict().items() if k not in _UNFINGERPRINTED_ARGS | _PER_PROCESS_ARGS}
    return {"args": shown, "global_batch": global_batch(args), "lora": cfg.models.lora.model_dump() if cfg.models.lora
            else None, "dtype": cfg.models.dtype}


@dataclass
class TrainingPlan:
    """One reward-model training, prepared: the config TRL gets, the validated pairs, and the reuse fingerprint."""

    cfg: Any
    args: Any
    out_dir: Path
    run_root: Path | None
    train: pd.DataFrame
    dev: pd.DataFrame | None
    key: str
    keep_checkpoints: bool = False

    @property
    def model_dir(self) -> Path:
        return TrainedModelFolder(self.out_dir).model

    def earlier_result(self) -> RewardTrainingResult | None:
        """The model an earlier run trained on exactly these inputs (``reuse_trained_models``), or None."""
        from ..distributed import is_main_process
        from ..reuse import load_record, previous_training

        enabled = getattr(self.cfg, "reuse_trained_models", True)
        if is_main_process():  # only the main process removes a stale record; under a launcher the others read
            record = previous_training(self.out_dir, self.key, self.model_dir, enabled)
        else:
            record = load_record(self.out_dir, self.key, self.model_dir) if enabled else None
        if record is None:
            return None
        scorer = RewardScorer.load(self.model_dir, self.cfg)
        return RewardTrainingResult(model_dir=self.model_dir, model=scorer.model, tokenizer=scorer.tokenizer,
                                    reused=True, **{name: record[name] for name in _RECORDED})

    def backbone(self):
        """The backbone with a new ``score`` head, drawn with the profile's seed, and its tokenizer."""
        from transformers import set_seed

        set_seed(self.args.seed)  # the new score head is drawn from the global RNG: same seed, same initial model
        return load_backbone(self.cfg, self.run_root, dtype=_training_dtype(self.cfg))

    def train_dataset(self):
        """The train pairs in TRL's conversational preference format."""
        return to_trl(self.train, "train split")

    def dev_dataset(self):
        """The dev pairs in TRL's format, or None without a dev split."""
        return to_trl(self.dev, "dev split") if self.dev is not None else None

    def peft_config(self):
        return lora_config(self.cfg)

    def run(self, trainer) -> RewardTrainingResult:
        """``trainer.train()`` (a ``RewardTrainer`` built from this plan), then :meth:`save`: the launcher's path;
        chapter 03 writes the same steps out."""
        without_log_printing(trainer).train()
        return self.save(trainer)

    def save(self, trainer) -> RewardTrainingResult:
        """After ``trainer.train()``: save the selected model with its tokenizer to ``model/`` (LoRA merged), drop the
        checkpoints, and record the training for reuse.

        Under a launcher every process trains and calls this; only the main one writes the model and the record, and
        every process returns once they are written (:mod:`psyco_utils.distributed`)."""
        from ..distributed import is_main_process, wait_for_everyone
        from ..reuse import save_record

        wait_for_everyone()  # every process has loaded the selected checkpoint before it is removed
        model, tok = self._save(trainer)
        state, has_dev = trainer.state, self.dev is not None
        log_history = list(state.log_history)
        result = RewardTrainingResult(
            model_dir=self.model_dir, model=model, tokenizer=tok, log_history=log_history,
            pairs_given=len(self.train), train_pairs=len(trainer.train_dataset),
            epochs=float(state.epoch or self.args.num_train_epochs), seconds=train_seconds(log_history),
            selected_by=f"dev {self.args.metric_for_best_model.removeprefix('eval_')}" if has_dev
            else "last step (no dev split)",
            best_checkpoint=state.best_model_checkpoint, best_metric=state.best_metric,
            peak_memory_mb=peak_memory_mb(), config={k: getattr(self.args, k) for k in SHOWN_CONFIG})
        if is_main_process():
            save_record(self.out_dir, self.key, {"stage": "reward_model", **result.as_record()})
        wait_for_everyone()
        return result

    def _save(self, trainer):
        """The selected model, LoRA merged and cast to ``models.dtype``, saved with its tokenizer by the main process
        only; a model sharded by DeepSpeed ZeRO-3 or FSDP is gathered by TRL's own ``save_model`` first."""
        from ..distributed import is_main_process, wait_for_everyone

        model, tok = trainer.model, trainer.processing_class
        model.config.pad_token_id = tok.pad_token_id
        if _sharded(trainer):
            if self.cfg.models.lora:
                raise NotImplementedError("reward model: LoRA with DeepSpeed ZeRO-3 or FSDP is not supported; train "
                                          "LoRA under plain DDP (accelerate launch without a DeepSpeed/FSDP config)")
            if is_main_process():
                shutil.rmtree(self.model_dir, ignore_errors=True)
            trainer.save_model(str(self.model_dir))  # every process takes part in gathering; the main one writes
        else:
            if self.cfg.models.lora:
                model = model.merge_and_unload()
            if self.cfg.models.dtype not in ("auto", "float32"):
                import torch

                model = model.to(getattr(torch, self.cfg.models.dtype))
            if is_main_process():
                shutil.rmtree(self.model_dir, ignore_errors=True)
                model.save_pretrained(self.model_dir)
                tok.save_pretrained(self.model_dir)
        if is_main_process() and not self.keep_checkpoints:
            shutil.rmtree(TrainedModelFolder(self.out_dir).checkpoints, ignore_errors=True)
        wait_for_everyone()
        model.eval()
        return model, tok


def _sharded(trainer) -> bool:
    """Whether the trainer's model is split across processes (DeepSpeed ZeRO-3 or FSDP), so that one process alone
    cannot save it."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return bool(getattr(trainer, "is_fsdp_enabled", False)) or bool(plugin is not None and plugin.zero_stage == 3)


def plan_training(cfg, train, dev, out_dir: str | Path, run_root: Path | None = None, *, args=None,
                  keep_checkpoints: bool = False, **extra) -> TrainingPlan:
    """Validate the pairs (``question``, ``chosen``, ``rejected``; ``dev`` may be None or empty), build the
    ``RewardConfig`` unless ``args`` is given (:func:`reward_config` with ``extra``), and fingerprint the inputs."""
    from ..reuse import fingerprint

    train_frame = frame_of(train)
    validate(train_frame, "train split", TEXT_COLUMNS)
    dev_frame = frame_of(dev) if dev is not None and len(dev) > 0 else None
    if dev_frame is not None:
        validate(dev_frame, "dev split", TEXT_COLUMNS)
    if args is None:
        args = reward_config(cfg, out_dir, has_dev=dev_frame is not None, **extra)
    key = fingerprint(
        "reward_model", hyperparameters=_fingerprint_hyperparameters(cfg, args), seed=args.seed,
        start_model=backbone_path(cfg, run_root),
        data={"train": train_frame[list(TEXT_COLUMNS)],
              "dev": dev_frame[list(TEXT_COLUMNS)] if dev_frame is not None else None})
    return TrainingPlan(cfg=cfg, args=args, out_dir=Path(out_dir), run_root=run_root, train=train_frame,
                        dev=dev_frame, key=key, keep_checkpoints=keep_checkpoints)


def train_reward_model(cfg, train, dev, out_dir: str | Path, run_root: Path | None = None, *, args=None,
                       keep_checkpoints: bool = False, **extra) -> RewardTrainingResult:
    """Train the Bradley-Terry reward model with TRL's ``RewardTrainer`` and save it with its tokenizer to
    ``out_dir/model``, in one call: :func:`plan_training`, then the trainer chapter 03 builds, then
    :meth:`TrainingPlan.run`.  A model trained earlier on exactly these inputs is loaded instead (``reused``)."""
    from trl import RewardTrainer

    plan = plan_training(cfg, train, dev, out_dir, run_root, args=args, keep_checkpoints=keep_checkpoints, **extra)
    earlier = plan.earlier_result()
    if earlier is not None:
        return earlier
    model, tokenizer = plan.backbone()
    trainer = RewardTrainer(model=model, args=plan.args, train_dataset=plan.train_dataset(),
                            eval_dataset=plan.dev_dataset(), processing_class=tokenizer,
                            peft_config=plan.peft_config())
    return plan.run(trainer)


#: How closely the reward-model loss, accuracy and margin computed by hand must match TRL's (absolute): one batch
#: scored by TRL and by :class:`RewardScorer` in float32 agrees to about 1e-6.
LOSS_CHECK_TOLERANCE = 1e-4
#: What chapter 03 computes by hand, and the name ``RewardTrainer.evaluate()`` logs each under.
LOSS_CHECK_NAMES = {"loss": "eval_loss", "accuracy": "eval_accuracy", "margin": "eval_margin"}


def trl_metrics_on_batch(cfg, scorer: RewardScorer, pairs) -> dict:
    """TRL's own loss, accuracy and mean margin for one batch of pairs (chapter 03's check of the Bradley-Terry loss):
    ``RewardTrainer(model=<the scorer's model>).evaluate()`` on exactly the pairs as one evaluation batch, with the
    chapter's ``RewardConfig`` except mixed precision (:data:`psyco_utils.by_hand.FLOAT32_EVALUATION`).  The
    scorer's own model and tokenizer are evaluated, not a second copy; it must be float32 (:func:`in_float32`)."""
    import tempfile

    import torch
    from trl import RewardTrainer

    if scorer.model.dtype != torch.float32:
        raise ValueError(f"the loss check evaluates in float32, and {scorer.name} is {scorer.model.dtype}: pass "
                         "reward.in_float32(scorer)")
    frame = frame_of(pairs)
    data = to_trl(frame, "pairs of the loss check")
    with tempfile.TemporaryDirectory() as scratch:
        args = reward_config(cfg, scratch, has_dev=False, per_device_eval_batch_size=len(frame), **FLOAT32_EVALUATION)
        trainer = without_log_printing(RewardTrainer(model=scorer.model, args=args, train_dataset=data,
                                                     eval_dataset=data, processing_class=scorer.tokenizer))
        metrics = trainer.evaluate()
    return {name: float(metrics[logged]) for name, logged in LOSS_CHECK_NAMES.items()}
