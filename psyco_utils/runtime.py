"""One seeded setup call per chapter: load the profile, seed everything, quiet the libraries, time the stage."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import ProfileConfig, load_profile, profile_summary, run_dir
from .layout import RunLayout
from .quiet import quiet_libraries

__all__ = ["Chapter", "seed_everything", "start_chapter", "profile_banner"]


@dataclass
class Chapter:
    """What a chapter's first cell gets back: the validated profile, its run folder and a stage timer."""

    cfg: ProfileConfig
    run: Path
    stage: str
    started: float = field(default_factory=time.perf_counter)

    @property
    def layout(self) -> RunLayout:
        """Where each artifact of this run lives (:class:`psyco_utils.layout.RunLayout`)."""
        return RunLayout(self.run)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def record_check(self, result) -> None:
        """Add a quality check's outcome (:mod:`psyco_utils.checks`) to this stage's entry in the run manifest."""
        from .manifest import record_check

        record_check(self.run, self.stage, result.as_record())

    def finish(self, metrics: dict) -> dict:
        """Record this stage's wall time and headline metrics in ``runs/<profile>/manifest.json``."""
        from .manifest import record_stage

        return record_stage(self.cfg, self.run, self.stage, self.seconds, metrics)


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def start_chapter(profile: str, overrides: list[str] | None, stage: str) -> Chapter:
    """Validate the profile, seed Python/NumPy/torch, keep library output quiet, and start the stage's timer."""
    cfg = load_profile(profile, overrides)
    quiet_libraries(cfg)
    seed_everything(cfg.seed)
    from .show import use_book_style

    use_book_style()
    print(profile_banner(cfg))
    chapter = Chapter(cfg=cfg, run=run_dir(cfg), stage=stage)
    from .manifest import start_stage

    start_stage(chapter.run, stage)
    return chapter


def profile_banner(cfg) -> str:
    """The line every chapter prints first: which profile ran, with which models and judge, and what this is not."""
    return (f"Executed with the {cfg.name} profile: {profile_summary(cfg)}. "
            "Research code that drafts responses for therapists to review; not a service for people in crisis.")
