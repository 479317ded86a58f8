"""The launch command a reader needs to train a chapter's stage on several devices (chapters 03, 04 and 05)."""

from __future__ import annotations

from IPython.display import Markdown

__all__ = ["launch_command"]

_CONFIG_WORDS = {
    "deepspeed_zero3": "DeepSpeed ZeRO-3 (weights, gradients and optimizer states sharded; bf16 compute with fp32 "
                       "master weights and optimizer states; `deepspeed_zero2` is faster where the weights fit "
                       "each GPU)",
    "ddp": "plain data parallelism (each GPU holds the model; LoRA adapters and their optimizer states in fp32)",
}


def launch_command(stage: str, profile: str, overrides=(), processes: int | None = None,
                   gpus: int | None = None) -> Markdown:
    """How to train ``stage`` (``reward``, ``dpo``, ``dpo-iter``) of this profile on several devices, as a command to
    copy: the GPUs of this machine (or ``gpus``), one process each, the shipped launcher config, the chapter's
    overrides; and what then happens: the chapter, re-run, reuses the trained model by its fingerprint."""
    from ..launch import CHAPTERS, launch_plan

    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    shown_gpus = gpus if gpus >= 2 else 8
    plan = launch_plan(stage, profile, list(overrides), processes, gpus=shown_gpus if gpus or profile != "tiny"
                       else 0)
    where = (f"This machine has {gpus} GPU{'s' if gpus != 1 else ''}, so the chapter trains in its own process. "
             if gpus < 2 else f"This machine has {gpus} GPUs. ")
    if plan.config is None:
        hardware = f"On {plan.processes} CPU processes (talking over gloo, as the book's CI test runs it):"
    else:
        hardware = (f"On {plan.processes} GPUs, one process each, under {_CONFIG_WORDS[plan.config]}:")
    if isinstance(plan.accumulation, int):
        batch = (f"The profile's global batch is kept: each optimizer step accumulates {plan.accumulation} "
                 f"micro-batch{'es' if plan.accumulation != 1 else ''} per process"
                 + (f" of {plan.per_device} pairs (the command lowers the per-device batch so that "
                    f"{plan.processes} processes make the global batch)." if plan.per_device else "."))
    elif plan.accumulation is None:
        batch = "The profile states no global batch, so it grows with the number of processes."
    else:
        batch = f"As set, this launch would stop: {plan.accumulation}."
    after = (f"Then run this chapter ({CHAPTERS[stage]}) with the same profile and overrides: it finds the trained "
             "model by its fingerprint and shows it as reused, with that training's logs. Only the main process "
             "writes the model; evaluation and any judge calls stay in the chapter, in one process.")
    return Markdown(f"{where}{hardware}\n\n```bash\n{plan.command}\n```\n\n{batch} {after}")
