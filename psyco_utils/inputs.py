"""What each chapter reads from the chapters before it, and what to do when it is missing.

A chapter opened on its own (from the Colab button, or ``psyco-book run --only 04``) reads the artifacts earlier
chapters wrote under ``runs/<profile>/``.  Its first cell calls :func:`require_inputs`, which checks them all at once
and, when some are missing, raises :class:`MissingInputs` naming each missing artifact, the chapters to run first
(in order), and, where the preference pairs are what is missing, how to use the released dataset instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .layout import run_subfolder


@dataclass(frozen=True)
class Input:
    """An artifact a chapter reads: its path under the run folder (under the profile's shared dataset folder for a
    ``dataset`` artifact of a run keyed by model: :class:`psyco_utils.layout.RunLayout`), the chapter that writes
    it, what it is."""

    path: str
    made_by: str
    what: str
    dataset: bool = False

    def location(self, run: Path) -> Path:
        from .layout import RunLayout

        layout = RunLayout(Path(run))
        return (layout.dataset_root if self.dataset else layout.root) / self.path


STATEMENTS = Input("statements/statements.parquet", "01_dataset_construction", "the cleaned statements", dataset=True)
POOL = Input("pool/pool.parquet", "01_dataset_construction", "the response pool", dataset=True)
PAIRS = Input("psycopref/dataset_dict.json", "02_judging", "the preference pairs (psycopref/)", dataset=True)
REWARD_MODEL = Input("reward_model/model/config.json", "03_reward_model", "the trained reward model")
DPO_POLICY = Input("dpo/model/config.json", "04_dpo", "the DPO policy")

NEEDS: dict[str, tuple[Input, ...]] = {
    "01_dataset_construction": (),
    "02_judging": (STATEMENTS, POOL),
    "03_reward_model": (PAIRS,),
    "04_dpo": (PAIRS, REWARD_MODEL),
    "05_dpo_iter": (PAIRS, REWARD_MODEL, DPO_POLICY),
    "06_win_rate": (PAIRS,),
}

RELEASED_HINT = ('or skip chapters 01 and 02 and use the released PsychoCounsel-Preference pairs: set '
                 'overrides = ["splits.source=released"] in the parameters cell (it downloads '
                 'Psychotherapy-LLM/PsychoCounsel-Preference; with a local copy add "splits.released_path=<folder>")')


class MissingInputs(FileNotFoundError):
    """A chapter's inputs from earlier chapters are missing; the message says which chapters to run first."""


def missing_inputs(stage: str, cfg, run: Path) -> list[Input]:
    """The inputs of chapter ``stage`` that are not in ``run`` (the pairs count as present with released splits)."""
    needed = NEEDS.get(stage, ())
    if cfg.splits.source == "released":
        needed = tuple(i for i in needed if i is not PAIRS)
    return [i for i in needed if not i.location(run).exists()]


def chapters_to_run_first(stage: str, cfg, run: Path) -> list[str]:
    """The earlier chapters that must run (in book order) before ``stage`` can: those that write a missing input,
    and, recursively, those whose own inputs are missing."""
    order = list(NEEDS)
    wanted: set[str] = set()
    pending = [i.made_by for i in missing_inputs(stage, cfg, run)]
    while pending:
        chapter = pending.pop()
        if chapter not in wanted:
            wanted.add(chapter)
            pending += [i.made_by for i in missing_inputs(chapter, cfg, run)]
    return sorted(wanted, key=order.index)


def require_inputs(chapter) -> None:
    """Stop a chapter at its first cell when an earlier chapter's artifact is missing, saying what to run first."""
    cfg, run, stage = chapter.cfg, Path(chapter.run), chapter.stage
    missing = missing_inputs(stage, cfg, run)
    if not missing:
        return
    first = chapters_to_run_first(stage, cfg, run)
    listed = "; ".join(f"{i.what} ({i.path.split('/dataset_dict.json')[0]}, written by {i.made_by})" for i in missing)
    where = "$PSYCO_RUNS_DIR" if os.environ.get("PSYCO_RUNS_DIR") else "runs"
    message = (f"chapter {stage} needs what earlier chapters of the {cfg.name} profile write under "
               f"{where}/{run_subfolder(cfg.name, cfg.models.policy)}/, and this is missing: {listed}. Run {', then '.join(first)} first with the same "
               f"profile (psyco-book run --profile {cfg.name} --only {' '.join(c[:2] for c in first)} "
               f"{stage[:2]}, or open and run them in turn)")
    if PAIRS in missing:
        message += f"; {RELEASED_HINT}"
    raise MissingInputs(message + ".")


__all__ = ["Input", "MissingInputs", "NEEDS", "chapters_to_run_first", "missing_inputs", "require_inputs"]
