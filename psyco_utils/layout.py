"""The run layout: where every artifact of a run lives under its run folder, and how chapters 06 and 07 and the run
manifest are saved and loaded.

**The run folder** is ``runs/<profile>/`` for the tiny profile, whose policy is built locally, and
``runs/<profile>/<model tag>/`` for a profile whose policy is a hub model or a local copy of one, so that runs of
two models (the paper's Llama-3.2-3B and Llama-3.1-8B) sit side by side instead of overwriting each other::

    runs/tiny/                             the tiny book
    runs/paper/llama-3.2-3b-instruct/      models.policy: meta-llama/Llama-3.2-3B-Instruct
    runs/paper/llama-3.1-8b-instruct/      models.policy: meta-llama/Llama-3.1-8B-Instruct
    runs/colab/qwen2.5-0.5b-instruct/

The model tag is the last part of the policy's hub id or folder, in lower case (:func:`model_tag`); ``runs/`` is
``$PSYCO_RUNS_DIR`` when that is set.  :func:`psyco_utils.config.run_dir` gives a profile's run folder and
:func:`runs_by_model` lists the runs of one profile by model (chapter 06 sets the models' columns side by side).

Every chapter reads the artifacts of the chapters before it and writes its own (the contract in the design notes).
:class:`RunLayout` names each of them once, as a typed path, so that no module spells ``"judgments.sqlite"`` itself::

    layout = RunLayout(chapter.run)
    layout.judgments               # runs/<profile>/judgments.sqlite
    layout.dpo_iter_round(2).model # runs/<profile>/dpo_iter/round_2/model

The loads and saves below cover what chapter 06 writes (the policies' answers, the per-comparison verdicts, the win
rates, the cached reference answers), what chapter 07 reads, and the manifest every chapter updates.  A file that is
not what a load expects is an error naming the file and the column.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

__all__ = ["RunLayout", "TrainedModelFolder", "LayoutError", "dpo_iter_round_folder", "METRICS_FILE", "ANSWERS_FILE",
           "VERDICT_COLUMNS", "ANSWER_COLUMNS", "has_model", "TINY_POLICY", "model_tag", "runs_root", "run_subfolder",
           "run_folder", "runs_by_model", "SHARED_DATASET_FILE", "mark_shared_dataset"]

#: Columns of ``eval/verdicts.parquet``: one row per (setting, policy, statement, principle or overall).
VERDICT_COLUMNS = ("setting", "policy", "item", "aspect", "verdict_policy_first", "verdict_policy_second", "outcome",
                   "policy_words", "reference_words")
#: Columns of ``eval/answers.parquet``: one row per (setting, responder, statement).
ANSWER_COLUMNS = ("setting", "responder", "item", "statement_id", "response")
_MODEL_MARKERS = ("config.json", "adapter_config.json")
#: The name of a stage's metrics file (a training stage's, and DPO-Iter's summary over all rounds).
METRICS_FILE = "metrics.json"
#: The sources' own answers, beside the statements they answer.
ANSWERS_FILE = "answers.parquet"
#: In a profile's folder: the file that says its model runs share its dataset stages (:class:`RunLayout`).
SHARED_DATASET_FILE = "shared_dataset.json"


#: The policy name of the tiny world (built locally): its runs are not keyed by model.
TINY_POLICY = "tiny"
_TAG_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def model_tag(policy: str) -> str | None:
    """The folder a run of ``policy`` gets under its profile: the last part of a hub id or of a local folder, in lower
    case, with anything but letters, digits, ``.``, ``_`` and ``-`` made a ``-`` (``meta-llama/Llama-3.2-3B-Instruct``
    -> ``llama-3.2-3b-instruct``); None for the tiny world's policy, whose run is the profile's folder itself."""
    if policy == TINY_POLICY:
        return None
    name = PurePosixPath(str(policy).replace("\\", "/").rstrip("/")).name
    tag = _TAG_UNSAFE.sub("-", name.lower()).strip("-.")
    if not tag:
        raise ValueError(f"models.policy {policy!r} has no name to key its run folder by")
    return tag


def runs_root(root: str | Path | None = None) -> Path:
    """The folder that holds every profile's runs: ``root``, else ``$PSYCO_RUNS_DIR``, else ``runs``."""
    return Path(root or os.environ.get("PSYCO_RUNS_DIR", "runs"))


