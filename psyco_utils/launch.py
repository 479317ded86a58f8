"""The training stages as entry points that an existing launcher runs on several devices.

::

    accelerate launch --config_file "$(python -m psyco_utils.launch --config-path deepspeed_zero3)" \
        --num_processes 8 -m psyco_utils.launch reward dpo --profile paper
    torchrun --nproc_per_node 8 -m psyco_utils.launch dpo --profile paper
    psyco-book train dpo-iter --profile paper            # the same entry points, one process

Each stage reads the inputs its chapter reads from the run folder (the preference pairs; for DPO-Iter also chapter
03's reward model), trains with the code its chapter calls, and saves what its chapter saves: the model with its
training record and reuse fingerprint (:mod:`psyco_utils.reuse`).  Run on the same profile and overrides, the chapter
then finds the model by its fingerprint and shows it as reused, with this training's logs.  Every process trains;
only the main one writes (:mod:`psyco_utils.distributed`).  The chapters' evaluation (scoring the test pairs, held-out
samples, judge calls) stays in the chapters, which run in one process.

``python -m psyco_utils.launch --config-path NAME`` prints where the shipped accelerate config ``NAME`` is
(:data:`LAUNCH_CONFIGS`: DeepSpeed ZeRO-2 and ZeRO-3, FSDP, plain DDP).  On CPUs (the book's CI test) ``torchrun``
starts the processes, which talk over gloo.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import inputs
from .config import load_profile, run_dir
from .distributed import is_main_process, main_process_first, start_processes, world_size
from .quiet import quiet_libraries

__all__ = ["STAGES", "CHAPTERS", "LAUNCH_CONFIG_DIR", "LAUNCH_CONFIGS", "LaunchPlan", "launch_plan",
           "launch_config_path", "train_reward",
           "train_offline_dpo", "train_dpo_iter", "train_stage", "main"]

#: The chapter whose training each entry point runs.
CHAPTERS = {"reward": "03_reward_model", "dpo": "04_dpo", "dpo-iter": "05_dpo_iter"}
STAGES = tuple(CHAPTERS)
LAUNCH_CONFIG_DIR = Path(__file__).parent / "launch_configs"
#: The accelerate configs shipped with the package, by name (file stem).
LAUNCH_CONFIGS = ("deepspeed_zero2", "deepspeed_zero3", "fsdp", "ddp")
#: What each stage's training reads from the run folder (DPO trains on the pairs alone; its chapter also reads the
#: reward model, for the held-out comparison that follows the training).
_NEEDS = {"reward": (inputs.PAIRS,), "dpo": (inputs.PAIRS,), "dpo-iter": (inputs.PAIRS, inputs.REWARD_MODEL)}


def launch_config_path(name: str) -> Path:
    """The shipped accelerate config ``name`` (one of :data:`LAUNCH_CONFIGS`)."""
    if name not in LAUNCH_CONFIGS:
        raise ValueError(f"unknown launch config {name!r}; shipped: {', '.join(LAUNCH_CONFIGS)}")
    return LAUNCH_CONFIG_DIR / f"{name}.yaml"


@dataclass(frozen=True)
class LaunchPlan:
    """How to train one stage on some hardware: the command, the launcher's config (None for torchrun on CPUs), the
    processes, and the gradient accumulation the profile's global batch gives them (None: no global batch stated;
    a ProfileError's text when it does not divide)."""

    command: str
    config: str | None
    processes: int
    accumulation: int | str | None
    per_device: int | None = None  # a per-device batch the command sets so that the processes make the global batch


def _fitting_per_device_batch(training: dict, processes: int) -> int | None:
    """A smaller per-device batch that lets ``processes`` processes make the section's global batch, where its own
    does not (the largest divisor of global batch / processes below it); None when it fits or nothing fits."""
    from .config import GLOBAL_BATCH_KEY

    global_batch, per_device = training.get(GLOBAL_BATCH_KEY), training.get("per_device_train_batch_size", 8)
    if global_batch is None or global_batch % processes or global_batch % (per_device * processes) == 0:
        return None
    share = global_batch // processes
    return max(d for d in range(1, min(per_device, share) + 1) if share % d == 0)


