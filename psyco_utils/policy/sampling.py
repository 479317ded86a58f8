"""A DPO-Iter round's samples and their rewards, saved batch by batch so that a stopped round resumes (chapter 05).

At paper scale one round draws 8 samples for each of 6,400 statements (51,200 responses) and scores them with the
reward model: hours of GPU time that a crash or a lost Colab runtime must not throw away.  A round's statements are
cut into batches of ``pool.generation_batch_size`` statements.  Each batch is one generation call; as soon as it is
drawn it is saved under ``dpo_iter/round_<k>/samples/<fingerprint>/batch_NNNNN.json`` (its statements, the ``n``
responses to each and their lengths in tokens), and once the generator is freed each batch's rewards are added to its
file.  The fingerprint covers what the samples are drawn from and scored by: the policy's files, the reward model's
files, the statements (ids and texts, in order), the sampling settings, the seed, the batch size, ``models.dtype``
and the torch and transformers versions.  Batch ``b`` is drawn with seed ``seed + 1,000,003 b`` (a round of one
batch draws exactly what one call with the round's seed draws), so a resumed round draws only its missing batches,
scores only its unscored ones, and ends with the samples of an uninterrupted round.

Samples are saved only when the reward model is a saved folder (``scorer.source_path``), since a fingerprint must
name its files; with any other scorer (a test's rule) the round is drawn in memory with the same seeds.  With
``reuse_trained_models: false`` saved batches are ignored and overwritten.  Under a launcher only the main process
draws and saves them; the others train on the pairs it writes (:func:`psyco_utils.policy.run_dpo_iter`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .held_out import Samples

__all__ = ["SAMPLES_FORMAT", "BATCH_SEED_STRIDE", "SamplingSettings", "SampleEvent", "SavedSamples",
           "samples_fingerprint", "sample_and_score_in_batches"]

SAMPLES_FORMAT = 1
#: Batch ``b`` of a round is drawn with seed ``seed + BATCH_SEED_STRIDE * b``: batch 0 keeps the round's own seed, and
#: no batch of one round shares a seed with a batch of another (rounds differ in seed by 1).
BATCH_SEED_STRIDE = 1_000_003
_VERSIONED = ("torch", "transformers")


@dataclass(frozen=True)
class SamplingSettings:
    """How one round samples: ``n`` responses per statement at ``temperature``, at most ``max_new_tokens`` new tokens,
    ``batch_statements`` statements per generation call (and per saved batch), from ``seed``; and the reward points
    taken off per token before pairing (``length_penalty``, applied when read, so not part of the fingerprint)."""

    n: int
    temperature: float
    max_new_tokens: int
    batch_statements: int
    seed: int
    length_penalty: float = 0.0

    @classmethod
    def for_round(cls, cfg, k: int) -> "SamplingSettings":
        """Round ``k``'s settings from the profile's ``dpo_iter`` section (seed ``cfg.seed + k``)."""
        it = cfg.dpo_iter
        return cls(it.samples_per_statement, it.temperature, it.max_new_tokens, cfg.pool.generation_batch_size,
                   cfg.seed + k, it.length_penalty)

    def batch_seed(self, batch: int) -> int:
        return self.seed + BATCH_SEED_STRIDE * batch


@dataclass(frozen=True)
class SampleEvent:
    """What :func:`sample_and_score_in_batches` reports to its ``on_event`` hook as it happens: ``drawn`` (a batch is
    drawn and saved), ``scored`` (its rewards are saved).  Tests stop a round with it, never with the clock."""

    kind: str
    batch: int
    statements: int


@dataclass
class SavedSamples:
    """One round's batches: those read from disk or drawn so far (``records``), and where they are saved (None: kept
    in memory only)."""

    ids: list[str]
    statements: list[str]
    settings: SamplingSettings
    directory: Path | None
    records: dict[int, dict] = field(default_factory=dict)
    reused_batches: int = 0

    @property
    def batches(self) -> range:
        size = self.settings.batch_statements
        return range((len(self.statements) + size - 1) // size)

    def span(self, batch: int) -> slice:
        size = self.settings.batch_statements
        return slice(batch * size, (batch + 1) * size)

    @property
    def undrawn(self) -> list[int]:
        return [b for b in self.batches if b not in self.records]

    @property
    def unscored(self) -> list[int]:
        return [b for b in self.batches if "raw_rewards" not in self.records.get(b, {})]

    def save(self, batch: int, record: dict) -> None:
        """Keep a batch, and write it whole or not at all: a run killed while writing leaves it missing."""
        self.records[batch] = record
        if self.directory is not None:
            path = self.directory / f"batch_{batch:05d}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)

    def samples(self) -> Samples:
        """The round's samples with their rewards (raw reward minus the length penalty), in statement order."""
        records = [self.records[b] for b in self.batches]
        responses = [group for r in records for group in r["responses"]]
        raw = np.array([row for r in records for row in r["raw_rewards"]], dtype=float)
        lengths = np.array([row for r in records for row in r["lengths"]], dtype=float)
        seconds, tokens = sum(r["seconds"] for r in records), sum(r["new_tokens"] for r in records)
        return Samples(list(self.statements), responses, raw - self.settings.length_penalty * lengths, raw,
                       lengths, seconds, tokens, batches_reused=self.reused_batches)