def run_subfolder(profile: str, policy: str) -> str:
    """A run's folder relative to the runs folder, as messages and pages name it: ``paper/llama-3.2-3b-instruct``,
    or ``tiny``."""
    tag = model_tag(policy)
    return profile if tag is None else f"{profile}/{tag}"


def run_folder(profile: str, policy: str, root: str | Path | None = None) -> Path:
    """The run folder of ``profile`` with ``policy`` (see the module; not created here)."""
    return runs_root(root) / run_subfolder(profile, policy)


def runs_by_model(profile: str, root: str | Path | None = None) -> dict[str, Path]:
    """The runs of one profile that have a manifest, by model tag, in tag order: ``{"llama-3.1-8b-instruct": ...,
    "llama-3.2-3b-instruct": ...}``.  A run in the profile's folder itself (the tiny profile's) is listed under the
    model tag its manifest records, or under the profile's name when it records none."""
    folder = runs_root(root) / profile
    found = {}
    if (folder / "manifest.json").is_file():
        found[_read_json(folder / "manifest.json").get("model_tag") or profile] = folder
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if child.is_dir() and (child / "manifest.json").is_file():
            found[child.name] = child
    return dict(sorted(found.items()))


def dpo_iter_round_folder(dpo_iter_dir: str | Path, k: int) -> TrainedModelFolder:
    """Round ``k`` (from 1) of a DPO-Iter run whose rounds live under ``dpo_iter_dir``."""
    if int(k) < 1:
        raise ValueError(f"DPO-Iter rounds count from 1, got {k}")
    return TrainedModelFolder(Path(dpo_iter_dir) / f"round_{int(k)}")


class LayoutError(ValueError):
    """An artifact on disk is not what its load expects: the message names the file and what is wrong."""