def launch_plan(stage: str, profile: str, overrides: list[str] | tuple = (), processes: int | None = None,
                gpus: int | None = None) -> LaunchPlan:
    """The launch command for training ``stage`` of ``profile`` (with the chapter's ``overrides``) on ``gpus``
    GPUs (default: those this machine has) with ``processes`` processes (default: one per GPU; 2 on a machine
    without GPUs, as the book's CI runs it).  Full fine-tuning on GPUs runs under DeepSpeed ZeRO-3 (bf16, fp32
    master weights and optimizer states), LoRA under plain DDP, CPUs under torchrun (gloo)."""
    import shlex

    from .config import ProfileError, accumulation_steps

    if stage not in CHAPTERS:
        raise ValueError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
    cfg = load_profile(profile, list(overrides))
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    processes = processes or (gpus if gpus else 2)
    config = None if not gpus else ("ddp" if cfg.models.lora else "deepspeed_zero3")
    section = {"reward": "reward", "dpo": "dpo", "dpo-iter": "dpo_iter"}[stage]
    training = getattr(cfg, section).training
    per_device = _fitting_per_device_batch(training, processes)
    if per_device is not None:  # the fingerprint leaves the per-device batch out: the chapter still reuses the model
        overrides = [*overrides, f"{section}.training.per_device_train_batch_size={per_device}"]
        training = {**training, "per_device_train_batch_size": per_device}
    try:
        accumulation = accumulation_steps(training, f"{section}.training", processes)
    except ProfileError as error:
        accumulation = str(error)
    sets = " ".join(f"--set {shlex.quote(o)}" for o in overrides)
    entry = f"-m psyco_utils.launch {stage} --profile {shlex.quote(profile)}" + (f" {sets}" if sets else "")
    if config is None:
        command = f"torchrun --standalone --nproc_per_node {processes} {entry}"
    else:
        command = (f'accelerate launch --config_file "$(python -m psyco_utils.launch --config-path {config})" '
                   f"--num_processes {processes} {entry}")
    return LaunchPlan(command=command, config=config, processes=processes, accumulation=accumulation,
                      per_device=per_device)


def _require(stage: str, cfg, run: Path) -> None:
    """Stop before any model loads when the stage's inputs are missing, naming them and the chapters to run."""
    needed = [i for i in _NEEDS[stage] if not (cfg.splits.source == "released" and i is inputs.PAIRS)]
    if stage == "dpo-iter" and cfg.dpo_iter.start_from == "dpo":
        needed.append(inputs.DPO_POLICY)
    missing = [i for i in needed if not i.location(run).exists()]
    if missing:
        listed = "; ".join(f"{i.what} ({i.path}, written by {i.made_by})" for i in missing)
        chapters = " ".join(sorted({i.made_by[:2] for i in missing}))
        raise inputs.MissingInputs(
            f"training stage {stage} of the {cfg.name} profile needs, in its run folder, {listed}. Run those "
            f"chapters first with the same profile and overrides (psyco-book run --profile {cfg.name} --only "
            f"{chapters})")


def train_reward(cfg, run: Path):
    """Chapter 03's training: the reward model on the train pairs (plus HelpSteer2 when the profile mixes it),
    checkpoint selected on the dev pairs, saved to ``reward_model/model`` with its training record."""
    from trl import RewardTrainer

    from . import reward
    from .pairs import load_preference_data

    prefs = load_preference_data(cfg, run)
    train_pairs = reward.training_pairs(cfg, prefs)
    out_dir = reward.stage_dir(run)
    args = reward.reward_config(cfg, out_dir, has_dev=prefs["dev"].num_rows > 0)
    with main_process_first():  # the tiny world, where the backbone is `tiny`, is built once
        plan = reward.plan_training(cfg, train_pairs, prefs["dev"], out_dir, run_root=run, args=args)
    earlier = plan.earlier_result()
    if earlier is not None:
        return earlier
    model, tokenizer = plan.backbone()
    trainer = RewardTrainer(model=model, args=args, train_dataset=plan.train_dataset(),
                            eval_dataset=plan.dev_dataset(), processing_class=tokenizer,
                            peft_config=plan.peft_config())
    return plan.run(trainer)


def train_offline_dpo(cfg, run: Path):
    """Chapter 04's training: DPO from the base policy (also the reference) on the train pairs, checkpoint selected
    on the dev pairs, saved to ``dpo/model`` with its training record."""
    from . import policy
    from .layout import RunLayout
    from .models import resolve_model_path
    from .pairs import load_preference_data

    pairs = load_preference_data(cfg, run)
    with main_process_first():
        base_path = resolve_model_path(cfg.models.policy, cfg, run)
    folder = RunLayout(run).dpo.root
    dpo_inputs = policy.training_inputs(cfg.dpo.training, base_path, pairs["train"], pairs["dev"], folder,
                                        seed=cfg.seed, lora=cfg.models.lora)
    earlier = policy.previous_run(dpo_inputs, cfg.reuse_trained_models)
    if earlier is not None:
        return earlier
    trainer = policy.dpo_trainer(cfg.dpo.training, base_path, pairs["train"], folder, cfg.seed,
                                 eval_dataset=pairs["dev"], lora=cfg.models.lora)
    return policy.train_or_reuse(trainer, dpo_inputs, reuse=False)


