"""Quiet libraries: what every chapter (:func:`psyco_utils.runtime.start_chapter`) and every training entry point
(:mod:`psyco_utils.launch`) sets before it loads a model, so that pages and terminals show results, not library noise."""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["quiet_libraries"]


def quiet_libraries(cfg) -> None:
    """What every chapter and training entry point sets first: the hub offline where the profile says so, no hub or
    datasets progress bars, and the libraries' warnings and logs kept to errors."""
    if cfg.hub_offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    for name in ("transformers", "datasets", "httpx", "openai"):
        logging.getLogger(name).setLevel(logging.ERROR)