def samples_fingerprint(policy_path: str, scorer_source: str, ids: list[str], statements: list[str],
                        settings: SamplingSettings, dtype: str) -> str:
    """The fingerprint of one round's samples: what they are drawn from and scored by (see the module)."""
    from ..manifest import package_versions
    from ..reuse import model_digest

    parts = {"format": SAMPLES_FORMAT, "policy": model_digest(policy_path), "reward_model": model_digest(scorer_source),
             "dtype": dtype, "versions": package_versions(_VERSIONED),
             "sampling": {"n": settings.n, "temperature": settings.temperature, "seed": settings.seed,
                          "max_new_tokens": settings.max_new_tokens, "batch_statements": settings.batch_statements},
             "statements": [[i, t] for i, t in zip(ids, statements)]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _open(policy_path: str, models_cfg, scorer, ids: list[str], statements: list[str], settings: SamplingSettings,
          samples_dir: Path | None, reuse: bool) -> SavedSamples:
    """The round's saved batches that hold exactly their statements; other fingerprints' folders are removed."""
    source = getattr(scorer, "source_path", None)
    if samples_dir is None or not source:
        return SavedSamples(ids, statements, settings, None)
    key = samples_fingerprint(policy_path, source, ids, statements, settings, models_cfg.dtype)
    directory = Path(samples_dir) / key[:16]
    if Path(samples_dir).is_dir():
        for old in Path(samples_dir).iterdir():
            if old.is_dir() and re.fullmatch(r"[0-9a-f]{16}", old.name) and (old != directory or not reuse):
                shutil.rmtree(old)
    directory.mkdir(parents=True, exist_ok=True)
    saved = SavedSamples(ids, statements, settings, directory)
    for b in saved.batches:
        try:
            record = json.loads((directory / f"batch_{b:05d}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # missing, or cut short: drawn again
        if record.get("statements") == statements[saved.span(b)] and len(record.get("responses", ())) == len(
                record["statements"]):
            saved.records[b] = record
    saved.reused_batches = len(saved.records)
    return saved


def _draw(saved: SavedSamples, policy_path: str, models_cfg, emit: Callable[[SampleEvent], None]) -> None:
    """Load the policy once, draw and save every missing batch, and free the policy (even on an error)."""
    from ..models import GenerationStats, generate_responses, load_generator
    from ..pool import LoadedGenerator, release_generator

    settings = saved.settings
    loaded = LoadedGenerator(*load_generator(policy_path, models_cfg))
    try:
        for b in saved.undrawn:
            stats, texts = GenerationStats(), saved.statements[saved.span(b)]
            groups = generate_responses(loaded.model, loaded.tokenizer, texts, n=settings.n,
                                        temperature=settings.temperature, max_new_tokens=settings.max_new_tokens,
                                        batch_size=settings.batch_statements, seed=settings.batch_seed(b),
                                        backend=loaded.backend, stats=stats)
            lengths = [[len(loaded.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in group]
                       for group in groups]
            saved.save(b, {"format": SAMPLES_FORMAT, "statements": texts, "responses": groups, "lengths": lengths,
                           "new_tokens": stats.new_tokens, "seconds": round(stats.seconds, 3)})
            emit(SampleEvent("drawn", b, len(texts)))
    finally:
        release_generator(loaded)


def _score(saved: SavedSamples, scorer, emit: Callable[[SampleEvent], None]) -> None:
    """Score every batch that has no rewards yet with the reward model, and save them into the batch's file."""
    for b in saved.unscored:
        record, n = saved.records[b], saved.settings.n
        flat_statements = [s for s, group in zip(record["statements"], record["responses"]) for _ in group]
        flat = [r for group in record["responses"] for r in group]
        raw = np.asarray(scorer.score(flat_statements, flat), dtype=float).reshape(len(record["statements"]), n)
        saved.save(b, {**record, "raw_rewards": raw.tolist()})
        emit(SampleEvent("scored", b, len(record["statements"])))


def sample_and_score_in_batches(policy_path: str, models_cfg, scorer, ids: list[str], statements: list[str],
                                settings: SamplingSettings, samples_dir: Path | None = None, reuse: bool = True,
                                on_event: Callable[[SampleEvent], Any] | None = None) -> Samples:
    """``settings.n`` samples per statement from the policy at ``policy_path``, scored by ``scorer``: the batches
    saved under ``samples_dir`` are read back, only the missing ones are drawn and only the unscored ones scored (see
    the module).  ``on_event`` is called with each :class:`SampleEvent`."""
    emit = on_event or (lambda event: None)
    saved = _open(policy_path, models_cfg, scorer, list(ids), list(statements), settings, samples_dir, reuse)
    if saved.undrawn:
        _draw(saved, policy_path, models_cfg, emit)
    _score(saved, scorer, emit)
    return saved.samples()