def has_model(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved model (its ``config.json``, or a LoRA adapter's ``adapter_config.json``)."""
    return any((Path(folder) / marker).exists() for marker in _MODEL_MARKERS)


@dataclass(frozen=True)
class TrainedModelFolder:
    """The folder of one training stage (reward model, DPO, one DPO-Iter round): the saved model, the stage's
    metrics, the reuse record keyed by the training's fingerprint, and the trainer's checkpoints while it runs."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def training_record(self) -> Path:
        return self.root / "training_record.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def pairs(self) -> Path:
        """The pairs a DPO-Iter round trained on (only rounds write it)."""
        return self.root / "pairs.parquet"

    @property
    def samples(self) -> Path:
        """A DPO-Iter round's samples and rewards, saved per batch under their fingerprint while the round draws them
        (only rounds write it; :mod:`psyco_utils.policy.sampling`)."""
        return self.root / "samples"

    @property
    def test_predictions(self) -> Path:
        """The reward model's scores of the test pairs (only the reward model writes it)."""
        return self.root / "test_predictions.parquet"

    def has_model(self) -> bool:
        return has_model(self.model)


def mark_shared_dataset(profile_folder: str | Path) -> Path:
    """Mark a profile's folder as holding the dataset its model runs share (see :class:`RunLayout`); idempotent."""
    marker = Path(profile_folder) / SHARED_DATASET_FILE
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_json(marker, {"holds": "the statements, pool, judge cache and preference pairs that this profile's "
                                      "model runs (its sub-folders) share"})
    return marker


@dataclass(frozen=True)
class RunLayout:
    """Every artifact of one run, as paths under ``root``, its run folder (``runs/<profile>/[<model tag>/]``).

    The dataset stages (chapter 01's statements and pool, chapter 02's pairs, and the judge's cache) do not depend
    on the policy, so the model runs of one profile share them: when the run folder's parent is marked as a shared
    dataset folder (:func:`mark_shared_dataset`, done by :func:`psyco_utils.config.run_dir` for a run keyed by model),
    those artifacts live in ``dataset_root``, the profile's folder, and an 8B run reads the 3B run's judged pairs
    instead of paying the judge again.  Otherwise ``dataset_root`` is ``root``."""

    root: Path
    dataset_root: Path = field(init=False)

    def __post_init__(self):
        root = Path(self.root)
        object.__setattr__(self, "root", root)
        shared = (root.parent / SHARED_DATASET_FILE).is_file()
        object.__setattr__(self, "dataset_root", root.parent if shared else root)

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the run folder, as pages show it (never the machine's folder); a shared dataset
        artifact as ``../<path>``."""
        path = Path(path)
        if path.is_relative_to(self.root) or self.dataset_root == self.root:
            return path.relative_to(self.root).as_posix()
        return "../" + path.relative_to(self.dataset_root).as_posix()

    # ---------------------------------------------------------------- chapter 01: statements, tiny world, pool
    @property
    def tiny_world(self) -> Path:
        return self.root / "tiny_world"

    @property
    def statements_dir(self) -> Path:
        return self.dataset_root / "statements"

    @property
    def statements(self) -> Path:
        return self.statements_dir / "statements.parquet"

    @property
    def dropped_statements(self) -> Path:
        return self.statements_dir / "dropped.parquet"

    @property
    def answers(self) -> Path:
        """The sources' own answers to the kept statements."""
        return self.statements_dir / ANSWERS_FILE

    @property
    def filter_counts(self) -> Path:
        return self.statements_dir / "filter_counts.csv"

    @property
    def pool_dir(self) -> Path:
        return self.dataset_root / "pool"

    @property
    def pool(self) -> Path:
        return self.pool_dir / "pool.parquet"

    @property
    def pool_generators(self) -> Path:
        return self.pool_dir / "generators.csv"

    @property
    def pool_partial(self) -> Path:
        """Per-batch checkpoints of the pool's generators, kept so that a killed pool resumes."""
        return self.pool_dir / "partial"

    # ---------------------------------------------------------------- chapter 02: judgments and pairs
    @property
    def judgments(self) -> Path:
        """The judge's SQLite cache: every judgment, chat answer and theme label, with its cost."""
        return self.dataset_root / "judgments.sqlite"

    @property
    def scored_pool(self) -> Path:
        return self.pool_dir / "scored.parquet"

    @property
    def preference_data(self) -> Path:
        """The constructed pairs, a ``datasets.DatasetDict`` saved with ``save_to_disk``."""
        return self.dataset_root / "psycopref"

    @property
    def preference_data_marker(self) -> Path:
        """The file that exists once :attr:`preference_data` is completely saved."""
        return self.preference_data / "dataset_dict.json"

    @property
    def dataset_card(self) -> Path:
        return self.preference_data / "README.md"

    # ---------------------------------------------------------------- chapters 03 to 05: trained models
    @property
    def reward_model(self) -> TrainedModelFolder:
        return TrainedModelFolder(self.root / "reward_model")

    @property
    def dpo(self) -> TrainedModelFolder:
        return TrainedModelFolder(self.root / "dpo")

    @property
    def held_out_samples(self) -> Path:
        """Scored held-out samples of the policies (chapters 04 and 05), one parquet file per fingerprint."""
        return self.root / "held_out_samples"

    @property
    def dpo_iter_dir(self) -> Path:
        return self.root / "dpo_iter"

    @property
    def dpo_iter_metrics(self) -> Path:
        """Chapter 05's summary over all rounds."""
        return self.dpo_iter_dir / METRICS_FILE

    def dpo_iter_round(self, k: int) -> TrainedModelFolder:
        return dpo_iter_round_folder(self.dpo_iter_dir, k)

    def dpo_iter_rounds(self) -> list[TrainedModelFolder]:
        """The rounds on disk with a saved model, in round order."""
        found = []
        for folder in self.dpo_iter_dir.glob("round_*"):
            suffix = folder.name.removeprefix("round_")
            if suffix.isdigit() and has_model(folder / "model"):
                found.append((int(suffix), TrainedModelFolder(folder)))
        return [folder for _, folder in sorted(found, key=lambda pair: pair[0])]

    # ---------------------------------------------------------------- chapter 06: evaluation
    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def verdicts(self) -> Path:
        return self.eval_dir / "verdicts.parquet"

    @property
    def win_rates(self) -> Path:
        return self.eval_dir / "win_rates.json"

    @property
    def eval_answers(self) -> Path:
        return self.eval_dir / "answers.parquet"

    def reference_answers(self, constrained: bool) -> Path:
        """The base policy's reference answers (tiny profile), cached per setting."""
        return self.eval_dir / f"reference_{'constrained' if constrained else 'free'}.parquet"

    # ---------------------------------------------------------------- every chapter
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def artifacts(self) -> dict[str, Path]:
        """Every named artifact (DPO-Iter as its first round), for listing and for the layout's own tests."""
        named = {name: getattr(self, name) for name in (
            "tiny_world", "statements", "dropped_statements", "answers", "filter_counts", "pool", "pool_generators",
            "pool_partial", "judgments", "scored_pool", "preference_data", "dataset_card", "held_out_samples",
            "dpo_iter_metrics", "verdicts", "win_rates", "eval_answers", "manifest")}
        named["reference answers (free)"] = self.reference_answers(False)
        named["reference answers (constrained)"] = self.reference_answers(True)
        for stage, folder in (("reward_model", self.reward_model), ("dpo", self.dpo),
                              ("dpo_iter round 1", self.dpo_iter_round(1))):
            for part in ("model", "metrics", "training_record", "checkpoints"):
                named[f"{stage} {part}"] = getattr(folder, part)
        named["reward_model test_predictions"] = self.reward_model.test_predictions
        named["dpo_iter round 1 pairs"] = self.dpo_iter_round(1).pairs
        named["dpo_iter round 1 samples"] = self.dpo_iter_round(1).samples
        return named

    # ---------------------------------------------------------------- loads and saves
    def load_manifest(self) -> dict:
        """The run manifest, or an empty one (``{"stages": {}}``) before any chapter has run."""
        manifest = _read_json(self.manifest) if self.manifest.exists() else {}
        manifest.setdefault("stages", {})
        return manifest

    def save_manifest(self, manifest: dict) -> Path:
        """Replace the manifest atomically: a reader never sees half a file."""
        if not isinstance(manifest.get("stages"), dict):
            raise LayoutError(f"{self.manifest.name}: a manifest needs a 'stages' mapping")
        return _write_json(self.manifest, manifest)

    def save_verdicts(self, verdicts: pd.DataFrame) -> Path:
        return _write_parquet(self.verdicts, verdicts, VERDICT_COLUMNS)

    def load_verdicts(self) -> pd.DataFrame:
        return _read_parquet(self.verdicts, VERDICT_COLUMNS)

    def save_eval_answers(self, answers: pd.DataFrame) -> Path:
        return _write_parquet(self.eval_answers, answers, ANSWER_COLUMNS)

    def load_eval_answers(self) -> pd.DataFrame:
        return _read_parquet(self.eval_answers, ANSWER_COLUMNS)

    def save_win_rates(self, win_rates: dict) -> Path:
        return _write_json(self.win_rates, win_rates)

    def load_win_rates(self) -> dict:
        return _read_json(self.win_rates)

    def save_reference_answers(self, constrained: bool, questions: Sequence[str], responses: Sequence[str]) -> Path:
        if len(questions) != len(responses):
            raise LayoutError(f"{len(questions)} questions but {len(responses)} reference answers")
        frame = pd.DataFrame({"question": list(questions), "response": list(responses)})
        return _write_parquet(self.reference_answers(constrained), frame, ("question", "response"))

    def load_reference_answers(self, constrained: bool, questions: Sequence[str]) -> list[str] | None:
        """The cached reference answers to exactly ``questions`` (in order), or None when there are none for them."""
        path = self.reference_answers(constrained)
        if not path.exists():
            return None
        cached = _read_parquet(path, ("question", "response"))
        return cached["response"].tolist() if cached["question"].tolist() == list(questions) else None

    def load_dpo_iter_metrics(self) -> dict:
        """Chapter 05's summary, or an empty dict when chapter 05 has not run."""
        return _read_json(self.dpo_iter_metrics) if self.dpo_iter_metrics.exists() else {}

    def load_statements(self) -> pd.DataFrame:
        return _read_parquet(self.statements, ("statement_id", "text", "crisis"))

    def load_filter_counts(self) -> pd.DataFrame | None:
        """Chapter 01's funnel (step, statements), or None when chapter 01 has not run."""
        if not self.filter_counts.exists():
            return None
        counts = pd.read_csv(self.filter_counts)
        _require_columns(counts, ("step", "statements"), self.filter_counts)
        return counts


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LayoutError(f"{path}: missing column(s) {missing}; it has {list(frame.columns)}")


def _write_parquet(path: Path, frame: pd.DataFrame, columns: Sequence[str]) -> Path:
    _require_columns(frame, columns, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[list(columns)].to_parquet(path, index=False)
    return path


def _read_parquet(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the chapter that writes it has not run in this run folder")
    frame = pd.read_parquet(path)
    _require_columns(frame, columns, path)
    return frame


def _write_json(path: Path, value: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(value, indent=2, default=_json_default))
    os.replace(temp, path)
    return path


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise LayoutError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise LayoutError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _json_default(value):
    """NumPy scalars as Python numbers; anything else (paths, timestamps) as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)
