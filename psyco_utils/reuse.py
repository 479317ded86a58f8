"""Reuse of saved work when a stage runs again on exactly the same inputs.

A training stage (the reward model, DPO, one DPO-Iter round) writes ``training_record.json`` beside the model it
saves.  The record holds a fingerprint of everything the training depended on: the stage name, its
hyper-parameters, the seed, the versions of torch / transformers / trl / peft, the training (and dev) pairs, and the
starting model's files.  When the stage runs again and the fingerprint matches, the saved model is loaded instead of
training it again, and the record supplies what the chapter reports about that training (time, steps, TRL's logs).
Anything that differs, even one pair or one learning-rate digit, gives another fingerprint and the stage trains.

The held-out samples that chapters 04 and 05 score (:func:`psyco_utils.policy.held_out_samples`) are kept the same
way, under their fingerprint (policy files, reward-model files, statements, sampling settings, seed): chapter 05
reads chapter 04's samples of the base and DPO policies instead of drawing the same samples again.

The profile switch ``reuse_trained_models`` (``--set reuse_trained_models=false``) always retrains and resamples.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .manifest import package_versions

RECORD_FILE = "training_record.json"
RECORD_FORMAT = 1
_VERSIONED = ("torch", "transformers", "trl", "peft")
_CHUNK = 1 << 20


def model_digest(path_or_id: str | Path) -> str:
    """A content hash of a local model folder (every file's relative path and bytes), or a hub id as written (a hub
    model that changes under the same id is not noticed: pin a local copy to be sure)."""
    path = Path(path_or_id)
    if not path.is_dir():
        return "hub:" + str(path_or_id)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def data_digest(data) -> str:
    """A content hash of a table of pairs (a ``datasets.Dataset`` or a DataFrame): its columns and every value."""
    if data is None:
        return "none"
    frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
    payload = json.dumps({"columns": list(map(str, frame.columns)),
                          "rows": frame.astype(str).to_numpy().tolist()}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprint(stage: str, *, hyperparameters: dict[str, Any], seed: int, start_model: str | Path,
                data: dict[str, Any]) -> str:
    """The fingerprint of one training run: stage, hyper-parameters, seed, library versions, starting model, data."""
    parts = {"format": RECORD_FORMAT, "stage": stage, "hyperparameters": hyperparameters, "seed": seed,
             "versions": package_versions(_VERSIONED), "start_model": model_digest(start_model),
             "data": {name: data_digest(value) for name, value in sorted(data.items())}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def load_record(out_dir: str | Path, key: str, model_dir: str | Path) -> dict | None:
    """The record of an earlier training with this fingerprint whose model is still saved, else None."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file() or not (Path(model_dir) / "config.json").is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a record cut short by a killed run: train again
    return record if record.get("fingerprint") == key else None


def previous_training(out_dir: str | Path, key: str, model_dir: str | Path, enabled: bool = True) -> dict | None:
    """The record to reuse (see :func:`load_record`), or None, in which case the stage is about to train and any
    stale record is removed first (:func:`forget`)."""
    record = load_record(out_dir, key, model_dir) if enabled else None
    if record is None:
        forget(out_dir)
    return record


def save_record(out_dir: str | Path, key: str, record: dict) -> Path:
    """Write the record after the model is saved, so that a record never points at a half-written model."""
    path = Path(out_dir) / RECORD_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": key, **record}, indent=2, default=str))
    tmp.replace(path)
    return path


def forget(out_dir: str | Path) -> None:
    """Remove the record before a new training overwrites the model (a killed run then leaves no stale record)."""
    (Path(out_dir) / RECORD_FILE).unlink(missing_ok=True)


__all__ = [
    "RECORD_FILE", "RECORD_FORMAT", "model_digest", "data_digest", "fingerprint", "load_record",
    "previous_training", "save_record", "forget",
]
