"""Which process this is when a training stage runs under a launcher (``accelerate launch``, ``torchrun``).

A launcher starts one process per device and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``).  Every process trains; only the main process (rank 0) writes artifacts, draws
samples that are saved, or calls a paid judge.  On one device (a notebook, the tiny book) there is one process, it is
the main one, and waiting for the others returns at once.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

__all__ = ["world_size", "rank", "local_rank", "is_main_process", "wait_for_everyone", "start_processes",
           "main_process_first"]


def world_size() -> int:
    """The number of processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its own machine (0 without a launcher): the device it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True in the one process that writes artifacts and makes paid calls."""
    return rank() == 0


def wait_for_everyone() -> None:
    """A barrier across the launcher's processes, once torch.distributed is initialised (TRL's trainers initialise
    it); a no-op in a single process."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def start_processes() -> None:
    """Join the launcher's process group now (accelerate's ``PartialState`` reads the launcher's environment and
    picks NCCL on GPUs, gloo on CPUs), so that :func:`wait_for_everyone` works before a trainer exists, and the
    trainers see the processes as one data-parallel group.  A no-op in a single process."""
    if world_size() == 1:
        return
    import torch
    from accelerate import PartialState

    if not torch.cuda.is_available():
        # what `accelerate launch --cpu` sets; torchrun does not, and without it transformers' TrainingArguments
        # would train every CPU process on all the data instead of joining them (gloo)
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    PartialState(cpu=not torch.cuda.is_available())


@contextmanager
def main_process_first():
    """``with main_process_first(): ...`` runs the block in the main process first and in the others once it has
    finished (building something every process then reads, such as the tiny world)."""
    if not is_main_process():
        wait_for_everyone()
    yield
    if is_main_process():
        wait_for_everyone()