def train_dpo_iter(cfg, run: Path):
    """Chapter 05's loop: every round's sampling, scoring with chapter 03's reward model, pairing and DPO, saved
    under ``dpo_iter/round_<k>/`` (:func:`psyco_utils.policy.run_dpo_iter`, as the chapter calls it)."""
    from . import policy
    from .layout import RunLayout
    from .pairs import load_preference_data
    from .reward import load_trained_reward_model

    pairs = load_preference_data(cfg, run)
    scorer = load_trained_reward_model(cfg, run)
    with main_process_first():
        start_path = policy.dpo_iter_start(cfg, run)
    statements = policy.training_statements(pairs["train"])
    return policy.run_dpo_iter(cfg, start_path, scorer, statements, RunLayout(run).dpo_iter_dir)


_TRAIN = {"reward": train_reward, "dpo": train_offline_dpo, "dpo-iter": train_dpo_iter}


def train_stage(stage: str, profile: str = "tiny", overrides: list[str] | None = None):
    """Run training stage ``stage`` (``reward``, ``dpo`` or ``dpo-iter``) of ``profile`` in this process, which may
    be one of a launcher's: join the launcher's processes, check the inputs, seed as the chapter does, train.
    Returns the stage's training result (reused when an earlier training had the same fingerprint)."""
    from transformers import set_seed

    if stage not in CHAPTERS:
        raise ValueError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
    cfg = load_profile(profile, overrides)
    start_processes()
    quiet_libraries(cfg)
    run = run_dir(cfg)
    _require(stage, cfg, run)
    set_seed(cfg.seed)  # Python, NumPy and torch, as the chapter's first cell seeds them
    return _TRAIN[stage](cfg, run)


def _report(stage: str, profile: str, result, seconds: float) -> str:
    """One line for the terminal of the main process: what was trained or reused, and where it is."""
    processes = world_size()
    where = {"reward": "reward_model/model", "dpo": "dpo/model", "dpo-iter": "dpo_iter/round_<k>/model"}[stage]
    if stage == "dpo-iter":
        reused, done = bool(result.rounds["dpo_reused"].all()), f"{len(result.rounds)} rounds, {result.total_steps} " \
            "DPO steps"
    elif stage == "dpo":
        reused, done = result.reused, f"{result.steps} DPO steps on {result.pairs} pairs"
    else:
        reused, done = result.reused, f"{result.train_pairs} pairs x {result.epochs:g} epochs"
    verb = ("reused (same fingerprint, nothing trained)" if reused
            else f"trained on {processes} process{'es' if processes != 1 else ''}")
    return (f"{stage}: {verb}: {done}, {seconds:.1f} s; saved under {where} in the run folder. Chapter "
            f"{CHAPTERS[stage]} with profile {profile} and the same overrides reuses it.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m psyco_utils.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE",
                        help=f"training stage(s) to run in order: {', '.join(STAGES)}")
    parser.add_argument("--profile", default="tiny", help="tiny, colab, paper or a preset YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a profile override, as in the chapter's `overrides` (repeatable)")
    parser.add_argument("--config-path", choices=LAUNCH_CONFIGS, metavar="NAME",
                        help=f"print the path of a shipped accelerate config ({', '.join(LAUNCH_CONFIGS)}) and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m psyco_utils.launch STAGE [STAGE ...] --profile P [--set key=value ...]``, or
    ``--config-path NAME``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.config_path:
        print(launch_config_path(args.config_path))
        return 0
    unknown = [stage for stage in args.stages if stage not in STAGES]
    if unknown or not args.stages:
        parser.error(f"name training stages among {', '.join(STAGES)}" + (f", not {', '.join(unknown)}" if unknown
                                                                          else ""))
    for stage in args.stages:
        start = time.perf_counter()
        result = train_stage(stage, args.profile, args.overrides)
        if is_main_process():
            print(_report(stage, args.profile, result, time.perf_counter() - start), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
